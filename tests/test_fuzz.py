"""Fuzzed command lines and input files: a clear error or a valid image, not a traceback.

Property-based tests (hypothesis) run ``torchbragg.cli.main.main`` in-process, each example in
a fresh temporary folder, on

* command lines made of a small valid base (an 8 x 8 image, one sub-pixel) plus one to three
  options drawn from :data:`torchbragg.cli.options.RULES` (the option itself, a misspelling of
  it, an unknown option or one of torchbragg's own ``--`` options), each with too few, the right
  number or too many values drawn from plain numbers, extreme numbers (0, -1, 1e300, nan,
  '0x10', ...), odd text ('abc', '', '-', fullwidth digits, ...) and names of prepared files;
* fuzzed input files (clean, with extreme numbers, or broken: junk, NaN, missing columns,
  binary bytes, singular matrices, zero source vectors, bad SMV headers): ``-hkl`` structure
  factors, ``-mat`` MOSFLM matrices, ``-sourcefile`` source lists and SMV images for ``-img`` /
  ``-mask``, each on the base command line plus up to two valid options that use the file.

The property, for every example: ``main()`` returns (no exception escapes) with status 0, 2 or
9 (70, an internal error, is a bug); nothing prints a traceback; every line on stderr is a
warning (``WARNING:`` or ``torchbragg: warning:``) or a note (``torchbragg: ...``, e.g. the
estimate of a long run) except, on failure, the last one, which
starts with ``torchbragg: error:`` (status 9 also prints the usage text on stdout); a failed
run leaves no float image behind; a run that succeeds writes a float image whose size is the
detector the run reports (4 bytes a pixel, 8 x 8 unless a ``-detpixels*`` option changed it)
and that holds no NaN.

Runs must stay fast, so step counts that multiply the work (``-phisteps``, ``-mosaic_dom``,
``-oversample``, ``-detpixels*``, ...) get small values or values the program refuses, the base
fixes ``-oversample 1`` (auto-oversampling of a huge crystal is legitimately slow; the
recommendation is still computed), a range and its step (``-osc`` with ``-phistep``, a
divergence range with its step: ceil(range/step) steps) are drawn together only with values
whose ratio is infinite, zero or refused, and options that print
every pixel (``-printout``), compile a kernel (``--compile``, ``--kernel fused``) or write the
float image elsewhere are not drawn.

``test_fuzz_findings`` replays, with the same property, inputs the fuzzing found breaking it.

Knobs (environment variables):

``TORCHBRAGG_FUZZ_EXAMPLES``
    examples per test (default 50: the module runs in a few seconds). Hunt for bugs with e.g.
    ``TORCHBRAGG_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py``.
``TORCHBRAGG_FUZZ_RANDOM``
    set to 1 to draw new random examples each run (default: derandomized, so CI is
    reproducible).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, note, settings
from hypothesis import strategies as st

from golden_cases import run_main
from torchbragg.cli.options import RULES

EXAMPLES = int(os.environ.get("TORCHBRAGG_FUZZ_EXAMPLES", "50"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("TORCHBRAGG_FUZZ_RANDOM"),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)

FLOAT_OUT = "out.bin"
# tiny image, one sub-pixel: each example renders in a few milliseconds
CRYSTAL = ["-cell", "100", "100", "100", "90", "90", "90"]
BEAM_AND_DETECTOR = ["-lambda", "1", "-distance", "100", "-pixel", "0.1", "-detpixels", "8"]
QUIET = ["-N", "2", "-oversample", "1", "-nonoise", "-nopgm", "-noprogress",
         "-floatfile", FLOAT_OUT]
BASE = CRYSTAL + ["-default_F", "100"] + BEAM_AND_DETECTOR + QUIET

STATUS_OK, STATUS_BAD_INPUT, STATUS_USAGE = 0, 2, 9
WARNING_PREFIXES = ("WARNING:", "torchbragg: warning:")
ERROR_PREFIX = "torchbragg: error:"
NOTE_PREFIX = "torchbragg: "  # notes: a long run's estimate, the compiled kernel, ...
FAILURE_PREFIXES = (ERROR_PREFIX, "torchbragg: internal error:")


# --- running one example ------------------------------------------------------------------


@contextlib.contextmanager
def fresh_folder():
    """A new empty temporary folder, made current; the old one is restored afterwards.

    (Function-scoped fixtures are not reset between hypothesis examples, so each example
    makes its own.)
    """
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="torchbragg-fuzz-") as folder:
        os.chdir(folder)
        try:
            yield Path(folder)
        finally:
            os.chdir(old)


def detector_is_base(argv: list[str]) -> bool:
    """True if the detector is the base's 8 x 8 pixels: '-detpixels 8' and no other -detpixels*."""
    tokens = [(i, token) for i, token in enumerate(argv) if "-detpixels" in token]
    return len(tokens) == 1 and tokens[0][1] == "-detpixels" and argv[tokens[0][0] + 1] == "8"


