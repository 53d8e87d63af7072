"""Render and write what a parsed nanoBragg command line asks for (imports torch)."""

from __future__ import annotations

import itertools
import math
import os
import stat
import sys
from collections.abc import Iterable

import numpy as np
import torch

from torchbragg.cli.eta import (
    LINE_S,
    MADE_SOURCES_RATE,
    ORIENTATION_S,
    TYPICAL_RATE,
    RunClock,
)
from torchbragg.cli.options import CState
from torchbragg.cli.outputs import check_format_outputs, format_output_paths, write_outputs
from torchbragg.cli.parse import UsageError
from torchbragg.cli.printout import PrintoutObserver
from torchbragg.cli.progressbar import with_bar
from torchbragg.cli.report import noise_lines, solid_angle_line, summary_lines
from torchbragg.errors import SetupError, one_line
from torchbragg.experiment import Experiment
from torchbragg.models.crystal import LAZY_ORIENTATIONS
from torchbragg.precedence import Plan
from torchbragg.render import interpolation_warning
from torchbragg.rng import default_noise_seed
from torchbragg.simulator import RenderOutput, Simulator
from torchbragg.trace import format_trace, trace_pixel

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _say(line: str) -> None:
    print(line)


def _say_all(lines: Iterable[str], batch: int = 4096) -> None:
    """Print lines a batch at a time: millions of phi-step lines take seconds, not minutes."""
    it = iter(lines)
    while chunk := list(itertools.islice(it, batch)):
        sys.stdout.write("\n".join(chunk) + "\n")


