"""Datasets on multi-panel detectors, with per-shot spectra, and their NXmx description."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("distributed")
pytest.importorskip("hdf5plugin")

import torchbragg as tb  # noqa: E402
from torchbragg.cli.dataset import main  # noqa: E402
from torchbragg.dataset.run import render_shot  # noqa: E402
from torchbragg.dataset.setup import model_dmin_A, prepare  # noqa: E402
from torchbragg.dataset.spec import SpecError, load_spec, parse_spec, shot_draws  # noqa: E402
from torchbragg.io.nexus import mcstas_basis  # noqa: E402
from torchbragg.panels import (  # noqa: E402
    MOSFLM_FROM_CRYSTFEL,
    MultiPanelDetector,
    Panel,
    render_panels,
    single_panel,
    split_detector,
)

BASE = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -distance 100 -pixel 0.2 "
        "-detpixels 32")
SHOTS = """
shots = 3
seed = 11
[vary]
orientation = "random"
N = {distribution = "uniform", low = 4, high = 6}
"""


def geom_text(panels: MultiPanelDetector, clen_m: float = 0.05, places=None) -> str:
    """A CrystFEL file for ``panels`` (MOSFLM lab frame), stacked along slow in the data
    unless ``places`` gives each panel's (min_ss, min_fs)."""
    res = 1e3 / panels.panels[0].pixel_size_mm
    lines = [f"res = {res!r}", f"clen = {clen_m!r}", ""]
    row = 0
    for k, p in enumerate(panels):
        ss0, fs0 = places[k] if places else (row, 0)
        corner = (MOSFLM_FROM_CRYSTFEL.T @ np.asarray(p.origin_mm) * 1e-3).tolist()
        fs, ss = ((MOSFLM_FROM_CRYSTFEL.T @ np.asarray(v)).tolist() for v in (p.fast, p.slow))
        lines += [f"{p.name}/min_fs = {fs0}", f"{p.name}/max_fs = {fs0 + p.fpixels - 1}",
                  f"{p.name}/min_ss = {ss0}", f"{p.name}/max_ss = {ss0 + p.spixels - 1}",
                  f"{p.name}/fs = {fs[0]!r}x {fs[1]!r}y {fs[2]!r}z",
                  f"{p.name}/ss = {ss[0]!r}x {ss[1]!r}y {ss[2]!r}z",
                  f"{p.name}/corner_x = {corner[0] * res!r}",
                  f"{p.name}/corner_y = {corner[1] * res!r}",
                  f"{p.name}/coffset = {corner[2] - clen_m!r}", ""]
        row += p.spixels
    return "\n".join(lines)


def base_config():
    return tb.Experiment.from_args(BASE.split()).config


def write_spec(folder, text: str, name: str = "spec.toml"):
    path = folder / name
    path.write_text(text)
    return path


# -- panels ----------------------------------------------------------------------------------

