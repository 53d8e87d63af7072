"""Traces compared quantity by quantity: torchbragg's, the C program's TRACE_C, -printout."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from torchbragg.cli.compare import main as compare_main
from torchbragg.cli.main import main
from torchbragg.cli.parse import parse_args
from torchbragg.precedence import apply_smv_headers, resolve
from torchbragg.simulator import Simulator
from torchbragg.trace import format_trace, trace_pixel
from torchbragg.tracecompare import compare_traces, parse_trace

GOLDEN = Path(__file__).parent / "data" / "golden"
TRACES = sorted((GOLDEN / "traces").glob("*_s*_f*.txt"))
PRINTOUTS = sorted((GOLDEN / "printouts").glob("*_s*_f*.txt"))  # the C program's blocks
SMALL = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 -pixel 0.1 "
         "-misset 10.5 -20.25 30.75 -detpixels 64 -nonoise -nopgm -noprogress")


@pytest.fixture
def in_golden_folder(tmp_path, monkeypatch):
    os.symlink(GOLDEN / "inputs", tmp_path / "inputs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _case_args(case_id: str) -> list[str]:
    cases = json.loads((GOLDEN / "cases.json").read_text())["cases"]
    return shlex.split(next(c for c in cases if c["id"] == case_id)["runs"][-1])


def _our_trace(path: Path, extra: list[str]):
    case_id, slow, fast = re.match(r"(.+)_s(\d+)_f(\d+)$", path.stem).groups()
    parsed = parse_args(_case_args(case_id) + extra, read_headers=apply_smv_headers)
    tr = trace_pixel(Simulator(resolve(parsed.state).config), int(slow), int(fast))
    return parse_trace("\n".join(format_trace(tr)))


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_golden_traces_show_no_divergence(path, in_golden_folder):
    c_trace = parse_trace(path.read_text())
    assert c_trace.kind == "TRACE_C"
    result = compare_traces(c_trace, _our_trace(path, []))
    assert result.unmatched == 0 and len(result.differences) == len(c_trace.quantities)
    assert result.first is None, result.first.line()
    assert max(d.rel for d in result.differences) < 1e-12
    assert {d.name for d in result.factors()} >= {"intensity_sum", "r_e_sqr_m2", "steps",
                                                  "fluence_per_m2", "capture_fraction",
                                                  "polar", "omega_sr", "photons", "F_cell",
                                                  "F_latt"}


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_other_crystal_size_diverges_first_at_a_lattice_factor(path, in_golden_folder):
    result = compare_traces(parse_trace(path.read_text()), _our_trace(path, ["-N", "6"]))
    assert result.first is not None and result.first.name == "F_latt_a"
    assert result.first.label == "sample 0 source 0 phi 0 mosaic 0"


def _cli_output(args: str, capsys) -> str:
    assert main(shlex.split(args)) == 0
    return capsys.readouterr().out


def test_stale_phi0_trace_diverges_at_phi_step_0(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = f"{SMALL} -phi 0 -osc 1 -phisteps 4 -trace_pixel 30 40"
    plain = parse_trace(_cli_output(args, capsys))
    stale = parse_trace(_cli_output(args + " --stale-phi0", capsys))
    result = compare_traces(plain, stale)
    first = result.first
    assert (first.label, first.name) == ("phi 0 mosaic 0", "rotation_deg")
    assert first.reference.tolist() == [0.0] and first.other.tolist() == [0.75]
    # the nominal angles agree; every other phi step is the same rotation
    assert all(not d.beyond for d in result.differences
               if d.name in ("phi_deg", "a_A") and not d.label.startswith("phi 0 "))


@pytest.mark.parametrize("path", PRINTOUTS, ids=[p.stem for p in PRINTOUTS])
def test_c_printout_matches_our_trace_both_ways(path, in_golden_folder):
    printout = parse_trace(path.read_text())
    assert printout.kind == "printout" and len(printout.quantities) == 14
    ours = _our_trace(path, [])
    for result in (compare_traces(printout, ours), compare_traces(ours, printout)):
        assert len(result.differences) == 14
        assert result.first is None, result.first.line()
    c_trace = parse_trace((GOLDEN / "traces" / path.name).read_text())
    result = compare_traces(printout, c_trace)  # the C trace lacks the last step's values
    assert result.first is None and len(result.differences) == 5 and result.unmatched == 9


def test_printout_block_matches_our_trace(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = _cli_output(f"{SMALL} -phisteps 2 -osc 1 -oversample 2 -trace_pixel 30 40 "
                      "-printout_pixel 40 30", capsys)
    printout = parse_trace("\n".join(line for line in out.splitlines() if not re.match(
        r"^([a-z][a-z0-9 -]*: |trace of pixel)", line)))
    ours = parse_trace(out)
    assert printout.kind == "printout" and printout.pixel == ours.pixel == (30, 40)
    result = compare_traces(printout, ours)
    assert result.unmatched == 0 and len(result.differences) == 14
    assert result.first is None, result.first.line()


def test_printout_of_another_distance_diverges_at_the_position(tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    printout = parse_trace(_cli_output(f"{SMALL} -printout_pixel 40 30 -distance 101",
                                       capsys))
    ours = parse_trace(_cli_output(f"{SMALL} -trace_pixel 30 40", capsys))
    first = compare_traces(printout, ours).first
    assert (first.label, first.name) == ("last step", "position_m")


def test_traces_of_different_pixels_are_refused():
    a = parse_trace("trace of pixel slow=1 fast=2\npixel: photons 1\n")
    b = parse_trace("trace of pixel slow=2 fast=2\npixel: photons 1\n")
    with pytest.raises(ValueError, match="different pixels"):
        compare_traces(a, b)
    with pytest.raises(ValueError, match="no trace found"):
        parse_trace("hello\n")


@pytest.mark.parametrize(("text", "message"), [
    ("TRACE_C_PHI phi_deg=0 k_frac=1 F_latt_b=1 F_latt=1\n", "line 1: TRACE_C_PHI without "
                                                            "phi_tic"),
    ("TRACE_C_PHI phi_tic=0 phi_deg\n", "line 1: expected key=value"),
    ("TRACE_C: fdet_vec 0 x 1\n", "line 1: not numbers"),
    ("trace of pixel slow=1 fast=2\nframe: fdet 0 y 1\n", "line 2: not numbers"),
])
def test_malformed_trace_lines_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_trace(text)


def test_traces_with_nothing_in_common_are_refused():
    ours = parse_trace("trace of pixel slow=1 fast=2\npixel: photons 1\n")
    renamed = parse_trace("TRACE_C: pixel_value 1\nTRACE_C: other 2\n")
    assert renamed.unknown == 2
    with pytest.raises(ValueError, match="no quantity in common"):
        compare_traces(renamed, ours)
    with pytest.raises(ValueError, match="tolerance must be positive"):
        compare_traces(ours, ours, rtol=0)


def test_traces_from_the_command_line(in_golden_folder, capsys):
    path = next(p for p in TRACES if p.stem.startswith("tri_misset"))
    tr = _our_trace(path, [])
    assert tr.kind == "torchbragg"
    ours = in_golden_folder / "ours.txt"
    case_id, slow, fast = re.match(r"(.+)_s(\d+)_f(\d+)$", path.stem).groups()
    assert main(_case_args(case_id) + ["-trace_pixel", slow, fast, "-nonoise", "-nopgm",
                                       "-noprogress"]) == 0
    ours.write_text(capsys.readouterr().out)
    report = in_golden_folder / "r.json"
    assert compare_main(["--traces", str(path), str(ours), "--json", str(report)]) == 0
    assert "no divergence" in capsys.readouterr().out
    assert json.loads(report.read_text())["first_divergence"] is None
    assert main(_case_args(case_id) + ["-trace_pixel", slow, fast, "-N", "6", "-nonoise",
                                       "-nopgm", "-noprogress"]) == 0
    ours.write_text(capsys.readouterr().out)
    assert compare_main(["--traces", str(path), str(ours)]) == 1
    out = capsys.readouterr().out
    assert "first divergence" in out and ": F_latt_a " in out
    assert compare_main(["--traces", str(path), "missing.txt"]) == 2
    assert "missing.txt" in capsys.readouterr().err
