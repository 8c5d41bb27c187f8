"""Test harness: finding and booting real ComfyUI, tiny random-weight models, a headless server."""
