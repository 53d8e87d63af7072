"""Render one nanoBragg command with a C build and with torchbragg, and explain a difference.

:func:`run_both` runs each program in its own temporary folder: input files named by the
command (``-hkl``, ``-mat``, ``-sourcefile``, ``-img``, ``-mask``) are passed by absolute path,
a structure-factor cache (``Fdump.bin``, or ``-dump``'s file) is copied in, the user's output
options are dropped and each side writes ``float.bin``. It compares the two float images and,
when they differ beyond the threshold, explains why:

1. it traces the worst pixel in both programs (an instrumented C build prints ``TRACE_C:``
   lines for ``-trace_pixel``; a plain build prints its ``-printout_pixel`` block) and
   reports the first quantity that differs (:mod:`torchbragg.tracecompare`);
2. it renders torchbragg again with each C-compatibility switch that applies to the command
   and reports which one, if any, makes the images agree.

The C program runs with ``OMP_NUM_THREADS`` threads (one by default: the released program's
phi = 0 behaviour depends on thread scheduling otherwise).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from torchbragg.compare import ImageComparison, compare_images
from torchbragg.tracecompare import TraceComparison, compare_traces, parse_trace

# output options of the command line, with how many values each takes
OUTPUT_OPTIONS = {"-floatfile": 1, "-floatimage": 1, "-intfile": 1, "-intimage": 1,
                  "-pgmfile": 1, "-pgmimage": 1, "-noisefile": 1, "-noiseimage": 1,
                  "-printout": 0, "-printout_pixel": 2, "-trace_pixel": 2, "-progress": 0,
                  "-noprogress": 0}
INPUT_OPTIONS = ("-hkl", "-mat", "-sourcefile", "-img", "-mask")  # each names a file read
_OURS = ["-floatfile", "float.bin", "-nonoise", "-nopgm", "-noprogress"]


@dataclass(frozen=True)
class Switch:
    """A torchbragg option that reproduces one behaviour of the released C program.

    ``applies(config)`` says whether it changes the command; ``first_pixel_unknown``: the C
    program's first rendered pixel is undefined under this behaviour (uninitialised memory),
    so the verdict leaves it out.
    """

    option: str
    behaviour: str
    applies: Callable[[object], bool]
    first_pixel_unknown: bool = False


def _phi_at_zero(config) -> bool:
    """Several phi steps, one of them exactly at 0 (where --stale-phi0 matters)."""
    c = config.crystal
    return c.phisteps > 1 and c.zero_phi_step() is not None


SWITCHES = (
    Switch("--stale-phi0", "the released nanoBragg's phi = 0 step, which reuses the previous "
           "step's rotated cell (run with one thread)", _phi_at_zero, first_pixel_unknown=True),
)


def strip_outputs(args: list[str]) -> list[str]:
    """``args`` without output options (and their values) and progress flags."""
    kept, i = [], 0
    while i < len(args):
        count = OUTPUT_OPTIONS.get(args[i].lower())
        if count is None:
            kept.append(args[i])
            i += 1
        else:
            i += 1 + count
    return kept


def absolute_inputs(args: list[str], cwd: Path) -> list[str]:
    """The value of each input-file option as an absolute path (relative to ``cwd``)."""
    out = list(args)
    for i, arg in enumerate(args[:-1]):
        if arg in INPUT_OPTIONS:
            out[i + 1] = str((cwd / args[i + 1]).absolute())
    return out


def dump_files(args: list[str], cwd: Path) -> list[str]:
    """Relative names of the structure-factor caches the command may read (to copy in).

    The C program reads ``Fdump.bin`` (or ``-dump``'s file) when no ``-hkl`` is given and
    writes it when one is; a copy keeps the user's file out of reach of either.
    """
    names = ["Fdump.bin"]
    for i, arg in enumerate(args[:-1]):
        if arg == "-dump":
            names.append(args[i + 1])
    return [n for n in names if not os.path.isabs(n) and (cwd / n).is_file()]


@dataclass
class Run:
    """One program's render: the command, its folder, seconds, exit status and output."""

    command: list[str]
    folder: Path
    seconds: float = 0.0
    returncode: int = 0
    output: str = ""

    def tail(self) -> str:
        """The last non-empty line it printed."""
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"


def _execute(command: list[str], folder: Path, env: dict | None = None,
             timeout_s: float | None = None) -> Run:
    """Run ``command`` in ``folder``; a program that cannot start is a ValueError."""
    run = Run(command, folder)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                              timeout=timeout_s, errors="replace")
    except FileNotFoundError:
        raise ValueError(f"cannot run {command[0]}: no such program") from None
    except PermissionError:
        raise ValueError(f"cannot run {command[0]}: not executable") from None
    except subprocess.TimeoutExpired:
        raise ValueError(f"{Path(command[0]).name} took longer than --timeout "
                         f"{timeout_s:g} s") from None
    except OSError as err:
        raise ValueError(f"cannot run {command[0]}: {err.strerror}") from None
    run.seconds = time.perf_counter() - start
    run.returncode, run.output = done.returncode, done.stdout + done.stderr
    return run


