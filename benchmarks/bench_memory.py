"""Peak memory of torchbragg on a full 2463 x 2527 detector as the number of steps grows.

usage: python benchmarks/bench_memory.py [--inputs DIR] [--full]

Each run renders the Pilatus-like golden geometry (real HKL, MOSFLM matrix) as a child
process and reports its peak resident memory (ru_maxrss via wait4) and wall time. Without
--full, runs with many steps render a 64 x 64 region of interest of the full-size detector
(the image buffers stay full size; only the work shrinks), so memory is measured at up to
16000 steps per pixel in minutes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from torchbragg.bench import PILATUS

HERE = Path(__file__).resolve().parent
RUNS = [
    ("10 phi steps, whole detector", "", False),
    ("10 phi x 20 mosaic x 2x2 oversample, ROI", "-mosaic 0.2 -mosaic_dom 20 -oversample 2",
     True),
    ("10 phi x 100 mosaic x 4x4 oversample, ROI", "-mosaic 0.2 -mosaic_dom 100 -oversample 4",
     True),
]


def peak_rss_mib(cmd: list[str], folder: Path) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall seconds of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {shlex.join(cmd)}\n{proc.stderr.read().decode()[-400:]}")
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0


def main() -> int:
    """Run the memory series and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", default=str(HERE.parent / "tests/data/golden/inputs"))
    ap.add_argument("--full", action="store_true", help="render whole detector in every run")
    a = ap.parse_args()
    base = [sys.executable, "-m", "torchbragg", *shlex.split(PILATUS), "-nonoise", "-nopgm",
            "-noprogress"]
    print(f"{'run':45s} {'peak MiB':>9s} {'wall s':>8s}")
    with tempfile.TemporaryDirectory() as td:
        folder = Path(td)
        os.symlink(Path(a.inputs).resolve(), folder / "inputs")
        for label, extra, roi in RUNS:
            cmd = base + shlex.split(extra)
            if roi and not a.full:
                cmd += ["-roi", "1200", "1263", "1200", "1263"]
            mib, wall = peak_rss_mib(cmd, folder)
            print(f"{label:45s} {mib:9.0f} {wall:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