def test_two_halves_stack_into_the_single_panel_images(tmp_path):
    halves = split_detector(base_config(), slow_parts=2)
    (tmp_path / "halves.geom").write_text(geom_text(halves))
    single = write_spec(tmp_path, f'base = "{BASE}"' + SHOTS, "single.toml")
    paneled = write_spec(tmp_path, f'base = "{BASE}"\ngeometry = "halves.geom"' + SHOTS)
    for path, out in ((single, "single.h5"), (paneled, "panels.h5")):
        assert main([str(path), "--out", str(tmp_path / out), "--workers", "1"]) == 0
    with h5py.File(tmp_path / "single.h5") as a, h5py.File(tmp_path / "panels.h5") as b:
        whole, stacked = a["entry/data/data"][()], b["entry/data/data"][()]
        assert stacked.shape == (3, 32, 32)  # the panels one below the other
        parts = stacked.reshape(3, 2, 16, 32)
        assert np.array_equal(a["entry/truth/a_matrix"][()], b["entry/truth/a_matrix"][()])
        detector = b["entry/instrument/detector"]
        assert [n.decode() if isinstance(n, bytes) else n
                for n in detector["panel_names"][()]] == ["s0f0", "s1f0"]
        assert detector["data"].id == b["entry/data/data"].id  # one copy of the pixels
        assert list(detector["s1f0/data_origin"][()]) == [16, 0]
        assert list(detector["s1f0/data_size"][()]) == [16, 32]
        place = _module_places(detector, ("s0f0", "s1f0"))
    assert whole.max() > 0
    for k in range(2):
        np.testing.assert_allclose(parts[:, k], whole[:, 16 * k:16 * (k + 1)], rtol=1e-6,
                                   atol=1e-6 * whole.max())
    # the modules sit where the panels are (NeXus frame back to the lab frame)
    config = base_config()
    basis = mcstas_basis(config.beam.beam, config.crystal.spindle)
    for (origin, fast, slow, size), panel in zip(place, halves, strict=True):
        np.testing.assert_allclose(basis.T @ origin, panel.origin_mm, atol=1e-9)
        np.testing.assert_allclose(basis.T @ fast, panel.fast, atol=1e-12)
        np.testing.assert_allclose(basis.T @ slow, panel.slow, atol=1e-12)
        assert size == pytest.approx(0.2)
    # and an NXmx reader finds them there
    nxmx = pytest.importorskip("nxmx")
    with h5py.File(tmp_path / "panels.h5") as handle:
        entry = nxmx.NXmx(handle).entries[0]
        nxdetector = entry.instruments[0].detectors[0]
        modules = nxdetector.modules
        assert entry.definition == "NXmx" and len(modules) == 2
        root = nxmx.get_dependency_chain(nxdetector.depends_on)
        assert [t.path for t in root] == ["/entry/instrument/detector/transformations/origin"]
        for module, panel in zip(modules, halves, strict=True):
            chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
            corner = nxmx.get_cumulative_transformation(chain)[0, :3, 3]
            np.testing.assert_allclose(basis.T @ corner, panel.origin_mm, atol=1e-9)
            # one shared root, one group per module (as a hierarchical reader builds it)
            assert [t.path for t in chain][-1] == root[0].path and len(chain) == 2
            rows = slice(int(module.data_origin[0]),
                         int(module.data_origin[0] + module.data_size[0]))
            assert np.array_equal(entry.data[0]["data"][0][rows], stacked[0][rows])


def _module_places(detector, names):
    out = []
    for name in names:
        m = detector[name]
        offset = m["module_offset"]
        assert offset.attrs["depends_on"] == "/entry/instrument/detector/transformations/origin"
        assert m["fast_pixel_direction"].attrs["depends_on"] == f"{m.name}/module_offset"
        out.append((offset.attrs["vector"] * offset[()], m["fast_pixel_direction"].attrs["vector"],
                    m["slow_pixel_direction"].attrs["vector"], m["fast_pixel_direction"][()]))
    return out


def expt_text(panels: MultiPanelDetector) -> str:
    """A DIALS experiment list holding ``panels`` (MOSFLM lab frame), no hierarchy."""
    from torchbragg.io.dials import MOSFLM_FROM_DIALS

    back = MOSFLM_FROM_DIALS.T
    rows = [{"name": p.name, "type": "SENSOR_PAD",
             "fast_axis": (back @ np.asarray(p.fast)).tolist(),
             "slow_axis": (back @ np.asarray(p.slow)).tolist(),
             "origin": (back @ np.asarray(p.origin_mm)).tolist(),
             "pixel_size": [p.pixel_size_mm, p.pixel_size_mm],
             "image_size": [p.fpixels, p.spixels]} for p in panels]
    return json.dumps({"__id__": "ExperimentList",
                       "experiment": [{"__id__": "Experiment", "detector": 0}],
                       "detector": [{"panels": rows}]})


def test_dials_geometry_renders_like_crystfel(tmp_path):
    quarters = split_detector(base_config(), fast_parts=2, slow_parts=2)
    (tmp_path / "q.geom").write_text(geom_text(quarters))
    (tmp_path / "q.expt").write_text(expt_text(quarters))
    a = render_shot(parse_spec(f'base = "{BASE}"\ngeometry = "q.geom"' + SHOTS,
                               str(tmp_path)), 2)["image"]
    b = render_shot(parse_spec(f'base = "{BASE}"\ngeometry = "q.expt"' + SHOTS,
                               str(tmp_path)), 2)["image"]
    assert a.shape == (64, 16) and a.max() > 0
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * a.max())


