"""Reading detector models of DIALS/dxtbx experiment lists (torchbragg.io.dials)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import torchbragg as tb
from torchbragg.io.dials import (
    HC_EV_ANGSTROM,
    MOSFLM_FROM_DIALS,
    dials_to_lab,
    read_dials_detector,
)
from torchbragg.io.errors import InputFileError
from torchbragg.panels import render_panels, single_panel

DATA = Path(__file__).parent / "data" / "dials"


# -- a small writer: lab-frame panels to dxtbx JSON --------------------------------------------

def _panel_dict(name, fast, slow, origin, image_size, pixel_size):
    """A dxtbx panel dict with every key dxtbx writes (vectors in dxtbx's frame)."""
    return {"name": name, "type": "SENSOR_PAD", "fast_axis": list(fast),
            "slow_axis": list(slow), "origin": list(origin), "raw_image_offset": [0, 0],
            "image_size": list(image_size), "pixel_size": list(pixel_size),
            "trusted_range": [0.0, 1e6], "thickness": 0.0, "material": "", "mu": 0.0,
            "identifier": "", "mask": [], "gain": 1.0, "pedestal": 0.0,
            "px_mm_strategy": {"type": "SimplePxMmStrategy"}}


def _expt(panels, hierarchy=None, wavelength=1.0):
    det = {"panels": panels}
    if hierarchy is not None:
        det["hierarchy"] = hierarchy
    return {"__id__": "ExperimentList",
            "experiment": [{"__id__": "Experiment", "beam": 0, "detector": 0}],
            "beam": [{"direction": [0.0, 0.0, 1.0], "wavelength": wavelength}],
            "detector": [det]}


def _lab_panel_to_dxtbx(panel, to_lab=MOSFLM_FROM_DIALS):
    """A torchbragg Panel (lab frame) as a dxtbx panel dict, mapped back with to_lab^-1."""
    back = np.linalg.inv(to_lab)
    return _panel_dict(panel.name, back @ np.array(panel.fast), back @ np.array(panel.slow),
                       back @ np.array(panel.origin_mm), (panel.fpixels, panel.spixels),
                       (panel.pixel_size_mm, panel.pixel_size_mm))


def _write(path, doc):
    path.write_text(json.dumps(doc, indent=1))
    return path


def _unit_panel(name="Panel", origin=(-10.0, 10.0, -100.0)):
    return _panel_dict(name, (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), origin, (8, 6), (0.1, 0.1))


# -- frames ----------------------------------------------------------------------------------

def test_mosflm_matrix_is_a_proper_rotation_taking_dxtbx_beam_and_up_to_the_lab():
    m = dials_to_lab()
    assert np.array_equal(m, MOSFLM_FROM_DIALS)
    assert np.array_equal(m, [[0, 0, -1], [0, 1, 0], [1, 0, 0]])
    assert np.linalg.det(m) == pytest.approx(1.0)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-15)
    np.testing.assert_allclose(m @ [0, 0, -1], [1, 0, 0])    # beam travel -> +x
    np.testing.assert_allclose(m @ [0, 1, 0], [0, 1, 0])     # up -> up
    other = dials_to_lab(beam=(0, 0, 1), up=(0, 1, 0))
    assert np.linalg.det(other) == pytest.approx(1.0)
    np.testing.assert_allclose(other @ [0, 0, -1], [0, 0, 1])
    with pytest.raises(ValueError, match="perpendicular"):
        dials_to_lab(beam=(1, 0, 0), up=(1, 1, 0))


# -- single panel: round trip through dxtbx JSON and identical rendering ----------------------

@pytest.fixture(scope="module")
def experiment():
    return tb.Experiment(detector=tb.detector(pixels=(48, 40), distance_mm=100),
                         crystal=tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=5),
                         beam=tb.beam(wavelength_A=6.2),
                         structure_factors=tb.structure_factors(default_F=100))