def progress_lines(done_before: int, done: int, total: int) -> list[str]:
    """nanoBragg's progress meter lines for pixel counters ``done_before`` .. ``done - 1``.

    The C program counts pixels against (ROI width + 1) x (ROI height + 1) and prints a
    percentage every 5 %, and every 1 % in the first and last tenth.
    """
    if total // 100 <= 0:
        return []
    lines = []
    for n in range(done_before, done):
        if (n % (total // 20) == 0
                or ((10 * n < total or 10 * n > 9 * total) and n % (total // 100) == 0)):
            lines.append(f"{n * 100 // total}% done")
    return lines


def _progress(st: CState, plan: Plan):
    if not st.progress or st.printout:
        return None
    xmin, xmax, ymin, ymax = plan.config.detector.roi
    total = (xmax - xmin + 1) * (ymax - ymin + 1)
    state = {"done": 0}

    def report(done: float, n_pixels: int) -> None:
        done = int(done)  # within a chunk the count is fractional
        for line in progress_lines(state["done"], done, total):
            print(line, flush=True)
        state["done"] = done

    return report


def checked_device(text: str) -> torch.device:
    """``--device``: cpu or an available cuda[:N], else a UsageError naming the problem."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device: unknown device '{text}' (cpu, cuda, cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {text}: torchbragg renders on cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {text}: CUDA is not available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA "
                         "device(s)")
    return device


def extension_settings(ext: dict) -> tuple[torch.dtype, torch.device, float | None]:
    """Validated ``--dtype``, ``--device`` and ``--memory-budget-mb``."""
    dtype = DTYPES[ext.get("dtype", "float64")]  # checked by cli.main.check_extensions
    device = checked_device(ext.get("device", "cpu"))
    budget = ext.get("memory_budget_mb")
    if budget is not None:
        budget = _positive_mib(budget, "--memory-budget-mb")
    elif "TORCHBRAGG_MEMORY_MB" in os.environ:
        budget = _positive_mib(os.environ["TORCHBRAGG_MEMORY_MB"], "$TORCHBRAGG_MEMORY_MB")
    return dtype, device, budget


def _positive_mib(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{name} must be a positive number of MiB, got '{text}'")
    return value


def _warn_phi0(crystal, stale: bool) -> None:
    """Say on stderr when a phi step sits at exactly 0 with several steps (see behaviour.md)."""
    if crystal.phisteps < 2 or crystal.zero_phi_step() is None:
        return
    if stale:
        print("torchbragg: --stale-phi0: the phi = 0 step reuses the previous step's rotated "
              "cell, as the released nanoBragg does (run with one thread)", file=sys.stderr)
    else:
        print("torchbragg: warning: a phi step is at phi = 0, where the released nanoBragg "
              "reuses a stale rotated cell; this image is the corrected one (--stale-phi0 "
              "reproduces the released program)", file=sys.stderr)


def check_finite(image: np.ndarray, program: str = "nanoBragg",
                 inputs: str = "the structure factors",
                 lower: str = "; lower -default_F, the structure factors or the fluence") -> None:
    """Refuse to write an image with NaN or infinite pixels; warn where float32 overflows.

    ``inputs`` names what to check first, ``lower`` ends the overflow warning.
    """
    bad = ~np.isfinite(image)
    if bad.any():
        slow, fast = (int(i) for i in np.argwhere(bad)[0])
        raise SetupError(f"{int(bad.sum())} pixel(s) of the image are not finite (the first at "
                         f"slow {slow}, fast {fast}); no file was written: check {inputs}, "
                         "the fluence and the geometry")
    over = int((np.abs(image) > np.finfo(np.float32).max).sum())
    if over:
        print(f"WARNING: {over} pixel(s) exceed the float32 range and are stored as inf, as "
              f"{program} stores them{lower}", file=sys.stderr)


def check_outputs_writable(st: CState) -> None:
    """Fail before rendering when an output file's folder does not exist or is read-only."""
    paths = [st.float_path, st.int_path]
    paths += [st.pgm_path] if st.write_pgm else []
    paths += [st.noise_path] if st.calculate_noise else []
    paths += format_output_paths(st)
    for path in paths:
        if not path:
            raise UsageError("cannot write '': an output file name is empty")
        if len(os.fsencode(os.path.basename(path))) > 255:
            raise UsageError(f"cannot write {path[:40]}...: the file name is longer than 255 "
                             "bytes")
        if os.path.isdir(path):
            raise UsageError(f"cannot write {path}: it is a folder")
        if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            if not os.access(path, os.W_OK):  # a device or pipe is written through
                raise UsageError(f"cannot write {path}: not writable")
            continue
        folder = os.path.dirname(os.path.realpath(path))  # a link's target is replaced
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UsageError(f"cannot write {path}: folder {folder} does not exist or is not "
                             "writable")


def _check_trace_pixel(st: CState, config) -> None:
    if st.trace_pixel is None:
        return
    slow, fast = st.trace_pixel
    if not (0 <= slow < config.detector.spixels and 0 <= fast < config.detector.fpixels):
        raise UsageError(f"-trace_pixel {slow} {fast} (slow fast) is outside the "
                         f"{config.detector.spixels} x {config.detector.fpixels} detector")


def run_clock(sim: Simulator, st: CState, plan: Plan) -> RunClock:
    """The run's clock, its first estimate made from the plan (call ``start`` to print it)."""
    cfg, device = plan.config, sim.rendered.device.type
    made_sources = sim.beam.source_grid is not None
    rates = MADE_SOURCES_RATE if made_sources else TYPICAL_RATE
    return RunClock(int(sim.rendered.sum()), cfg.steps * cfg.detector.thicksteps,
                    rates.get(device, rates["cpu"]), then=_progress(st, plan))


def setup_estimate(sim: Simulator, plan: Plan) -> tuple[float, str]:
    """Seconds of set-up work besides the pixel-steps, and what it is (for RunClock.start)."""
    lines = plan.line_count()
    orientations = sim.crystal.orientation_count()
    made = orientations if orientations > LAZY_ORIENTATIONS else 0
    seconds = lines * LINE_S + made * ORIENTATION_S
    what = [f"{lines:.3g} setup lines to print"] if lines * LINE_S > 1.0 else []
    what += [f"{made:.3g} orientations to make"] if made * ORIENTATION_S > 1.0 else []
    return seconds, " and ".join(what)


def _render(sim: Simulator, st: CState, plan: Plan, budget: float | None,
            clock: RunClock) -> RenderOutput:
    printout = None
    renderer_hook = None
    if st.printout:
        cfg = plan.config
        s = cfg.sampling
        printout = PrintoutObserver(st.printout_pixel, cfg.beam.wavelength_m, cfg.steps,
                                    (s.oversample_thick, s.oversample_polar,
                                     s.oversample_omega), cfg.beam.nopolar)
        printout.lattice_m = sim.crystal().lattice_m[-1:].detach().cpu().numpy()  # the last
        renderer_hook = printout
    with torch.no_grad():
        out = sim.render(budget, progress=with_bar(clock, st.progress), observer=renderer_hook)
    if printout is not None:
        for line in printout.lines:
            _say(line)
    return out


def simulate(st: CState, ext: dict) -> int:
    """Resolve, render and write one simulation; raise on bad input (see ``main``).

    ``ext`` holds torchbragg's own options as :func:`torchbragg.cli.main.check_extensions`
    leaves them.
    """
    dtype, device, budget = extension_settings(ext)
    check_format_outputs(st)
    check_outputs_writable(st)
    st.stale_phi0 = bool(ext.get("stale_phi0"))
    exp = Experiment.from_state(st, dtype=dtype, device=device, kernel=ext["kernel"])
    plan, sim = exp.plan, exp.simulator
    for line in plan.warnings:
        print(one_line(f"WARNING: {line}"), file=sys.stderr)
    _warn_phi0(plan.config.crystal, st.stale_phi0)
    clock = run_clock(sim, st, plan)
    clock.start(*setup_estimate(sim, plan))
    _say_all(plan.lines())
    config = plan.config
    for line in summary_lines(plan, plan.info["n_hkl_read"]):
        _say(line)
    if st.calculate_noise:
        if st.seed is None:
            st.seed = default_noise_seed()
        for line in noise_lines(st.seed, config.sampling.water_size_m):
            _say(line)
    _check_trace_pixel(st, config)
    out = _render(sim, st, plan, budget, clock)
    # the C program's second warning line has no newline: the blank line ends it
    warning = interpolation_warning(out.interpolation)
    for line in warning[:-1]:
        _say(line)
    _say(warning[-1] if warning else "")
    _say(solid_angle_line(float(out.omega_sum), config.steps))
    image = out.image.detach().to("cpu", torch.float64).numpy()
    check_finite(image)
    write_outputs(image, config, st, plan.info["frame"], plan.info["rng_shared"], _say)
    if st.trace_pixel is not None:
        for line in format_trace(trace_pixel(sim, *st.trace_pixel)):
            _say(line)
    return 0