def test_panels_sit_where_the_geometry_file_puts_their_data(tmp_path, capsys):
    """CrystFEL's min_ss/min_fs layout, panels of two sizes, a gap of unused pixels."""
    from torchbragg.dataset.layout import panel_places

    whole = single_panel(base_config())
    o, f, s = (np.asarray(v) for v in (whole.origin_mm, whole.fast, whole.slow))
    left = Panel("left", 16, 32, 0.2, tuple(o), whole.fast, whole.slow)
    right = Panel("right", 8, 20, 0.2, tuple(o + 3.2 * f + 1.0 * s), whole.fast, whole.slow)
    det = MultiPanelDetector((left, right))
    (tmp_path / "lr.geom").write_text(geom_text(det, places=[(0, 0), (4, 20)]))
    spec = parse_spec(f'base = "{BASE}"\ngeometry = "lr.geom"' + SHOTS, str(tmp_path))
    image = render_shot(spec, 0)["image"]
    assert image.shape == (32, 28)
    from torchbragg.dataset.run import _setup

    with torch.no_grad():  # the worker's experiment holds shot 0's values now
        images = _setup(spec, "cpu", None).renderer()
    np.testing.assert_array_equal(image[:, :16], images["left"].to(torch.float32).numpy())
    np.testing.assert_array_equal(image[4:24, 20:28], images["right"].to(torch.float32).numpy())
    assert not image[:, 16:20].any() and not image[:4, 20:].any() and not image[24:, 20:].any()
    assert images["right"].max() > 0
    out = tmp_path / "lr.h5"
    assert main([str(write_spec(tmp_path, f'base = "{BASE}"\ngeometry = "lr.geom"' + SHOTS)),
                 "--out", str(out), "--workers", "1"]) == 0
    with h5py.File(out) as handle:
        module = handle["entry/instrument/detector/right"]
        assert list(module["data_origin"][()]) == [4, 20]
        assert list(module["data_size"][()]) == [20, 8]
        assert np.array_equal(handle["entry/data/data"][0], image)
    # overlapping places (or none): one below the other
    same = MultiPanelDetector((left, Panel("again", 16, 32, 0.2, tuple(o + 4 * f), whole.fast,
                                           whole.slow, (0, 0))))
    assert panel_places(same) == ((64, 16), ((0, 0), (32, 0)))
    (tmp_path / "clash.geom").write_text(geom_text(det, places=[(0, 0), (4, 10)]))
    clash = write_spec(tmp_path, f'base = "{BASE}"\ngeometry = "clash.geom"' + SHOTS, "c.toml")
    assert main([str(clash), "--out", str(tmp_path / "c.h5"), "--workers", "1"]) == 0
    assert ("warning: geometry: panels left and right share pixels in the file's data layout"
            in capsys.readouterr().err)
    with h5py.File(tmp_path / "c.h5") as handle:
        assert handle["entry/data/data"].shape == (3, 52, 16)
    assert panel_places(split_detector(base_config(), 2, 1))[1] == ((0, 0), (32, 0))


def test_single_panel_file_describes_its_detector(tmp_path):
    path = write_spec(tmp_path, f'base = "{BASE}"' + SHOTS)
    out = tmp_path / "one.h5"
    assert main([str(path), "--out", str(out), "--workers", "1"]) == 0
    whole = single_panel(base_config())
    with h5py.File(out) as f:
        module = f["entry/instrument/detector/module"]
        assert list(module["data_origin"][()]) == [0, 0]
        assert list(module["data_size"][()]) == [32, 32]
        assert f["entry/definition"][()] == b"NXmx"
        waves = f["entry/instrument/beam/incident_wavelength"][()]
        assert np.array_equal(waves, f["entry/truth/wavelength_A"][()]) and waves[0] == 1.0
        ((origin, fast, _, _),) = _module_places(f["entry/instrument/detector"], ["module"])
    config = base_config()
    basis = mcstas_basis(config.beam.beam, config.crystal.spindle)
    np.testing.assert_allclose(basis.T @ origin, whole.origin_mm, atol=1e-9)
    np.testing.assert_allclose(basis.T @ fast, whole.fast, atol=1e-12)


