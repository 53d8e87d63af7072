"""torchbragg-bench runs its cases and reports every figure; bad arguments stop it early."""

from __future__ import annotations

import json

import pytest

from torchbragg import bench


def test_unknown_case_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--cases", "still_256,nope"])
    assert stop.value.code == 2
    assert "unknown case nope" in capsys.readouterr().err


def test_missing_c_binary_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--c-binary", str(tmp_path / "nanoBragg")])
    assert "not an executable file" in capsys.readouterr().err


def test_still_case_reports_every_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench.json"
    assert bench.main(["--cases", "still_256", "--repeat", "1", "--no-cold", "--json",
                       str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["start_up"]["help_s"] > 0 and figures["start_up"]["import_torch_s"] > 0
    (case,) = figures["cases"]
    assert case["case"] == "still_256"
    assert case["pixel_steps"] == 256 * 256
    for key in ("wall_s", "render_s", "pixel_steps_per_s", "peak_mib"):
        assert case[key] > 0
    assert "still_256" in capsys.readouterr().out