def test_single_panel_round_trip_renders_like_the_experiment(tmp_path, experiment):
    panel = single_panel(experiment.config)
    path = _write(tmp_path / "single.expt", _expt([_lab_panel_to_dxtbx(panel)], wavelength=6.2))
    det = read_dials_detector(path)
    assert det.names == ["p0"]     # "p0" was written, and is kept as a unique name
    got = det.panels[0]
    assert (got.fpixels, got.spixels, got.pixel_size_mm) == (
        panel.fpixels, panel.spixels, panel.pixel_size_mm)
    for key in ("origin_mm", "fast", "slow"):
        np.testing.assert_allclose(getattr(got, key), getattr(panel, key), rtol=0, atol=1e-12)
    assert det.photon_energy_eV == pytest.approx(HC_EV_ANGSTROM / 6.2, rel=1e-15)
    image = render_panels(experiment, det)["p0"]
    want = experiment.render()
    assert image.shape == want.shape
    torch.testing.assert_close(image, want, rtol=1e-12,
                               atol=1e-12 * float(want.abs().max()))


# -- hierarchy: local frames composed as dxtbx does ------------------------------------------

def test_hierarchy_fixture_against_hand_computed_global_positions():
    # group G: fast (0,1,0), slow (-1,0,0), origin (10,-20,-100) under an identity root;
    # panel 0 local origin (1,2,0) -> dxtbx (8,-19,-100); panel 1 local fast (0,1,0),
    # slow (-1,0,0), origin (30,4,0.5) -> fast (-1,0,0), slow (0,-1,0), origin (6,10,-99.5).
    # Lab (MOSFLM) = (-z, y, x) of those.
    det = read_dials_detector(DATA / "hierarchy.expt")
    assert det.names == ["p0", "p1"]          # both were called "Panel"
    a, b = det.panels
    np.testing.assert_allclose(a.origin_mm, (100.0, -19.0, 8.0), atol=1e-12)
    np.testing.assert_allclose(a.fast, (0.0, 1.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(a.slow, (0.0, 0.0, -1.0), atol=1e-12)
    np.testing.assert_allclose(b.origin_mm, (99.5, 10.0, 6.0), atol=1e-12)
    np.testing.assert_allclose(b.fast, (0.0, 0.0, -1.0), atol=1e-12)
    np.testing.assert_allclose(b.slow, (0.0, -1.0, 0.0), atol=1e-12)
    assert (a.fpixels, a.spixels, a.pixel_size_mm) == (20, 10, 0.2)
    assert det.photon_energy_eV == pytest.approx(HC_EV_ANGSTROM)


def _rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_tilting_the_root_group_moves_every_panel_rigidly(tmp_path):
    doc = json.loads((DATA / "cspad_like.expt").read_text())
    flat = read_dials_detector(DATA / "cspad_like.expt")
    rot, shift = _rotation((0.3, -1.0, 0.2), 0.4), np.array([1.5, -2.0, 3.0])
    root = doc["detector"][0]["hierarchy"]
    origin = np.array(root["origin"])
    root["fast_axis"] = list(rot[:, 0])
    root["slow_axis"] = list(rot[:, 1])
    root["origin"] = list(rot @ origin + shift)
    tilted = read_dials_detector(_write(tmp_path / "tilted.expt", doc))
    lab_rot = MOSFLM_FROM_DIALS @ rot @ MOSFLM_FROM_DIALS.T
    lab_shift = MOSFLM_FROM_DIALS @ shift
    lab_origin = MOSFLM_FROM_DIALS @ origin
    for p, q in zip(flat, tilted, strict=True):
        # a point at lab x moves to rot (x - root origin) + rot root origin + shift
        np.testing.assert_allclose(q.origin_mm, lab_rot @ (np.array(p.origin_mm) - lab_origin)
                                   + lab_rot @ lab_origin + lab_shift, atol=1e-11)
        np.testing.assert_allclose(q.fast, lab_rot @ p.fast, atol=1e-12)
        np.testing.assert_allclose(q.slow, lab_rot @ p.slow, atol=1e-12)


def test_cspad_like_fixture_three_levels_and_two_detectors():
    # Structure copied from a real dxtbx CSPAD detector dict, simtbx/nanoBragg/test_data/
    # dxtbx_cspad.py of cctbx_project (stored copy: indu-in/cctbx_project1): root "D0",
    # quadrant groups "D0Qq", sensor groups "D0QqSs", leaves {"panel": k}, panels "asicNN"
    # with every dxtbx panel key; wrapped in an ExperimentList as dxtbx writes it. The
    # values are our own (two quadrants, one sensor each, two asics per sensor).
    path = DATA / "cspad_like.expt"
    det = read_dials_detector(path)
    assert det.names == ["asic0", "asic1", "asic2", "asic3"]
    # hand-computed dxtbx globals: asic0 (-34.5, 15.75, -119.75), asic1 (-34.5, 37.25,
    # -119.75), asic2 (-3.5, -16.25, -119.75), asic3 (-25, -16.25, -119.65); all with
    # fast (0, 1, 0) and slow (-1, 0, 0); lab = (-z, y, x).
    want = {"asic0": (119.75, 15.75, -34.5), "asic1": (119.75, 37.25, -34.5),
            "asic2": (119.75, -16.25, -3.5), "asic3": (119.65, -16.25, -25.0)}
    for p in det:
        np.testing.assert_allclose(p.origin_mm, want[p.name], atol=1e-12)
        np.testing.assert_allclose(p.fast, (0.0, 1.0, 0.0), atol=1e-12)
        np.testing.assert_allclose(p.slow, (0.0, 0.0, -1.0), atol=1e-12)
        assert (p.fpixels, p.spixels, p.pixel_size_mm) == (194, 185, 0.11)
    assert det.photon_energy_eV == pytest.approx(HC_EV_ANGSTROM / 1.3)
    # detector 1 has no hierarchy (global vectors) and is used with beam 1
    second = read_dials_detector(path, index=1)
    (p,) = second.panels
    assert p.name == "Panel"
    np.testing.assert_allclose(p.origin_mm, (150.0, 15.0, -20.0), atol=1e-12)
    np.testing.assert_allclose(p.fast, (0.0, 0.0, 1.0), atol=1e-12)
    np.testing.assert_allclose(p.slow, (0.0, -1.0, 0.0), atol=1e-12)
    assert second.photon_energy_eV == pytest.approx(HC_EV_ANGSTROM / 0.9)


def test_names_and_bare_detector_and_model_in_another_file(tmp_path):
    panels = [_unit_panel("p1"), _unit_panel(""), _unit_panel(""), _unit_panel("x")]
    det = read_dials_detector(_write(tmp_path / "n.expt", _expt(panels)))
    assert det.names == ["p1", "p1.1", "p2", "x"]
    bare = read_dials_detector(_write(tmp_path / "bare.json", {"panels": [_unit_panel()]}))
    assert bare.names == ["Panel"] and bare.photon_energy_eV is None
    # older lists could name a file holding the model, relative to the list's folder
    _write(tmp_path / "detector.json", {"panels": [_unit_panel("far", (-5.0, 5.0, -300.0))]})
    doc = {"__id__": "ExperimentList", "beam": [{"wavelength": 2.0}],
           "experiment": [{"beam": 0, "detector": "detector.json"}]}
    det = read_dials_detector(_write(tmp_path / "old.json", doc))
    assert det.names == ["far"]
    np.testing.assert_allclose(det.panels[0].origin_mm, (300.0, 5.0, -5.0))
    assert det.photon_energy_eV == pytest.approx(HC_EV_ANGSTROM / 2.0)


# -- bad files -------------------------------------------------------------------------------

def _bad(tmp_path, doc, name="bad.expt"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _good():
    return json.loads((DATA / "hierarchy.expt").read_text())


def _raises(path, pattern, **kwargs):
    with pytest.raises(InputFileError, match=re.escape(str(path)) + pattern) as info:
        read_dials_detector(path, **kwargs)
    assert "\n" not in str(info.value)


def test_not_json_names_the_file_and_line(tmp_path):
    _raises(_bad(tmp_path, '{\n  "__id__": "ExperimentList",\n  "detector": [,]\n}'),
            r" line 3: not valid JSON")
    _raises(_bad(tmp_path, b"\xff\xfe\x00garbage".decode("latin-1"), "bin.expt"),
            r".*not valid JSON")
    _raises(_bad(tmp_path, "[1, 2]", "list.expt"), r": expected a DIALS experiment list")
    _raises(tmp_path / "missing.expt", r": cannot read file")


def test_missing_detector(tmp_path):
    _raises(_bad(tmp_path, {"__id__": "ExperimentList", "experiment": []}),
            r": no detector model")
    _raises(_bad(tmp_path, {"__id__": "DataBlock", "detector": []}, "db.json"),
            r": expected an ExperimentList")
    doc = _good()
    doc["detector"][0]["panels"] = []
    _raises(_bad(tmp_path, doc, "empty.expt"), r": detector 0 has no panels")
    doc = _good()
    doc["experiment"][0]["detector"] = 3
    _raises(_bad(tmp_path, doc, "ref.expt"), r": experiment 0: detector 3 is not an index")
    doc["experiment"][0]["detector"] = "gone.json"
    with pytest.raises(InputFileError, match=r"gone\.json: cannot read file.*named by .*"
                       r"ref2\.expt experiment 0"):
        read_dials_detector(_bad(tmp_path, doc, "ref2.expt"))
    doc = _good()
    doc["experiment"][0]["beam"] = 4
    _raises(_bad(tmp_path, doc, "beam.expt"), r": experiment 0: beam 4 is not an index")


@pytest.mark.parametrize("key", ["fast_axis", "origin", "pixel_size", "image_size"])
def test_missing_panel_key(tmp_path, key):
    doc = _good()
    del doc["detector"][0]["panels"][1][key]
    _raises(_bad(tmp_path, doc), rf": detector 0 panel 1 \('Panel'\) lacks {key}")


def test_non_square_pixels(tmp_path):
    doc = _good()
    doc["detector"][0]["panels"][0]["pixel_size"] = [0.1, 0.2]
    _raises(_bad(tmp_path, doc), r": detector 0 panel 0 .*not square")


def test_zero_and_bad_axes(tmp_path):
    doc = _good()
    doc["detector"][0]["panels"][0]["fast_axis"] = [0, 0, 0]
    _raises(_bad(tmp_path, doc), r": detector 0 panel 0 .*fast_axis is a zero vector")
    doc = _good()
    doc["detector"][0]["hierarchy"]["children"][0]["slow_axis"] = [0.0, 0.0, 0.0]
    _raises(_bad(tmp_path, doc, "g.expt"), r": detector 0 hierarchy child 0: slow_axis is a zero")
    doc = _good()
    doc["detector"][0]["panels"][0]["fast_axis"] = [2.0, 0.0, 0.0]
    _raises(_bad(tmp_path, doc, "u.expt"), r": .*fast_axis is not a unit vector")
    doc = _good()
    doc["detector"][0]["panels"][0]["slow_axis"] = [0.6, 0.8, 0.0]
    _raises(_bad(tmp_path, doc, "p.expt"), r": .*not perpendicular")
    doc = _good()
    doc["detector"][0]["panels"][0]["origin"] = [0.0, "1", 0.0]
    _raises(_bad(tmp_path, doc, "o.expt"), r": .*origin must be 3 finite numbers")


def test_index_out_of_range(tmp_path):
    _raises(DATA / "cspad_like.expt", r": detector index 2 is out of range: the file has 2",
            index=2)
    _raises(DATA / "hierarchy.expt", r": detector index -1 is out of range", index=-1)


def test_broken_hierarchy(tmp_path):
    doc = _good()
    doc["detector"][0]["hierarchy"]["children"][0]["children"] = [{"panel": 0}, {"panel": 0}]
    _raises(_bad(tmp_path, doc), r": .*panel 0 appears twice")
    doc = _good()
    doc["detector"][0]["hierarchy"]["children"][0]["children"] = [{"panel": 1}]
    _raises(_bad(tmp_path, doc, "m.expt"), r": detector 0: panel\(s\) 0 are not in the hierarchy")
    doc = _good()
    doc["detector"][0]["hierarchy"]["children"][0]["children"] = [{"panel": 7}]
    _raises(_bad(tmp_path, doc, "i.expt"), r": .*panel 7 is not an index into the 2 panel")
    doc = _good()
    node = doc["detector"][0]["hierarchy"]
    for _ in range(80):
        node["children"] = [copy.deepcopy({"children": []})]
        node = node["children"][0]
    _raises(_bad(tmp_path, doc, "deep.expt"), r": .*hierarchy deeper than")
