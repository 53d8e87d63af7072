"""The finish of the command line: help, version, ``--name=value``, closed pipes, the bar.

* ``-h``, ``-help`` and ``--help`` print the usage text and exit 0 (nanoBragg ignores ``-h``
  and prints its usage, exit 9, only when the run is incomplete); options starting with
  ``-h`` (``-hkl``, ``-hdivrange``, ...) are read as before.
* ``--version`` prints ``torchbragg X.Y.Z`` without importing torch.
* torchbragg's own ``--`` options take ``--name=value`` as well as ``--name value``.
* A reader that leaves early (``torchbragg ... | head -1``) silences the output but the run
  goes on: the files are written whole, the status is 0, nothing is printed about it.
* :mod:`torchbragg.cli.progressbar` draws a bar on a terminal's stderr.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import torchbragg
import torchbragg.cli.simulate as cli_simulate
from golden_cases import run_main
from torchbragg.cli.entry import QuietWhenClosed, version_line
from torchbragg.cli.parse import early_exit, parse_args
from torchbragg.cli.progressbar import ProgressBar, clear_progress_bar, with_bar
from torchbragg.errors import SetupError

OK = ["-lambda", "6.2", "-N", "5", "-distance", "100", "-pixel", "0.1", "-detpixels", "32",
      "-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-noprogress",
      "-nonoise", "-nopgm"]
FLOAT_BYTES = 32 * 32 * 4
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_error(result, *words: str) -> str:
    assert result.status == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchbragg: error:"), lines
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


# --- help ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["-h"], ["-help"], ["--help"],
    OK + ["-h"],  # a complete run: help wins, nothing renders
    ["-h", "-bogus", "--dtype", "half"],  # help wins over errors anywhere on the line
    ["-hkl", "missing.hkl", "-help"],
], ids=["h", "help", "dash_dash_help", "after_a_run", "before_errors", "after_hkl"])
def test_help_prints_the_usage_and_exits_0(argv, workdir):
    result = run_main(argv)
    assert result.status == 0
    assert result.stdout.startswith("usage: torchbragg")
    assert "-h, -help, --help" in result.stdout and "--version" in result.stdout
    assert result.stderr == ""
    assert list(workdir.iterdir()) == []  # nothing rendered, nothing written


def test_options_starting_with_h_are_read_as_before():
    argv = ["-hkl", "F.hkl", "-hdivrange", "1", "-hdivstep", "0.5", "-hdivsteps", "3",
            "-heigh", "0.2"]
    assert early_exit(argv) is None
    st = parse_args(argv).state
    assert st.hkl_path == "F.hkl"
    assert (st.hdivrange, st.hdivstep, st.hdivsteps) == (1e-3, 0.5e-3, 3)
    assert st.sample_z == 0.2e-3


@pytest.mark.parametrize("token", ["-he", "-hel", "-helps", "-H"])
def test_near_help_spellings_are_still_unknown_options(token, workdir):
    _one_error(run_main(OK + [token]), f"unknown option {token}")


# --- version ------------------------------------------------------------------------------

def test_version_prints_the_installed_version(workdir):
    result = run_main(["--version"])
    assert (result.status, result.stderr) == (0, "")
    assert result.stdout == f"torchbragg {metadata.version('torchbragg')}\n"
    assert version_line() == result.stdout.strip()
    assert re.fullmatch(r"torchbragg \d+\.\d+\.\d+\S*", version_line())


def test_package_version_matches_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1) == \
        torchbragg.__version__


VERSION_PROBE = """
import json, sys
from torchbragg.cli.entry import torchbragg
sys.argv = ["torchbragg", *sys.argv[1:]]
try:
    torchbragg()
except SystemExit as done:
    status = done.code
print(json.dumps({"status": status, "torch": "torch" in sys.modules,
                  "numpy": "numpy" in sys.modules}))