def test_panels_with_background_and_detector_response(tmp_path):
    """Each panel gets its own background and response; noise stays deterministic."""
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).parent / "data" / "golden" / "inputs" / "water.stol", tmp_path)
    halves = split_detector(base_config(), fast_parts=2)
    (tmp_path / "halves.geom").write_text(geom_text(halves))
    effects = SHOTS + '[background]\nstol = "water.stol"\n[detector]\nnoise = true\n'
    spec = parse_spec(f'base = "{BASE}"\ngeometry = "halves.geom"' + effects, str(tmp_path))
    quiet = parse_spec(f'base = "{BASE}"\ngeometry = "halves.geom"'
                       + effects.replace("noise = true", "noise = false"), str(tmp_path))
    one = render_shot(spec, 1)["image"]
    assert one.shape == (64, 16)  # two 32 x 16 panels, one below the other
    torch.manual_seed(5)
    assert np.array_equal(render_shot(spec, 1)["image"], one)
    plain = render_shot(parse_spec(f'base = "{BASE}"\ngeometry = "halves.geom"' + SHOTS,
                                   str(tmp_path)), 1)["image"]
    smooth = render_shot(quiet, 1)["image"]
    assert np.all(smooth > plain + 40.0 - 1e-3)  # background photons on top of the offset
    assert not np.array_equal(smooth, one) and np.allclose(smooth, one, rtol=0.5)


def test_panel_origin_is_a_parameter():
    exp = tb.Experiment.from_args(BASE.split())
    det = split_detector(exp.config, fast_parts=2)
    panel = det["s0f1"]
    with torch.no_grad():
        plain = render_panels(exp, det)
        step = np.asarray(panel.origin_mm) + 0.2 * np.asarray(panel.fast)  # one pixel along
        moved = render_panels(exp, det, {"panels.s0f1.origin_mm": torch.tensor(step)})
    assert torch.equal(moved["s0f0"], plain["s0f0"])
    # pixel j of the moved panel sits where pixel j + 1 was
    torch.testing.assert_close(moved["s0f1"][:, :-1], plain["s0f1"][:, 1:], rtol=1e-9,
                               atol=1e-12 * float(plain["s0f1"].max()))
    origin = torch.tensor(panel.origin_mm, dtype=torch.float64, requires_grad=True)
    image = render_panels(exp, det, {"panels.s0f1.origin_mm": origin})["s0f1"]
    (image ** 2).sum().backward()
    assert torch.isfinite(origin.grad).all() and float(origin.grad.abs().max()) > 0
    with pytest.raises(ValueError, match="unknown panel parameter 'panels.nope.origin_mm'"):
        render_panels(exp, det, {"panels.nope.origin_mm": origin})
    with pytest.raises(ValueError, match="detector parameters do not apply"):
        render_panels(exp, det, {"detector.distance_mm": 90.0})


MODEL = """CRYST1   30.000   30.000   30.000  90.00  90.00  90.00 P 1           1
ATOM      1  C   ALA A   1       1.000   2.000   3.000  1.00 10.00           C
ATOM      2  O   ALA A   1       4.000   1.000   7.000  1.00 10.00           O
ATOM      3  N   ALA A   1       8.000   6.000   2.000  1.00 10.00           N
END
"""


def test_model_structure_factors_reach_the_outer_panels(tmp_path):
    (tmp_path / "m.pdb").write_text(MODEL)
    base = "-hkl m.pdb -N 3 -lambda 1 -distance 100 -pixel 0.2 -detpixels 32"
    probe = f"-cell 30 30 30 90 90 90 {base}".replace("m.pdb", str(tmp_path / "m.pdb"))
    config = tb.Experiment.from_args(probe.split()).config
    whole = single_panel(config)
    far = Panel("far", 32, 32, 0.2, (100.0, 40.0, -3.2), whole.fast, whole.slow)
    det = MultiPanelDetector((whole, far))
    (tmp_path / "two.geom").write_text(geom_text(det))
    text = (f'base = "-cell 30 30 30 90 90 90 {base}"\ngeometry = "two.geom"\nshots = 1\n'
            "seed = 1\n[vary]\nwavelength_A = {distribution = \"uniform\", low = 0.8, "
            "high = 1.0}\n")
    spec = load_spec(write_spec(tmp_path, text))
    setup = prepare(spec)
    dmin = float(setup.arguments[setup.arguments.index("--model-dmin") + 1])
    assert dmin == model_dmin_A(spec, setup.experiment.config, setup.panels)
    # the far panel's corner at the shortest wavelength, less three reciprocal lengths
    corner = np.array([100.0, 40.0, 3.2])  # (40, 3.2) off the beam, 100 mm along it
    two_theta = np.arccos(100.0 / np.linalg.norm(corner))
    assert dmin == pytest.approx(1 / (2 * np.sin(two_theta / 2) / 0.8 + 3 / 30), rel=1e-12)
    image = render_shot(spec, 0)["image"]
    assert image.shape == (64, 32) and image[32:].max() > 0  # F reaches the far panel