def c_command(binary: str, args: list[str]) -> list[str]:
    """The C program's command line for a render into ``float.bin``."""
    return [str(Path(binary).absolute()) if os.sep in binary else binary, *args, *_OURS]


def torchbragg_command(args: list[str]) -> list[str]:
    """torchbragg's command line (this Python) for a render into ``float.bin``."""
    return [sys.executable, "-m", "torchbragg", *args, *_OURS]


@dataclass
class SwitchResult:
    """How close torchbragg comes to the C image with one switch."""

    option: str
    behaviour: str
    max_rel: float
    corr: float
    agrees: bool
    seconds: float
    note: str = ""


@dataclass
class Explanation:
    """Why the images differ: the traces of the worst pixel, and the switches tried."""

    pixel: tuple[int, int]
    c_trace_kind: str = ""
    trace: TraceComparison | None = None
    trace_problem: str = ""
    switches: list[SwitchResult] = field(default_factory=list)
    switch_problem: str = ""

    @property
    def cause(self) -> SwitchResult | None:
        """The first switch that makes the images agree, or None."""
        return next((s for s in self.switches if s.agrees), None)

    def lines(self) -> list[str]:
        """Readable report."""
        s, f = self.pixel
        out = [f"trace of the worst pixel (slow {s}, fast {f}), C ({self.c_trace_kind or 'none'})"
               " against torchbragg:"]
        out += ["  " + line for line in (self.trace.lines() if self.trace else
                                         [self.trace_problem])]
        out.append("compatibility switches:")
        if self.switch_problem:
            out.append(f"  {self.switch_problem}")
        elif not self.switches:
            out.append("  none applies to this command")
        for sw in self.switches:
            verdict = "the images agree" if sw.agrees else "still differ"
            out.append(f"  {sw.option}: max_rel {sw.max_rel:.3e}, correlation {sw.corr:.9f}: "
                       f"{verdict}{f' ({sw.note})' if sw.note else ''}")
        cause = self.cause
        if cause:
            out.append(f"cause: {cause.behaviour} -- torchbragg reproduces it with "
                       f"{cause.option}")
        else:
            out.append("cause: not one of torchbragg's compatibility switches; start from the "
                       "first divergence above")
        return out

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {"pixel": list(self.pixel), "c_trace": self.c_trace_kind,
                "trace": self.trace.as_dict() if self.trace else self.trace_problem,
                "switches": [asdict(s) for s in self.switches],
                "switch_problem": self.switch_problem,
                "cause": self.cause.option if self.cause else None}


@dataclass
class RunBoth:
    """Everything one run-both comparison found."""

    c: Run
    ours: Run
    comparison: ImageComparison
    reference: np.ndarray  # the C image (slow, fast), photons
    image: np.ndarray  # torchbragg's
    agree: bool
    explanation: Explanation | None = None

    def lines(self) -> list[str]:
        """Readable report."""
        out = [f"C program: {self.c.seconds:.2f} s    torchbragg: {self.ours.seconds:.2f} s",
               *self.comparison.lines()]
        if self.explanation is not None:
            out += self.explanation.lines()
        return out

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {"c_command": self.c.command, "torchbragg_command": self.ours.command,
                "c_seconds": self.c.seconds, "torchbragg_seconds": self.ours.seconds,
                **self.comparison.as_dict(), "agree": self.agree,
                "explanation": self.explanation.as_dict() if self.explanation else None}