"""


@pytest.mark.parametrize("args", [["--version"], ["-cell", "1", "--version", "-bogus"]])
def test_version_answers_before_heavy_imports(args, tmp_path):
    out = subprocess.run([sys.executable, "-c", VERSION_PROBE, *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True)
    version, probe = out.stdout.strip().splitlines()
    assert version == version_line()
    assert json.loads(probe) == {"status": 0, "torch": False, "numpy": False}
    assert out.stderr == ""


def test_the_first_of_help_and_version_wins():
    assert early_exit(["--version", "-h"]) == "version"
    assert early_exit(["-help", "--version"]) == "help"


# --- --name=value -------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("--dtype", "float32"), ("--device", "cpu"), ("--memory-budget-mb", "8"),
    ("--kernel", "reference"),
])
def test_equals_form_reads_like_the_spaced_form(name, value):
    spaced = parse_args(OK + [name, value])
    joined = parse_args(OK + [f"{name}={value}"])
    assert joined.extensions == spaced.extensions
    assert joined.state == spaced.state


def test_equals_form_renders_the_same_image(workdir):
    spaced = run_main(OK + ["-floatfile", "spaced.bin", "--dtype", "float32"])
    joined = run_main(OK + ["-floatfile", "joined.bin", "--dtype=float32"])
    assert spaced.status == joined.status == 0
    assert joined.stdout == spaced.stdout.replace("spaced.bin", "joined.bin")
    assert (workdir / "joined.bin").read_bytes() == (workdir / "spaced.bin").read_bytes()


@pytest.mark.parametrize("token, words", [
    ("--compile=yes", ["option --compile takes no value", "'--compile=yes'"]),
    ("--allow-unknown=1", ["option --allow-unknown takes no value"]),
    ("--help=1", ["option --help takes no value"]),
    ("--version=2", ["option --version takes no value"]),
    ("--dtype=", ["option --dtype: expected a value after '='"]),
    ("--bogus=1", ["unknown option --bogus;", "--dtype"]),
    ("--dtype=float16", ["--dtype must be float64 or float32, got float16"]),
    ("--memory-budget-mb=-5", ["--memory-budget-mb must be a positive number", "'-5'"]),
])
def test_bad_equals_form_is_one_error(token, words, workdir):
    _one_error(run_main(OK + [token]), *words)
    assert list(workdir.iterdir()) == []


def test_single_dash_options_keep_the_c_parsing():
    # nanoBragg matches "-distance" inside "-distance=100" and reads the next argument
    assert parse_args(["-distance=100", "50"]).state.distance == pytest.approx(0.05)


# --- a reader that leaves early -----------------------------------------------------------

def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "torchbragg", *OK, *args]


def _closed_pipe() -> int:
    """The write end of a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


def _reference_image(folder: Path) -> bytes:
    assert run_main(OK + ["-floatfile", "reference.bin"]).status == 0
    return (folder / "reference.bin").read_bytes()


def _assert_quiet(stderr: str) -> None:
    for word in ("Traceback", "Exception ignored", "error", "Broken pipe"):
        assert word not in stderr, stderr


