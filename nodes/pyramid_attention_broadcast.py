"""The Pyramid Attention Broadcast node."""
from __future__ import annotations

from ..cache_core.methods.pyramid_attention_broadcast import PYRAMID_ATTENTION_BROADCAST_SPEC
from .node_def import NodeDef

KEY = PYRAMID_ATTENTION_BROADCAST_SPEC.key

PYRAMID_ATTENTION_BROADCAST_NODE = NodeDef(
    node_id="CacheKitPyramidAttentionBroadcast",
    display_name="Pyramid Attention Broadcast (CacheKit)",
    description=(
        "Reuses attention outputs between steps (PAB): each attention layer is computed every N evaluations "
        "inside a window of the schedule and its last output is broadcast in between, separately for the "
        "positive and negative prompt. Place it between the model loader and the sampler."
    ),
    method=PYRAMID_ATTENTION_BROADCAST_SPEC,
)

WIDGETS = PYRAMID_ATTENTION_BROADCAST_NODE.widgets
apply_pyramid_attention_broadcast = PYRAMID_ATTENTION_BROADCAST_NODE.apply
