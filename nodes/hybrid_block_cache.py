"""The Hybrid Block Cache node."""
from __future__ import annotations

from ..cache_core.methods.hybrid_block_cache import HYBRID_BLOCK_CACHE_SPEC
from .node_def import NodeDef

HYBRID_BLOCK_CACHE_NODE = NodeDef(
    node_id="CacheKitHybridBlockCache",
    display_name="Hybrid Block Cache (CacheKit)",
    description=(
        "The first blocks run every step and decide; while their residual barely changes, the middle blocks are "
        "skipped and their residual is replayed or predicted (TaylorSeer or FoCa), and the last blocks run on the "
        "result and correct it. Warmup, caps on reused steps, an optional step mask, and a quality-budget mode that "
        "aims at a speedup instead of a threshold. Place it between the model loader and the sampler."
    ),
    method=HYBRID_BLOCK_CACHE_SPEC,
)

apply_hybrid_block_cache = HYBRID_BLOCK_CACHE_NODE.apply
