"""The step clock maps evaluations to steps from the schedule and the sampler's reports."""
from cachekit.cache_core.runtime.step_clock import StepClock

SIGMAS = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]


def test_single_evaluation_sampler_follows_reports():
    clock = StepClock(SIGMAS)
    seen = []
    for i, sigma in enumerate(SIGMAS[:-1]):
        seen.append(clock.step_at(sigma))
        clock.step_finished(i)
    assert seen == [0, 1, 2, 3, 4]


def test_heun_correction_stays_in_its_step():
    """heun evaluates at sigma[i] and again at sigma[i + 1] before reporting step i."""
    clock = StepClock(SIGMAS)
    seen = []
    for i in range(4):
        seen.append(clock.step_at(SIGMAS[i]))
        seen.append(clock.step_at(SIGMAS[i + 1]))
        clock.step_finished(i)
    assert seen == [0, 0, 1, 1, 2, 2, 3, 3]


def test_midpoint_sampler_stays_in_its_step():
    """dpm_2 evaluates at a sigma between two schedule entries."""
    clock = StepClock(SIGMAS)
    assert clock.step_at(1.0) == 0
    assert clock.step_at(0.9) == 0
    clock.step_finished(0)
    assert clock.step_at(0.8) == 1
    assert clock.step_at(0.7) == 1


def test_sampler_that_never_reports_falls_back_to_the_schedule():
    clock = StepClock(SIGMAS)
    assert [clock.step_at(s) for s in SIGMAS[:-1]] == [0, 0, 2, 3, 4]


def test_partial_schedule_is_relative_to_the_run():
    """KSamplerAdvanced / denoise < 1 runs start at a lower sigma; steps count from 0."""
    clock = StepClock([0.6, 0.4, 0.2, 0.0])
    assert clock.total_steps == 3
    assert clock.step_at(0.6) == 0
    assert clock.sigma_of_step(1) == 0.4
    assert clock.progress_of_step(3) == 1.0
