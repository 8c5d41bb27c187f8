"""Attention sites: where a family computes attention, and of which kind (listed in the family table).

Kinds follow diffusers: "spatial" is self-attention over the latent tokens (joint text+image
attention and Wan's full spatio-temporal self-attention count as spatial), "temporal" is attention
along the frame axis only, "cross" attends from latent tokens to the text context.

Two ways to reach an attention computation without copying a model forward:
- MODULE_FORWARD: the attention is its own module whose `forward` receives `transformer_options`
  (Wan's `self_attn` / `cross_attn`). Its `forward` is object-patched, so a reuse skips the whole
  module, projections included (as diffusers does).
- BLOCK_KERNEL: the attention is inline in a block (Flux, Chroma, HunyuanVideo call
  `comfy.ldm.flux.math.attention`). The block's `patches_replace["dit"]` entry installs an
  `optimized_attention_override` for that block only, so a reuse skips the attention kernel
  (q/k/v projections, norms and RoPE still run).
- FORWARD_KERNEL: the family has no block patch points, but its attention calls pass
  `transformer_options` on to ComfyUI's attention functions. The forward's context installs one
  `optimized_attention_override` for the whole forward; each kernel call is a site, numbered in
  call order (the same every forward). A reuse skips the kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .table import Family

SPATIAL = "spatial"
TEMPORAL = "temporal"
CROSS = "cross"
ATTENTION_KINDS = (SPATIAL, TEMPORAL, CROSS)

MODULE_FORWARD = "module_forward"
BLOCK_KERNEL = "block_kernel"
FORWARD_KERNEL = "forward_kernel"


@dataclass(frozen=True)
class AttentionSites:
    """One attention site per block of a block list.

    block_list: attribute of the diffusion model holding the blocks (an nn.ModuleList).
    kind: SPATIAL, TEMPORAL or CROSS.
    via: MODULE_FORWARD (object patch on `<block_list>.<i>.<module>.forward`), BLOCK_KERNEL
        (attention override installed by the block's `patches_replace[("dit", (replace_name, i))]`)
        or FORWARD_KERNEL (one override for the whole forward; block_list is "").
    module: the attention submodule of each block (MODULE_FORWARD only).
    replace_name: the block's name in `patches_replace["dit"]` keys (BLOCK_KERNEL only).
    """

    block_list: str
    kind: str
    via: str
    module: Optional[str] = None
    replace_name: Optional[str] = None


def attention_sites(family: "Family", kinds: frozenset[str] | set[str] | tuple[str, ...] = ATTENTION_KINDS) -> tuple[AttentionSites, ...]:
    """The attention sites of `family` whose kind is in `kinds`."""
    return tuple(sites for sites in family.attention if sites.kind in kinds)


def skips_projections(family: "Family") -> bool:
    """True when a reuse skips the whole attention module, False when only the kernel is skipped."""
    return bool(family.attention) and all(s.via == MODULE_FORWARD for s in family.attention)
