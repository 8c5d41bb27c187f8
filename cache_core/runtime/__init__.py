"""Glue between the caching methods and ComfyUI: installation on a cloned model, the per-run state
and the per-call forward context, the step clock, the segmented block stack, the model level,
attention hooks, CFG estimation, per-branch storage and the run report."""