def _note(text: str) -> None:
    """Hypothesis's note (shown with a failing example); in a plain test, nothing."""
    if currently_in_test_context():
        note(text)


def check_run(argv: list[str], folder: Path) -> None:
    """Run ``argv`` in ``folder`` and check the contract: a clear error or a valid image."""
    _note(f"argv = {argv!r}")
    try:
        result = run_main(argv)
    except (Exception, SystemExit) as err:  # anything escaping main() is a traceback
        raise AssertionError(f"main() raised {type(err).__name__}: {err}") from err
    status, out, err = result.status, result.stdout, result.stderr
    _note(f"status = {status}\nstderr = {err!r}")
    if currently_in_test_context():
        event(f"status {status}")
    assert status in (STATUS_OK, STATUS_BAD_INPUT, STATUS_USAGE), \
        f"exit status {status}; stderr: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [line for line in err.splitlines() if line.strip()]
    if status != STATUS_OK:
        assert lines and lines[-1].startswith(ERROR_PREFIX), \
            f"status {status} without a final '{ERROR_PREFIX}' line; stderr: {err!r}"
        lines = lines[:-1]
        if status == STATUS_USAGE:
            assert "usage:" in out, "status 9 without the usage text"
    odd = [line for line in lines if not line.startswith(WARNING_PREFIXES) and not (
        line.startswith(NOTE_PREFIX) and not line.startswith(FAILURE_PREFIXES))]
    assert not odd, f"stderr lines that are neither warnings nor the final error: {odd!r}"
    out_file = folder / FLOAT_OUT
    if status != STATUS_OK:
        assert not out_file.exists(), f"a failed run (status {status}) left {FLOAT_OUT} behind"
        return
    assert out_file.is_file(), f"status 0 but no {FLOAT_OUT}"
    size = out_file.stat().st_size
    assert size > 0 and size % 4 == 0, f"{FLOAT_OUT} has {size} bytes"
    reported = re.search(r"\((\d+)x(\d+) pixels\)", out)
    if reported:
        fast, slow = int(reported.group(1)), int(reported.group(2))
        assert size == 4 * fast * slow, f"{size} bytes for a reported {fast}x{slow} detector"
    if detector_is_base(argv):
        assert size == 8 * 8 * 4, f"{size} bytes for the 8x8 detector"
    pixels = np.fromfile(out_file, dtype="<f4")
    assert not np.isnan(pixels).any(), "NaN pixels in the float image"


# --- values ---------------------------------------------------------------------------------

EXTREME = ["0", "-0", "-1", "1e300", "-1e300", "1e-300", "-1e-300", "1e9", "-1e9", "nan",
           "-nan", "inf", "-inf", "1e1", "0x10", "1e308", "4e-320", "2147483648",
           "-2147483649", "99999999999999999999"]
ODD_TEXT = ["abc", "", "-", "--", " ", "1 ", " 2", "１６", "٣", "½", "1,5", "1_000", "+1",
            ".5", "5.", "1e", "e1", "0b1", "1.5", "1e-", "NaN", "Infinity", "\t", "é", "random",
            "sample", "beam", "x" * 300, "a\nb"]
# prepared in each option example's folder (see make_files); "missing.txt" is never made
FILE_NAMES = ["good.hkl", "good.mat", "good.src", "good.img", "junk.bin", "empty.txt",
              "adir", "missing.txt", "Fdump.bin", "..", "."]

# values the program reads as integers and whose size multiplies the work
STEP_COUNTS = {"-phisteps", "-mosaic_dom", "-dispsteps", "-hdivsteps", "-vdivsteps",
               "-divsteps", "-detector_thicksteps", "-thicksteps"}
PIXEL_COUNTS = {"-detpixels", "-detpixels_f", "-detpixels_x", "-detpixels_s", "-detpixels_y"}
OVERSAMPLE = {"-oversample"}
# a range and a step that together set a count (ceil(range/step)): at most one of each group
GROUPS = {"-osc": {"phi"}, "-phistep": {"phi"},
          "-divergence": {"hdiv", "vdiv"}, "-hdivrange": {"hdiv"}, "-hdivstep": {"hdiv"},
          "-vdivrange": {"vdiv"}, "-vdivstep": {"vdiv"}}
# not drawn: prints every pixel; moves the float image elsewhere
NOT_DRAWN = {"-printout", "-floatfile", "-floatimage"}

