"""Time torchbragg against the C nanoBragg on the same machine, in the same run.

usage: python benchmarks/bench_vs_c.py PATH_TO_nanoBragg [--inputs DIR] [--cases a,b,...]
       [--repeat N] [--torchbragg CMD]

Each case runs both programs as subprocesses in a scratch folder (with ``inputs/`` linked from
--inputs, default tests/data/golden/inputs), reports wall time, peak resident memory
(ru_maxrss of the child) and the ratio C/torchbragg (> 1 means torchbragg is faster), and checks
that the float images agree (max relative error as in the parity tool). Wall time includes
process start-up (about 2 s for Python and torch).
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

import numpy as np

HERE = Path(__file__).resolve().parent
PILATUS = ("-mat inputs/A.mat -hkl inputs/scaled.hkl -nointerpolate -oversample 1 -exposure 1 "
           "-flux 1e18 -beamsize 1.0 -spindle_axis -1 0 0 -Xbeam 217.742295 -Ybeam 213.907080 "
           "-distance 231.274660 -lambda 0.976800 -pixel 0.172 -detpixels_x 2463 "
           "-detpixels_y 2527 -odet_vector -0.000088 0.004914 -0.999988 -sdet_vector -0.005998 "
           "-0.999970 -0.004913 -fdet_vector 0.999982 -0.005998 -0.000118 -pix0_vector_mm "
           "-216.336293 215.205512 -230.200866 -beam_vector 0.00051387949 0.0 -0.99999986 "
           "-Na 36 -Nb 47 -Nc 29 -osc 0.1 -phi 0.05 -phisteps 10")
TRICLINIC = ("-cell 70 80 90 75 85 95 -hkl inputs/triclinic.hkl -default_F 10 -lambda 1.0 -N 5 "
             "-distance 100 -pixel 0.1")
CASES = {
    "sc_default": "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
                  "-pixel 0.1 -detpixels 256",
    "tri_misset": TRICLINIC + " -misset 10.5 -20.25 30.75 -detpixels 200",
    "mosaic": TRICLINIC + " -mosaic 0.8 -mosaic_dom 12 -mosaic_seed 4242 -detpixels 160",
    "phi_sweep": "-mat inputs/tetragonal.mat -hkl inputs/tetragonal.hkl -lambda 1.0 -N 10 "
                 "-distance 120 -pixel 0.1 -phi 5 -osc 2 -phisteps 4 -detpixels 200",
    "pilatus_full_2463x2527": PILATUS,
}


def run_once(cmd: list[str], folder: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process (its own rusage, via wait4)."""
    with open(folder / "log.txt", "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (folder / "log.txt").read_text()[-500:]
        sys.exit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{tail}")
    return wall, usage.ru_maxrss / 1024.0


def max_rel(c: np.ndarray, p: np.ndarray) -> float:
    """The parity tool's measure: max |p - c| / (|c| + 1e-6 max|c|)."""
    c, p = c.astype(np.float64), p.astype(np.float64)
    scale = np.abs(c).max() or 1.0
    return float((np.abs(p - c) / (np.abs(c) + 1e-6 * scale)).max())


def bench_case(name: str, args: str, c_bin: str, tb_cmd: list[str], inputs: Path,
               repeat: int) -> dict:
    """Run one case with both programs; best of ``repeat`` wall times."""
    extra = ["-nonoise", "-nopgm", "-noprogress"]
    with tempfile.TemporaryDirectory() as td:
        folder = Path(td)
        os.symlink(inputs, folder / "inputs")
        times = {"c": [], "torchbragg": []}
        rss = {}
        for _ in range(repeat):
            for who, cmd in (("c", [c_bin]), ("torchbragg", tb_cmd)):
                out = f"{who}.bin"
                wall, peak = run_once(cmd + shlex.split(args) + extra + ["-floatfile", out],
                                      folder)
                times[who].append(wall)
                rss[who] = peak
        c_img = np.fromfile(folder / "c.bin", dtype=np.float32)
        t_img = np.fromfile(folder / "torchbragg.bin", dtype=np.float32)
    best = {k: min(v) for k, v in times.items()}
    return dict(case=name, c_s=best["c"], torchbragg_s=best["torchbragg"],
                ratio=best["c"] / best["torchbragg"], max_rel=max_rel(c_img, t_img),
                c_rss_mib=rss["c"], torchbragg_rss_mib=rss["torchbragg"])


def main() -> int:
    """Parse arguments, run the cases, print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("c_program", help="path to a nanoBragg binary built from nanoBragg.c")
    ap.add_argument("--inputs", default=str(HERE.parent / "tests/data/golden/inputs"))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--torchbragg", default=f"{sys.executable} -m torchbragg")
    a = ap.parse_args()
    inputs = Path(a.inputs).resolve()
    print(f"{'case':26s} {'C s':>8s} {'torchbragg s':>13s} {'C/tb':>6s} {'max_rel':>9s} "
          f"{'C MiB':>7s} {'tb MiB':>7s}")
    for name in a.cases.split(","):
        r = bench_case(name, CASES[name], os.path.abspath(a.c_program),
                       shlex.split(a.torchbragg), inputs, a.repeat)
        print(f"{r['case']:26s} {r['c_s']:8.2f} {r['torchbragg_s']:13.2f} {r['ratio']:6.2f} "
              f"{r['max_rel']:9.2e} {r['c_rss_mib']:7.0f} {r['torchbragg_rss_mib']:7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
