"""CacheKit core: caching methods and the machinery that installs them on a ComfyUI model.

`settings.py` declares each method's user-facing settings once; `methods/` holds each method's
config, decision and prediction rules in plain torch (no ComfyUI import) and its `MethodSpec`
(where it installs); `families/` the table of ComfyUI's diffusion model families and the support
matrix; `ratios/` MagCache's tables and calibration; `runtime/` the glue that installs wrappers and
patches on a cloned ModelPatcher, the per-call forward context and the per-run state.
"""
