"""One module per caching method: its config (settings declared once) and its pure decision /
prediction rules, plus a `MethodSpec` saying where it installs (spec.py)."""
from __future__ import annotations


def method_specs() -> tuple:
    """The methods users pick, in the order the README lists them (calibration goes with MagCache)."""
    from .faster_cache import FASTER_CACHE_SPEC
    from .first_block_cache import FIRST_BLOCK_CACHE_SPEC
    from .hybrid_block_cache import HYBRID_BLOCK_CACHE_SPEC
    from .mag_cache import MAG_CACHE_SPEC
    from .pyramid_attention_broadcast import PYRAMID_ATTENTION_BROADCAST_SPEC
    from .taylorseer import TAYLORSEER_SPEC

    return (FIRST_BLOCK_CACHE_SPEC, PYRAMID_ATTENTION_BROADCAST_SPEC, FASTER_CACHE_SPEC, TAYLORSEER_SPEC, MAG_CACHE_SPEC,
            HYBRID_BLOCK_CACHE_SPEC)
