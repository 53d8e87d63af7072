"""Render one nanoBragg command with a C build and with torchbragg, and explain a difference.

:func:`run_both` runs each program in its own temporary folder (input files named by the
command are passed by absolute path; the user's output options are dropped and each side
writes ``float.bin``), compares the two float images and, when they differ beyond the
threshold, explains why:

1. it traces the worst pixel in both programs (an instrumented C build prints ``TRACE_C:``
   lines for ``-trace_pixel``; a plain build prints its ``-printout_pixel`` block) and
   reports the first quantity that differs (:mod:`torchbragg.tracecompare`);
2. it renders torchbragg again with each C-compatibility switch that applies to the command
   and reports which one, if any, makes the images agree.

The C program runs with ``OMP_NUM_THREADS`` threads (one by default: the released program's
phi = 0 behaviour depends on thread scheduling otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from torchbragg.compare import ImageComparison, compare_images, read_image
from torchbragg.tracecompare import TraceComparison, compare_traces, parse_trace

# output options of the command line, with how many values each takes
OUTPUT_OPTIONS = {"-floatfile": 1, "-floatimage": 1, "-intfile": 1, "-intimage": 1,
                  "-pgmfile": 1, "-pgmimage": 1, "-noisefile": 1, "-noiseimage": 1,
                  "-printout": 0, "-printout_pixel": 2, "-trace_pixel": 2, "-progress": 0,
                  "-noprogress": 0}
_OURS = ["-floatfile", "float.bin", "-nonoise", "-nopgm", "-noprogress"]


@dataclass(frozen=True)
class Switch:
    """A torchbragg option that reproduces one behaviour of the released C program."""

    option: str
    behaviour: str
    applies: Callable[[object], bool]  # (resolved Config) -> does it change this command?


def _phi_at_zero(config) -> bool:
    """Several phi steps, one of them exactly at 0 (where --stale-phi0 matters)."""
    c = config.crystal
    phi = [c.phi0_rad + c.phistep_rad * i for i in range(c.phisteps)]
    return c.phisteps > 1 and 0.0 in phi


SWITCHES = (
    Switch("--stale-phi0", "the released nanoBragg's phi = 0 step, which reuses the previous "
           "step's rotated cell (run with one thread)", _phi_at_zero),
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
    """Arguments that name existing files (relative to ``cwd``) as absolute paths."""
    out = []
    for a in args:
        path = cwd / a
        is_number = _is_number(a)
        out.append(str(path.resolve()) if not is_number and not a.startswith("-")
                   and path.exists() else a)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
        raise ValueError(f"{Path(command[0]).name} took longer than {timeout_s:g} s") from None
    run.seconds = time.perf_counter() - start
    run.returncode, run.output = done.returncode, done.stdout + done.stderr
    return run


def c_command(binary: str, args: list[str]) -> list[str]:
    """The C program's command line for a render into ``float.bin``."""
    return [str(Path(binary).resolve()) if os.sep in binary else binary, *args, *_OURS]


def torchbragg_command(args: list[str]) -> list[str]:
    """torchbragg's command line (this Python) for a render into ``float.bin``."""
    return [sys.executable, "-m", "torchbragg", *args, *_OURS]


@dataclass
class Explanation:
    """Why the images differ: the traces of the worst pixel, and the switches tried."""

    pixel: tuple[int, int]
    c_trace_kind: str = ""
    trace: TraceComparison | None = None
    trace_problem: str = ""
    switches: list[dict] = field(default_factory=list)

    @property
    def cause(self) -> dict | None:
        """The first switch that makes the images agree, or None."""
        return next((s for s in self.switches if s["agrees"]), None)

    def lines(self) -> list[str]:
        """Readable report."""
        s, f = self.pixel
        out = [f"trace of the worst pixel (slow {s}, fast {f}), C ({self.c_trace_kind or 'none'})"
               " against torchbragg:"]
        out += ["  " + line for line in (self.trace.lines() if self.trace else
                                         [self.trace_problem])]
        out.append("compatibility switches:")
        if not self.switches:
            out.append("  none applies to this command")
        for sw in self.switches:
            verdict = "the images agree" if sw["agrees"] else "still differ"
            out.append(f"  {sw['option']}: max_rel {sw['max_rel']:.3e}, correlation "
                       f"{sw['corr']:.9f}: {verdict}")
        cause = self.cause
        if cause:
            out.append(f"cause: {cause['behaviour']} -- torchbragg reproduces it with "
                       f"{cause['option']}")
        else:
            out.append("cause: not one of torchbragg's compatibility switches; start from the "
                       "first divergence above")
        return out

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {"pixel": list(self.pixel), "c_trace": self.c_trace_kind,
                "trace": self.trace.as_dict() if self.trace else self.trace_problem,
                "switches": self.switches,
                "cause": self.cause["option"] if self.cause else None}


@dataclass
class RunBoth:
    """Everything one run-both comparison found."""

    c: Run
    ours: Run
    comparison: ImageComparison
    reference: np.ndarray  # the C image (slow, fast)
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


