"""Bad input stops the run with one clear line on stderr: no traceback, no output files.

The C nanoBragg reads ``"abc"`` as 0, ignores options it does not know and crashes or writes
nonsense on impossible values. torchbragg instead exits non-zero with a single line
``torchbragg: error: ...`` that names what is wrong (the option, or the file and its line),
before writing anything. Missing structure factors or orientation still print the usage text
and exit 9, as the C program does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from golden_cases import INPUTS, Result, link_inputs, run_main

# a small, valid run without crystal: add CELL (or -mat/-hkl) to make it complete
BASE = ["-lambda", "6.2", "-N", "5", "-distance", "100", "-pixel", "0.1", "-detpixels", "32",
        "-noprogress"]
CELL = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100"]
OK = BASE + CELL


def _files(folder: Path) -> set[str]:
    """Everything in the working folder, hidden temporaries included, except inputs/."""
    return {p.name for p in folder.iterdir() if p.name != "inputs"}


def run_bad(argv: list[str]) -> Result:
    """Run in-process; an exception escaping main() is a traceback on the terminal."""
    try:
        return run_main(argv)
    except Exception as err:
        pytest.fail(f"Traceback: main() raised {type(err).__name__}: {err}")


def assert_clean_failure(argv: list[str], folder: Path, *words: str) -> str:
    """Run ``argv`` in ``folder`` and check the failure contract; return the message."""
    before = _files(folder)
    result = run_bad(argv)
    assert result.status != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    message = lines[0]
    assert message.startswith("torchbragg: error:"), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert _files(folder) - before == set(), "a failed run left files behind"
    return message


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder, made current, with the golden inputs/ linked in."""
    monkeypatch.chdir(tmp_path)
    link_inputs(tmp_path)
    return tmp_path


# --- bad command lines -------------------------------------------------------------------

BAD_VALUES = [
    pytest.param(OK + ["-distance", "abc"], ["-distance", "'abc'"], id="non_numeric_value"),
    pytest.param(OK + ["-distance"], ["-distance", "expected"], id="missing_value_at_end"),
    pytest.param(OK + ["-detpixels", "1.5"], ["-detpixels", "1.5"], id="non_integer_count"),
    pytest.param(OK + ["-detpixels", "-5"], ["pixel counts", "-5"], id="negative_pixel_count"),
    pytest.param(OK + ["-pixel", "0"], ["pixel size"], id="zero_pixel_size"),
    pytest.param(OK + ["-pixel", "-0.1"], ["pixel size", "-0.1"], id="negative_pixel_size"),
    pytest.param(OK + ["-lambda", "0"], ["wavelength"], id="zero_wavelength"),
    pytest.param(OK + ["-lambda", "-1"], ["wavelength", "-1"], id="negative_wavelength"),
    pytest.param(OK + ["-mosaic", "nan"], ["-mosaic", "'nan'"], id="nan_value"),
    pytest.param(OK + ["-phi", "inf"], ["-phi", "'inf'"], id="infinite_value"),
    pytest.param(OK + ["--memory-budget-mb", "inf"], ["--memory-budget-mb"],
                 id="infinite_memory_budget"),
    pytest.param(OK + ["-floatfile", "."], ["cannot write .", "folder"], id="output_is_a_folder"),
    pytest.param(OK + ["-misset", "1", "2"], ["-misset"], id="misset_needs_three_angles"),
    pytest.param(OK + ["stray"], ["'stray'", "--allow-unknown"], id="stray_argument"),
    pytest.param(OK + ["--bogus"], ["--bogus"], id="unknown_torchbragg_option"),
    pytest.param(OK + ["--dtype", "float16"], ["--dtype", "float16"], id="bad_dtype"),
    pytest.param(OK + ["-distance", "0"], ["distance"], id="zero_distance"),
    pytest.param(OK + ["-close_distance", "0"], ["distance"], id="zero_close_distance"),
    pytest.param(OK + ["-distance", "inf"], ["distance"], id="infinite_distance"),
    pytest.param(OK + ["-pixel", "inf"], ["pixel"], id="infinite_pixel_size"),
    pytest.param(OK + ["-energy", "0"], ["energy"], id="zero_energy"),
    pytest.param(OK + ["-beam_vector", "0", "0", "0"], ["-beam_vector"], id="zero_beam_vector"),
    pytest.param(OK + ["-flux", "1e12", "-exposure", "1", "-beamsize", "0"], ["beamsize"],
                 id="zero_beamsize_with_flux"),
    pytest.param(OK + ["--device", "bogus"], ["--device", "bogus"], id="bad_device"),
    pytest.param(OK + ["--memory-budget-mb", "abc"], ["--memory-budget-mb", "abc"],
                 id="non_numeric_memory_budget"),
    pytest.param(BASE + ["--dtype"] + CELL, ["--dtype"], id="extension_value_missing"),
    pytest.param(BASE + ["-cell", "100", "100", "100", "170", "170", "170", "-default_F", "100"],
                 ["unit cell"], id="impossible_cell_angles"),
]