# -- spectra ---------------------------------------------------------------------------------

SPECTRUM = """
[vary.spectrum]
model = "sase"
bandwidth_percent = 0.5
sources = 8
bins = 256
"""


def test_spectrum_shots_render_their_wavelengths(tmp_path):
    spec = parse_spec(f'base = "{BASE}"' + SHOTS + SPECTRUM)
    shots = [render_shot(spec, i) for i in range(2)]
    for shot in shots:
        waves = shot["source_wavelength_A"]
        assert waves.shape == (8,) and np.all(np.diff(waves) > 0)
        assert shot["spectrum_intensity"].shape == (256,)
        assert np.isclose(shot["spectrum_intensity"].sum(), 1.0)
        assert 0.99 < waves[0] and waves[-1] < 1.01
        # the same image from a source file with those wavelengths
        sources = tmp_path / "s.txt"
        sources.write_text("".join(f"-10 0 0 1 {float(w * 1e-10)!r}\n" for w in waves))
        exp = tb.Experiment.from_args([*BASE.split(), "-sourcefile", str(sources)])
        exp.set("crystal.misset_deg", shot["misset_deg"])
        exp.set("crystal.n_cells", shot["N"])
        with torch.no_grad():
            reference = exp.render().to(torch.float32).numpy()
        np.testing.assert_allclose(shot["image"], reference, rtol=1e-6,
                                   atol=1e-6 * reference.max())
    a, b = shots
    assert not np.array_equal(a["spectrum_intensity"], b["spectrum_intensity"])  # SASE
    again = render_shot(spec, 0)
    assert np.array_equal(again["spectrum_intensity"], a["spectrum_intensity"])
    smooth = parse_spec(f'base = "{BASE}"' + SHOTS + SPECTRUM.replace("sase", "gaussian"))
    g0, g1 = render_shot(smooth, 0), render_shot(smooth, 1)
    assert np.array_equal(g0["source_wavelength_A"], g1["source_wavelength_A"])


def test_spectrum_truth_in_the_file(tmp_path):
    path = write_spec(tmp_path, f'base = "{BASE}"' + SHOTS + SPECTRUM)
    out = tmp_path / "s.h5"
    assert main([str(path), "--out", str(out), "--workers", "1"]) == 0
    with h5py.File(out) as f:
        truth = f["entry/truth"]
        assert truth["spectrum_intensity"].shape == (3, 256)
        assert truth["source_wavelength_A"].shape == (3, 8)
        assert np.all(truth["done"][()])
        assert np.all(np.isfinite(truth["spectrum_wavelength_A"][()]))


# -- bad specs -------------------------------------------------------------------------------

BAD = {
    'geometry = "absent.geom"': "geometry names a missing file 'absent.geom'",
    'geometry = "x.txt"': "neither a CrystFEL .geom file nor a DIALS experiment list",
    'geometry = {file = "mixed.geom", size = 2}': "unknown key 'geometry.size'",
    'geometry = {file = "h.geom", clen_mm = -1}': "geometry.clen_mm must be > 0",
    'geometry = "broken.geom"': r"geometry: .*broken.geom.*line 1",
}


@pytest.mark.parametrize("line", list(BAD))
def test_bad_geometry_is_one_line(tmp_path, line):
    (tmp_path / "x.txt").write_text("")
    (tmp_path / "broken.geom").write_text("no equals sign\n")
    config = base_config()
    (tmp_path / "h.geom").write_text(geom_text(split_detector(config, slow_parts=2)))
    whole = single_panel(config)
    small = Panel("small", 8, 8, 0.2, whole.origin_mm, whole.fast, whole.slow)
    (tmp_path / "mixed.geom").write_text(geom_text(MultiPanelDetector((whole, small))))
    with pytest.raises(SpecError, match=BAD[line]):
        parse_spec(f'base = "{BASE}"\n{line}' + SHOTS, str(tmp_path))