@contextlib.contextmanager
def _working_folder(path: Path) -> Iterator[None]:
    here = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


class Session:
    """Temporary folders and settings shared by the renders of one comparison."""

    def __init__(self, binary: str, args: list[str], c_args: list[str], tb_args: list[str],
                 threads: int = 1, max_rel: float = 1e-5, timeout_s: float | None = None,
                 rtol: float = 1e-6):
        cwd = Path.cwd()
        self.binary, self.threads, self.timeout_s = binary, threads, timeout_s
        self.max_rel, self.rtol = max_rel, rtol
        self.args = absolute_inputs(strip_outputs(args), cwd)
        self.c_args = absolute_inputs(strip_outputs(c_args), cwd)
        self.tb_args = absolute_inputs(strip_outputs(tb_args), cwd)
        self.dumps = [cwd / n for n in dump_files([*args, *c_args, *tb_args], cwd)]
        self.root = Path(tempfile.mkdtemp(prefix="torchbragg-compare-"))

    def close(self) -> None:
        """Remove the temporary folders."""
        shutil.rmtree(self.root, ignore_errors=True)

    def folder(self, name: str) -> Path:
        """A fresh folder holding copies of the structure-factor caches the command reads."""
        path = self.root / name
        path.mkdir()
        for dump in self.dumps:
            target = path / dump.name
            shutil.copyfile(dump, target)
        return path

    def render_c(self, name: str, extra: list[str] = ()) -> Run:
        """Run the C build; fail with its last line when it does not write the image."""
        cmd = c_command(self.binary, [*self.args, *self.c_args, *extra])
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        return _checked(_execute(cmd, self.folder(name), env, self.timeout_s), "C")

    def render_ours(self, name: str, extra: list[str] = ()) -> Run:
        """Run torchbragg in a subprocess."""
        cmd = torchbragg_command([*self.args, *self.tb_args, *extra])
        return _checked(_execute(cmd, self.folder(name), timeout_s=self.timeout_s),
                        "torchbragg")

    def config(self):
        """torchbragg's resolved configuration of the command.

        It is read in a folder of its own, since reading structure factors may write a cache.
        """
        from torchbragg.cli.parse import parse_args
        from torchbragg.precedence import apply_smv_headers, resolve

        with _working_folder(self.folder("config")):
            parsed = parse_args([*self.args, *self.tb_args], read_headers=apply_smv_headers)
            return resolve(parsed.state).config


def _checked(run: Run, who: str) -> Run:
    """``run`` if it wrote ``float.bin``; else a ValueError with its last line."""
    if run.returncode != 0 or not (run.folder / "float.bin").is_file():
        raise ValueError(f"the {who} run failed (exit {run.returncode}): {run.tail()}")
    return run


def _float_image(run: Run, size: tuple[int, int], who: str) -> np.ndarray:
    """The (slow, fast) float image a run wrote; a size that is not ``size`` is named."""
    fast, slow = size
    data = np.fromfile(run.folder / "float.bin", dtype="<f4")
    if data.size != fast * slow:
        raise ValueError(f"{who} image has {data.size} pixels, but the command resolves to "
                         f"{fast} x {slow} = {fast * slow}: did --c-args or --tb-args change "
                         "the detector size?")
    return data.reshape(slow, fast).astype(np.float64)


def previous_rendered(config, pixel: tuple[int, int]) -> tuple[int, int] | None:
    """The pixel rendered just before ``pixel`` (slow, fast) in loop order, or None."""
    from torchbragg.simulator import rendered_pixels

    rendered = rendered_pixels(config).numpy().ravel()
    fast_pixels = config.detector.fpixels
    index = pixel[0] * fast_pixels + pixel[1]
    before = np.flatnonzero(rendered[:index])
    return None if before.size == 0 else divmod(int(before[-1]), fast_pixels)


