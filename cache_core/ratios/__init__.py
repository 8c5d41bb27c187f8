"""MagCache magnitude-ratio tables: built-in presets (and, later, calibration files)."""
