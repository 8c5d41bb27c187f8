"""The MagCache calibration file: ratio curves and the run's schedule as .safetensors, plus metadata.

Tensors (float32): `progress` (schedule progress per recorded step), `sigmas`, `steps` and, per
branch b in {cond, uncond}, `ratios.b`, `ratio_std.b`, `cosine_distance.b`.
Metadata (strings): format, level (blocks: the block stack's residual; model: the whole model
output), complete ("true": every step of a finished run was recorded), family, fingerprint,
sampler, scheduler, steps, step_range, cfg_mode, versions. Files of format v1 (before levels) are
block-level.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
import torch

from .mag_ratios import BLOCKS, MODEL, MagRatios
from .calibration import Calibration

FORMAT = "cachekit.magcache.v2"
READABLE_FORMATS = ("cachekit.magcache.v1", FORMAT)


class RatioFileError(ValueError):
    """A calibration file that cannot be used; the message names the file and the problem."""


def calibration_tensors(calibration: Calibration) -> dict[str, torch.Tensor]:
    """The tensors written for a calibration."""
    tensors = {
        "progress": torch.tensor(calibration.progress, dtype=torch.float32),
        "sigmas": torch.tensor(calibration.sigmas, dtype=torch.float32),
        "steps": torch.tensor(calibration.steps, dtype=torch.float32),
    }
    for name, table in (("ratios", calibration.ratios), ("ratio_std", calibration.ratio_std), ("cosine_distance", calibration.cosine_distance)):
        for branch, values in table.items():
            tensors[f"{name}.{branch}"] = torch.tensor(values, dtype=torch.float32)
    return tensors


NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows)
NEW_FILE_SUFFIX = "_00000.safetensors"  # the counter and extension write_new_file adds


def check_file_prefix(prefix: str) -> None:
    """Raise ValueError, naming what is valid, unless write_new_file can make a file from `prefix` (a relative
    name such as 'wan/t2v'): a file name after the last '/' that is not '.' or '..', and names the file system takes.

    Checked when the prompt is queued, so a calibration never computes a whole run to fail at the end."""
    parts = prefix.split("/")
    stem = parts[-1]
    longest = NAME_MAX - len(NEW_FILE_SUFFIX.encode())
    if not stem or stem in (".", ".."):
        raise ValueError(f"filename_prefix '{prefix}' must end in a file name (such as 'wan/t2v'), not '{stem}'.")
    if len(stem.encode()) > longest:
        raise ValueError(f"filename_prefix '{prefix[:40]}...': the file name '{stem[:40]}...' has {len(stem.encode())} "
                         f"bytes; at most {longest} fit (the counter and .safetensors are added).")
    for part in parts[:-1]:
        if len(part.encode()) > NAME_MAX:
            raise ValueError(f"filename_prefix '{prefix[:40]}...': the folder name '{part[:40]}...' has "
                             f"{len(part.encode())} bytes; at most {NAME_MAX} fit.")


def write_new_file(directory: Path, prefix: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write `<prefix>_NNNNN.safetensors` under `directory` atomically, never replacing a file."""
    from safetensors.torch import save_file

    check_file_prefix(prefix)
    target_dir = (directory / prefix).parent
    stem = Path(prefix).name
    target_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target_dir, prefix=f".{stem}.", suffix=".tmp")
    os.close(handle)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, temporary, metadata=metadata)
        for counter in range(1, 100000):
            final = target_dir / f"{stem}_{counter:05d}.safetensors"
            try:
                os.link(temporary, final)  # atomic, and fails when the name is taken
            except FileExistsError:
                continue
            return final
        raise RuntimeError(f"no free file name for '{prefix}' in {target_dir}")
    finally:
        os.unlink(temporary)


def load_ratio_file(path: Path) -> tuple[MagRatios, dict[str, str]]:
    """Read and check a calibration file; RatioFileError names the file and what is wrong."""
    from safetensors import safe_open

    name = path.name
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise RatioFileError(f"MagCache ratio file '{name}' cannot be read ({err}).") from None
    if metadata.get("format") not in READABLE_FORMATS:
        raise RatioFileError(
            f"MagCache ratio file '{name}' is not a CacheKit calibration this version reads (format "
            f"{metadata.get('format')!r}; readable: {', '.join(READABLE_FORMATS)})."
        )
    if metadata.get("complete", "true") != "true":
        raise RatioFileError(f"MagCache ratio file '{name}' was recorded by a run that did not finish; calibrate again.")
    level = metadata.get("level", BLOCKS)
    if level not in (BLOCKS, MODEL):
        raise RatioFileError(f"MagCache ratio file '{name}' has an unknown level {level!r} (expected {BLOCKS} or {MODEL}).")
    for key in ("progress", "ratios.cond"):
        if key not in tensors:
            raise RatioFileError(f"MagCache ratio file '{name}' lacks the '{key}' tensor.")
    values = {}
    for key in ("progress", "ratios.cond", "ratios.uncond"):
        if key not in tensors:
            continue
        tensor = tensors[key]
        if tensor.dtype != torch.float32 or tensor.dim() != 1:
            raise RatioFileError(f"MagCache ratio file '{name}': '{key}' must be a 1-D float32 tensor, got {tensor.dtype} {tuple(tensor.shape)}.")
        if not torch.isfinite(tensor).all():
            raise RatioFileError(f"MagCache ratio file '{name}': '{key}' contains NaN or infinite values.")
        values[key] = tensor.tolist()
    try:
        ratios = MagRatios.from_lists(
            name=name, cond=values["ratios.cond"], uncond=values.get("ratios.uncond"), positions=values["progress"],
            family=metadata.get("family"), source=str(path), level=level,
        )
    except ValueError as err:
        detail = str(err).removeprefix(f"MagCache ratios '{name}': ")  # the table's own message names the file too
        raise RatioFileError(f"MagCache ratio file '{name}': {detail}") from None
    return ratios, metadata


def model_fingerprint(diffusion_model: torch.nn.Module) -> str:
    """Architecture, parameter shapes and a cheap sample of weights, as a short JSON string."""
    import hashlib

    shapes = hashlib.sha256()
    samples = []
    for index, (key, tensor) in enumerate(diffusion_model.state_dict().items()):
        shapes.update(f"{key}:{tuple(tensor.shape)};".encode())
        if index % 97 == 0 and tensor.numel():
            flat = tensor.detach().reshape(-1)[:64].float().cpu()
            samples.append(round(float(flat.sum()), 4))
    weights = hashlib.sha256(json.dumps(samples).encode()).hexdigest()[:16]
    return json.dumps({"class": type(diffusion_model).__name__, "shapes": shapes.hexdigest()[:16], "weights": weights})


def fingerprint_mismatch(expected: str | None, actual: str) -> str | None:
    """A user-facing description of how two fingerprints differ, or None when they match."""
    if not expected:
        return None
    try:
        a, b = json.loads(expected), json.loads(actual)
    except ValueError:
        return "the file's model fingerprint is unreadable"
    if a.get("class") != b.get("class") or a.get("shapes") != b.get("shapes"):
        return "it was calibrated on a model with a different architecture"
    if a.get("weights") != b.get("weights"):
        return "it was calibrated on different weights of the same architecture"
    return None

