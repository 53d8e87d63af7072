"""``torchbragg-bench``: fixed benchmark cases, timed whole and render-only, against C.

usage: torchbragg-bench [--c-binary PATH] [--cases a,b] [--repeat N] [--dtype float64|float32]
                        [--device cpu|cuda] [--inputs DIR] [--json FILE] [--no-cold]

For each case it reports

* ``wall``: whole-process wall time of ``torchbragg ARGS`` (median of the repeats, with the
  compiled kernel cached), and of the C program on the same arguments with ``--c-binary``,
  run in turns with torchbragg so both see the same machine load;
* ``first``: time to first image, the same command run once with an empty kernel cache (it
  includes building the fused kernel where the image uses it);
* ``render``: ``Simulator.render()`` alone in this process (best of the repeats, after a
  warm-up) and the pixel-steps per second that makes (pixels x sources x orientations x
  sub-pixels x layers per second);
* ``peak``: peak resident memory of the torchbragg process (and the C program's);
* once, the start-up yardsticks: ``python -c "import torch"`` and ``torchbragg --help``.

The C program has no separate render time: its start-up is milliseconds, so its wall time
stands for both. Ratios are C time / torchbragg time (above 1: torchbragg is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("-mat inputs/tetragonal.mat -hkl inputs/tetragonal.hkl -lambda 1.0 -N 10 -distance 120 "
         "-pixel 0.1 -mosaic_spr 1.5 -mosaic_dom 20 -phi 10 -osc 1 -phisteps 2 -hdivrange 1 "
         "-hdivsteps 3 -vdivrange 1 -vdivsteps 3 -dispersion 2 -dispsteps 3")
PILATUS = ("-mat inputs/A.mat -hkl inputs/scaled.hkl -nointerpolate -oversample 1 -exposure 1 "
           "-flux 1e18 -beamsize 1.0 -spindle_axis -1 0 0 -Xbeam 217.742295 -Ybeam 213.907080 "
           "-distance 231.274660 -lambda 0.976800 -pixel 0.172 -detpixels_x 2463 "
           "-detpixels_y 2527 -odet_vector -0.000088 0.004914 -0.999988 -sdet_vector -0.005998 "
           "-0.999970 -0.004913 -fdet_vector 0.999982 -0.005998 -0.000118 -pix0_vector_mm "
           "-216.336293 215.205512 -230.200866 -beam_vector 0.00051387949 0.0 -0.99999986 "
           "-Na 36 -Nb 47 -Nc 29 -osc 0.1 -phi 0.05 -phisteps 10")
CASES = {
    "still_256": "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
                 "-pixel 0.1 -detpixels 256",
    "heavy_192": HEAVY + " -detpixels 192",
    "heavy_large_512": HEAVY + " -detpixels 512",
    "pilatus_2463x2527": PILATUS,
}
OUTPUTS = ["-floatfile", "float.bin", "-intfile", "int.img", "-nonoise", "-nopgm",
           "-noprogress"]
NEEDED_INPUTS = ("tetragonal.mat", "tetragonal.hkl", "A.mat", "scaled.hkl")


def default_inputs() -> Path | None:
    """The golden inputs folder of a source checkout, if this is one."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        folder = base / "tests" / "data" / "golden" / "inputs"
        if folder.is_dir():
            return folder
    return None