# numbers that are refused or read as small integers (atoi: '1e9' is 1); not 2147483648,
# which torchbragg reads as 2**31 steps (C's atoi would wrap it to a negative int)
SMALL_INT_EXTREMES = ["-2", "-5", "1e1", "1e9", "1e300", "-1e-300", "nan", "inf", "0x10",
                      "1.5"]

DRAWN_RULES = [rule for rule in RULES if rule.pattern not in NOT_DRAWN]


def plain_numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-1000, 1000).map(str),
        st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False).map(repr),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda x: f"{x:g}"),
    )


def any_value() -> st.SearchStrategy[str]:
    """A value for an option that does not multiply the work."""
    return st.one_of(plain_numbers(), st.sampled_from(EXTREME), st.sampled_from(ODD_TEXT),
                     st.sampled_from(FILE_NAMES))


def count_value(patterns: set[str]) -> st.SearchStrategy[str]:
    """A value for an option that sets a count: small, or refused (or read as 1)."""
    if patterns & PIXEL_COUNTS:
        small = st.integers(1, 12)
    elif patterns & OVERSAMPLE:
        small = st.integers(1, 3)  # 0 and -1 would auto-select, maybe a huge oversampling
    else:
        small = st.integers(-1, 4)
    return st.one_of(small.map(str), st.sampled_from(SMALL_INT_EXTREMES),
                     st.sampled_from(ODD_TEXT), st.sampled_from(FILE_NAMES))


def matched_patterns(token: str) -> set[str]:
    """Every RULES pattern the C scan applies to ``token``."""
    return {rule.pattern for rule in RULES if rule.matches(token)}


def is_safe_token(token: str) -> bool:
    """False for a token whose main option is one that is not drawn (see NOT_DRAWN)."""
    rules = [rule for rule in RULES if rule.matches(token)]
    if not rules:
        return True
    primary = max(rules, key=lambda r: len(r.pattern))
    return primary.pattern not in NOT_DRAWN and not (matched_patterns(token) & {"-floatfile",
                                                                                 "-floatimage"})


UNKNOWN_TOKENS = ["-hdiv", "-foo", "-", "-1", "-1e5", "-nan", "-inf", "stray", "—cell",
                  "-CELL", "-lambda=1", "-n", "-detpixel", "-mos", "--bogus", "--",
                  "-misset_seed", "-matrix", "-hklfile", "-imgx"]
SUFFIXES = ["x", "_", "s", "1", "_f", "-"]


@st.composite
def nanobragg_option(draw) -> list[str]:
    """One nanoBragg option with its values (sometimes too few or too many)."""
    kind = draw(st.sampled_from(["rule"] * 8 + ["suffixed", "unknown"]))
    if kind == "unknown":
        token = draw(st.sampled_from(UNKNOWN_TOKENS))
        rule = None
    else:
        rule = draw(st.sampled_from(DRAWN_RULES))
        token = rule.pattern + (draw(st.sampled_from(SUFFIXES)) if kind == "suffixed" else "")
    patterns = matched_patterns(token)
    if rule is None or rule.pattern not in patterns:
        matched = [r for r in RULES if r.matches(token)]
        rule = max(matched, key=lambda r: len(r.pattern)) if matched else None
    if rule is None:
        nargs, kinds = draw(st.integers(0, 2)), "f"
    elif rule.pattern == "-misset" and draw(st.booleans()):
        return [token, draw(st.sampled_from(["random", "rand", "randomize"]))]
    elif rule.pattern == "-cell":
        nargs, kinds = draw(st.integers(0, 7)), "f"
    else:
        nargs, kinds = max(rule.nargs, 0), rule.kinds or "f"
        if draw(st.integers(0, 9)) == 0:  # one value too few or too many
            nargs = max(0, nargs + draw(st.sampled_from([-1, 1])))
    counted = patterns & (STEP_COUNTS | PIXEL_COUNTS | OVERSAMPLE)
    values = []
    for i in range(nargs):
        kind_i = kinds[i] if i < len(kinds) else kinds[0]
        if counted:
            values.append(draw(count_value(counted)))
        elif kind_i == "s":
            values.append(draw(st.one_of(st.sampled_from(FILE_NAMES), st.sampled_from(ODD_TEXT),
                                         st.sampled_from(EXTREME))))
        else:
            values.append(draw(any_value()))
    return [token, *values]


