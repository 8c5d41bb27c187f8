"""The one shape every caching method has.

A method declares where it installs on a model of a given family (its sites: the block stack,
the model level, attention sites, the cond batch) and supplies, per sampling run, a state object
with its decision rule, what it caches and how it predicts, through the protocol of each site:

- STACK (runtime/block_stack.py `StackMethod`): decide once per evaluation whether the middle of
  the block stack is reused, give the middle's residual on a reuse, learn from a computed one.
- OUTPUT (runtime/model_output.py `OutputMethod`): the same for the whole model output.
- ATTENTION (runtime/attention_hooks.py `AttentionPolicy`): reuse or compute one attention site.
- COND_BATCH (runtime/cfg_estimation.py `UnconditionalPolicy`): estimate the negative branch.

The shared runtime does everything else: the run lifecycle, the step clock, per-branch storage
(split and joined per batch), counting, the report, and freeing. A new method is one module with a
config (settings declared once, cache_core/settings.py), a state class and a `MethodSpec`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from ..families.table import ATTENTION, COND_BATCH, OUTPUT, STACK, Family

Placement = Union[frozenset, str]  # the sites a method uses on a family, or why it cannot be placed

UNITS = {STACK: "blocks", OUTPUT: "forwards", ATTENTION: "attention calls", COND_BATCH: "forwards"}


@dataclass(frozen=True)
class MethodSpec:
    """A caching method.

    name: the method's name in reports, logs and the family table (e.g. "FirstBlockCache").
    key: the key of its ComfyUI wrappers, patches and per-run state (one per method: applying the
        same method again replaces its settings).
    config_type: its settings dataclass (cache_core/settings.py).
    place: (config, family) -> the sites it uses there, or the reason it cannot run there.
    start: (config, run) -> the per-run state, which implements the protocol of each site used
        plus `cache_bytes()` and `close(run)`.
    window: config -> (start_percent, end_percent) in which reuse may happen.
    attention_kinds: config -> the attention kinds to hook (attention methods).
    prepare: (config, model) -> the config with what it needs from the model filled in (e.g. the
        model's fingerprint for a calibration), at install time.
    """

    name: str
    key: str
    config_type: type
    place: Callable[[Any, Family], Placement]
    start: Callable[[Any, Any], Any]
    window: Callable[[Any], tuple[float, float]] = lambda config: (0.0, 1.0)
    attention_kinds: Callable[[Any], frozenset] = lambda config: frozenset()
    prepare: Callable[[Any, Any], Any] = lambda config, model: config

    def unit(self, sites: frozenset) -> str:
        """What the report counts for a placement: the finest unit a site of it reuses."""
        for site in (STACK, ATTENTION, OUTPUT, COND_BATCH):
            if site in sites:
                return UNITS[site]
        return "forwards"


def stack_or_model(family: Family, prefer_stack: bool = True) -> Placement:
    """The block stack where the family has one (else the model level), or why neither exists."""
    if prefer_stack and STACK in family.sites:
        return frozenset({STACK})
    if OUTPUT in family.sites:
        return frozenset({OUTPUT})
    if not prefer_stack and STACK in family.sites:
        return frozenset({STACK})
    return f"{family.reason(STACK)}, and {family.reason(OUTPUT)}"


def stack_only(family: Family) -> Placement:
    """The block stack, or why the family has none."""
    return frozenset({STACK}) if STACK in family.sites else family.reason(STACK)
