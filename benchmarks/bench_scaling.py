"""Render time against the number of steps per pixel (it should grow linearly).

usage: python benchmarks/bench_scaling.py [--device cpu|cuda] [--pixels N]

Renders an N x N detector of the triclinic golden crystal with 1, 2, 4, ... 64 mosaic domains
(steps = domains x oversample^2 with -oversample 2) and prints the best of two timed runs
(after a warm-up) of ``Simulator.render()`` and the time per million evaluations.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import tempfile
from pathlib import Path

from bench_render import time_render

from torchbragg.cli.parse import parse_args
from torchbragg.precedence import resolve
from torchbragg.simulator import Simulator

ARGS = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 -pixel 0.1 "
        "-oversample 2 -mosaic 0.5 -mosaic_seed 7 -detpixels {n} -mosaic_dom {m}")


def main() -> int:
    """Print time against steps."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pixels", type=int, default=128)
    a = ap.parse_args()
    print(f"{'steps/pixel':>11s} {'seconds':>9s} {'s per 1e6 evaluations':>22s}")
    with tempfile.TemporaryDirectory() as td:
        os.chdir(td)
        for domains in (1, 2, 4, 8, 16, 32, 64):
            argv = shlex.split(ARGS.format(n=a.pixels, m=domains))
            with contextlib.redirect_stdout(io.StringIO()):
                config = resolve(parse_args(argv).state).config
            sim = Simulator(config, device=a.device)
            t = time_render(sim, 2, a.device, None)
            evals = a.pixels ** 2 * config.steps
            print(f"{config.steps:11d} {t:9.4f} {t / evals * 1e6:22.4f}")
    os.chdir(Path(__file__).parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
