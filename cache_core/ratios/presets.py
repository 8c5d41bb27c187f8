"""Built-in MagCache ratio tables, loaded from presets.json (values copied exactly from their sources)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .mag_ratios import MagRatios

PRESETS_FILE = Path(__file__).with_name("presets.json")


@lru_cache(maxsize=1)
def _load() -> dict[str, dict]:
    return json.loads(PRESETS_FILE.read_text())["presets"]


def preset_names() -> list[str]:
    """Names of the built-in tables, as offered by the MagCache node."""
    return list(_load())


def load_preset(name: str) -> MagRatios:
    """The built-in table `name`; KeyError names the valid choices."""
    presets = _load()
    if name not in presets:
        raise KeyError(f"unknown MagCache preset '{name}'; choose one of: {', '.join(presets)}")
    entry = presets[name]
    return MagRatios.from_lists(name=name, family=entry.get("family"), cond=entry["cond"], uncond=entry.get("uncond"), source=entry.get("source", ""))


def preset_families() -> set[str]:
    """The family-table names that have at least one built-in table."""
    return {entry["family"] for entry in _load().values() if entry.get("family")}
