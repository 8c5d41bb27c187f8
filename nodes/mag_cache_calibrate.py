"""The MagCache calibration node: the next sampling run records ratio curves and saves them to a file."""
from __future__ import annotations

from ..cache_core.methods.mag_cache_calibration import MAG_CACHE_CALIBRATION_SPEC
from .node_def import NodeDef

MAG_CACHE_CALIBRATE_NODE = NodeDef(
    node_id="CacheKitMagCacheCalibrate",
    display_name="MagCache Calibrate (CacheKit)",
    description=(
        "Calibrates MagCache for your model: the next sampling run computes every step, records how the "
        "residual's magnitude changes per step (per CFG branch) and saves the ratios to models/magcache_ratios. "
        "A run that is interrupted or does not record every step saves nothing."
    ),
    method=MAG_CACHE_CALIBRATION_SPEC,
)

apply_calibration = MAG_CACHE_CALIBRATE_NODE.apply
