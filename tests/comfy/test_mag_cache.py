"""MagCache and its calibration node against real ComfyUI, in-process, on tiny random-weight models."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from cachekit.cache_core.ratios.ratio_file import RatioFileError, load_ratio_file
from cachekit.nodes.mag_cache import apply_mag_cache, check_mag_cache
from cachekit.nodes.mag_cache_calibrate import apply_calibration


def mag(model, ratios="flux", threshold=0.06, max_skip_steps=3, retention_ratio=0.2):
    return apply_mag_cache(model, ratios=ratios, threshold=threshold, max_skip_steps=max_skip_steps, retention_ratio=retention_ratio)


@pytest.fixture()
def ratio_folder(tmp_path, monkeypatch):
    """A fresh models folder for calibration files."""
    import folder_paths

    from cachekit.cache_core.ratios.library import FOLDER

    monkeypatch.setitem(folder_paths.folder_names_and_paths, FOLDER, ([str(tmp_path / FOLDER)], {".safetensors"}))
    return tmp_path / FOLDER


def test_threshold_zero_matches_the_unpatched_model(tiny):
    model = tiny.load_tiny("flux")
    for cfg in (1.0, 3.0):
        assert torch.equal(tiny.run_sampler(mag(model, threshold=0.0), "flux", cfg=cfg), tiny.run_sampler(model, "flux", cfg=cfg))


def test_defaults_at_28_steps_skip_diffusers_schedule(tiny, reports):
    """diffusers' defaults with FLUX_MAG_RATIOS at 28 steps skip steps 6,8,10,11,12,14,15,16,18,19,20,22,23,25."""
    tiny.run_sampler(mag(tiny.load_tiny("flux")), "flux", steps=28)
    skipped = [i for i, status in enumerate(reports[0].step_status()) if status == "reused"]
    assert skipped == [6, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20, 22, 23, 25]


@pytest.mark.parametrize("family", ["flux", "wan21", "hunyuan_video"])
def test_skipping_computes_fewer_forwards_with_a_bounded_difference(tiny, family):
    model = tiny.load_tiny(family)
    base = tiny.run_sampler(model, family, steps=20, cfg=3.0)
    with tiny.count_block_calls(model) as counter:
        out = tiny.run_sampler(mag(model, threshold=0.3), family, steps=20, cfg=3.0)
    assert counter.calls < counter.forwards * len(list(_blocks(model)))
    assert (out - base).abs().max().item() < 0.25 * base.abs().max().item()


def _blocks(model):
    dm = model.get_model_object("diffusion_model")
    for name in ("double_blocks", "single_blocks", "blocks"):
        yield from getattr(dm, name, [])


def test_batched_and_split_cfg_agree_and_model_is_untouched(tiny):
    model = tiny.load_tiny("wan21")
    before = tiny.run_sampler(model, "wan21", cfg=3.0, steps=16)
    patched = mag(model, threshold=0.3)
    with tiny.count_block_calls(model) as batched:
        a = tiny.run_sampler(patched, "wan21", cfg=3.0, steps=16)
    with tiny.force_split_cfg(), tiny.count_block_calls(model) as split:
        b = tiny.run_sampler(patched, "wan21", cfg=3.0, steps=16)
    assert split.calls == 2 * batched.calls
    assert torch.allclose(a, b, atol=1e-4)
    assert torch.equal(tiny.run_sampler(patched, "wan21", cfg=3.0, steps=16), a)
    assert torch.equal(tiny.run_sampler(model, "wan21", cfg=3.0, steps=16), before)


def test_calibration_round_trip(tiny, ratio_folder):
    model = tiny.load_tiny("wan21")
    calibrating = apply_calibration(model, filename_prefix="wan/tiny")
    calibrated = tiny.run_sampler(calibrating, "wan21", cfg=3.0, steps=20)
    assert torch.equal(calibrated, tiny.run_sampler(model, "wan21", cfg=3.0, steps=20))  # calibration never skips
    tiny.run_sampler(calibrating, "wan21", cfg=3.0, steps=20)
    files = sorted(p.relative_to(ratio_folder).as_posix() for p in ratio_folder.rglob("*.safetensors"))
    assert files == ["wan/tiny_00001.safetensors", "wan/tiny_00002.safetensors"]
    ratios, metadata = load_ratio_file(ratio_folder / files[0])
    assert len(ratios.cond) == 20 and ratios.uncond is not None and len(ratios.uncond) == 20
    assert metadata["family"] == "Wan" and metadata["cfg_mode"] == "cfg" and metadata["steps"] == "20"
    assert metadata["sampler"] == "sample_euler" and metadata["scheduler"] == "simple"
    assert ratios.positions[0] == 0.0 and all(b > a for a, b in zip(ratios.positions, ratios.positions[1:]))

    base = {steps: tiny.run_sampler(model, "wan21", cfg=3.0, steps=steps) for steps in (20, 12)}
    for steps in (20, 12):
        with tiny.count_block_calls(model) as counter:
            out = tiny.run_sampler(mag(model, ratios=files[0], threshold=0.2), "wan21", cfg=3.0, steps=steps)
        assert counter.calls < counter.forwards * 3
        assert (out - base[steps]).abs().max().item() < 0.25 * base[steps].abs().max().item()


