"""Input nanoBragg accepts but a user probably did not mean: one warning line each, and the
C program's result; internal errors end in one line too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import torchbragg.cli.main as cli_main
from golden_cases import run_main
from torchbragg.cli.parse import parse_args
from torchbragg.cli.simulate import check_finite
from torchbragg.errors import SetupError
from torchbragg.precedence import c_int

OK = ["-lambda", "6.2", "-N", "5", "-distance", "100", "-pixel", "0.1", "-detpixels", "32",
      "-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-noprogress",
      "-nonoise", "-nopgm"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


SURPRISES = [
    pytest.param(["-N", "1e9"], ["-N: '1e9' is read as 1, not 1000000000"],
                 "parallelpiped xtal: 1x1x1 cells", id="integer_in_exponent_form"),
    pytest.param(["-detpixels", "1e1"], ["'1e1' is read as 1, not 10"], None,
                 id="detpixels_in_exponent_form"),
    pytest.param(["-detpixels", "0", "-detsize", "3.2"], ["-detpixels 0", "-detsize"], None,
                 id="zero_detector_pixels"),
    pytest.param(["-N", "-3"], ["-N -3", "one unit cell"], "1x1x1 cells", id="negative_cells"),
    pytest.param(["-cell", "100", "100"], ["-cell with 2 value(s)", "equal to a"], None,
                 id="short_cell"),
    pytest.param(["-roi", "20", "10", "0", "5"], ["-roi 20 10 0 5", "all zero"], None,
                 id="reversed_roi"),
    pytest.param(["-roi", "30", "40", "0", "5"], ["-roi 30 40 0 5", "beyond the 32 x 32"],
                 None, id="roi_beyond_detector"),
    pytest.param(["-fluence", "-1"], ["-fluence -1", "negative"], None,
                 id="negative_fluence"),
    pytest.param(["-polar", "2"], ["-polar 2", "outside -1..1"], None, id="kahn_factor_2"),
    pytest.param(["-pivot", "sideways"], ["-pivot sideways", "convention's pivot"], None,
                 id="unknown_pivot"),
    pytest.param(["-fdet_vector", "0", "1", "0", "-sdet_vector", "0", "1", "0"],
                 ["axes are parallel"], None, id="parallel_detector_axes"),
    pytest.param(["-detpixels", "4294967328"], ["4294967328 does not fit", "read as 32"],
                 "(32x32 pixels)", id="integer_beyond_32_bits"),
    pytest.param(["-phisteps", "-3"], ["-phisteps -3", "not given"], "phi0 = 0\n",
                 id="negative_phi_steps"),
    pytest.param(["-dispsteps", "-2", "-dispersion", "1"], ["-dispsteps -2", "not given"],
                 "lambda1 = 6.231e-10", id="negative_dispersion_steps"),
    pytest.param(["-oversample", "-2"], ["-oversample -2", "not given"],
                 "auto-selected 1-fold oversampling", id="negative_oversampling"),
    pytest.param(["-distance", "1e-9"], ["recommended oversampling", "overflows"],
                 "auto-selected 1-fold oversampling", id="oversampling_overflow"),
]


@pytest.mark.parametrize(("extra", "words", "stdout"), SURPRISES)
def test_surprise_is_one_warning_line_and_the_run_goes_on(workdir, extra, words, stdout):
    result = run_main(OK + extra + ["-floatfile", "f.bin"])
    assert result.status == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("WARNING: ") and all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert (workdir / "f.bin").exists()
    if stdout:
        assert stdout in result.stdout


def test_zero_mosaic_domains_are_chosen_as_nanobragg_chooses(workdir):
    result = run_main(OK + ["-mosaic", "0.5", "-mosaic_dom", "0", "-floatfile", "f.bin"])
    assert result.status == 0, result.stderr
    assert "upping to 10 mosaic domains" in result.stdout
    assert "created a total of 10 mosaic domains" in result.stdout


@pytest.mark.parametrize(("extra", "words"), [
    (["-xtal_size", "1e9"], ["crystal size 1e+12 um holds 1e+14 unit cells"]),
    (["-osc", "1e300", "-phistep", "1e-300"], ["-osc / -phistep = inf steps"]),
    (["-osc", "0", "-phistep", "1"], ["gives no phi steps"]),
    (["-cell", "1e-200"], ["unit cell length 1e-200 A is out of range"]),
    (["-mosaic", "1e300", "-mosaic_dom", "2"], ["-mosaic 1e+300 degrees is too large"]),
    (["--device", "meta"], ["--device meta: torchbragg renders on cpu or cuda"]),
    (["-intfile", ""], ["an output file name is empty"]),
    (["-distance", "1_00"], ["expected a finite number, got '1_00'"]),
])
def test_extremes_nanobragg_cannot_run_are_errors(workdir, extra, words):
    result = run_main(OK + extra + ["-floatfile", "f.bin"])
    assert result.status == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("torchbragg: error:") and all(w in line for w in words), line
    assert not (workdir / "f.bin").exists()


def test_output_name_that_is_not_utf8(workdir):
    result = run_main(OK + ["-floatfile", "\udcff.bin"])  # the byte 0xff, as argv gives it
    assert result.status == 0, result.stderr
    assert (workdir / "\udcff.bin").exists()


def test_big_integers_wrap_as_c_atoi_does(workdir):
    assert parse_args(["-detpixels", "4294967304"]).state.fpixels == 8
    assert parse_args(["-roi", "0", "99999999999999999999", "0", "7"]).state.roi[1] == -1


def test_messages_stay_on_one_line(workdir):
    result = run_main(OK + ["-distance", "a\nb"])
    assert result.stderr == "torchbragg: error: option -distance: expected a finite number, " \
                            "got 'a\\nb'\n"


def test_plain_integers_and_whole_numbers_warn_nothing():
    for text in ("16", "+16", "16.0"):
        assert parse_args(["-detpixels", text]).warnings == []
        assert parse_args(["-detpixels", text]).state.fpixels == 16


@pytest.mark.parametrize("text", ["１６", "1.5", "0x10", "nan"])
def test_integers_nanobragg_would_not_read_are_errors(workdir, text):
    result = run_main(OK + ["-detpixels", text])
    assert result.status == 2
    assert result.stderr.strip() == (f"torchbragg: error: option -detpixels: expected an "
                                      f"integer, got '{text}'")


def test_c_conversion_of_large_doubles():
    assert c_int(3.7) == 3 and c_int(-3.7) == -3
    assert c_int(2.0**31) == -(2**31) and c_int(float("inf")) == -(2**31)
    assert c_int(float("nan")) == -(2**31) and c_int(2.0**31 - 1) == 2**31 - 1


def test_image_that_is_not_finite_is_refused():
    image = np.ones((4, 5))
    check_finite(image)
    image[2, 3] = np.nan
    with pytest.raises(SetupError, match=r"1 pixel\(s\) of the image are not finite "
                                         r"\(the first at slow 2, fast 3\)"):
        check_finite(image)


def test_float32_overflow_is_said(capsys):
    check_finite(np.full((2, 2), 1e40))
    assert "4 pixel(s) exceed the float32 range" in capsys.readouterr().err


def test_internal_error_is_one_line_unless_debug(workdir, monkeypatch):
    def broken(argv):
        raise KeyError("oops")

    monkeypatch.setattr(cli_main, "run", broken)
    result = run_main(OK)
    assert result.status == 70
    assert result.stderr.strip() == ("torchbragg: internal error: KeyError: 'oops' (rerun with "
                                      "--debug for the traceback, and please report it)")
    with pytest.raises(KeyError):
        run_main(OK + ["--debug"])


def test_python_warnings_are_one_line(workdir, monkeypatch):
    def noisy(argv):
        with np.errstate(all="warn"):
            np.float32(1e38) * np.float32(10)
        warnings.warn("something odd", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli_main, "run", noisy)
    result = run_main(OK)
    assert result.status == 0
    lines = result.stderr.splitlines()
    assert lines == ["torchbragg: warning: overflow encountered in scalar multiply",
                     "torchbragg: warning: something odd"]


def test_ctrl_c_while_modules_import_is_one_line():
    """Ctrl-C during the imports (torch takes a second) ends with status 130, no traceback."""
    command = [sys.executable, "-c", "from torchbragg.cli.entry import torchbragg; torchbragg()",
               *OK, "-floatfile", os.devnull]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.decode() == "torchbragg: interrupted\n"


def test_ctrl_c_while_rendering_is_one_line(workdir, monkeypatch):
    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "run", interrupted)
    result = run_main(OK + ["-floatfile", "f.bin"])
    assert result.status == 130
    assert result.stderr == "torchbragg: interrupted\n"


def test_step_count_beyond_a_c_int_is_warned(workdir):
    from torchbragg.precedence import resolve

    argv = OK + ["-mosaic", "1", "-mosaic_dom", "100000", "-phisteps", "30000", "-osc", "1"]
    plan = resolve(parse_args(argv).state)
    assert plan.config.steps == 3_000_000_000
    [line] = [w for w in plan.warnings if "overflows" in w]
    assert "wraps to -1294967296" in line and "divides by 3000000000" in line
    assert not [w for w in resolve(parse_args(OK).state).warnings if "overflows" in w]
