"""The MagCache calibration node: the next sampling run records ratio curves and saves them to a file."""
from __future__ import annotations

import logging
from typing import Any

from ..cache_core.families.table import MAG_CALIBRATION
from ..cache_core.ratios.calibration import Calibration, MagCalibrationRun
from ..cache_core.ratios.library import output_directory
from ..cache_core.ratios.scheduler_match import identify_scheduler
from ..cache_core.ratios.ratio_file import FORMAT, calibration_tensors, model_fingerprint, write_new_file
from ..cache_core.runtime.install import install_block_stack_cache
from ..cache_core.runtime.run import SamplingRun
from ..cache_core.version import VERSION as CACHEKIT_VERSION
from .node_def import NodeDef, StringInput
from .ui_report import send_report_to_ui

log = logging.getLogger("CacheKit")

WIDGETS = (
    StringInput(
        "filename_prefix", "calibration",
        "Name of the ratio file, inside models/magcache_ratios (subfolders allowed, e.g. wan/t2v). A counter is "
        "added and existing files are never overwritten. Pick the file in the MagCache node afterwards "
        "(refresh the page to see it).",
    ),
)


def check_calibrate(filename_prefix: str) -> None:
    """Raise ValueError for a prefix that cannot name a file inside the ratio folder."""
    prefix = filename_prefix.strip().replace("\\", "/")
    if not prefix or prefix.startswith("/") or ".." in prefix.split("/") or prefix.endswith("/"):
        raise ValueError(f"filename_prefix '{filename_prefix}' must be a relative name such as 'wan/t2v'.")


def _comfyui_version() -> str:
    try:
        from comfyui_version import __version__
    except ImportError:
        return "unknown"
    return __version__


def _metadata(run: SamplingRun, calibration: Calibration, fingerprint: str, cfg_mode: str) -> dict[str, str]:
    first, last = calibration.progress[0], calibration.progress[-1]
    return {
        "format": FORMAT,
        "family": run.spec.family.name,
        "fingerprint": fingerprint,
        "sampler": run.sampler_name,
        "scheduler": identify_scheduler(run.model_sampling, run.clock.sample_sigmas),
        "steps": str(run.clock.total_steps),
        "step_range": f"{calibration.steps[0]}-{calibration.steps[-1]} of {run.clock.total_steps}, progress {first:.3f}-{last:.3f}",
        "cfg_mode": cfg_mode,
        "branches": ",".join(sorted(calibration.ratios)),
        "comfyui_version": _comfyui_version(),
        "cachekit_version": CACHEKIT_VERSION,
    }


def apply_calibration(model: Any, node_id: str | None = None, filename_prefix: str = "calibration") -> Any:
    """Return a clone of `model` whose next sampling run records MagCache ratios and writes them to a file."""
    check_calibrate(filename_prefix)
    fingerprint = model_fingerprint(model.get_model_object("diffusion_model"))
    prefix = filename_prefix.strip().replace("\\", "/")

    def start_run(run: SamplingRun) -> MagCalibrationRun:
        def save(calibration: Calibration) -> None:
            cfg_mode = "cfg" if "uncond" in calibration.ratios else "no-cfg"
            path = write_new_file(output_directory(), prefix, calibration_tensors(calibration), _metadata(run, calibration, fingerprint, cfg_mode))
            run.report.note = f"ratios saved to {path.name}"
            run.report.extra["calibration"] = {"file": path.name, "progress": calibration.progress, "ratios": calibration.ratios}
            log.info("CacheKit MagCache calibration: %d steps, branches %s, saved to %s", len(calibration.steps), ", ".join(sorted(calibration.ratios)), path)

        return MagCalibrationRun(run.clock.sample_sigmas, run.progress_of_sigma, save)

    return install_block_stack_cache(
        model,
        key="cachekit_mag_calibration",
        method=MAG_CALIBRATION,
        config=None,
        start_run=start_run,
        node_id=node_id,
        on_report=send_report_to_ui,
    )


MAG_CACHE_CALIBRATE_NODE = NodeDef(
    node_id="CacheKitMagCacheCalibrate",
    display_name="MagCache Calibrate (CacheKit)",
    description=(
        "Calibrates MagCache for your model: the next sampling run computes every step, records how the "
        "residual's magnitude changes per step (per CFG branch) and saves the ratios to models/magcache_ratios."
    ),
    widgets=WIDGETS,
    apply=apply_calibration,
    check=check_calibrate,
)