def test_batched_and_split_calibrations_are_the_same(tiny, ratio_folder):
    model = tiny.load_tiny("flux")
    tiny.run_sampler(apply_calibration(model, filename_prefix="batched"), "flux", cfg=3.0, steps=10)
    with tiny.force_split_cfg():
        tiny.run_sampler(apply_calibration(model, filename_prefix="split"), "flux", cfg=3.0, steps=10)
    a, _ = load_ratio_file(ratio_folder / "batched_00001.safetensors")
    b, _ = load_ratio_file(ratio_folder / "split_00001.safetensors")
    assert a.cond == pytest.approx(b.cond, abs=1e-4) and a.uncond == pytest.approx(b.uncond, abs=1e-4)


def test_calibration_names_the_scheduler_from_the_sigmas(tiny, ratio_folder):
    model = tiny.load_tiny("flux")
    tiny.run_sampler(apply_calibration(model, filename_prefix="beta"), "flux", steps=8, scheduler="beta", denoise=0.6)
    tiny.run_sampler(apply_calibration(model, filename_prefix="karras"), "flux", steps=8, scheduler="karras")
    tiny.run_custom_sampler(apply_calibration(model, filename_prefix="custom"), "flux", torch.linspace(1.0, 0.0, 9) ** 2)
    names = {prefix: load_ratio_file(ratio_folder / f"{prefix}_00001.safetensors")[1]["scheduler"] for prefix in ("beta", "karras", "custom")}
    assert names == {"beta": "beta", "karras": "karras", "custom": "custom"}


def test_partial_run_calibration_covers_its_range(tiny, ratio_folder):
    """A calibration of one expert's half of the schedule (Wan 2.2 style) records that range only."""
    model = tiny.load_tiny("wan21")
    latent = torch.randn(tiny.empty_latent("wan21").shape, generator=torch.Generator().manual_seed(3))
    tiny.run_sampler(apply_calibration(model, filename_prefix="low"), "wan21", steps=20, start_step=10, last_step=20, latent=latent)
    ratios, metadata = load_ratio_file(ratio_folder / "low_00001.safetensors")
    assert len(ratios.cond) == 10 and 0.4 < ratios.positions[0] < 0.6
    assert metadata["step_range"].startswith("0-9 of 10, progress 0.") and metadata["steps"] == "10"
    assert metadata["scheduler"] == "simple"
    out = tiny.run_sampler(mag(model, ratios="low_00001.safetensors", threshold=0.2, retention_ratio=0.0), "wan21", steps=20,
                           start_step=10, last_step=20, latent=latent)
    assert torch.isfinite(out).all()


def test_bad_ratio_files_give_clear_errors(tiny, ratio_folder):
    from safetensors.torch import save_file

    from cachekit.cache_core.ratios.ratio_file import FORMAT

    ratio_folder.mkdir(parents=True, exist_ok=True)
    (ratio_folder / "corrupt.safetensors").write_bytes(b"not a safetensors file")
    save_file({"progress": torch.tensor([0.0, 0.5]), "ratios.cond": torch.tensor([1.0, float("nan")])}, str(ratio_folder / "nan.safetensors"), metadata={"format": FORMAT})
    save_file({"progress": torch.tensor([0.0]), "ratios.cond": torch.tensor([1.0])}, str(ratio_folder / "short.safetensors"), metadata={"format": FORMAT})
    save_file({"progress": torch.tensor([0.0, 0.5]), "ratios.cond": torch.tensor([1.0, 1.0], dtype=torch.float64)}, str(ratio_folder / "dtype.safetensors"), metadata={"format": FORMAT})
    save_file({"x": torch.zeros(2)}, str(ratio_folder / "foreign.safetensors"))
    expected = {"corrupt": "cannot be read", "nan": "NaN", "short": "at least two", "dtype": "float32", "foreign": "not a CacheKit calibration"}
    for stem, message in expected.items():
        with pytest.raises(RatioFileError, match=message) as err:
            check_mag_cache(ratios=f"{stem}.safetensors", threshold=0.06, max_skip_steps=3, retention_ratio=0.2)
        assert f"{stem}.safetensors" in str(err.value)
    assert (ratio_folder / "corrupt.safetensors").read_bytes() == b"not a safetensors file"  # nothing is lost


def test_ratios_from_another_family_warn(tiny, ratio_folder, caplog):
    flux = tiny.load_tiny("flux")
    tiny.run_sampler(apply_calibration(flux, filename_prefix="fluxcal"), "flux", steps=8)
    wan = tiny.load_tiny("wan21")
    from cachekit.nodes.mag_cache import MAG_CACHE_NODE

    values = dict(ratios="fluxcal_00001.safetensors", threshold=0.06, max_skip_steps=3, retention_ratio=0.2)
    with caplog.at_level(logging.WARNING, logger="CacheKit"):
        patched, warnings = MAG_CACHE_NODE.run(wan, None, values)
    assert patched is not wan and len(warnings) == 2
    text = caplog.text
    assert "calibrated for Flux, but the model is Wan" in text and "different architecture" in text
