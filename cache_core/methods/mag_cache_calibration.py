"""MagCache calibration as a method: the next sampling run records ratio curves and saves them.

It never reuses anything. It is placed where MagCache would be (the block stack where the family
has one, else the model output) and records that level; a finished, complete run writes
`<filename_prefix>_NNNNN.safetensors` into the ratio folder (cache_core/ratios/ratio_file.py).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from ..families.table import MAG_CALIBRATION, STACK, Family
from ..ratios.calibration import Calibration, MagCalibrationRun
from ..ratios.mag_ratios import BLOCKS, MODEL
from ..settings import STRING, check_settings, setting
from ..version import VERSION
from .spec import MethodSpec, Placement, stack_or_model

log = logging.getLogger("CacheKit")


def check_prefix(filename_prefix: str) -> str:
    """The prefix normalised; ValueError for one that cannot name a file inside the ratio folder."""
    prefix = filename_prefix.strip().replace("\\", "/")
    if not prefix or prefix.startswith("/") or ".." in prefix.split("/") or prefix.endswith("/") or "\x00" in prefix:
        raise ValueError(f"filename_prefix '{filename_prefix}' must be a relative name such as 'wan/t2v'.")
    return prefix


@dataclass(frozen=True)
class MagCacheCalibrationConfig:
    """Settings of the calibration node; `fingerprint` is filled from the model when installed."""

    filename_prefix: str = setting(
        STRING, "calibration", "Name of the ratio file, inside models/magcache_ratios (subfolders allowed, e.g. "
        "wan/t2v). A counter is added and existing files are never overwritten. Pick the file in the MagCache node "
        "afterwards (refresh the page to see it).")
    fingerprint: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        check_settings(self)
        object.__setattr__(self, "filename_prefix", check_prefix(self.filename_prefix))

    enabled = True


def _comfyui_version() -> str:
    try:
        from comfyui_version import __version__
    except ImportError:
        return "unknown"
    return __version__


def calibration_metadata(run: Any, calibration: Calibration, fingerprint: str) -> dict[str, str]:
    """The metadata written with a calibration."""
    from ..ratios.ratio_file import FORMAT
    from ..ratios.scheduler_match import identify_scheduler

    first, last = calibration.progress[0], calibration.progress[-1]
    return {
        "format": FORMAT,
        "level": calibration.level,
        "complete": "true",
        "family": run.spec.family.name,
        "fingerprint": fingerprint,
        "sampler": run.sampler_name,
        "scheduler": identify_scheduler(run.model_sampling, run.clock.sample_sigmas),
        "steps": str(run.clock.total_steps),
        "step_range": f"{calibration.steps[0]}-{calibration.steps[-1]} of {run.clock.total_steps}, progress {first:.3f}-{last:.3f}",
        "cfg_mode": "cfg" if "uncond" in calibration.ratios else "no-cfg",
        "branches": ",".join(sorted(calibration.ratios)),
        "comfyui_version": _comfyui_version(),
        "cachekit_version": VERSION,
    }


def start(config: MagCacheCalibrationConfig, run: Any) -> MagCalibrationRun:
    """The recorder for one run; on a complete run it writes the file and notes it in the report."""
    level = BLOCKS if STACK in run.spec.sites else MODEL

    def save(calibration: Calibration) -> None:
        from ..ratios.library import output_directory
        from ..ratios.ratio_file import calibration_tensors, write_new_file

        path = write_new_file(output_directory(), config.filename_prefix, calibration_tensors(calibration),
                              calibration_metadata(run, calibration, config.fingerprint))
        run.report.add_note(f"ratios saved to {path.name}")
        run.report.extra["calibration"] = {"file": path.name, "progress": calibration.progress, "ratios": calibration.ratios}
        log.info("CacheKit MagCache calibration: %d steps, branches %s, saved to %s", len(calibration.steps),
                 ", ".join(sorted(calibration.ratios)), path)

    return MagCalibrationRun(run.clock.total_steps, level, save)


def prepare(config: MagCacheCalibrationConfig, model: Any) -> MagCacheCalibrationConfig:
    """The config with the model's fingerprint (stored in the file, checked by MagCache)."""
    from ..ratios.ratio_file import model_fingerprint

    return dataclasses.replace(config, fingerprint=model_fingerprint(model.get_model_object("diffusion_model")))


def place(config: MagCacheCalibrationConfig, family: Family) -> Placement:
    """Where MagCache would be placed on this family."""
    return stack_or_model(family)


MAG_CACHE_CALIBRATION_SPEC = MethodSpec(
    name=MAG_CALIBRATION,
    key="cachekit_mag_calibration",
    config_type=MagCacheCalibrationConfig,
    place=place,
    start=start,
    prepare=prepare,
)
