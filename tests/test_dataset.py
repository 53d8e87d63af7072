"""torchbragg-dataset: deterministic shots on Dask, resume, a killed worker, bad specs."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("distributed")
hdf5plugin = pytest.importorskip("hdf5plugin")

from torchbragg.cli.dataset import main  # noqa: E402
from torchbragg.dataset.layout import write_shot  # noqa: E402
from torchbragg.dataset.run import run_dataset  # noqa: E402
from torchbragg.dataset.spec import SpecError, load_spec, parse_spec, shot_draws  # noqa: E402

BASE = "-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -distance 100 -pixel 0.2 -detpixels 32"
SPEC = f"""
base = "{BASE}"
shots = 6
seed = 7
[vary]
orientation = "random"
N = {{distribution = "uniform", low = 4, high = 6}}
fluence = {{distribution = "normal", mean = 1e24, sigma = 1e22}}
"""


def _contents(path) -> dict:
    with h5py.File(path, "r") as f:
        out = {"data": f["entry/data/data"][()], "spec": f["entry"].attrs["dataset_spec"]}
        for name, value in f["entry/truth"].items():
            out[name] = value[()]
    return out


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def reference(spec_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "one.h5"
    assert main([str(spec_path), "--out", str(out), "--workers", "1"]) == 0
    return _contents(out)


def test_two_workers_match_one(spec_path, reference, tmp_path, capsys):
    out = tmp_path / "two.h5"
    assert main([str(spec_path), "--out", str(out), "--workers", "2"]) == 0
    assert "shots/s per worker" in capsys.readouterr().err
    two = _contents(out)
    assert _same(two, reference)
    assert two["done"].all() and two["data"].shape == (6, 32, 32)
    assert np.all((two["N"] >= 4) & (two["N"] <= 6))
    assert len({tuple(m) for m in np.round(two["misset_deg"], 6)}) == 6
    assert np.all(two["data"].reshape(6, -1).sum(axis=1) > 0)


def test_resume_finishes_an_interrupted_run(spec_path, reference, tmp_path):
    out = tmp_path / "part.h5"
    spec = load_spec(spec_path)
    assert run_dataset(spec, out, workers=1, max_shots=3, progress=None) == 3
    assert _contents(out)["done"].sum() == 3
    assert main([str(spec_path), "--out", str(out), "--workers", "1", "--resume"]) == 0
    assert _same(_contents(out), reference)
    assert run_dataset(spec, out, resume=True, progress=None) == 0  # nothing left


def test_killed_worker_reruns_its_shot_once(spec_path, reference, tmp_path):
    out = tmp_path / "killed.h5"
    marker = tmp_path / "killed-once"
    written = run_dataset(load_spec(spec_path), out, workers=2, crash_once=(2, str(marker)),
                          progress=None)
    assert marker.exists() and written == 6
    assert _same(_contents(out), reference)


def test_a_second_result_for_a_shot_is_dropped(spec_path, tmp_path):
    out = tmp_path / "one-shot.h5"
    spec = load_spec(spec_path)
    run_dataset(spec, out, workers=1, max_shots=1, progress=None)
    with h5py.File(out, "r+") as f:
        first = f["entry/data/data"][0].copy()
        again = {"index": 0, "image": np.ones((32, 32), np.float32), "a_matrix": np.eye(3),
                 "misset_deg": np.zeros(3), "N": np.ones(3), "mosaic_spread_deg": 0.0,
                 "fluence": 1.0, "wavelength_A": 1.0}
        assert not write_shot(f, again)
        assert np.array_equal(f["entry/data/data"][0], first)


def test_draws_depend_on_seed_and_index_only(spec_path):
    spec = load_spec(spec_path)
    bigger = parse_spec(SPEC.replace("shots = 6", "shots = 600"))
    for i in (0, 5):
        a, b = shot_draws(spec, i), shot_draws(bigger, i)
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(shot_draws(spec, 0)["N"], shot_draws(spec, 1)["N"])


BAD = {
    "unknown key": ("shots = 6", "shots = 6\ncolour = 1", "unknown key 'colour'"),
    "unknown vary key": ("[vary]", "[vary]\nsize = 3", "unknown key 'vary.size'"),
    "low > high": ("low = 4, high = 6", "low = 6, high = 4", "vary.N: low 6 > high 4"),
    "negative sigma": ("sigma = 1e22", "sigma = -1", "vary.fluence: negative sigma"),
    "no shots": ("shots = 6", "shots = 0", "shots must be an integer >= 1"),
    "malformed": ("shots = 6", "shots = = 6", "malformed TOML"),
    "missing file": ("-default_F 10", "-hkl nowhere.hkl", "-hkl names a missing file"),
    "distribution": ('"uniform"', '"poisson"', "vary.N.distribution must be one of"),
    "mosaic": ("[vary]", "[vary]\nmosaic_spread_deg = 0.1", "needs mosaic domains in base"),
    "compression": ("seed = 7", 'seed = 7\n[output]\ncompression = "zip"',
                    "output.compression must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_is_one_line(case, tmp_path, capsys):
    old, new, words = BAD[case]
    assert old in SPEC
    path = tmp_path / "bad.toml"
    path.write_text(SPEC.replace(old, new, 1))
    _refused_in_one_line(path, words, tmp_path, capsys)


def _refused_in_one_line(path, words: str, tmp_path, capsys) -> None:
    """The spec at ``path`` is a SpecError and, from the command, one line and no file."""
    with pytest.raises(SpecError):
        load_spec(path)
    assert main([str(path), "--out", str(tmp_path / "x.h5"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("torchbragg-dataset: error: ")
    assert words in err
    assert not (tmp_path / "x.h5").exists()


def test_bad_runs_are_one_line(spec_path, tmp_path, capsys):
    missing = str(tmp_path / "absent.h5")
    assert main([str(spec_path), "--out", missing, "--resume"]) == 2
    existing = tmp_path / "there.h5"
    existing.write_bytes(b"")
    assert main([str(spec_path), "--out", str(existing)]) == 2
    assert main([str(tmp_path / "nope.toml"), "--out", missing]) == 2
    assert main([str(spec_path), "--out", missing, "--workers", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(x.startswith("torchbragg-dataset: error: ") for x in lines)


def test_a_failed_shot_is_one_line():
    from torchbragg.dataset.run import DatasetError, _result

    class Failed:
        key = "torchbragg-shot-4-1-2"

        def result(self):
            raise RuntimeError("out of memory\nmore")

    with pytest.raises(DatasetError, match=r"^shot 4 failed: RuntimeError: out of memory\\n"):
        _result(Failed())


def test_cuda_without_cuda_is_one_line(spec_path, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "cuda.h5"
    assert main([str(spec_path), "--out", str(out), "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not out.exists()


def test_scheduler_address(spec_path, reference, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "sched.h5"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        assert main([str(spec_path), "--out", str(out), "--scheduler",
                     cluster.scheduler_address]) == 0
    assert _same(_contents(out), reference)


# -- [background] and [detector] -------------------------------------------------------------

WATER = Path(__file__).parent / "data" / "golden" / "inputs" / "water.stol"
EFFECTS = SPEC.replace("shots = 6", "shots = 4") + """
[background]
stol = "water.stol"
thickness_mm = {distribution = "uniform", low = 0.05, high = 0.2}
width_mm = 0.2
[detector]
psf = "gauss"
psf_fwhm_px = 1.0
psf_radius = 3
gain = 2.0
readout = 1.5
flicker = 0.02
noise = true
"""


def _effects_path(folder, text: str = EFFECTS):
    shutil.copy(WATER, folder / "water.stol")
    path = folder / "effects.toml"
    path.write_text(text)
    return path


def test_effects_are_the_same_with_one_and_two_workers(tmp_path):
    path = _effects_path(tmp_path)
    files = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.h5"
        assert main([str(path), "--out", str(out), "--workers", workers]) == 0
        files.append(_contents(out))
    one, two = files
    assert _same(one, two)
    assert np.all((one["thickness_mm"] >= 0.05) & (one["thickness_mm"] <= 0.2))
    assert len(set(one["noise_seed"].tolist())) == 4 and np.all(one["noise_seed"] >= 0)
    assert one["calibration_seed"].shape == ()
    spec = load_spec(path)
    noisy = np.random.SeedSequence([7, 3, 2]).generate_state(1, np.uint64)[0] >> 1
    assert one["noise_seed"][3] == noisy
    from torchbragg.dataset.run import render_shot

    quiet = render_shot(parse_spec(EFFECTS.replace("noise = true", "noise = false"),
                                   str(tmp_path)), 0)
    assert "noise_seed" not in quiet and quiet["thickness_mm"] == one["thickness_mm"][0]
    assert not np.array_equal(quiet["image"], one["data"][0])  # the noise is there
    assert np.allclose(quiet["image"], one["data"][0], rtol=0.2)
    import torch

    for state in (0, 12345):  # torch's global generator does not enter
        torch.manual_seed(state)
        assert np.array_equal(render_shot(spec, 1)["image"], one["data"][1])
    with h5py.File(tmp_path / "w1.h5", "r") as f:
        assert f["entry/data/data"].attrs["units"] == "ADU"
    # the thickness is drawn after the existing values, which stay as they were
    plain = parse_spec(SPEC)
    for i in range(4):
        a, b = shot_draws(spec, i), shot_draws(plain, i)
        assert all(np.array_equal(a[k], b[k]) for k in b)
        assert a["thickness_mm"] == one["thickness_mm"][i]


def test_background_raises_every_pixel(tmp_path):
    from torchbragg.dataset.run import render_shot

    text = SPEC + """