TORCHBRAGG_OPTIONS = [
    ["--dtype", "float32"], ["--dtype", "float64"], ["--dtype", "float16"], ["--dtype"],
    ["--device", "cpu"], ["--device", "bogus"], ["--device", "cuda:7"], ["--device", ""],
    ["--device", "meta"], ["--memory-budget-mb", "1e-300"], ["--memory-budget-mb", "0.001"],
    ["--memory-budget-mb", "1"], ["--memory-budget-mb", "nan"], ["--memory-budget-mb", "-1"],
    ["--memory-budget-mb", "1e300"], ["--kernel", "reference"], ["--kernel", "auto"],
    ["--kernel", "bogus"], ["--kernel"], ["--allow-unknown"], ["--stale-phi0"], ["--bogus"],
]


def groups_disjoint(options: list[list[str]]) -> bool:
    """No two options set a range and a step of the same count (see GROUPS)."""
    seen: set[str] = set()
    for option in options:
        tokens = [t for t in option if t.startswith("-") and not t[1:2].isdigit()]
        groups = set().union(*(GROUPS.get(p, set()) for t in tokens
                               for p in matched_patterns(t)))
        if groups & seen:
            return False
        seen |= groups
    return True


# A range with a step sets ceil(range/step) steps: drawn together only with values whose
# ratio is infinite, zero or refused, never a huge finite count.
RANGE_STEP_PAIRS = [("-osc", "-phistep"), ("-hdivrange", "-hdivstep"),
                    ("-vdivrange", "-vdivstep"), ("-divergence", "-vdivstep")]
HUGE_RANGES = ["1e300", "1e308", "0", "-0", "-1", "nan", "abc"]
TINY_STEPS = ["1e-300", "4e-320", "0", "-1e-300", "-1", "inf"]


@st.composite
def range_and_step(draw) -> list[str]:
    """A range option and its step option, e.g. ['-osc', '1e300', '-phistep', '1e-300']."""
    range_option, step_option = draw(st.sampled_from(RANGE_STEP_PAIRS))
    return [range_option, draw(st.sampled_from(HUGE_RANGES)),
            step_option, draw(st.sampled_from(TINY_STEPS))]


extra_options = st.lists(
    st.one_of(nanobragg_option(), nanobragg_option(), nanobragg_option(),
              st.sampled_from(TORCHBRAGG_OPTIONS), range_and_step()),
    min_size=1, max_size=3,
).filter(lambda opts: groups_disjoint(opts) and all(is_safe_token(o[0]) for o in opts))


# --- prepared and fuzzed files -----------------------------------------------------------

GOOD_HKL = "0 0 0 10\n1 0 0 20\n0 1 0 30\n-1 2 3 40.5\n"
# a MOSFLM A matrix of a 100 A cubic cell at 1 A (a* b* c* times lambda as columns)
GOOD_MAT = "0.01 0 0\n0 0.01 0\n0 0 0.01\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n"
GOOD_SOURCES = "-10 0 0 1 1e-10\n-10 0.01 0 1 1.1e-10\n"


def smv_bytes(header: str, data: bytes, header_bytes: int = 512) -> bytes:
    raw = header.encode("utf-8", "surrogateescape")
    return raw + b" " * max(0, header_bytes - len(raw)) + data


def make_files(folder: Path) -> None:
    """The files that FILE_NAMES name, in the current example's folder."""
    (folder / "good.hkl").write_text(GOOD_HKL)
    (folder / "good.mat").write_text(GOOD_MAT)
    (folder / "good.src").write_text(GOOD_SOURCES)
    header = ("{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
              "SIZE1=8;\nSIZE2=8;\nPIXEL_SIZE=0.1;\nDISTANCE=100;\nWAVELENGTH=1;\n}\f")
    (folder / "good.img").write_bytes(smv_bytes(header, bytes(range(128))))
    (folder / "junk.bin").write_bytes(bytes(range(256)) * 2)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "adir").mkdir()


GOOD_NUMBERS = st.one_of(
    st.integers(-20, 20).map(str),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.6g}"),
)
EXTREME_NUMBERS = st.sampled_from(
    ["0", "-0", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e300", "-1e300", "1e-300",
     "4e-320", "1e308", "1e40", "1e20", "1.", ".5", "+3", "1e1", "0x10"])
FINITE_EXTREMES = ["0", "-0", "1e300", "-1e300", "1e-300", "4e-320", "1e308", "1e40", "1e20",
                   "1e-20", "-1e-300"]
JUNK_TOKENS = st.one_of(
    st.sampled_from(["abc", "1,5", "1..2", "--1", "1e", "e5", "١", "１", "½", "#", "h", "?",
                     "1-2", "1e5x", "nan(0)", "\x00", "\xff"]),
    st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\n"), min_size=1,
            max_size=4),
)
INDEX_TOKENS = st.one_of(
    st.integers(-20, 20).map(str),
    st.sampled_from(["2147483647", "-2147483648", "2147483648", "1e12", "-0", "1.0", "2.5",
                     "1e1", "nan", "inf", "0x1", "+1"]),
)
LINE_ENDS = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b""])
SEPARATORS = st.sampled_from([" ", " ", "  ", "\t", " \t "])


