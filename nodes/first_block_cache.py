"""The FirstBlockCache node."""
from __future__ import annotations

from ..cache_core.methods.first_block_cache import FIRST_BLOCK_CACHE_SPEC
from .node_def import NodeDef

FIRST_BLOCK_CACHE_NODE = NodeDef(
    node_id="CacheKitFirstBlockCache",
    display_name="First Block Cache (CacheKit)",
    description=(
        "Runs the first transformer block every step and, while its output barely changes, skips the "
        "remaining blocks and replays the change they made last time. Place it between the model loader "
        "and the sampler."
    ),
    method=FIRST_BLOCK_CACHE_SPEC,
)

apply_first_block_cache = FIRST_BLOCK_CACHE_NODE.apply