[background]
stol = "water.stol"
[detector]
gain = 1.0
adc_offset = 0.0
noise = false
"""
    spec = load_spec(_effects_path(tmp_path, text))
    plain = parse_spec(SPEC)
    for i in (0, 1):
        bragg, total = render_shot(plain, i)["image"], render_shot(spec, i)["image"]
        assert np.all(total > bragg)
        shot = render_shot(spec, i)
        assert shot["thickness_mm"] == 0.1 and "noise_seed" not in shot


BAD_EFFECTS = {
    "unknown background key": ('width_mm = 0.2', 'width_mm = 0.2\ncolour = 1',
                               "unknown key 'background.colour'"),
    "unknown detector key": ("noise = true", "noise = true\nbits = 16",
                             "unknown key 'detector.bits'"),
    "negative width": ("width_mm = 0.2", "width_mm = -0.2", "background.width_mm must be >= 0"),
    "negative thickness": ('{distribution = "uniform", low = 0.05, high = 0.2}', "-0.1",
                           "background.thickness_mm must be >= 0 mm"),
    "thickness low > high": ("low = 0.05, high = 0.2", "low = 0.3, high = 0.2",
                             "background.thickness_mm: low 0.3 > high 0.2"),
    "psf kind": ('psf = "gauss"', 'psf = "lorentz"', "detector.psf must be one of"),
    "missing stol": ('stol = "water.stol"', 'stol = "ice.stol"',
                     "background.stol names a missing file 'ice.stol'"),
    "no stol": ('stol = "water.stol"', "", "background needs 'stol'"),
    "noise not bool": ("noise = true", "noise = 1", "detector.noise must be true or false"),
    "psf radius": ("psf_radius = 3", "psf_radius = 0", "detector.psf_radius must be an integer"),
    "gain": ("gain = 2.0", "gain = 0", "detector.gain must be > 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_EFFECTS))
def test_bad_effects_are_one_line(case, tmp_path, capsys):
    old, new, words = BAD_EFFECTS[case]
    assert old in EFFECTS
    _refused_in_one_line(_effects_path(tmp_path, EFFECTS.replace(old, new, 1)), words,
                         tmp_path, capsys)


def test_progress_is_a_bar_on_a_terminal_and_tenths_in_a_log():
    import io
    import time

    from torchbragg.dataset.run import _progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    log, screen = io.StringIO(), Terminal()
    start = time.perf_counter()
    for done in range(1, 21):
        _progress(done, 20, start, 2, log)
        _progress(done, 20, start, 2, screen)
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("torchbragg-dataset: 20/20 shots")
    assert lines[0].startswith("torchbragg-dataset: 2/20 shots") and "per worker" in lines[0]
    drawn = screen.getvalue().split("\r")[1:]
    assert len(drawn) == 20 and "\n" not in screen.getvalue()
    assert drawn[9].startswith("torchbragg-dataset [##########..........]  50%  10/20 shots")


def test_local_workers_spread_over_the_gpus():
    from torchbragg.dataset.run import worker_device

    assert worker_device("cuda", 5, gpus=4) == "cuda:1"
    assert worker_device("cuda", 0, gpus=4) == "cuda:0"
    assert worker_device("cuda", 3, gpus=1) == "cuda"  # one GPU: the default device
    assert worker_device("cuda", "tcp://node:1234", gpus=4) == "cuda"  # named elsewhere
    assert worker_device("cpu", 3, gpus=4) == "cpu"
    assert worker_device("cuda", gpus=4) == "cuda"  # not inside a Dask worker


def test_resume_refuses_a_file_of_another_layout(spec_path, tmp_path):
    from torchbragg.dataset.run import DatasetError

    out = tmp_path / "old.h5"
    spec = load_spec(spec_path)
    run_dataset(spec, out, workers=1, max_shots=1, progress=None)
    with h5py.File(out, "r+") as f:
        del f["entry/instrument/beam/incident_wavelength"]
    with pytest.raises(DatasetError, match=r"--resume: .*old.h5 was written from another layout "
                       r"\(no entry/instrument/beam/incident_wavelength\)"):
        run_dataset(spec, out, resume=True, progress=None)
    plain = tmp_path / "plain.h5"
    h5py.File(plain, "w").close()
    with pytest.raises(DatasetError, match=r"--resume: .*plain.h5 is not a dataset file"):
        run_dataset(spec, plain, resume=True, progress=None)