def numbers(dirty: bool) -> st.SearchStrategy[str]:
    """A number token: a plain one, or (when ``dirty``) also extreme ones."""
    return st.one_of(GOOD_NUMBERS, GOOD_NUMBERS, EXTREME_NUMBERS) if dirty else GOOD_NUMBERS


def join_lines(draw, lines: list[bytes]) -> bytes:
    return b"".join(line + draw(LINE_ENDS) for line in lines)


# Each file is clean (valid numbers, blank lines and comments), extreme (valid shape, extreme
# numbers) or broken (also junk, missing and extra columns, binary bytes), so that a fair share
# of the examples renders an image.
DAMAGE = st.sampled_from(["clean", "clean", "extreme", "extreme", "broken"])


@st.composite
def hkl_file(draw) -> bytes:
    """Text of an -hkl file: h k l F lines, with junk, NaN, comments and blank lines."""
    damage = draw(DAMAGE)
    shapes = ["hklF"] * 6 + ["comment", "blank", "long"]
    if damage == "broken":
        shapes += ["short", "junk", "binary"]
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        shape = draw(st.sampled_from(shapes))
        if shape == "binary":
            lines.append(draw(st.binary(min_size=1, max_size=12)))
            continue
        if shape == "blank":
            lines.append(draw(st.sampled_from([b"", b"   ", b"\t", b"\r"])))
            continue
        if shape == "comment":
            lines.append(b"# " + draw(st.text(max_size=10)).encode("utf-8", "surrogateescape"))
            continue
        index = INDEX_TOKENS if damage != "clean" else st.integers(-20, 20).map(str)
        tokens = [draw(index) for _ in range(3)] + [draw(numbers(damage != "clean"))]
        if shape == "short":
            tokens = tokens[:draw(st.integers(0, 3))]
        elif shape == "long":
            tokens += [draw(numbers(damage != "clean")) for _ in range(draw(st.integers(1, 3)))]
        elif shape == "junk":
            tokens[draw(st.integers(0, 3))] = draw(JUNK_TOKENS)
        text = draw(SEPARATORS).join(tokens)
        if draw(st.integers(0, 7)) == 0:
            text += " # note"
        lines.append(text.encode("utf-8", "surrogateescape"))
    return join_lines(draw, lines)


@st.composite
def matrix_file(draw) -> bytes:
    """Text of a -mat file: 3 (or 5, or too few) lines of three numbers."""
    damage = draw(DAMAGE)
    element = st.one_of(st.floats(-0.05, 0.05, allow_nan=False).map(lambda x: f"{x:.8f}"),
                        st.sampled_from(["0.01", "-0.01", "0.02", "0"]))
    if damage == "extreme":  # finite, but far from a crystal's scale
        element = st.one_of(element, element, st.sampled_from(FINITE_EXTREMES))
    elif damage == "broken":
        element = st.one_of(element, element, EXTREME_NUMBERS)
    rows = [[draw(element) for _ in range(3)] for _ in range(3)]
    if damage == "clean" or draw(st.booleans()):  # a well-conditioned matrix, perturbed
        for i in range(3):
            rows[i][i] = draw(st.sampled_from(["0.01", "-0.02", "0.013"]))
    if damage == "extreme" and draw(st.booleans()):  # all of it at a far scale (wrong units)
        scale = draw(st.sampled_from([1e300, 1e-300, 1e160, 1e-160, 1e-310]))
        rows = [[f"{float(x) * scale:.6g}" if x not in FINITE_EXTREMES else x for x in row]
                for row in rows]
    how = "none"
    if damage == "broken":
        how = draw(st.sampled_from(["zero_row", "same_rows", "zero_column", "junk", "nan",
                                    "short", "run_together"]))
    if how == "zero_row":
        rows[draw(st.integers(0, 2))] = ["0", "0", "0"]
    elif how == "same_rows":
        rows[1] = list(rows[0])
    elif how == "zero_column":
        column = draw(st.integers(0, 2))
        for row in rows:
            row[column] = "0"
    elif how == "junk":
        rows[draw(st.integers(0, 2))][draw(st.integers(0, 2))] = draw(JUNK_TOKENS)
    elif how == "nan":
        rows[draw(st.integers(0, 2))][draw(st.integers(0, 2))] = "nan"
    lines = [draw(SEPARATORS).join(row) for row in rows]
    if how == "short":
        lines = lines[:draw(st.integers(0, 2))]
    elif how == "run_together":
        lines = ["".join(row) for row in rows]
    if draw(st.booleans()):  # U matrix and cell, which the reader ignores
        lines += ["1 0 0", "0 1 0", "0 0 1", "100 100 100 90 90 90", "0 0 0"]
    elif draw(st.booleans()):
        lines += ["0 0 0", "0 0 0"]
    return join_lines(draw, [line.encode("utf-8", "surrogateescape") for line in lines])


