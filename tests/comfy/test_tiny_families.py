"""The tiny random-weight models of harness.tiny_families load through ComfyUI's own classes and sample finitely."""
from __future__ import annotations

import functools

import pytest
import torch

from cachekit.cache_core.families.table import FAMILIES as TABLE
from cachekit.cache_core.families.table import family_for_module
from harness import tiny_families

FAMILIES = tiny_families.FAMILY_NAMES
DETECTED = [name for name in FAMILIES if tiny_families.FAMILIES[name].route == "detection"]

_models: dict[str, object] = {}


def tiny_model(name: str):
    """One ModelPatcher per family for the whole module (sampling never changes the weights)."""
    if name not in _models:
        _models[name] = tiny_families.load_family(name)
    return _models[name]


@pytest.fixture(scope="module", autouse=True)
def _single_thread_and_free_models():
    # These models are so small that torch's intra-op threads cost more than they save; on a busy 2-core machine
    # two threads made this file ~15x slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    _models.clear()


@pytest.mark.parametrize("name", FAMILIES)
def test_loads_the_family_classes(name):
    family = tiny_families.FAMILIES[name]
    model = tiny_model(name)
    assert type(model.model).__name__ == family.model_class
    assert type(model.model.diffusion_model).__name__ == family.diffusion_class
    assert type(model.model.model_config).__name__ == family.supported_model
    diffusion_model = model.model.diffusion_model
    for attribute in family.block_lists:  # dotted for nested lists ("transformer.layers")
        assert len(functools.reduce(getattr, attribute.split("."), diffusion_model)) > 0
    table_family = family_for_module(diffusion_model)
    assert table_family is not None and table_family.name == tiny_families.TABLE_FAMILY[name]
    assert sum(p.numel() for p in diffusion_model.parameters()) < family.param_budget


@pytest.mark.parametrize("name", DETECTED)
def test_comfy_model_detection_picks_the_family(name):
    import comfy.model_detection

    config = comfy.model_detection.model_config_from_unet(tiny_families.family_state_dict(name), "",
                                                          metadata=tiny_families.family_metadata(name))
    assert type(config).__name__ == tiny_families.FAMILIES[name].supported_model


def guided_cfg(family) -> float:
    """cfg 2 (cond and uncond in one batch), or 1 for a family whose sampler runs one branch only (Causal Wan)."""
    return 2.0 if family.guided else 1.0


@pytest.mark.parametrize("name", FAMILIES)
def test_samples_finite_latents_with_and_without_cfg(name):
    family = tiny_families.FAMILIES[name]
    model = tiny_model(name)
    latent = tiny_families.family_latent(name)
    shape = tiny_families.flat(latent).shape
    if family.more_latents:
        assert [tuple(t.shape[1:]) for t in latent.unbind()] == [family.latent_shape, *family.more_latents]
    else:
        assert len(shape) == len(family.latent_shape) + 1

    if not family.guided:
        pytest.skip(f"{name} samples at cfg 1 only: {family.notes}")
    guided = tiny_families.sample_family(model, name, steps=3, cfg=2.0)
    assert guided.shape == shape
    assert torch.isfinite(guided).all()

    if not family.cfg1:
        pytest.skip(f"{name} cannot run without an uncond half in the batch: {family.notes}")
    plain = tiny_families.sample_family(model, name, steps=3, cfg=1.0)
    assert plain.shape == shape
    assert torch.isfinite(plain).all()
    assert not torch.equal(plain, guided)  # the negative conditioning reaches the model


NESTED = [n for n in FAMILIES if tiny_families.FAMILIES[n].more_latents]


@pytest.mark.parametrize("name", NESTED or [pytest.param("", marks=pytest.mark.skip(
    reason="this ComfyUI has no tiny family with several latents"))])
def test_every_latent_of_a_nested_latent_is_denoised(name):
    """A family with several latents (LTX-2's video and audio) samples every one of them, not just the first."""
    import comfy.utils

    family = tiny_families.FAMILIES[name]
    latent = tiny_families.family_latent(name)
    out = tiny_families.sample_family(tiny_model(name), name, steps=2, cfg=guided_cfg(family))
    parts = comfy.utils.unpack_latents(out, [t.shape for t in latent.unbind()])
    assert len(parts) == 1 + len(family.more_latents)
    for part in parts:
        assert torch.isfinite(part).all() and part.abs().max() > 0