@pytest.mark.parametrize(("argv", "words"), BAD_VALUES)
def test_bad_value_is_one_line_error(workdir, argv, words):
    assert_clean_failure(argv, workdir, *words)


def test_unknown_option_is_named_with_a_real_suggestion(workdir):
    # the upstream README's -hdiv is not an option of the program: nanoBragg ignores it
    message = assert_clean_failure(OK + ["-hdiv", "3"], workdir, "unknown option -hdiv",
                                   "--allow-unknown")
    suggested = re.search(r"did you mean (\S+)\?", message)
    assert suggested, message
    assert suggested.group(1) in {"-hdivrange", "-hdivstep", "-hdivsteps"}


def test_allow_unknown_turns_unknown_option_into_warning(workdir):
    result = run_bad(OK + ["-hdiv", "3", "--allow-unknown", "-nonoise", "-nopgm"])
    assert result.status == 0, result.stderr
    # torchbragg's own warnings go to stderr, so stdout stays what the C program prints
    assert any(line.startswith("WARNING") and "-hdiv" in line
               for line in result.stderr.splitlines())
    assert "-hdiv" not in result.stdout
    assert (workdir / "floatimage.bin").stat().st_size == 32 * 32 * 4


# --- bad input files ---------------------------------------------------------------------


def _write(folder: Path, name: str, content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    (folder / name).write_bytes(data)
    return name


def _smv(folder: Path, name: str, nbytes: int) -> str:
    """The first ``nbytes`` of a valid SMV image (140 x 120 pixels)."""
    return _write(folder, name, (INPUTS / "header.img").read_bytes()[:nbytes])


def test_missing_hkl_file_is_named(workdir):
    assert_clean_failure(OK + ["-hkl", "missing.hkl"], workdir, "missing.hkl")


def test_hkl_directory_is_named(workdir):
    (workdir / "adir").mkdir()
    assert_clean_failure(OK + ["-hkl", "adir"], workdir, "adir")


def test_malformed_hkl_line_names_file_and_line(workdir):
    _write(workdir, "bad.hkl", "0 0 1 10\n1 2 x 4\n")
    assert_clean_failure(OK + ["-hkl", "bad.hkl"], workdir, "bad.hkl line 2", "1 2 x 4")


def test_hkl_without_reflections_is_named(workdir):
    _write(workdir, "empty.hkl", "")
    assert_clean_failure(OK + ["-hkl", "empty.hkl"], workdir, "empty.hkl", "no reflections")


def test_missing_mat_file_is_named(workdir):
    assert_clean_failure(BASE + ["-default_F", "100", "-mat", "missing.mat"], workdir,
                         "missing.mat")


def test_malformed_mat_line_names_file_and_line(workdir):
    _write(workdir, "bad.mat", "0.01 0 0\n0 0.01 x\n0 0 0.01\n")
    assert_clean_failure(BASE + ["-default_F", "100", "-mat", "bad.mat"], workdir,
                         "bad.mat line 2", "'x'")


def test_short_mat_file_is_named(workdir):
    _write(workdir, "short.mat", "0.01 0 0\n0 0.01 0\n")
    assert_clean_failure(BASE + ["-default_F", "100", "-mat", "short.mat"], workdir,
                         "short.mat", "9 numbers")


def test_missing_sourcefile_is_named(workdir):
    assert_clean_failure(OK + ["-sourcefile", "missing.txt"], workdir, "missing.txt")


def test_malformed_sourcefile_line_names_file_and_line(workdir):
    _write(workdir, "sources.txt", "0 0 10 1 6.2e-10\nfoo bar\n")
    assert_clean_failure(OK + ["-sourcefile", "sources.txt"], workdir, "sources.txt line 2",
                         "foo bar")


def test_truncated_smv_img_is_named(workdir):
    _smv(workdir, "trunc.img", 2000)
    assert_clean_failure(OK + ["-img", "trunc.img"], workdir, "trunc.img", "truncated")


def test_smv_img_shorter_than_header_is_named(workdir):
    _smv(workdir, "short.img", 300)
    assert_clean_failure(OK + ["-img", "short.img"], workdir, "short.img", "512")


def test_garbage_img_is_named(workdir):
    _write(workdir, "garbage.img", bytes(range(256)) * 4)
    assert_clean_failure(OK + ["-img", "garbage.img"], workdir, "garbage.img", "SMV")


def test_garbage_mask_is_named(workdir):
    _write(workdir, "garbage.img", bytes(range(256)) * 4)
    assert_clean_failure(OK + ["-mask", "garbage.img"], workdir, "garbage.img", "SMV")


def test_mask_of_wrong_size_is_named(workdir):
    assert_clean_failure(OK + ["-mask", "inputs/mask.img"], workdir, "inputs/mask.img",
                         "32 x 32")


# --- output files ------------------------------------------------------------------------


def test_unwritable_output_names_the_given_path(workdir):
    message = assert_clean_failure(OK + ["-floatfile", "nodir/f.bin"], workdir, "nodir/f.bin")
    assert ".tmp" not in message


def test_unwritable_int_file_leaves_no_float_image(workdir):
    assert_clean_failure(OK + ["-intfile", "nodir/i.img"], workdir)


# --- nothing to simulate: usage, exit 9 --------------------------------------------------


@pytest.mark.parametrize("argv", [
    pytest.param(BASE, id="no_crystal_no_structure_factors"),
    pytest.param(BASE + CELL[:7], id="no_structure_factors"),
    pytest.param(BASE + ["-default_F", "100"], id="no_cell_or_matrix"),
])
def test_missing_inputs_print_usage_and_exit_9(workdir, argv):
    result = run_bad(argv)
    assert result.status == 9
    assert "usage:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert _files(workdir) == set()


# --- the real console command ------------------------------------------------------------


def _console(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "torchbragg", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("args", "words"), [
    pytest.param(OK + ["-hdiv", "3"], ["-hdiv"], id="unknown_option"),
    pytest.param(OK + ["-hkl", "bad.hkl"], ["bad.hkl line 1"], id="malformed_hkl"),
])
def test_console_shows_no_traceback(tmp_path, args, words):
    _write(tmp_path, "bad.hkl", "1 2 x 4\n")
    before = _files(tmp_path)
    proc = _console(args, tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchbragg: error:"), lines
    assert all(word in lines[0] for word in words)
    assert _files(tmp_path) == before


def test_zero_cells_are_one_cell_as_in_the_c_program(workdir):
    result = run_bad(OK + ["-N", "0", "-nonoise", "-nopgm"])
    assert result.status == 0, result.stderr
    assert "  parallelpiped xtal: 1x1x1 cells" in result.stdout


def test_option_value_may_start_with_a_dash(workdir):
    result = run_bad(OK + ["-floatfile", "-x.bin", "-nonoise", "-nopgm"])
    assert result.status == 0, result.stderr
    assert (workdir / "-x.bin").stat().st_size == 32 * 32 * 4