BAD_SPECTRA = {
    'model = "flat"': 'vary.spectrum.model must be "sase" or "gaussian"',
    'model = "sase"\nbandwidth_percent = 1\nsources = 0':
        "vary.spectrum.sources must be an integer >= 1",
    'model = "sase"': "vary.spectrum needs 'bandwidth_percent'",
    'model = "gaussian"\nbandwidth_percent = 1\nspike_fwhm_percent = 0.1':
        "applies to the sase model only",
    'model = "sase"\nbandwidth_percent = 1\nspike_fwhm_percent = 0.001':
        "spans fewer than 3 of the 512 bins",
    'model = "sase"\nbandwidth_percent = 30': "must be below 25",
    'model = "sase"\nbandwidth_percent = 1\ncolour = 2': "unknown key 'vary.spectrum.colour'",
}


@pytest.mark.parametrize("body", list(BAD_SPECTRA))
def test_bad_spectrum_is_one_line(body):
    with pytest.raises(SpecError, match=BAD_SPECTRA[body]):
        parse_spec(f'base = "{BASE}"' + SHOTS + "[vary.spectrum]\n" + body + "\n")


def test_spectrum_needs_the_sources_to_itself():
    with pytest.raises(SpecError, match="remove -dispersion, -dispsteps from base"):
        parse_spec(f'base = "{BASE} -dispersion 1 -dispsteps 3"' + SHOTS + SPECTRUM)


