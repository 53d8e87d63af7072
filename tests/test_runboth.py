"""torchbragg-compare --c-binary: both programs on one command, and why they differ.

A stand-in "C build" here is a script that runs torchbragg (with --stale-phi0 it behaves as
the released C program does at phi = 0). With TORCHBRAGG_C_BINARY set to a real nanoBragg
build, the golden case tri_misset is compared against it as well.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from torchbragg.cli.compare import main
from torchbragg.cli.parse import parse_args
from torchbragg.precedence import resolve
from torchbragg.runboth import (
    absolute_inputs,
    dump_files,
    previous_rendered,
    strip_outputs,
    trace_region,
)

GOLDEN = Path(__file__).parent / "data" / "golden"
SMALL = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 -pixel 0.1 "
         "-misset 10.5 -20.25 30.75 -detpixels 48")


def stand_in(folder: Path, extra: str = "", name: str = "nanoBragg") -> str:
    """An executable that renders with torchbragg, as a C build would."""
    path = folder / name
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m torchbragg "$@" {extra}\n')
    path.chmod(0o755)
    return str(path)


def test_output_options_are_dropped_and_inputs_made_absolute(tmp_path):
    args = ["-hkl", "x.hkl", "-floatfile", "out.bin", "-N", "5", "-printout_pixel", "1", "2",
            "-NOPROGRESS", "-intfile", "x.hkl"]
    assert strip_outputs(args) == ["-hkl", "x.hkl", "-N", "5"]
    (tmp_path / "5").write_text("")
    (tmp_path / "random").mkdir()
    args = ["-hkl", "1e3", "-N", "5", "-mat", "m.mat", "-misset", "random"]
    assert absolute_inputs(args, tmp_path) == [
        "-hkl", str(tmp_path / "1e3"), "-N", "5", "-mat", str(tmp_path / "m.mat"), "-misset",
        "random"]


def test_structure_factor_caches_are_copied_not_named(tmp_path):
    (tmp_path / "Fdump.bin").write_bytes(b"x")
    (tmp_path / "my.cache").write_bytes(b"y")
    assert dump_files(["-dump", "my.cache", "-dump", "none"], tmp_path) == ["Fdump.bin",
                                                                           "my.cache"]


def test_a_users_dump_file_is_left_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.hkl").write_text("0 0 0 10\n1 0 0 20\n")
    (tmp_path / "my.cache").write_bytes(b"precious")
    code = main(["--c-binary", stand_in(tmp_path), "--", *shlex.split(SMALL), "-hkl", "x.hkl",
                 "-dump", "my.cache", "-default_F", "0"])
    assert code == 0, capsys.readouterr().out
    assert (tmp_path / "my.cache").read_bytes() == b"precious"


def test_the_pixel_before_in_loop_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = resolve(parse_args(shlex.split(SMALL) + ["-roi", "10", "20", "5", "8"]).state).config
    assert previous_rendered(config, (6, 15)) == (6, 14)
    assert previous_rendered(config, (6, 10)) == (5, 20)  # the end of the row before
    assert previous_rendered(config, (5, 10)) is None
    assert trace_region(config, (6, 10)) == ["-roi", "10", "20", "5", "6"]
    assert trace_region(config, (5, 10)) == ["-roi", "10", "10", "5", "5"]


def test_same_program_agrees_and_writes_json_and_png(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    c = stand_in(tmp_path)
    code = main(["--c-binary", c, "--json", "r.json", "--png", "r.png", "--",
                 *shlex.split(SMALL), "-floatfile", "mine.bin"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "max_rel 0.000e+00" in out and "trace of the worst pixel" not in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["agree"] and data["thresholds_met"] and data["explanation"] is None
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "mine.bin").exists()  # outputs go to the temporary folders


def test_hypothesis_for_one_side_is_traced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    c = stand_in(tmp_path)
    code = main(["--c-binary", c, "--tb-args", "-distance 101", "--json", "r.json", "--",
                 *shlex.split(SMALL)])
    out = capsys.readouterr().out
    assert code == 1
    assert "threshold not met: max_rel" in out and "none applies to this command" in out
    first = json.loads((tmp_path / "r.json").read_text())["explanation"]["trace"][
        "first_divergence"]
    assert (first["scope"], first["name"]) == ("frame", "pix0_m")
    assert first["reference"][0] == pytest.approx(0.100) and first["other"][0] == \
        pytest.approx(0.101)


def test_released_phi0_behaviour_is_named_as_the_cause(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    released = stand_in(tmp_path, "--stale-phi0")
    code = main(["--c-binary", released, "--json", "r.json", "--", *shlex.split(SMALL),
                 "-phi", "0", "-osc", "1", "-phisteps", "3"])
    out = capsys.readouterr().out
    assert code == 1
    explanation = json.loads((tmp_path / "r.json").read_text())["explanation"]
    assert explanation["cause"] == "--stale-phi0"
    assert explanation["switches"][0]["max_rel"] <= 1e-5
    first = explanation["trace"]["first_divergence"]
    assert (first["scope"], first["name"]) == ("phi 0 mosaic 0", "rotation_deg")
    assert "cause: the released nanoBragg's phi = 0 step" in out


def test_switch_as_a_hypothesis_for_one_side(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    released = stand_in(tmp_path, "--stale-phi0")
    code = main(["--c-binary", released, "--tb-args", "--stale-phi0", "--", *shlex.split(SMALL),
                 "-phi", "0", "-osc", "1", "-phisteps", "3"])
    assert code == 0, capsys.readouterr().out


def test_a_failing_trace_step_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    strict = tmp_path / "strict"
    strict.write_text(f'#!/bin/sh\ncase "$*" in *-trace_pixel*) echo "bad option"; exit 1;; '
                      f'esac\nexec "{sys.executable}" -m torchbragg "$@"\n')
    strict.chmod(0o755)
    code = main(["--c-binary", str(strict), "--tb-args", "-distance 101", "--json", "r.json",
                 "--", *shlex.split(SMALL)])
    out = capsys.readouterr().out
    assert code == 1 and "max_rel" in out
    trace = json.loads((tmp_path / "r.json").read_text())["explanation"]["trace"]
    assert trace == "no trace comparison: the C run failed (exit 1): bad option"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_bad_run_both_input_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--c-binary", str(tmp_path / "missing"), "--", *shlex.split(SMALL)]) == 2
    assert "no such program" in _one_line(capsys)
    assert main(["--c-binary", stand_in(tmp_path)]) == 2
    assert "needs the nanoBragg arguments after --" in _one_line(capsys)
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho boom\nexit 3\n")
    failing.chmod(0o755)
    assert main(["--c-binary", str(failing), "--", *shlex.split(SMALL)]) == 2
    assert "the C run failed (exit 3): boom" in _one_line(capsys)
    assert main(["--images", "a", "b", "--", "-N", "5"]) == 2
    assert "arguments after -- are for --c-binary" in _one_line(capsys)
    assert main(["--images", "a", "b", "--tb-args", "-N 5"]) == 2
    assert "--tb-args applies to --c-binary only" in _one_line(capsys)
    assert main(["--traces", "a", "b", "--png", "x.png"]) == 2
    assert "--png applies to --c-binary or --images only" in _one_line(capsys)
    assert main(["--c-binary", "x", "--rtol", "-1", "--", "-N", "5"]) == 2
    assert "--rtol -1.0 is out of range" in _one_line(capsys)
    assert main(["--c-binary", "x", "--json", "no/such/r.json", "--", "-N", "5"]) == 2
    assert "cannot write no/such/r.json" in _one_line(capsys)
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    assert main(["--c-binary", str(slow), "--timeout", "0.5", "--", *shlex.split(SMALL)]) == 2
    assert "took longer than --timeout 0.5 s" in _one_line(capsys)


C_BINARY = os.environ.get("TORCHBRAGG_C_BINARY")


@pytest.mark.skipif(not C_BINARY, reason="set TORCHBRAGG_C_BINARY to a nanoBragg build")
def test_golden_case_against_a_c_build(tmp_path, monkeypatch, capsys):
    os.symlink(GOLDEN / "inputs", tmp_path / "inputs")
    monkeypatch.chdir(tmp_path)
    cases = json.loads((GOLDEN / "cases.json").read_text())["cases"]
    args = shlex.split(next(c for c in cases if c["id"] == "tri_misset")["runs"][-1])
    assert main(["--c-binary", C_BINARY, "--", *args]) == 0
    assert main(["--c-binary", C_BINARY, "--tb-args", "-distance 101", "--", *args]) == 1
    assert "first divergence" in capsys.readouterr().out
