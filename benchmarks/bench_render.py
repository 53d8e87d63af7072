"""Time the renderer alone (no process start-up, no file output) on a device and dtype.

usage: python benchmarks/bench_render.py [--case NAME] [--device cpu|cuda] [--dtype float64|float32]
       [--kernel auto|fused|reference] [--repeat N] [--inputs DIR]

Cases are those of ``torchbragg-bench`` (torchbragg.bench.CASES). Reports the best wall time
of ``Simulator.render()`` over the repeats (after one warm-up run), evaluations per second,
and peak device memory on CUDA.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import tempfile
import time
from pathlib import Path

import torch

from torchbragg.bench import CASES
from torchbragg.cli.parse import parse_args
from torchbragg.precedence import apply_smv_headers, resolve
from torchbragg.simulator import Simulator

HERE = Path(__file__).resolve().parent


def build(case: str, inputs: Path, device: str, dtype: torch.dtype,
          kernel: str = "auto") -> Simulator:
    """A simulator for one benchmark case (run from a folder with inputs/ linked)."""
    os.chdir(inputs.parent)
    parsed = parse_args(shlex.split(CASES[case]), read_headers=apply_smv_headers)
    with contextlib.redirect_stdout(io.StringIO()):
        plan = resolve(parsed.state)
    return Simulator(plan.config, dtype=dtype, device=device, kernel=kernel)


def time_render(sim: Simulator, repeat: int, device: str, budget_mb: float | None) -> float:
    """Best wall seconds of one full render."""
    best = float("inf")
    for _ in range(repeat + 1):  # the first run warms up (and compiles)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            sim.render(budget_mb)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    """Parse arguments, time, print one line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="pilatus_2463x2527", choices=list(CASES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--kernel", default="auto", choices=("auto", "fused", "reference"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--memory-budget-mb", type=float, default=None)
    ap.add_argument("--inputs", default=str(HERE.parent / "tests/data/golden/inputs"))
    a = ap.parse_args()
    inputs = Path(a.inputs).resolve()
    with tempfile.TemporaryDirectory() as td:
        link = Path(td) / "inputs"
        link.symlink_to(inputs)
        sim = build(a.case, link, a.device, getattr(torch, a.dtype), a.kernel)
        evals = int(sim.rendered.sum()) * sim.config.steps * sim.config.detector.thicksteps
        if a.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        seconds = time_render(sim, a.repeat, a.device, a.memory_budget_mb)
    peak = (f" peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
            if a.device.startswith("cuda") else "")
    budget = f" budget {a.memory_budget_mb:g} MiB" if a.memory_budget_mb else ""
    print(f"{a.case} {a.device} {a.dtype}{' ' + a.kernel}{budget}: "
          f"{seconds:.3f} s, {evals / seconds / 1e6:.1f} M evaluations/s{peak}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