def test_problems_found_when_the_experiment_is_built_are_one_line(tmp_path, capsys):
    whole = single_panel(base_config())
    edge = Panel("edge", 8, 8, 0.2, (50.0, 1.0, 1.0), (1.0, 0.0, 0.0), whole.slow)
    (tmp_path / "edge.geom").write_text(geom_text(MultiPanelDetector((edge,))))
    (tmp_path / "q.expt").write_text(expt_text(split_detector(base_config(), 2, 2)))
    cases = {
        f'base = "{BASE}"\ngeometry = "edge.geom"': "panel edge is edge-on to the beam",
        f'base = "-curved_det {BASE}"': "-curved_det is not supported in datasets",
        f'base = "{BASE}"\ngeometry = {{file = "q.expt", clen_mm = 5}}':
            "geometry.clen_mm applies to a CrystFEL .geom file",
        f'base = "{BASE}"' + SHOTS.replace("[vary]", "[vary.spectrum]\nmodel = \"gaussian\"\n"
                                           "bandwidth_percent = 1\nbins = 100000\n[vary]"):
            "vary.spectrum.bins must be at most 65536",
    }
    for k, (text, message) in enumerate(cases.items()):
        body = text if "[vary" in text else text + SHOTS
        path = write_spec(tmp_path, body, f"s{k}.toml")
        out = tmp_path / f"o{k}.h5"
        assert main([str(path), "--out", str(out), "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not out.exists()
    # warnings about the base: one line each, from the client only
    path = write_spec(tmp_path, f'base = "{BASE} -curved_det"' + SHOTS, "warn.toml")
    assert main([str(path), "--out", str(tmp_path / "warn.h5"), "--workers", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("torchbragg-dataset: warning: base: WARNING: -curved_det is the last "
                      "argument; nanoBragg ignores it there, and so does this run")
    assert sum("curved_det" in line for line in err) == 1


def test_the_sfx_example_runs():
    """examples/sfx: four panels, SASE spectra, a water jet, a noisy detector."""
    from pathlib import Path

    spec = load_spec(Path(__file__).parent.parent / "examples" / "sfx" / "spec.toml")
    shot = render_shot(spec, 0)
    image = shot["image"]
    assert image.shape == (4 * 192, 192) and spec.shots == 50
    assert shot["source_wavelength_A"].shape == (8,) and 0.05 >= shot["thickness_mm"] >= 0.02
    background = float(np.median(image))
    assert background > 10.0 and float(image.max()) > background + 100.0  # spots on water


def test_resume_needs_the_same_panel_places(tmp_path, capsys):
    from torchbragg.dataset.run import DatasetError, run_dataset

    halves = split_detector(base_config(), slow_parts=2)
    geom = tmp_path / "h.geom"
    geom.write_text(geom_text(halves))
    path = write_spec(tmp_path, f'base = "{BASE}"\ngeometry = "h.geom"' + SHOTS)
    out = tmp_path / "h.h5"
    run_dataset(load_spec(path), out, workers=1, max_shots=1, progress=None)
    geom.write_text(geom_text(halves, places=[(16, 0), (0, 0)]))  # the halves swapped
    with pytest.raises(DatasetError, match=r"another layout \(panel s0f0 placed elsewhere\)"):
        run_dataset(load_spec(path), out, resume=True, progress=None)
    geom.write_text(geom_text(halves))
    assert main([str(path), "--out", str(out), "--resume", "--workers", "1"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "torchbragg-dataset: 2/3 shots"  # after the earlier run's shot
    assert lines[-1].startswith("torchbragg-dataset: 3/3 shots  ")


def test_an_absurd_data_layout_is_one_line(tmp_path, capsys):
    whole = single_panel(base_config())
    far = Panel("far", 8, 8, 0.2, whole.origin_mm, whole.fast, whole.slow)
    (tmp_path / "far.geom").write_text(
        geom_text(MultiPanelDetector((whole, far)), places=[(0, 0), (0, 100_000_000)]))
    path = write_spec(tmp_path, f'base = "{BASE}"\ngeometry = "far.geom"' + SHOTS)
    assert main([str(path), "--out", str(tmp_path / "far.h5"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "make a 32 x 100000008 image per shot" in err and err.count("\n") == 1
    assert not (tmp_path / "far.h5").exists()


@pytest.mark.parametrize("geometry", ["", 'geometry = "lr.geom"'])
def test_the_written_geometry_describes_the_images(tmp_path, geometry):
    """--geom: read back, its panels are the dataset's, at the places of their pixels."""
    from torchbragg.dataset.run import _setup
    from torchbragg.panels import read_crystfel_geom

    whole = single_panel(base_config())
    o, f, s = (np.asarray(v) for v in (whole.origin_mm, whole.fast, whole.slow))
    left = Panel("left", 16, 32, 0.2, tuple(o), whole.fast, whole.slow)
    right = Panel("right", 8, 20, 0.2, tuple(o + 3.2 * f + 1.0 * s), whole.fast, whole.slow)
    (tmp_path / "lr.geom").write_text(geom_text(MultiPanelDetector((left, right)),
                                                places=[(0, 0), (4, 20)]))
    text = f'base = "{BASE} -detector_rotx 2"\n{geometry}' + SHOTS
    path = write_spec(tmp_path, text)
    out, geom = tmp_path / "g.h5", tmp_path / "g.geom"
    assert main([str(path), "--out", str(out), "--workers", "1", "--geom", str(geom)]) == 0
    written = read_crystfel_geom(geom)
    spec = load_spec(path)
    setup = _setup(spec, "cpu", None)
    assert written.photon_energy_eV == pytest.approx(12398.419843320026)
    with h5py.File(out) as handle:
        data = handle["entry/data/data"][()]
    for mine, theirs in zip(setup.panels, written, strict=True):
        np.testing.assert_allclose(theirs.origin_mm, mine.origin_mm, atol=1e-9)
        np.testing.assert_allclose(theirs.fast, mine.fast, atol=1e-12)
        ss, fs = theirs.data_origin
        render_shot(spec, 1)  # the worker's experiment at shot 1
        with torch.no_grad():
            image = (setup.renderer()[mine.name] if setup.renderer is not None
                     else setup.experiment.render()).to(torch.float32).numpy()
        np.testing.assert_array_equal(data[1, ss:ss + theirs.spixels, fs:fs + theirs.fpixels],
                                      image)
    assert "dim0 = %" in geom.read_text() and "data = /entry/data/data" in geom.read_text()
    assert main([str(path), "--out", str(tmp_path / "h.h5"), "--workers", "1", "--geom",
                 str(tmp_path / "no" / "g.geom")]) == 2
    assert not (tmp_path / "h.h5").exists()


def test_the_documented_spec_is_valid(tmp_path):
    """docs/dataset.md's example spec parses (with its files in place) and draws a shot."""
    import re
    import shutil
    from pathlib import Path

    root = Path(__file__).parent.parent
    doc = (root / "docs" / "dataset.md").read_text()
    text = re.search(r"```toml\n(.*?)```", doc, flags=re.S).group(1)
    inputs = root / "tests" / "data" / "golden" / "inputs"
    for name in ("A.mat", "scaled.hkl", "water.stol"):
        shutil.copy(inputs / name, tmp_path / name)
    shutil.copy(root / "examples" / "sfx" / "quad.geom", tmp_path / "jungfrau4m.geom")
    spec = parse_spec(text, str(tmp_path))
    assert spec.shots == 1000 and spec.geometry is not None and spec.spectrum is not None
    draws = shot_draws(spec, 0)
    assert {"rotation", "N", "mosaic_spread_deg", "fluence", "wavelength_A"} <= set(draws)
