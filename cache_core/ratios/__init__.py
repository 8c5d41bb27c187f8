"""MagCache magnitude-ratio tables: the table type, built-in presets, calibration and its file format."""