@st.composite
def source_file(draw) -> bytes:
    """Text of a -sourcefile: X Y Z weight lambda lines with junk, NaN and zero vectors."""
    damage = draw(DAMAGE)
    position = st.sampled_from(["-10", "0", "10", "-1e-9", "0.5", "nan"])
    weight = st.sampled_from(["1", "-1", "0", "0.5", "nan"])
    wavelength = st.sampled_from(["1e-10", "1.2e-10", "0.9e-10", "nan"])
    if damage != "clean":
        position = st.one_of(position, numbers(True))
        weight = st.one_of(weight, numbers(True))
        wavelength = st.one_of(wavelength, numbers(True),
                               st.sampled_from(["0", "-1e-10", "1e-300", "1e300"]))
    shapes = ["full"] * 5 + ["short", "comment", "blank"]
    if damage == "broken":
        shapes += ["zero", "long", "junk"]
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        shape = draw(st.sampled_from(shapes))
        if shape == "blank":
            lines.append(b"   ")
            continue
        if shape == "comment":
            lines.append(b"# a source")
            continue
        tokens = [draw(position) for _ in range(3)] + [draw(weight), draw(wavelength)]
        if shape == "zero":
            tokens[:3] = ["0", "0", "0"]
        elif shape == "short":
            tokens = tokens[:draw(st.integers(1, 4))]
        elif shape == "long":
            tokens.append(draw(numbers(True)))
        elif shape == "junk":
            tokens[draw(st.integers(0, 4))] = draw(JUNK_TOKENS)
        separator = draw(st.sampled_from([" ", "\t", ",", ";", ":", "!", ", "]))
        lines.append(separator.join(tokens).encode("utf-8", "surrogateescape"))
    return join_lines(draw, lines)


SMV_GEOMETRY_KEYS = ["PIXEL_SIZE", "DISTANCE", "CLOSE_DISTANCE", "WAVELENGTH", "BEAM_CENTER_X",
                     "BEAM_CENTER_Y", "ORGX", "ORGY", "XDS_ORGX", "XDS_ORGY", "PHI",
                     "OSC_START", "OSC_RANGE", "TWOTHETA"]
SMV_OTHER_KEYS = ["DIM", "DETECTOR_SN", "BEAMLINE", "BOGUS_KEY", "DETECTOR_DIMENSIONS", "SIZE1",
                  "SIZE2", "HEADER_BYTES", "TYPE", "BYTE_ORDER"]
SMV_PLAIN_VALUES = {"PIXEL_SIZE": ["0.1", "0.172", "0.05"], "DISTANCE": ["100", "250", "50"],
                    "CLOSE_DISTANCE": ["100", "99"], "WAVELENGTH": ["1", "1.5", "0.9"]}


@st.composite
def smv_file(draw) -> bytes:
    """An SMV image: a '{ KEY=VALUE; ... }' header padded to HEADER_BYTES, then pixel bytes."""
    damage = draw(DAMAGE)
    dirty = damage != "clean"
    size1 = draw(st.one_of(st.just("8"), st.integers(1, 8).map(str)))  # 8: the base's size
    size2 = draw(st.sampled_from([size1, draw(st.integers(1, 8).map(str))]))
    header_bytes = "512"
    pad_to = 512
    if damage == "broken":
        size1 = draw(st.one_of(st.just(size1), numbers(True), JUNK_TOKENS))
        header_bytes = draw(st.sampled_from(["512", "512", "0", "-1", "100", "1024", "1e9",
                                             "abc", "511", "nan", ""]))
        pad_to = (int(header_bytes) if header_bytes.isdigit() and int(header_bytes) <= 2048
                  else 512)
    entries = [("DIM", "2"), ("SIZE1", size1), ("SIZE2", size2),
               ("BYTE_ORDER", draw(st.sampled_from(["little_endian", "big_endian"]))),
               ("TYPE", "unsigned_short")]
    if not (damage == "broken" and draw(st.integers(0, 5)) == 0):
        entries.insert(0, ("HEADER_BYTES", header_bytes))
    for _ in range(draw(st.integers(0, 5))):
        key = draw(st.sampled_from(SMV_GEOMETRY_KEYS))
        value = draw(st.sampled_from(SMV_PLAIN_VALUES.get(key, ["0", "1", "2.5", "-3", "45"])))
        if dirty and draw(st.booleans()):
            value = draw(numbers(True))
        entries.append((key, value))
    if damage == "broken":
        for _ in range(draw(st.integers(1, 3))):
            entries.append((draw(st.sampled_from(SMV_OTHER_KEYS + SMV_GEOMETRY_KEYS)),
                            draw(st.one_of(numbers(True), JUNK_TOKENS))))
    entries = draw(st.permutations(entries))
    body = "".join(f"{key}{draw(st.sampled_from(['=', '=', '= ', ' =']))}{value}"
                   f"{draw(st.sampled_from([';', ';', ';', '']))}\n" for key, value in entries)
    opening, closing = "{\n", "}\f"
    if damage == "broken":
        opening = draw(st.sampled_from(["{\n", "{\n", "", "[\n"]))
        closing = draw(st.sampled_from(["}\f", "}", "", "}\0"]))
    header = opening + body + closing
    try:
        pixels = int(size1) * int(size2)
    except ValueError:
        pixels = 64
    data_size = 2 * pixels
    if damage == "broken":
        data_size = draw(st.sampled_from([2 * pixels, 0, 1, 127, 2 * pixels + 3]))
    data_size = max(0, min(data_size, 4096))
    data = draw(st.binary(min_size=data_size, max_size=data_size))
    return smv_bytes(header, data, pad_to)