def run_process(cmd: list[str], folder: Path, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process, which must succeed."""
    with open(folder / "log.txt", "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        tail = (folder / "log.txt").read_text()[-400:]
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{tail}")
    return wall, usage.ru_maxrss / 1024.0


def render_only(args: str, folder: Path, repeat: int, dtype: str,
                device: str) -> tuple[float, int]:
    """Best seconds of ``Simulator.render()`` in this process, and its pixel-steps."""
    import torch

    from torchbragg.cli.parse import parse_args
    from torchbragg.precedence import resolve
    from torchbragg.simulator import Simulator

    os.chdir(folder)
    with contextlib.redirect_stdout(io.StringIO()):
        plan = resolve(parse_args(shlex.split(args)).state)
    sim = Simulator(plan.config, dtype=getattr(torch, dtype), device=device)
    best = float("inf")
    for _ in range(repeat + 1):  # the first call loads (or builds) the kernel
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            sim.render()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    layers = plan.config.detector.thicksteps
    return best, int(sim.rendered.sum()) * plan.config.steps * layers


def time_processes(name: str, a: argparse.Namespace, folder: Path) -> dict:
    """Whole-process figures of one case (torchbragg and, if given, the C program)."""
    args = CASES[name]
    tb = [sys.executable, "-m", "torchbragg", *shlex.split(args), *OUTPUTS,
          "--dtype", a.dtype, "--device", a.device]
    result: dict = {"case": name, "args": args, "dtype": a.dtype, "device": a.device}
    if a.cold:
        with tempfile.TemporaryDirectory() as empty:
            env = dict(os.environ, TORCHBRAGG_CACHE_DIR=empty)
            result["first_s"], _ = run_process(tb, folder, env)
    run_process(tb, folder)  # make sure the kernel is cached before timing
    walls, peaks, c_walls, c_peaks = [], [], [], []
    for _ in range(a.repeat):
        wall, peak = run_process(tb, folder)
        walls.append(wall)
        peaks.append(peak)
        if a.c_binary:
            wall, peak = run_process([a.c_binary, *shlex.split(args), *OUTPUTS], folder)
            c_walls.append(wall)
            c_peaks.append(peak)
    result.update(wall_s=statistics.median(walls), peak_mib=max(peaks))
    if c_walls:
        result.update(c_wall_s=statistics.median(c_walls), c_peak_mib=max(c_peaks),
                      wall_ratio=statistics.median(c_walls) / result["wall_s"])
    return result


def add_render_figures(result: dict, a: argparse.Namespace, folder: Path) -> None:
    """Render-only time and throughput of a case, and the C ratios they give."""
    render_s, pixel_steps = render_only(result["args"], folder, a.repeat, a.dtype, a.device)
    result.update(render_s=render_s, pixel_steps=pixel_steps,
                  pixel_steps_per_s=pixel_steps / render_s)
    if "c_wall_s" in result:
        result.update(c_pixel_steps_per_s=pixel_steps / result["c_wall_s"],
                      render_ratio=result["c_wall_s"] / render_s)


def time_start_up(a: argparse.Namespace, folder: Path) -> dict:
    """Medians of ``python -c "import torch"`` and ``torchbragg --help``, whole process."""
    runs = {"import_torch_s": [sys.executable, "-c", "import torch"],
            "help_s": [sys.executable, "-m", "torchbragg", "--help"]}
    return {key: statistics.median(run_process(cmd, folder)[0] for _ in range(a.repeat))
            for key, cmd in runs.items()}


def format_line(r: dict) -> str:
    """One printed line per case."""
    line = (f"{r['case']:<18} {r['dtype']:<7} wall {r['wall_s']:7.2f} s  render "
            f"{r['render_s']:7.3f} s  {r['pixel_steps_per_s'] / 1e6:8.1f} M pixel-steps/s  "
            f"peak {r['peak_mib']:6.0f} MiB")
    if "first_s" in r:
        line += f"  first image {r['first_s']:6.1f} s"
    if "c_wall_s" in r:
        line += (f" | C wall {r['c_wall_s']:6.2f} s ({r['c_pixel_steps_per_s'] / 1e6:6.1f} M/s, "
                 f"{r['c_peak_mib']:4.0f} MiB)  C/tb wall {r['wall_ratio']:5.2f}x  "
                 f"render {r['render_ratio']:5.2f}x")
    return line


def parse_cli(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(prog="torchbragg-bench", description=__doc__.splitlines()[0])
    ap.add_argument("--c-binary", help="the user's nanoBragg build, run on the same cases")
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median/best)")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--inputs", help="folder with tetragonal.mat/.hkl, A.mat, scaled.hkl "
                    "(default: the golden inputs of a source checkout)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--no-cold", dest="cold", action="store_false",
                    help="skip the time-to-first-image run (it builds kernels from scratch)")
    a = ap.parse_args(argv)
    a.cases = [c for c in a.cases.split(",") if c]
    unknown = [c for c in a.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case {unknown[0]}; cases are {', '.join(CASES)}")
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    inputs = Path(a.inputs) if a.inputs else default_inputs()
    if inputs is None or not all((inputs / f).is_file() for f in NEEDED_INPUTS):
        ap.error(f"--inputs: need a folder holding {', '.join(NEEDED_INPUTS)}")
    a.inputs = inputs.resolve()
    if a.c_binary and not os.access(a.c_binary, os.X_OK):
        ap.error(f"--c-binary {a.c_binary}: not an executable file")
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one line per case."""
    a = parse_cli(argv)
    if a.c_binary:
        a.c_binary = str(Path(a.c_binary).resolve())
    # every process is timed before this process imports torch: a child forked from a
    # process holding torch would count its pages in its own peak memory
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "inputs").symlink_to(a.inputs, target_is_directory=True)
        start_up = time_start_up(a, folder)
        print(f"start-up: python -c 'import torch' {start_up['import_torch_s']:.2f} s, "
              f"torchbragg --help {start_up['help_s']:.2f} s", flush=True)
        results = [time_processes(name, a, folder) for name in a.cases]
        for result in results:
            add_render_figures(result, a, folder)
            print(format_line(result), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"start_up": start_up, "cases": results},
                                           indent=1) + "\n")
    return 0


def console_main() -> None:
    """Console-script wrapper."""
    try:
        sys.exit(main())
    except RuntimeError as err:
        print(f"torchbragg-bench: error: {err}", file=sys.stderr)
        sys.exit(2)
