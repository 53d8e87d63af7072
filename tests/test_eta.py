"""The estimate and ETA lines of long runs (on stderr; stdout keeps the C meter)."""

from __future__ import annotations

from torchbragg.cli.eta import RunClock, duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_naturally():
    assert [duration(s) for s in (4.2, 185, 7800, 4 * 86400)] == [
        "4 s", "3 min 5 s", "2 h 10 min", "4.0 days"]


def test_long_run_is_announced_first_then_reports_eta():
    lines, clock, seen = [], FakeClock(), []
    run = RunClock(1000, 10**6, 1e7, then=lambda d, t: seen.append(d), write=lines.append,
                   clock=clock)
    run.start()
    assert lines == ["torchbragg: 1e+09 pixel-steps (1000 pixels x 1000000 steps); about "
                     "1 min 40 s at a typical 1e+07 pixel-steps/s"]
    clock.now += 10.0
    run(100, 1000)  # measured: 1e7 pixel-steps/s, 90 s to go; no line before 30 s
    assert len(lines) == 1 and seen == [100]
    clock.now += 25.0
    run(350, 1000)
    assert lines[-1] == "torchbragg: 35% of pixels after 35 s; about 1 min 5 s to go"
    run(1000, 1000)
    assert len(lines) == 2 and seen == [100, 350, 1000]


def test_short_guess_but_slow_run_is_announced_when_measured():
    lines, clock = [], FakeClock()
    run = RunClock(100, 1000, 1e9, write=lines.append, clock=clock)
    run.start()
    assert lines == []
    clock.now += 5.0
    run(1, 100)  # 1000 pixel-steps in 5 s: 99 pixels to go take 495 s
    assert lines == ["torchbragg: 1e+05 pixel-steps (100 pixels x 1000 steps); about "
                     "8 min 20 s at the measured 2e+02 pixel-steps/s"]


def test_quick_run_prints_nothing():
    lines, clock = [], FakeClock()
    run = RunClock(100, 10, 1e7, write=lines.append, clock=clock)
    run.start()
    clock.now += 0.01
    run(50, 100)
    run(100, 100)
    assert lines == []


def test_durations_never_show_sixty():
    assert [duration(s) for s in (59.7, 119.7, 3599.9)] == ["1 min 0 s", "2 min 0 s",
                                                            "1 h 0 min"]


def test_setup_work_counts_in_the_first_estimate():
    lines, clock = [], FakeClock()
    run = RunClock(16, 10**7, 3e7, write=lines.append, clock=clock)
    run.start(setup_s=15.0, setup="1e+07 setup lines to print")
    assert lines == ["torchbragg: 1.6e+08 pixel-steps (16 pixels x 10000000 steps); 1e+07 "
                     "setup lines to print; about 20 s at a typical 3e+07 pixel-steps/s"]
    lines.clear()
    RunClock(16, 10**7, 3e7, write=lines.append, clock=clock).start()
    assert lines == []  # 5 s of pixel-steps alone is not long


def test_the_rate_is_measured_from_the_start_of_rendering():
    """Time before progress(0) (printing, a kernel build) is not counted against the rate."""
    lines, clock, seen = [], FakeClock(), []
    run = RunClock(10, 10**5, 1e9, then=lambda d, t: seen.append(d), write=lines.append,
                   clock=clock)
    run.start()
    clock.now += 500.0  # a long build
    run(0, 10)
    clock.now += 1.0
    run(5, 10)  # 5e5 pixel-steps/s: 1 s to go
    assert lines == [] and seen == [0, 5]
    clock.now += 20.0
    run(5.5, 10)  # a fractional count from inside a chunk: 2.6e4 /s, 17 s to go
    assert lines == ["torchbragg: 1e+06 pixel-steps (10 pixels x 100000 steps); about "
                     "38 s at the measured 2.6e+04 pixel-steps/s"]
