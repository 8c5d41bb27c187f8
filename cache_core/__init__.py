"""CacheKit core: caching methods and the machinery that installs them on a ComfyUI model.

`methods/` holds each method's configuration and decision rules in plain torch (no ComfyUI
import), `families/` the table of supported diffusion model families, and `runtime/` the glue
that installs wrappers and block patches on a cloned ModelPatcher and owns per-run state.
"""
