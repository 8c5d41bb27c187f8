"""The step clock labels evaluations by where their sigma lies in the run's schedule."""
from cachekit.cache_core.runtime.step_clock import StepClock

SIGMAS = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]


def test_single_evaluation_sampler():
    clock = StepClock(SIGMAS)
    assert [clock.step_at(s) for s in SIGMAS[:-1]] == [0, 1, 2, 3, 4]


def test_midpoint_evaluations_stay_in_their_step():
    """dpm_2 / dpmpp_2s evaluate between two schedule entries."""
    clock = StepClock(SIGMAS)
    assert clock.step_at(0.9) == 0
    assert clock.step_at(0.41) == 2


def test_churned_sigma_above_the_first_entry_is_step_zero():
    assert StepClock(SIGMAS).step_at(1.05) == 0


def test_float_noise_does_not_move_a_step():
    clock = StepClock(SIGMAS)
    assert clock.step_at(0.6 * (1 + 1e-7)) == 2


def test_partial_schedule_is_relative_to_the_run():
    """KSamplerAdvanced / denoise < 1 runs start at a lower sigma; steps count from 0."""
    clock = StepClock([0.6, 0.4, 0.2, 0.0])
    assert clock.total_steps == 3
    assert clock.step_at(0.6) == 0
    assert clock.sigma_of_step(1) == 0.4
    assert clock.progress_of_step(3) == 1.0