def test_head_closing_the_pipe_early_still_writes_the_image(workdir):
    # -printout prints ~0.5 MB after the render: far more than a pipe holds, so the run is
    # still printing when the reader has gone
    proc = subprocess.Popen(_command("-printout", "-floatfile", "f.bin"), cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert first.startswith(b"nanoBragg")
    _assert_quiet(stderr)
    assert (workdir / "f.bin").read_bytes() == _reference_image(workdir)


@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout_and_stderr"])
def test_a_closed_pipe_is_quiet_and_the_files_are_whole(both, workdir):
    pipe = _closed_pipe()
    try:
        done = subprocess.run(_command("-floatfile", "f.bin", "-intfile", "i.img"),
                              cwd=workdir, stdout=pipe,
                              stderr=pipe if both else subprocess.PIPE, timeout=120)
    finally:
        os.close(pipe)
    assert done.returncode == 0
    if not both:
        _assert_quiet(done.stderr.decode())
    assert (workdir / "f.bin").read_bytes() == _reference_image(workdir)
    assert (workdir / "i.img").stat().st_size == 512 + 32 * 32 * 2


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_into_a_closed_pipe(args, tmp_path):
    pipe = _closed_pipe()
    try:
        done = subprocess.run([sys.executable, "-m", "torchbragg", *args], cwd=tmp_path,
                              stdout=pipe, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(pipe)
    assert (done.returncode, done.stderr) == (0, b"")


class _Closing(io.StringIO):
    """A stream whose reader has gone after ``keep`` characters."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.keep:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_quiet_stream_drops_everything_after_the_reader_left():
    inner = _Closing(keep=6)
    quiet = QuietWhenClosed(inner)
    assert quiet.write("12345\n") == 6
    assert quiet.write("more\n") == 5  # raised inside: now quiet, no error
    assert quiet.quiet and not quiet.isatty()
    quiet.write("x" * 100)
    quiet.flush()
    assert inner.getvalue() == "12345\n"


def test_quiet_stream_points_a_broken_descriptor_at_the_null_device():
    pipe = _closed_pipe()
    with open(pipe, "w", buffering=1) as stream:
        quiet = QuietWhenClosed(stream)
        quiet.write("a line\n")  # line-buffered: written at once, and the reader is gone
        assert quiet.quiet
        assert os.path.samestat(os.fstat(pipe), os.stat(os.devnull))


def test_quiet_stream_over_none_drops_everything():
    quiet = QuietWhenClosed(None)
    assert quiet.write("text") == 4
    quiet.flush()
    assert not quiet.isatty()


def test_other_write_errors_still_raise():
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        QuietWhenClosed(Full()).write("x")


# --- progress bar -------------------------------------------------------------------------

class _Terminal(io.StringIO):
    """A fake terminal: records what is written."""

    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_bar_draws_in_place_only_when_it_changes():
    screen = _Terminal()
    bar = ProgressBar(screen, width=10)
    bar(0, 200)
    assert screen.getvalue() == "\rtorchbragg [..........]   0%"
    bar(0.5, 200)  # same text: nothing written
    assert screen.getvalue() == "\rtorchbragg [..........]   0%"
    bar(100.5, 200)
    assert screen.getvalue().endswith("\rtorchbragg [#####.....]  50%")
    assert ProgressBar.shown_now is bar
    bar(200, 200)  # done: erased, the cursor back at the start of the line
    assert screen.getvalue().endswith("\r" + " " * len(bar.text(0, 1)) + "\r")
    assert bar.shown == "" and ProgressBar.shown_now is None


def test_bar_text_rounds_down_and_stays_in_range():
    bar = ProgressBar(_Terminal(), width=20, label="tb")
    assert bar.text(199.9, 200) == "tb [###################.]  99%"
    assert bar.text(-1, 10) == "tb [" + "." * 20 + "]   0%"
    assert bar.text(20, 10) == "tb [" + "#" * 20 + "] 100%"
    assert bar.text(0, 0).endswith("100%")


def test_bar_fits_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    bar = ProgressBar(_Terminal())
    assert len(bar.text(1, 2)) < 40


def test_bar_draws_nothing_for_an_empty_render():
    screen = _Terminal()
    ProgressBar(screen)(0, 0)
    assert screen.getvalue() == ""


def test_with_bar_leaves_hooks_alone_off_a_terminal():
    def hook(done, total):
        return None

    assert with_bar(hook, stream=_Terminal(tty=False)) is hook
    assert with_bar(hook, enabled=False, stream=_Terminal()) is hook
    assert with_bar(hook, stream=None) is hook  # pytest's stderr is not a terminal
    assert with_bar(None, stream=_Terminal(tty=False)) is None


def test_lines_printed_by_the_hook_start_at_the_left_margin():
    screen = _Terminal()
    calls = []

    def meter(done, total):
        calls.append((done, total))
        if done == 50:
            screen.write("50% done\n")

    report = with_bar(meter, stream=screen)
    for done in (0, 25, 50, 75, 100):
        report(done, 100)
    assert calls == [(0, 100), (25, 100), (50, 100), (75, 100), (100, 100)]
    text = screen.getvalue()
    before, after = text.split("50% done\n")
    assert before.endswith("\r" + " " * len(ProgressBar(screen).text(0, 1)) + "\r")
    assert after.startswith("\r")  # the bar is drawn again on the next line
    assert text.endswith("\r") and ProgressBar.shown_now is None  # erased at the end


def test_a_failed_render_erases_the_bar(workdir, monkeypatch):
    screen = _Terminal()

    def failing(st, ext):
        report = with_bar(None, stream=screen)
        report(10, 100)
        raise SetupError("the render failed")

    monkeypatch.setattr(cli_simulate, "simulate", failing)
    _one_error(run_main(OK), "the render failed")
    assert screen.getvalue().endswith(" \r") and ProgressBar.shown_now is None
    clear_progress_bar()  # nothing left to erase: a no-op