# --- the tests -------------------------------------------------------------------------------


@FUZZ
@given(options=extra_options)
def test_fuzzed_command_line_gives_an_error_or_an_image(options):
    argv = BASE + [token for option in options for token in option]
    with fresh_folder() as folder:
        make_files(folder)
        check_run(argv, folder)


def _without(argv: list[str], option: str, nargs: int) -> list[str]:
    i = argv.index(option)
    return argv[:i] + argv[i + 1 + nargs:]


# valid options that change how a file's content is used (drawn with the fuzzed files)
COMPANIONS = [
    ["-interpolate"], ["-nointerpolate"], ["-cell", "50", "60", "70", "80", "90", "100"],
    ["-misset", "10", "20", "30"], ["-mosaic", "0.5", "-mosaic_dom", "2"],
    ["-phisteps", "2", "-osc", "1"], ["-phistep", "0.5"], ["-dispersion", "1", "-dispsteps", "2"],
    ["-divergence", "1", "-divsteps", "2"], ["-roi", "0", "3", "0", "3"],
    ["-noisefile", "noise.img", "-seed", "1"], ["-intfile", "int.img"], ["-pgmfile", "i.pgm"],
    ["-default_F", "0"], ["-dmin", "2"], ["-polar", "0.5"], ["-nopolar"], ["-round_xtal"],
    ["-gauss_xtal"], ["-tophat_spots"], ["-detector_thick", "100", "-detector_thicksteps", "2"],
    ["-xds"], ["-adxv"], ["-dials"], ["-denzo"], ["-twotheta", "20"], ["-curved_det"],
    ["-oversample_thick", "-oversample_polar", "-oversample_omega", "-oversample", "2"],
    ["-printout_pixel", "1", "1"], ["-trace_pixel", "1", "1"], ["--dtype", "float32"],
    ["--kernel", "reference"], ["-Xbeam", "0.3", "-Ybeam", "0.4"], ["-ORGX", "3", "-ORGY", "4"],
    ["-close_distance", "90"], ["-water", "100"], ["-Na", "3", "-Nb", "1", "-Nc", "5"],
]


@FUZZ
@given(
    kind=st.sampled_from(["-hkl", "-mat", "-sourcefile", "-img", "-mask", "-img+mask"]),
    companions=st.lists(st.sampled_from(COMPANIONS), max_size=2),
    data=st.data(),
)
def test_fuzzed_input_file_gives_an_error_or_an_image(kind, companions, data):
    """A fuzzed file read by its option on the small base command line (and valid options)."""
    argv = BASE + [token for option in companions for token in option]
    if kind == "-hkl":
        content = data.draw(hkl_file(), label="hkl file")
        if data.draw(st.booleans(), label="without -default_F"):
            argv = _without(argv, "-default_F", 1)
    elif kind == "-mat":
        content = data.draw(matrix_file(), label="matrix file")
        argv = _without(argv, "-cell", 6)
    elif kind == "-sourcefile":
        content = data.draw(source_file(), label="source file")
    else:
        content = data.draw(smv_file(), label="SMV file")
        if data.draw(st.booleans(), label="header sets the detector"):
            # the header's size, pixel, distance and wavelength then count (all are tiny)
            for option in ("-detpixels", "-pixel", "-distance", "-lambda"):
                argv = _without(argv, option, 1)
    note(f"file content = {content!r}")
    name = "fuzzed" + {"-hkl": ".hkl", "-mat": ".mat", "-sourcefile": ".txt"}.get(kind, ".img")
    flags = ["-img", "-mask"] if kind == "-img+mask" else [kind]
    argv += [token for flag in flags for token in (flag, name)]
    with fresh_folder() as folder:
        (folder / name).write_bytes(content)
        check_run(argv, folder)