def trace_region(config, pixel: tuple[int, int]) -> list[str]:
    """A ``-roi`` holding ``pixel`` and the pixel rendered before it in loop order.

    The released C program's phi = 0 step reuses state that the previous pixel left; with
    that pixel rendered first, the traced pixel sees what it saw in the full image.
    """
    before = previous_rendered(config, pixel) or pixel
    (s0, f0), (s1, f1) = before, pixel
    return ["-roi", str(min(f0, f1)), str(max(f0, f1)), str(s0), str(s1)]


def trace_worst(session: Session, config, pixel: tuple[int, int],
                explanation: Explanation) -> None:
    """Trace ``pixel`` (slow, fast) in both programs and compare the traces."""
    slow, fast = pixel
    region = trace_region(config, pixel)
    try:
        c = session.render_c("c-trace", ["-trace_pixel", str(slow), str(fast),
                                         "-printout_pixel", str(fast), str(slow), *region])
        ours = session.render_ours("tb-trace", ["-trace_pixel", str(slow), str(fast),
                                                *region])
        c_trace = parse_trace(c.output)
        explanation.c_trace_kind = c_trace.kind
        explanation.trace = compare_traces(c_trace, parse_trace(ours.output), session.rtol)
    except ValueError as err:
        explanation.trace_problem = f"no trace comparison: {err}"


def first_rendered(config) -> tuple[int, int] | None:
    """(slow, fast) of the first pixel the C program renders, or None."""
    from torchbragg.simulator import rendered_pixels

    where = np.flatnonzero(rendered_pixels(config).numpy().ravel())
    return None if where.size == 0 else divmod(int(where[0]), config.detector.fpixels)


def try_switches(session: Session, config, reference: np.ndarray, size: tuple[int, int],
                 peaks: int, radius: float) -> list[SwitchResult]:
    """Render torchbragg with each switch that applies, and measure how close each comes."""
    found = []
    for sw in SWITCHES:
        if not sw.applies(config):
            continue
        run = session.render_ours("tb" + sw.option.replace("-", "_"), [sw.option])
        image = _float_image(run, size, f"torchbragg's ({sw.option})")
        result, note = compare_images(reference, image, peaks, radius), ""
        first = first_rendered(config) if sw.first_pixel_unknown else None
        if result.max_rel > session.max_rel and first is not None:
            result, note = _without(first, reference, image, peaks, radius), (
                f"pixel (slow {first[0]}, fast {first[1]}) left out: the C program's first "
                "pixel reads uninitialised memory under this behaviour")
        found.append(SwitchResult(sw.option, sw.behaviour, result.max_rel, result.corr,
                                  result.max_rel <= session.max_rel, run.seconds, note))
    return found


def _without(pixel: tuple[int, int], reference: np.ndarray, image: np.ndarray, peaks: int,
             radius: float) -> ImageComparison:
    """The comparison with one pixel set to 0 in both images."""
    reference, image = reference.copy(), image.copy()
    reference[pixel] = image[pixel] = 0.0
    return compare_images(reference, image, peaks, radius)


def explain(session: Session, config, result: ImageComparison, reference: np.ndarray,
            size: tuple[int, int], peaks: int, radius: float) -> Explanation:
    """Trace the worst pixel and try the switches; problems are recorded, not raised."""
    explanation = Explanation(result.worst_pixel)
    trace_worst(session, config, result.worst_pixel, explanation)
    try:
        explanation.switches = try_switches(session, config, reference, size, peaks, radius)
    except ValueError as err:
        explanation.switch_problem = f"could not try them: {err}"
    return explanation


def run_both(session: Session, peaks: int = 50, radius: float = 2.0,
             explain_difference: bool = True) -> RunBoth:
    """Render with both programs, compare, and explain a difference beyond the threshold."""
    config = session.config()
    size = (config.detector.fpixels, config.detector.spixels)
    c = session.render_c("c")
    ours = session.render_ours("tb")
    reference = _float_image(c, size, "the C program's")
    image = _float_image(ours, size, "torchbragg's")
    result = compare_images(reference, image, peaks, radius)
    agree = result.max_rel <= session.max_rel
    both = RunBoth(c, ours, result, reference, image, agree)
    if not agree and explain_difference:
        both.explanation = explain(session, config, result, reference, size, peaks, radius)
    return both
