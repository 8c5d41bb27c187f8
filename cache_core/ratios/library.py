"""The ratio library: the models folder where calibrations are written and read, plus the presets.

The folder is registered with ComfyUI's folder_paths as `magcache_ratios` (default
`models/magcache_ratios`), so `extra_model_paths.yaml` can add more locations.
"""
from __future__ import annotations

import os
from pathlib import Path

from .mag_ratios import MagRatios
from .presets import load_preset, preset_names
from .ratio_file import load_ratio_file

FOLDER = "magcache_ratios"
EXTENSION = ".safetensors"


def register_folder() -> None:
    """Register the ratio folder with ComfyUI (only .safetensors files are listed)."""
    import folder_paths

    if FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[FOLDER] = ([os.path.join(folder_paths.models_dir, FOLDER)], {EXTENSION})


def output_directory() -> Path:
    """Where new calibrations are written (the folder's first location)."""
    import folder_paths

    register_folder()
    return Path(folder_paths.get_folder_paths(FOLDER)[0])


def calibration_files() -> list[str]:
    """Calibration files currently in the ratio folder(s), relative names."""
    try:
        import folder_paths
    except ImportError:
        return []
    register_folder()
    return sorted(folder_paths.get_filename_list(FOLDER))


def ratio_choices() -> list[str]:
    """What the MagCache node offers: built-in presets, then calibration files."""
    return preset_names() + calibration_files()


def file_state(choice: str) -> tuple:
    """What identifies the content of a combo choice: for a calibration file its size and modification time (a file
    replaced under the same name changes it), for a preset or an unknown name the name alone."""
    if not isinstance(choice, str) or not choice.endswith(EXTENSION):
        return (choice,)
    try:
        import folder_paths
    except ImportError:
        return (choice,)
    register_folder()
    path = folder_paths.get_full_path(FOLDER, choice)
    try:
        stat = os.stat(path) if path else None
    except OSError:
        stat = None
    return (choice,) if stat is None else (choice, stat.st_size, stat.st_mtime_ns)


def load_ratios(choice: str) -> tuple[MagRatios, dict[str, str]]:
    """The table for a combo choice: a preset name or a calibration file name (ValueError if unusable)."""
    if not choice.endswith(EXTENSION):
        try:
            return load_preset(choice), {}
        except KeyError as err:
            raise ValueError(str(err.args[0])) from None
    import folder_paths

    register_folder()
    path = folder_paths.get_full_path(FOLDER, choice)
    if path is None or not os.path.isfile(path):
        raise ValueError(f"MagCache ratio file '{choice}' was not found in the {FOLDER} folder "
                         f"({', '.join(folder_paths.get_folder_paths(FOLDER))}); {_available()}.")
    return load_ratio_file(Path(path))


def _available(shown: int = 12) -> str:
    """What the MagCache node can use instead, for a message: the presets and the calibration files."""
    files = calibration_files()
    text = f"choose a built-in table ({', '.join(preset_names())})"
    if files:
        text += f" or a calibration file ({', '.join(files[:shown])}{', ...' if len(files) > shown else ''})"
    return text + ", or write one with MagCache Calibrate"