@pytest.mark.parametrize("argv", [BASE, BASE + ["-hkl", "good.hkl"]])
def test_base_command_line_renders(argv):
    """The base of the fuzzed command lines is valid (else every example would be an error)."""
    with fresh_folder() as folder:
        make_files(folder)
        result = run_main(argv)
        assert result.status == 0, result.stderr
        assert (folder / FLOAT_OUT).stat().st_size == 8 * 8 * 4


# Inputs the fuzzing found that once broke the contract (some may since be fixed): each is run
# with the same property, so that a fix is checked and stays fixed. Entries: extra options,
# files to write, and whether the base's -cell is dropped (for -mat).
FINDINGS = [
    pytest.param(["-osc", "1e300", "-phistep", "1e-300"], {}, False, id="phi_steps_overflow"),
    pytest.param(["-hdivrange", "1e300", "-hdivstep", "1e-300"], {}, False,
                 id="divergence_steps_overflow"),
    pytest.param(["-osc", "0", "-phistep", "1"], {}, False, id="zero_phi_steps"),
    pytest.param(["-phi", "1", "-phistep", "4e-320"], {}, False, id="denormal_phi_step"),
    pytest.param(["-osc", "0", "-phistep", "1", "--kernel", "reference",
                  "--memory-budget-mb", "0.001"], {}, False, id="zero_phi_steps_chunks"),
    pytest.param(["-mosaic", "1e300"], {}, False, id="huge_mosaic_spread"),
    pytest.param(["-water", "1e308"], {}, False, id="huge_water_layer"),
    pytest.param(["-xtal_size", "1e308"], {}, False, id="huge_crystal_size"),
    pytest.param(["-detector_abs", "4e-320"], {}, False, id="denormal_attenuation_depth"),
    pytest.param(["-cell", "1e-200"], {}, False, id="tiny_cell"),
    pytest.param(["-cell", "1e-300", "105", "-xtal_y", "1e300"], {}, False,
                 id="tiny_cell_with_crystal_size"),
    pytest.param(["-mat", "m.mat"], {"m.mat": b"0 0 0\n0 0 0\n0 0 0\n"}, True,
                 id="zero_matrix"),
    pytest.param(["-mat", "m.mat"], {"m.mat": b"1e300 0 0\n0 1e300 0\n0 0 1e300\n"}, True,
                 id="huge_matrix"),
    pytest.param(["-mat", "m.mat"], {"m.mat": b"1e-300 0 0\n0 1e-300 0\n0 0 1e-300\n"}, True,
                 id="tiny_matrix"),
    pytest.param(["-roi", "0", "99999999999999999999", "0", "7"], {}, False,
                 id="roi_beyond_int64"),
    pytest.param(["-detpixels_s", "99999999999999999999"], {}, False,
                 id="detpixels_beyond_int64"),
    pytest.param(["-seed", "99999999999999999999", "-noisefile", "noise.img"], {}, False,
                 id="noise_seed_beyond_int64"),
    pytest.param(["-mosaic", "1", "-mosaic_seed", "99999999999999999999"], {}, False,
                 id="mosaic_seed_beyond_int64"),
    pytest.param(["-misset", "random", "-misset_seed", "99999999999999999999"], {}, False,
                 id="misset_seed_beyond_int64"),
    pytest.param(["--device", "meta"], {}, False, id="meta_device"),
    pytest.param(["-intfile", ""], {}, False, id="empty_int_file_name"),
    pytest.param(["-noisefile", "x" * 300], {}, False, id="too_long_noise_file_name"),
    pytest.param(["-osc", "2", "--stale-phi0"], {}, False, id="stale_phi0_note"),
    pytest.param(["-distance", "a\nb"], {}, False, id="newline_in_value"),
]


@pytest.mark.parametrize(("extra", "files", "drop_cell"), FINDINGS)
def test_fuzz_findings(extra, files, drop_cell):
    argv = (_without(BASE, "-cell", 6) if drop_cell else list(BASE)) + extra
    with fresh_folder() as folder:
        make_files(folder)
        for name, content in files.items():
            (folder / name).write_bytes(content)
        check_run(argv, folder)

