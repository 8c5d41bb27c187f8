"""MagCache's ratio tables and progress integration, without ComfyUI."""
import math

import pytest

from cachekit.cache_core.methods.mag_cache import MagCacheConfig, MagRatios, cumulative_log_ratio, log_ratio_between
from cachekit.cache_core.ratios.presets import load_preset, preset_names

TABLE = MagRatios.from_lists("t", [1.0, 1.2, 0.9, 1.1])


def test_same_step_count_reads_the_table_exactly():
    for step in range(1, 4):
        assert math.exp(log_ratio_between(TABLE, 0, (step - 1) / 4, step / 4)) == pytest.approx(TABLE.cond[step])


def test_fewer_steps_integrate_the_steps_they_span():
    assert math.exp(log_ratio_between(TABLE, 0, 0.0, 0.5)) == pytest.approx(1.2 * 0.9)
    assert math.exp(log_ratio_between(TABLE, 0, 0.25, 0.375)) == pytest.approx(math.sqrt(0.9))


def test_progress_past_the_table_adds_no_change():
    assert log_ratio_between(TABLE, 0, 0.75, 1.0) == pytest.approx(0.0)


def test_explicit_positions_cover_a_partial_range():
    partial = MagRatios.from_lists("p", [1.0, 0.5, 2.0], positions=[0.5, 0.6, 0.7])
    assert cumulative_log_ratio(partial.cond, partial.grid(), 0.4) == 0.0
    assert math.exp(log_ratio_between(partial, 0, 0.5, 0.6)) == pytest.approx(0.5)
    assert math.exp(log_ratio_between(partial, 0, 0.5, 0.7)) == pytest.approx(1.0)


def test_uncond_table_is_used_for_the_negative_branch():
    both = MagRatios.from_lists("b", [1.0, 2.0], uncond=[1.0, 4.0])
    assert math.exp(log_ratio_between(both, 1, 0.0, 0.5)) == pytest.approx(4.0)
    assert math.exp(log_ratio_between(both, 0, 0.0, 0.5)) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cond=[1.0]), "at least two"),
        (dict(cond=[1.0, float("nan")]), "finite positive"),
        (dict(cond=[1.0, 1.0], uncond=[1.0]), "at least two"),
        (dict(cond=[1.0, 1.0], positions=[0.5, 0.4]), "positions"),
    ],
)
def test_bad_tables_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MagRatios.from_lists("bad", **kwargs)


def test_presets_load_and_flux_is_diffusers_table():
    assert "flux" in preset_names() and "wan2.1_t2v_1.3B" in preset_names()
    flux = load_preset("flux")
    assert len(flux.cond) == 28 and flux.cond[:3] == (1.0, 1.21094, 1.11719) and flux.uncond is None
    wan = load_preset("wan2.1_t2v_1.3B")
    assert len(wan.cond) == len(wan.uncond) == 50 and wan.family == "Wan"


def test_config_validation_and_retention_rounding():
    with pytest.raises(ValueError, match="threshold"):
        MagCacheConfig(table=TABLE, threshold=float("nan"))
    with pytest.raises(ValueError, match="max_skip_steps"):
        MagCacheConfig(table=TABLE, max_skip_steps=-1)
    config = MagCacheConfig(table=TABLE)
    assert config.retention_steps(28) == 6 and config.retention_steps(8) == 2
    assert not MagCacheConfig(table=TABLE, threshold=0.0).enabled
