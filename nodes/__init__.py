"""CacheKit's graph nodes: one module per node (schema, input checks, a call into cache_core)."""
from __future__ import annotations

from .faster_cache import FASTER_CACHE_NODE
from .first_block_cache import FIRST_BLOCK_CACHE_NODE
from .hybrid_block_cache import HYBRID_BLOCK_CACHE_NODE
from .mag_cache import MAG_CACHE_NODE
from .mag_cache_calibrate import MAG_CACHE_CALIBRATE_NODE
from .pyramid_attention_broadcast import PYRAMID_ATTENTION_BROADCAST_NODE
from .taylorseer import TAYLORSEER_NODE
from .node_def import NodeDef

NODE_DEFS: tuple[NodeDef, ...] = (
    FIRST_BLOCK_CACHE_NODE,
    PYRAMID_ATTENTION_BROADCAST_NODE,
    FASTER_CACHE_NODE,
    TAYLORSEER_NODE,
    MAG_CACHE_NODE,
    MAG_CACHE_CALIBRATE_NODE,
    HYBRID_BLOCK_CACHE_NODE,
)