class Session:
    """Temporary folders and settings shared by the renders of one comparison."""

    def __init__(self, binary: str, args: list[str], c_args: list[str], tb_args: list[str],
                 threads: int = 1, max_rel: float = 1e-5, timeout_s: float | None = None):
        self.binary, self.threads, self.max_rel, self.timeout_s = binary, threads, max_rel, \
            timeout_s
        cwd = Path.cwd()
        self.args = absolute_inputs(strip_outputs(args), cwd)
        self.c_args = absolute_inputs(strip_outputs(c_args), cwd)
        self.tb_args = absolute_inputs(strip_outputs(tb_args), cwd)
        self.root = Path(tempfile.mkdtemp(prefix="torchbragg-compare-"))
        self._dump = cwd / "Fdump.bin"

    def close(self) -> None:
        """Remove the temporary folders."""
        shutil.rmtree(self.root, ignore_errors=True)

    def folder(self, name: str) -> Path:
        """A fresh folder, with a copy of the caller's Fdump.bin if there is one.

        The C program reads Fdump.bin when no -hkl is given.
        """
        path = self.root / name
        path.mkdir()
        if self._dump.is_file():
            shutil.copyfile(self._dump, path / "Fdump.bin")
        return path

    def c_env(self) -> dict:
        """The environment of the C program: its thread count."""
        return dict(os.environ, OMP_NUM_THREADS=str(self.threads))

    def render_c(self, name: str, extra: list[str] = ()) -> Run:
        """Run the C build; fail with its last line when it does not write the image."""
        cmd = c_command(self.binary, [*self.args, *self.c_args, *extra])
        return _checked(_execute(cmd, self.folder(name), self.c_env(), self.timeout_s), "C")

    def render_ours(self, name: str, extra: list[str] = ()) -> Run:
        """Run torchbragg in a subprocess."""
        cmd = torchbragg_command([*self.args, *self.tb_args, *extra])
        return _checked(_execute(cmd, self.folder(name), timeout_s=self.timeout_s),
                        "torchbragg")


def _checked(run: Run, who: str) -> Run:
    if run.returncode != 0 or not (run.folder / "float.bin").is_file():
        raise ValueError(f"the {who} run failed (exit {run.returncode}): {run.tail()}")
    return run


def _image(run: Run, size: tuple[int, int]) -> np.ndarray:
    return read_image(run.folder / "float.bin", size)


def image_size(session: Session) -> tuple[tuple[int, int], object]:
    """(fast, slow) pixels of the command and its resolved Config, as torchbragg sees it."""
    from torchbragg.cli.parse import parse_args
    from torchbragg.precedence import apply_smv_headers, resolve

    here = Path.cwd()
    os.chdir(session.folder("size"))
    try:
        parsed = parse_args([*session.args, *session.tb_args], read_headers=apply_smv_headers)
        config = resolve(parsed.state).config
    finally:
        os.chdir(here)
    return (config.detector.fpixels, config.detector.spixels), config


def _roi(slow: int, fast: int, size: tuple[int, int]) -> list[str]:
    """A region holding the pixel and the one before it in loop order.

    The released C program's phi = 0 step reuses state that the previous pixel left.
    """
    if fast > 0:
        return ["-roi", str(fast - 1), str(fast), str(slow), str(slow)]
    if slow > 0:
        return ["-roi", "0", str(size[0] - 1), str(slow - 1), str(slow)]
    return ["-roi", "0", "0", "0", "0"]


def trace_worst(session: Session, pixel: tuple[int, int], size: tuple[int, int],
                explanation: Explanation) -> None:
    """Trace ``pixel`` (slow, fast) in both programs and compare the traces."""
    slow, fast = pixel
    region = _roi(slow, fast, size)
    c = session.render_c("c-trace", ["-trace_pixel", str(slow), str(fast), "-printout_pixel",
                                     str(fast), str(slow), *region])
    ours = session.render_ours("tb-trace", ["-trace_pixel", str(slow), str(fast), *region])
    try:
        c_trace = parse_trace(c.output)
    except ValueError:
        explanation.trace_problem = "the C build printed no trace of the pixel"
        return
    explanation.c_trace_kind = c_trace.kind
    explanation.trace = compare_traces(c_trace, parse_trace(ours.output))


def try_switches(session: Session, config, reference: np.ndarray, size: tuple[int, int],
                 peaks: int, radius: float) -> list[dict]:
    """Render torchbragg with each switch that applies, and measure how close each comes."""
    found = []
    for sw in SWITCHES:
        if not sw.applies(config):
            continue
        run = session.render_ours("tb" + sw.option.replace("-", "_"), [sw.option])
        result = compare_images(reference, _image(run, size), peaks, radius)
        found.append({"option": sw.option, "behaviour": sw.behaviour,
                      "max_rel": result.max_rel, "corr": result.corr,
                      "agrees": result.max_rel <= session.max_rel, "seconds": run.seconds})
    return found


def run_both(session: Session, peaks: int = 50, radius: float = 2.0,
             explain: bool = True) -> RunBoth:
    """Render with both programs, compare, and explain a difference beyond the threshold."""
    size, config = image_size(session)
    c = session.render_c("c")
    ours = session.render_ours("tb")
    reference, image = _image(c, size), _image(ours, size)
    result = compare_images(reference, image, peaks, radius)
    agree = result.max_rel <= session.max_rel
    both = RunBoth(c, ours, result, reference, image, agree)
    if not agree and explain:
        both.explanation = Explanation(result.worst_pixel)
        trace_worst(session, result.worst_pixel, size, both.explanation)
        both.explanation.switches = try_switches(session, config, reference, size, peaks,
                                                 radius)
    return both
