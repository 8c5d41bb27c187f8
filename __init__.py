"""CacheKit: caching accelerators for ComfyUI diffusion sampling.

ComfyUI loads this package as a custom node pack. With the V3 node API available it exports
`comfy_entrypoint` only; on older ComfyUI it falls back to V1 `NODE_CLASS_MAPPINGS` (never both:
ComfyUI ignores the V3 entry point when V1 mappings exist).
"""
from __future__ import annotations

import logging

from .cache_core.version import VERSION as __version__
from .nodes import NODE_DEFS

WEB_DIRECTORY = "./web"

try:
    from comfy_api.latest import ComfyExtension as _ComfyExtension  # noqa: F401  (ComfyUI >= 0.3.47)
except ImportError:
    _ComfyExtension = None

if _ComfyExtension is not None:
    from .nodes.comfy_v3 import CacheKitExtension

    async def comfy_entrypoint() -> CacheKitExtension:
        """ComfyUI's V3 entry point."""
        return CacheKitExtension(NODE_DEFS)

    __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
else:
    from .nodes.comfy_v1 import build_v1_node

    logging.getLogger("CacheKit").warning(
        "CacheKit: this ComfyUI has no V3 node API; the nodes load but need ComfyUI 0.3.60 or newer to run."
    )
    NODE_CLASS_MAPPINGS = {d.node_id: build_v1_node(d) for d in NODE_DEFS}
    NODE_DISPLAY_NAME_MAPPINGS = {d.node_id: d.display_name for d in NODE_DEFS}
    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
