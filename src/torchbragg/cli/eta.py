"""How long a run will take: one estimate line before a long run, then progress with ETA.

Lines go to stderr, so the C program's own output on stdout (its "% done" meter included)
is unchanged. A run is long when its pixel-steps at a typical rate, plus its set-up (the
setup lines printed, orientations made), would take more than ``LONG_S`` seconds: it is
announced before the setup lines print. The estimate is refined from the measured rate as
chunks (and, within a chunk, runs of orientations or sources) finish, and a progress line is
printed at most every ``EVERY_S`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

# Typical pixel-steps per second on a small CPU (the reference path on 2 cores, float64);
# only the first estimate uses them. Sources made when needed (too many to list) are slower.
TYPICAL_RATE = {"cpu": 3e7, "cuda": 2e9}
MADE_SOURCES_RATE = {"cpu": 1e6, "cuda": 1e8}
# Seconds per setup line printed, and per orientation made when needed (2 cores).
LINE_S = 2e-6
ORIENTATION_S = 1e-6
LONG_S = 10.0
EVERY_S = 30.0


def duration(seconds: float) -> str:
    """'42 s', '3 min 5 s', '2 h 10 min', '4.2 days'."""
    if seconds >= 86400 * 2:
        return f"{seconds / 86400:.1f} days"
    whole = round(seconds)  # split after rounding: never "1 min 60 s"
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


class RunClock:
    """Estimate and ETA lines for one render; call it as a ``progress(done, total)`` hook.

    ``pixels`` rendered, each of ``steps_per_pixel`` evaluations; ``rate`` the first guess
    (pixel-steps per second); ``then`` an optional further hook (the C meter).
    """

    def __init__(self, pixels: int, steps_per_pixel: int, rate: float,
                 then: Callable[[int, int], None] | None = None, write=None,
                 clock: Callable[[], float] = time.monotonic):
        self.pixels, self.steps_per_pixel, self.rate = pixels, steps_per_pixel, rate
        self.then, self.clock = then, clock
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.started = self.last = clock()
        self.announced = False

    @property
    def pixel_steps(self) -> int:
        """Evaluations in the whole run."""
        return self.pixels * self.steps_per_pixel

    def start(self, setup_s: float = 0.0, setup: str = "") -> None:
        """Announce the run if the first guess says it is long.

        ``setup_s`` seconds of work besides the pixel-steps (printing the setup lines, making
        orientations), described by ``setup`` ("printing 1e+07 setup lines").
        """
        seconds = self.pixel_steps / self.rate + setup_s
        if seconds > LONG_S:
            self._announce(seconds, "a typical", f"; {setup}" if setup else "")

    def _announce(self, seconds: float, how: str, setup: str = "") -> None:
        self.write(f"torchbragg: {self.pixel_steps:.3g} pixel-steps ({self.pixels} pixels x "
                   f"{self.steps_per_pixel} steps){setup}; about {duration(seconds)} at {how} "
                   f"{self.rate:.2g} pixel-steps/s")
        self.announced = True
        self.last = self.clock()

    def __call__(self, done: int, total: int) -> None:
        """After a chunk: ``done`` of ``total`` pixels rendered (0: rendering starts now)."""
        if self.then is not None:
            self.then(done, total)
        now = self.clock()
        if done == 0:  # set-up (printing, a kernel build) is not part of the rate
            self.started = self.last = now
            return
        elapsed = now - self.started
        if done <= 0 or elapsed <= 0 or done >= total:
            return
        self.rate = done * self.steps_per_pixel / elapsed
        left = (total - done) * self.steps_per_pixel / self.rate
        if not self.announced:
            if left > LONG_S:
                self._announce(left + elapsed, "the measured")
            return
        if now - self.last >= EVERY_S:
            self.write(f"torchbragg: {100 * done / total:.0f}% of pixels after "
                       f"{duration(elapsed)}; about {duration(left)} to go")
            self.last = now
