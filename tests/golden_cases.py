"""Golden cases of the C nanoBragg, and how to run torchbragg on them in-process.

The data in ``tests/data/golden`` was rendered by the reference C program (see its README.md).
Each case is run exactly as ``parity.py`` (the project's comparison tool) runs it: the case's
argument strings, then the C program's output flags for the files it wrote, ``-nonoise`` /
``-nopgm`` where it wrote no noise image / PGM, and ``-noprogress``; earlier runs of a case
prepare files (``Fdump.bin``, a named dump) in the same working folder and write no outputs.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from torchbragg.cli.main import main

GOLDEN = Path(__file__).parent / "data" / "golden"
INPUTS = GOLDEN / "inputs"

# output kind -> (flag, file name in the working folder), as parity.py passes them
OUTFLAGS = {"float": ("-floatfile", "float.bin"), "int": ("-intfile", "int.img"),
            "noise": ("-noisefile", "noise.img"), "pgm": ("-pgmfile", "image.pgm")}

# parity goal: max |p - c| / (|c| + 1e-6 max|c|) over the float image
MAX_REL = 1e-5

# torchbragg options added to every run (set from pytest's --torch-device, see conftest.py)
EXTRA_ARGS: list[str] = []


def load_cases() -> list[dict]:
    """All golden cases, in the order of ``cases.json``."""
    return json.loads((GOLDEN / "cases.json").read_text())["cases"]


CASES = {case["id"]: case for case in load_cases()}


def golden_bytes(relpath: str) -> bytes:
    """A golden file's content, gunzipped when it ends in ``.gz``."""
    data = (GOLDEN / relpath).read_bytes()
    return gzip.decompress(data) if relpath.endswith(".gz") else data


def golden_stdout(case_id: str) -> str:
    """What the C program printed for a case."""
    return golden_bytes(CASES[case_id]["stdout"]).decode("utf-8", errors="replace")


def smv_pixels(raw: bytes) -> np.ndarray:
    """The pixel values of an SMV image (header size and byte order from its header)."""
    head = raw[:512].decode("latin-1")
    header_bytes = int(head.split("HEADER_BYTES=")[1].split(";")[0])
    order = "<" if "little_endian" in head[:header_bytes] else ">"
    return np.frombuffer(raw[header_bytes:], dtype=order + "u2")


def max_rel(c_image: np.ndarray, p_image: np.ndarray) -> float:
    """parity.py's max_rel: max |p - c| / (|c| + 1e-6 max|c|)."""
    c64, p64 = c_image.astype(np.float64), p_image.astype(np.float64)
    scale = np.abs(c64).max() or 1.0
    return float((np.abs(p64 - c64) / (np.abs(c64) + 1e-6 * scale)).max())


def link_inputs(workdir: Path) -> None:
    """Make the golden ``inputs/`` visible as ``workdir/inputs`` (a link, or a copy)."""
    target = workdir / "inputs"
    try:
        target.symlink_to(INPUTS, target_is_directory=True)
    except OSError:  # no symlinks (some Windows setups): copy instead
        shutil.copytree(INPUTS, target)


def case_argv(case: dict, index: int, extra_args: tuple[str, ...] = ()) -> list[str]:
    """Arguments of run ``index`` of ``case``, with the output flags parity.py adds.

    ``extra_args`` (torchbragg's own options) go on every run.
    """
    runs = case["runs"]
    last = index == len(runs) - 1
    extra: list[str] = []
    for kind, (flag, name) in OUTFLAGS.items():
        if last and kind in case["outputs"]:
            extra += [flag, name]
    if "noise" not in case["outputs"] or not last:
        extra.append("-nonoise")
    if "pgm" not in case["outputs"] or not last:
        extra.append("-nopgm")
    return shlex.split(runs[index]) + extra + ["-noprogress"] + EXTRA_ARGS + list(extra_args)


@dataclass
class Result:
    """Exit status and what one in-process run printed."""

    status: int
    stdout: str
    stderr: str


def run_main(argv: list[str]) -> Result:
    """Call ``torchbragg.cli.main.main(argv)`` and capture what it prints."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return Result(status, out.getvalue(), err.getvalue())


@dataclass
class CaseRun:
    """One golden case run by torchbragg: each run's result and the last run's outputs."""

    results: list[Result]
    outputs: dict[str, bytes] = field(default_factory=dict)

    @property
    def stdout(self) -> str:
        """What the last run printed."""
        return self.results[-1].stdout


_RUNS: dict[tuple, CaseRun] = {}


def run_case(case_id: str, workdir: Path, extra_args: tuple[str, ...] = ()) -> CaseRun:
    """Run every run of a golden case in ``workdir`` (the current folder must be it).

    ``extra_args`` are torchbragg options added to every run. The outcome is kept, so that
    a second test of the same case and options does not render it again; it holds the
    output files' bytes, not their paths.
    """
    key = (case_id, tuple(extra_args))
    if key in _RUNS:
        return _RUNS[key]
    assert Path.cwd().resolve() == workdir.resolve(), "chdir into the working folder first"
    case = CASES[case_id]
    link_inputs(workdir)
    results = []
    for index in range(len(case["runs"])):
        results.append(run_main(case_argv(case, index, extra_args)))
        if results[-1].status != 0:
            break
    outputs = {}
    if results[-1].status == 0:
        for kind in case["outputs"]:
            path = workdir / OUTFLAGS[kind][1]
            if path.exists():
                outputs[kind] = path.read_bytes()
    run = CaseRun(results, outputs)
    _RUNS[key] = run
    return run


def image_files(folder: Path) -> list[str]:
    """Names of image files (float, SMV, PGM) directly in ``folder``."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.suffix in {".bin", ".img", ".pgm"} and p.is_file())


def lines_with(text: str, marker: str, *, anywhere: bool = False) -> list[str]:
    """Lines of ``text`` that start with ``marker`` (or contain it, with ``anywhere``)."""
    return [line for line in text.splitlines()
            if (marker in line if anywhere else line.startswith(marker))]
