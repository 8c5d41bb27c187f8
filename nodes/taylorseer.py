"""The TaylorSeer node."""
from __future__ import annotations

from typing import Any

from ..cache_core.methods.taylorseer import (
    FACTOR_DTYPES,
    MAX_ORDER,
    MODES,
    TAYLORSEER,
    TaylorSeerBlocksRun,
    TaylorSeerConfig,
    TaylorSeerLiteRun,
    factor_dtype_named,
)
from ..cache_core.runtime.install import install_block_stack_cache, install_cache
from .node_def import ComboInput, IntInput, NodeDef
from .ui_report import send_report_to_ui

KEYS = {"lite": "cachekit_taylorseer_lite", "blocks": "cachekit_taylorseer_blocks"}
MAX_STEP = 10000

STEPS_NOTE = (
    " Steps are counted within the sampler run, from 0: with KSamplerAdvanced or split sigmas the count "
    "starts at the run's first step, and samplers that call the model twice per step (heun, dpm_2) still "
    "count one step."
)

WIDGETS = (
    IntInput(
        "cache_interval", 5, 1, 100,
        "After the first disable_cache_before_step steps (D), one step in every cache_interval (N) is computed, "
        "steps D+1, D+1+N, D+1+2N, ..., and the others are predicted from the last computed ones. diffusers' "
        "default 5 with D=3 computes steps 0, 1, 2, 4, 9, 14, ... 1 computes every step.",
    ),
    IntInput(
        "disable_cache_before_step", 3, 0, MAX_STEP,
        "The run's first steps are always computed: steps 0 up to this number minus one. They set the "
        "composition and give the prediction its first values. Set it to the step count or more to compute "
        "everything." + STEPS_NOTE,
    ),
    IntInput(
        "disable_cache_after_step", -1, -1, MAX_STEP,
        "From this step on every step is computed again (to keep fine detail). -1 means never (diffusers' "
        "None)." + STEPS_NOTE,
    ),
    IntInput(
        "max_order", 1, 0, MAX_ORDER,
        "Order of the prediction: 0 reuses the last computed result, 1 extrapolates linearly from the last "
        "two computed steps (diffusers' recommendation), higher orders follow curves through more steps but "
        "can overshoot. Each order keeps one more cached tensor.",
    ),
    ComboInput(
        "taylor_factors_dtype", tuple(FACTOR_DTYPES), "bfloat16",
        "Precision of the cached factors. bfloat16 (diffusers' default) halves the memory of float32 but "
        "rounds the cached values; float32 is the most accurate; float16 is more precise than bfloat16 but "
        "overflows above 65504, which large hidden states (blocks mode) can reach.",
    ),
    ComboInput(
        "mode", MODES, "blocks",
        "blocks: on predicted steps no transformer block runs; what the blocks add to the hidden state is "
        "predicted, and the input embedding and the final layer run with the current timestep (diffusers' "
        "default, non-lite mode). Caches max_order + 1 hidden-state tensors per CFG branch. lite: the whole "
        "model output is predicted and nothing of the model runs on predicted steps; caches only "
        "latent-sized tensors (diffusers' use_lite_mode).",
    ),
)


def _config(
    cache_interval: int, disable_cache_before_step: int, disable_cache_after_step: int, max_order: int,
    taylor_factors_dtype: str, mode: str,
) -> TaylorSeerConfig:
    if disable_cache_after_step is not None and disable_cache_after_step < -1:
        raise ValueError(f"disable_cache_after_step must be -1 (never) or a step number, got {disable_cache_after_step!r}.")
    return TaylorSeerConfig(
        cache_interval=cache_interval,
        disable_cache_before_step=disable_cache_before_step,
        disable_cache_after_step=None if disable_cache_after_step == -1 else disable_cache_after_step,
        max_order=max_order,
        taylor_factors_dtype=factor_dtype_named(taylor_factors_dtype),
        mode=mode,
    )


def apply_taylorseer_cache(model: Any, node_id: str | None = None, **values: Any) -> Any:
    """Return a clone of `model` with TaylorSeer installed (or `model` itself if unsupported)."""
    config = _config(**values)
    common = dict(key=KEYS[config.mode], method=TAYLORSEER, config=config, node_id=node_id, on_report=send_report_to_ui)
    if config.mode == "lite":
        return install_cache(model, start_run=lambda run: TaylorSeerLiteRun(config, run.clock.sample_sigmas), unit="forwards", **common)
    return install_block_stack_cache(model, start_run=lambda run: TaylorSeerBlocksRun(config, run.clock.sample_sigmas), **common)


def check_taylorseer_cache(**values: Any) -> None:
    """Raise ValueError when the widget values are not valid."""
    _config(**values)


TAYLORSEER_NODE = NodeDef(
    node_id="CacheKitTaylorSeerCache",
    display_name="TaylorSeer Cache (CacheKit)",
    description=(
        "Computes the model on a few steps and predicts the others by extrapolating (Taylor-style) from "
        "the last computed steps. Place it between the model loader and the sampler."
    ),
    widgets=WIDGETS,
    apply=apply_taylorseer_cache,
    check=check_taylorseer_cache,
)