def test_weights_and_conditioning_are_seeded():
    first, again = tiny_families.load_family("wan22_5b", seed=3), tiny_families.load_family("wan22_5b", seed=3)
    other = tiny_families.load_family("wan22_5b", seed=4)
    a, b, c = (m.model.diffusion_model.state_dict() for m in (first, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    cond = tiny_families.family_conditioning("hidream", seed=5)
    assert torch.equal(cond[0][0], tiny_families.family_conditioning("hidream", seed=5)[0][0])
    assert set(cond[0][1]) == {"pooled_output", "conditioning_llama3"}


def test_a_saved_checkpoint_loads_like_unetloader(tmp_path):
    import comfy.sd

    path = tiny_families.write_family_checkpoint("hunyuan3d_v2", tmp_path / "tiny.safetensors", dtype=torch.float32)
    model = comfy.sd.load_diffusion_model(str(path), model_options={"dtype": torch.float32})
    assert type(model.model).__name__ == "Hunyuan3Dv2"
    out = tiny_families.sample_family(model, "hunyuan3d_v2", steps=2, cfg=2.0)
    assert torch.isfinite(out).all()


def test_unknown_and_unavailable_families_say_why():
    for name, why in tiny_families.UNAVAILABLE.items():
        assert name in tiny_families.FAMILIES and why
        with pytest.raises(KeyError, match="not available on this ComfyUI"):
            tiny_families.load_family(name)
    with pytest.raises(KeyError, match="known"):
        tiny_families.family_latent("no_such_family")


def test_every_table_family_has_a_tiny_model_or_says_why():
    """Each entry of CacheKit's family table is exercised by some tiny family (on some release), or NOT_BUILT says why
    no tiny model can stand for it."""
    covered = set(tiny_families.TABLE_FAMILY.values())
    table = {family.name for family in TABLE}
    assert table - covered == set(tiny_families.NOT_BUILT)
    assert covered <= table


def test_every_family_is_available_or_says_why():
    """Every registered family either builds on this ComfyUI or names what this ComfyUI lacks; 0.33 builds them all."""
    from harness.comfy_env import comfyui_version, find_comfyui

    assert set(FAMILIES) | set(tiny_families.UNAVAILABLE) == set(tiny_families.FAMILIES)
    assert not set(FAMILIES) & set(tiny_families.UNAVAILABLE)
    version = comfyui_version(find_comfyui()) or ""
    if version == "0.33.0":
        assert not tiny_families.UNAVAILABLE
    for name in tiny_families.UNAVAILABLE:
        assert tiny_families.FAMILIES[name].since != "0.3.60"  # a family built since the oldest release is never missing


class _StopSampling(Exception):
    pass


@pytest.mark.parametrize("name", FAMILIES)
def test_registry_matches_the_wrapper_and_block_replace_hooks(name):
    """Family.diffusion_model_wrapper and Family.replace_keys describe what this ComfyUI really calls (and where a
    replace patch cannot call original_block, Family.broken_replace says so)."""
    import comfy.patcher_extension

    family = tiny_families.FAMILIES[name]
    model = tiny_model(name).clone()
    seen = {"wrapper": 0}
    broken = []

    def wrapper(executor, *args, **kwargs):
        seen["wrapper"] += 1
        return executor(*args, **kwargs)

    def replace(kind):
        def patch(args, extra):
            seen[kind] = seen.get(kind, 0) + 1
            try:
                return extra["original_block"](args)
            except TypeError as error:
                broken.append(str(error))
                raise _StopSampling from error
        return patch

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "probe", wrapper)
    for kind in ("double_block", "single_block", "block"):
        for index in range(8):
            model.set_model_patch_replace(replace(kind), "dit", kind, index)
    if family.broken_replace:
        with pytest.raises(_StopSampling):
            tiny_families.sample_family(model, name, steps=1, cfg=guided_cfg(family))
        assert broken
    else:
        out = tiny_families.sample_family(model, name, steps=1, cfg=guided_cfg(family))
        assert torch.isfinite(out).all()
    assert (seen.pop("wrapper") > 0) == family.diffusion_model_wrapper
    assert set(seen) == set(family.replace_keys)


@pytest.mark.parametrize("name", FAMILIES)
def test_samples_a_latent_batch_of_two(name):
    family = tiny_families.FAMILIES[name]
    if not family.latent_batch:
        pytest.skip(f"{name} takes one latent per forward: {family.notes}")
    out = tiny_families.sample_family(tiny_model(name), name, steps=2, cfg=guided_cfg(family), batch=2)
    assert out.shape == tiny_families.flat(tiny_families.family_latent(name, batch=2)).shape
    assert torch.isfinite(out).all()
