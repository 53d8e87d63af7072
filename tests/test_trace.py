"""A pixel trace agrees, value by value, with the C program's instrumented trace."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from torchbragg.cli.main import main
from torchbragg.cli.parse import parse_args
from torchbragg.precedence import apply_smv_headers, resolve
from torchbragg.simulator import Simulator
from torchbragg.trace import format_trace, trace_pixel

GOLDEN = Path(__file__).parent / "data" / "golden"
TRACES = sorted((GOLDEN / "traces").glob("*_s*_f*.txt"))


def _case_args(case_id: str) -> list[str]:
    cases = json.loads((GOLDEN / "cases.json").read_text())["cases"]
    case = next(c for c in cases if c["id"] == case_id)
    return shlex.split(case["runs"][-1])


def _parse_c_trace(path: Path) -> tuple[list[dict], dict, list[list[dict]]]:
    """Blocks of per-sub-pixel values, final values, and per-block phi lines."""
    blocks, final, phis = [{}], {}, [[]]
    for line in path.read_text().splitlines():
        if line.startswith("TRACE_C_PHI"):
            fields = dict(kv.split("=") for kv in line.split()[1:])
            phis[-1].append({k: float(v) for k, v in fields.items()})
            continue
        m = re.match(r"TRACE_C: (\S+) (.*)", line)
        if not m:
            continue
        name, values = m.group(1), np.array([float(x) for x in m.group(2).split()])
        if name == "I_before_scaling":
            final["I_before_scaling"] = values
        if "I_before_scaling" in final:
            final.setdefault(name, values)
            continue
        if name == "pixel_pos_meters" and name in blocks[-1]:
            blocks.append({})
            phis.append([])
        blocks[-1].setdefault(name, values)
    return blocks, final, phis


def _close(ours, theirs, name: str) -> None:
    ours = np.atleast_1d(np.asarray(ours, dtype=np.float64))
    scale = max(np.abs(theirs).max(), 1e-300)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12 * scale, err_msg=name)


@pytest.fixture
def in_golden_folder(tmp_path, monkeypatch):
    os.symlink(GOLDEN / "inputs", tmp_path / "inputs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _trace(case_id: str, slow: int, fast: int):
    parsed = parse_args(_case_args(case_id), read_headers=apply_smv_headers)
    sim = Simulator(resolve(parsed.state).config)
    return trace_pixel(sim, slow, fast)


def _check_block(tr, block: dict, phis: list[dict], t: int, q: int) -> None:
    g, st = tr.stages["geometry"], tr.stages["steps"]
    factors = tr.lattice_factors()
    ours = {"pixel_pos_meters": g["position"][t, q], "R_distance_meters": g["airpath"][t, q],
            "diffracted_vec": g["diffracted"][t, q],
            "scattering_vec_A_inv": g["scattering"][t, q, 0],
            "hkl_frac": st["hkl"][t, q, 0, 0], "hkl_rounded": st["hkl0"][t, q, 0, 0],
            "F_latt_a": factors[t, q, 0, 0, 0], "F_latt_b": factors[t, q, 0, 0, 1],
            "F_latt_c": factors[t, q, 0, 0, 2], "F_latt": st["f_latt"][t, q, 0, 0],
            "F_cell": st["f_cell"][t, q, 0, 0]}
    for name, value in ours.items():
        if name in block:
            _close(value, block[name], f"{name} at layer {t} sub-pixel {q}")
    for r, phi in enumerate(phis):
        _close(st["hkl"][t, q, 0, r, 1], phi["k_frac"], f"k at orientation {r}")
        _close(st["f_latt"][t, q, 0, r], phi["F_latt"], f"F_latt at orientation {r}")


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace_matches_c_trace(path: Path, in_golden_folder):
    case_id, slow, fast = re.match(r"(.+)_s(\d+)_f(\d+)$", path.stem).groups()
    tr = _trace(case_id, int(slow), int(fast))
    blocks, final, phis = _parse_c_trace(path)
    first = blocks[0]
    _close(tr.frame["pix0"], first["pix0_vector_meters"], "pix0")
    _close(tr.frame["fdet"], first["fdet_vec"], "fdet")
    _close(tr.frame["sdet"], first["sdet_vec"], "sdet")
    _close(tr.frame["close_distance"], first["close_distance_meters"], "close distance")
    _close(tr.incident[0], first["incident_vec"], "incident")
    _close(tr.wavelengths_m[0], first["lambda_meters"], "wavelength")
    for i, name in enumerate(("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms")):
        _close(tr.lattice_m[0, i] * 1e10, first[name], name)
    _close(tr.stages["geometry"]["omega"][0, 0], first["omega_pixel_sr"], "omega")
    n_q = tr.stages["geometry"]["omega"].shape[1]
    assert len(blocks) == tr.stages["geometry"]["omega"].size
    for i, block in enumerate(blocks):
        _check_block(tr, block, phis[i], i // n_q, i % n_q)
    _check_final(tr, final)


def _check_final(tr, final: dict) -> None:
    px, g = tr.stages["pixel"], tr.stages["geometry"]
    thick, pol, omg = tr.flags
    assert tr.steps == int(final["steps"][0])
    _close(px["intensity"], final["I_before_scaling"], "intensity sum")
    _close(g["capture"][-1, -1] if thick else px["capture"], final["capture_fraction"],
           "capture fraction")
    _close(g["polar"][-1, -1, -1] if pol else px["polar"], final["polar"], "polarization")
    _close(g["omega"][-1, -1] if omg else px["omega"], final["omega_pixel"], "omega")
    _close(px["values"], final["I_pixel_final"], "pixel")
    assert np.float32(px["values"]) == np.float32(final["floatimage_accumulated"][0])


def test_trace_pixel_option_prints_the_trace(in_golden_folder, capsys):
    args = _case_args("sc_default") + ["-trace_pixel", "128", "140", "-nonoise", "-nopgm",
                                       "-noprogress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trace of pixel slow=128 fast=140" in out
    assert "\npixel: photons 1.05070737368218\n" in out


def test_trace_is_readable_lines(in_golden_folder):
    lines = format_trace(_trace("sc_default", 128, 140))
    assert lines[0] == "trace of pixel slow=128 fast=140"
    assert "layer 0 sub-pixel 0 source 0 phi 0 mosaic 0: F_latt 10.2517599819571" in lines
    assert "pixel: steps 1" in lines
    # one quantity per line: scope, name, numbers
    for line in lines[1:]:
        scope, rest = line.split(": ")
        name, *values = rest.split()
        assert name.isidentifier() and values and all(float(v) == float(v) for v in values)
