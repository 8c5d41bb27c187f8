"""The tiny random-weight models of harness.tiny_families load through ComfyUI's own classes and sample finitely."""
from __future__ import annotations

import pytest
import torch

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
    for attribute in family.block_lists:
        assert len(getattr(diffusion_model, attribute)) > 0
    assert sum(p.numel() for p in diffusion_model.parameters()) < 10_000_000


@pytest.mark.parametrize("name", DETECTED)
def test_comfy_model_detection_picks_the_family(name):
    import comfy.model_detection

    config = comfy.model_detection.model_config_from_unet(tiny_families.family_state_dict(name), "")
    assert type(config).__name__ == tiny_families.FAMILIES[name].supported_model


@pytest.mark.parametrize("name", FAMILIES)
def test_samples_finite_latents_with_and_without_cfg(name):
    family = tiny_families.FAMILIES[name]
    model = tiny_model(name)
    shape = tiny_families.family_latent(name).shape
    assert len(shape) == len(family.latent_shape) + 1

    guided = tiny_families.sample_family(model, name, steps=3, cfg=2.0)
    assert guided.shape == shape
    assert torch.isfinite(guided).all()

    if not family.cfg1:
        pytest.skip(f"{name} cannot run without an uncond half in the batch: {family.notes}")
    plain = tiny_families.sample_family(model, name, steps=3, cfg=1.0)
    assert plain.shape == shape
    assert torch.isfinite(plain).all()
    assert not torch.equal(plain, guided)  # the negative conditioning reaches the model


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
    with pytest.raises(KeyError, match="Z-Image"):
        tiny_families.load_family("z_image")
    with pytest.raises(KeyError, match="known"):
        tiny_families.family_latent("no_such_family")


@pytest.mark.parametrize("name", FAMILIES)
def test_registry_matches_the_wrapper_and_block_replace_hooks(name):
    """Family.diffusion_model_wrapper and Family.replace_keys describe what this ComfyUI really calls."""
    import comfy.patcher_extension

    family = tiny_families.FAMILIES[name]
    model = tiny_model(name).clone()
    seen = {"wrapper": 0}

    def wrapper(executor, *args, **kwargs):
        seen["wrapper"] += 1
        return executor(*args, **kwargs)

    def replace(kind):
        def patch(args, extra):
            seen[kind] = seen.get(kind, 0) + 1
            return extra["original_block"](args)
        return patch

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "probe", wrapper)
    for kind in ("double_block", "single_block", "block"):
        for index in range(8):
            model.set_model_patch_replace(replace(kind), "dit", kind, index)
    out = tiny_families.sample_family(model, name, steps=1, cfg=2.0)
    assert torch.isfinite(out).all()
    assert (seen.pop("wrapper") > 0) == family.diffusion_model_wrapper
    assert set(seen) == set(family.replace_keys)


@pytest.mark.parametrize("name", FAMILIES)
def test_samples_a_latent_batch_of_two(name):
    out = tiny_families.sample_family(tiny_model(name), name, steps=2, cfg=2.0, batch=2)
    assert out.shape == tiny_families.family_latent(name, batch=2).shape
    assert torch.isfinite(out).all()
