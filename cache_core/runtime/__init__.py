"""Glue between the caching methods and ComfyUI: per-run state, the step clock, per-branch
state, the run report, and the installation of wrappers and block patches on a cloned model."""
