"""The model level: MagCache and TaylorSeer on the whole model output, for families without block
skipping; through the DIFFUSION_MODEL wrapper (SD1.5 / SDXL U-Net) or, for families without it, at
APPLY_MODEL (PixArt); calibration files of the model level."""
from __future__ import annotations

import pytest
import torch

from cachekit.cache_core.ratios.ratio_file import load_ratio_file
from cachekit.nodes import NODE_DEFS
from harness import tiny_families

NODES = {d.node_id: d for d in NODE_DEFS}
STEPS = 12


def sample(model, name, cfg=2.0):
    return tiny_families.sample_family(model, name, steps=STEPS, cfg=cfg)


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture()
def ratio_folder(tmp_path, monkeypatch):
    import folder_paths

    from cachekit.cache_core.ratios.library import FOLDER

    monkeypatch.setitem(folder_paths.folder_names_and_paths, FOLDER, ([str(tmp_path / FOLDER)], {".safetensors"}))
    return tmp_path / FOLDER


@pytest.mark.parametrize("name", ["sd15", "pixart_sigma"])
def test_taylorseer_predicts_the_model_output(reports, name):
    model = tiny_families.load_family(name)
    base = sample(model, name)
    taylor = NODES["CacheKitTaylorSeerCache"]
    assert torch.equal(sample(taylor.apply(model, disable_cache_before_step=100), name), base)
    out = sample(taylor.apply(model, disable_cache_before_step=2, cache_interval=3), name)
    report = reports[-1]
    assert report.unit == "forwards" and report.units_computed < report.units_total
    assert 0 < relative(out, base) < 0.5


@pytest.mark.parametrize("name", ["sd15", "pixart_sigma"])
def test_model_level_calibration_round_trip(reports, ratio_folder, name):
    model = tiny_families.load_family(name)
    base = sample(model, name)
    assert torch.equal(sample(NODES["CacheKitMagCacheCalibrate"].apply(model, filename_prefix=name), name), base)
    ratios, metadata = load_ratio_file(ratio_folder / f"{name}_00001.safetensors")
    assert metadata["level"] == "model" and metadata["complete"] == "true" and ratios.level == "model"
    assert len(ratios.cond) == len(ratios.uncond) == STEPS
    mag = NODES["CacheKitMagCache"]
    assert torch.equal(sample(mag.apply(model, ratios=f"{name}_00001.safetensors", threshold=0.0), name), base)
    out = sample(mag.apply(model, ratios=f"{name}_00001.safetensors", threshold=0.5, retention_ratio=0.1), name)
    assert reports[-1].units_computed < reports[-1].units_total and relative(out, base) < 0.5


def test_a_block_level_table_on_a_model_level_family_is_a_clear_error():
    model = tiny_families.load_family("sd15")
    with pytest.raises(ValueError, match="measure the block stack's residual, but UNet .* is cached at model level; make a table"):
        NODES["CacheKitMagCache"].run(model, None, {"ratios": "flux", "threshold": 0.06, "max_skip_steps": 3, "retention_ratio": 0.2})
