"""Orientation helpers (torchbragg.orientation) and the torchbragg-orient command."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchbragg import Experiment
from torchbragg import orientation as o
from torchbragg.cli.orient import main
from torchbragg.io.mosflm import read_mosflm_matrix, reciprocal_vectors_from_mosflm
from torchbragg.lattice import real_and_reciprocal, reciprocal_from_cell
from torchbragg.rng import misset_rotation_matrix

CELL = (70.0, 80.0, 90.0, 75.0, 85.0, 95.0)
MISSET = (10.0, -20.0, 30.0)
REST = "-default_F 10 -lambda 1 -N 5 -distance 100 -pixel 0.1 -detpixels 48"
N_SAMPLES = 20000
# sqrt(n) * KS statistic: P(> 1.95) ~ 2 exp(-2 * 1.95^2) = 1e-3 for a correct sampler (the
# asymptotic Kolmogorov tail). The seed is fixed, so the test is deterministic; a sampler
# with uniform Euler angles scores about 4.9 here (see test_uniform_euler_angles_fail).
KS_LIMIT = 1.95


def _ks_sqrt_n(samples: np.ndarray, cdf) -> float:
    """sqrt(n) times the Kolmogorov-Smirnov statistic of ``samples`` against ``cdf``."""
    x = np.sort(samples)
    n = x.size
    f = cdf(x)
    i = np.arange(1, n + 1)
    return float(max((i / n - f).max(), (f - (i - 1) / n).max()) * math.sqrt(n))


def _haar_angle_cdf(t):
    return (t - np.sin(t)) / np.pi


# --- conventions -----------------------------------------------------------------------------


def _cell_path(cell):
    """Real (columns a, b, c, Å) and reciprocal vectors the -cell path ends with, no misset."""
    t = torch.tensor([*cell[:3], *(x / o.RTD for x in cell[3:])], dtype=torch.float64)
    start, volume = reciprocal_from_cell(t)
    real, recip = real_and_reciprocal(start, None, t, volume)
    return start.numpy().T, real.numpy().T, recip.numpy().T


def _angles(vectors):
    """Angles (degrees) between columns 1-2, 0-2, 0-1 of ``vectors``."""
    unit = vectors / np.linalg.norm(vectors, axis=0)
    return np.degrees(np.arccos([unit[:, 1] @ unit[:, 2], unit[:, 0] @ unit[:, 2],
                                 unit[:, 0] @ unit[:, 1]]))


def test_b_matrix_is_the_cell_path():
    start, real, _ = _cell_path(CELL)
    assert np.array_equal(o._nanobragg_start(CELL), start)  # nanoBragg's formulae
    b = o.b_matrix(CELL)
    assert np.allclose(np.tril(b, -1), 0.0, atol=0) and (np.diag(b) > 0).all()
    # the real axes -cell ends with are the dual basis of B
    assert np.allclose(np.linalg.inv(b).T, real, rtol=0, atol=1e-13)
    assert np.allclose(np.linalg.norm(real, axis=0), CELL[:3], rtol=1e-14)
    # ... whose angles are not quite those given (nanoBragg's c* z component)
    assert np.abs(_angles(real) - CELL[3:]).max() > 0.01


def test_exact_b_matrix():
    b = o.b_matrix(CELL, exact=True)
    real = np.linalg.inv(b).T
    assert np.allclose(np.tril(b, -1), 0.0, atol=0) and (np.diag(b) > 0).all()
    assert np.allclose(np.linalg.norm(real, axis=0), CELL[:3], rtol=1e-14)
    assert np.allclose(_angles(real), CELL[3:], rtol=0, atol=1e-11)
    for cell in [(70, 80, 90, 90, 90, 120), (50, 60, 70, 90, 90, 80), (40, 50, 60, 90, 100, 90)]:
        assert np.allclose(o.b_matrix(cell), o.b_matrix(cell, exact=True), rtol=1e-14, atol=0)
        assert np.allclose(np.linalg.inv(o.b_matrix(cell)).T, _cell_path(cell)[1], atol=1e-13)


def test_misset_matrix_is_the_c_rotation():
    expected = misset_rotation_matrix(np.array(MISSET) / o.RTD)
    assert np.array_equal(o.misset_matrix(MISSET), expected)


def test_a_matrix_layout_and_wavelength():
    a = o.a_matrix(CELL, misset_deg=MISSET, wavelength_A=1.5)
    vectors = reciprocal_vectors_from_mosflm(a, wavelength_A=1.5)
    expected = o.misset_matrix(MISSET) @ o.b_matrix(CELL)
    for column, vector in enumerate(vectors):
        assert np.allclose(vector, expected[:, column], rtol=1e-14, atol=0)
    ub = expected
    assert np.allclose(o.a_matrix(UB=ub, wavelength_A=1.5), a, rtol=0, atol=1e-17)
    assert np.allclose(o.a_matrix(CELL, U=o.misset_matrix(MISSET), wavelength_A=1.5), a,
                       rtol=0, atol=1e-17)


def test_a_matrix_bad_input():
    with pytest.raises(ValueError, match="6 numbers"):
        o.a_matrix(CELL[:4])
    with pytest.raises(ValueError, match="singular"):
        o.a_matrix(CELL, U=np.diag([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="reflection"):
        o.a_matrix(CELL, U=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="orthonormal"):
        o.a_matrix(CELL, U=np.diag([1.0, 1.1, 1.0]))
    with pytest.raises(ValueError, match="not both"):
        o.a_matrix(CELL, UB=np.eye(3) * 0.01)
    with pytest.raises(ValueError, match="singular"):
        o.a_matrix(UB=np.ones((3, 3)))
    with pytest.raises(ValueError, match="wavelength"):
        o.a_matrix(CELL, wavelength_A=0.0)
    with pytest.raises(ValueError, match="impossible"):
        o.b_matrix((10, 10, 10, 100, 100, 170))


# --- the -mat path renders what the -cell path renders ---------------------------------------


@pytest.mark.parametrize("cell", [CELL, (40.0, 40.0, 40.0, 60.0, 60.0, 60.0),
                                  (50.0, 60.0, 70.0, 90.0, 110.0, 90.0)])
def test_matrix_path_renders_as_cell_path(tmp_path, cell):
    path = tmp_path / "orient.mat"
    o.write_mosflm_matrix(path, o.a_matrix(cell, misset_deg=MISSET, wavelength_A=1.0), cell)
    cell_args = "-cell " + " ".join(f"{x:g}" for x in cell) + " -misset " + " ".join(
        f"{x:g}" for x in MISSET)
    by_cell = Experiment.from_args(f"{cell_args} {REST}", kernel="reference").render()
    by_mat = Experiment.from_args(f"-mat {path} {REST}", kernel="reference").render()
    assert float(by_cell.max()) > 0
    scale = float(by_cell.abs().max())
    assert float((by_cell - by_mat).abs().max()) <= 1e-9 * scale


def test_matrix_at_another_wavelength_renders_as_cell_path(tmp_path):
    path = tmp_path / "orient.mat"
    rest = REST.replace("-lambda 1", "-lambda 1.3")
    o.write_mosflm_matrix(path, o.a_matrix(CELL, misset_deg=MISSET, wavelength_A=1.3))
    by_cell = Experiment.from_args(
        "-cell 70 80 90 75 85 95 -misset 10 -20 30 " + rest, kernel="reference").render()
    by_mat = Experiment.from_args(f"-mat {path} {rest}", kernel="reference").render()
    assert float((by_cell - by_mat).abs().max()) <= 1e-9 * float(by_cell.abs().max())


def test_exact_cell_matrix_is_another_crystal(tmp_path):
    """The exact triclinic cell renders differently from what -cell makes of it."""
    path = tmp_path / "exact.mat"
    a = o.a_matrix(CELL, misset_deg=MISSET, exact_cell=True)
    o.write_mosflm_matrix(path, a, CELL)  # the cell check takes either B
    by_cell = Experiment.from_args(
        "-cell 70 80 90 75 85 95 -misset 10 -20 30 " + REST, kernel="reference").render()
    by_mat = Experiment.from_args(f"-mat {path} {REST}", kernel="reference").render()
    assert float((by_cell - by_mat).abs().max()) > 1e-4 * float(by_cell.abs().max())


def test_matrix_file_reads_back_exactly(tmp_path):
    path = tmp_path / "m.mat"
    for u in o.random_rotations(5, seed=11):
        a = o.a_matrix(CELL, U=u, wavelength_A=0.97)
        o.write_mosflm_matrix(path, a, CELL)
        assert np.array_equal(read_mosflm_matrix(path), a)
    lines = path.read_text().splitlines()
    assert len(lines) == 9
    assert np.allclose(np.loadtxt(lines[4:7]), o.u_matrix(a), atol=1e-8)
    assert np.allclose(np.loadtxt(lines[7:8]), CELL)


def test_write_rejects_a_cell_that_does_not_match(tmp_path):
    a = o.a_matrix(CELL, misset_deg=MISSET)
    with pytest.raises(ValueError, match="does not match"):
        o.write_mosflm_matrix(tmp_path / "m.mat", a, (70, 80, 91, 75, 85, 95))
    assert not (tmp_path / "m.mat").exists()


# --- misset angles ---------------------------------------------------------------------------


def test_misset_angles_round_trip():
    for u in o.random_rotations(200, seed=3):
        angles = o.misset_angles(u)
        assert -90 <= angles[1] <= 90 and (np.abs(angles) <= 180).all()
        assert np.allclose(o.a_matrix(CELL, misset_deg=angles), o.a_matrix(CELL, U=u),
                           rtol=0, atol=1e-15)
    assert np.allclose(o.misset_angles(o.misset_matrix(MISSET)), MISSET, atol=1e-12)


@pytest.mark.parametrize("ry", [90.0, -90.0])
def test_misset_angles_gimbal_lock(ry):
    u = o.misset_matrix((10.0, ry, 30.0))
    assert np.allclose(o.misset_matrix(o.misset_angles(u)), u, atol=1e-14)


# --- random rotations ------------------------------------------------------------------------


@pytest.mark.parametrize("spread", [None, 5.0])
def test_random_rotations_are_rotations_and_seeded(spread):
    r = o.random_rotations(500, seed=7, spread_deg=spread)
    assert r.shape == (500, 3, 3)
    assert np.allclose(np.einsum("nji,njk->nik", r, r), np.eye(3), atol=1e-13)
    assert np.allclose(np.linalg.det(r), 1.0, atol=1e-13)
    assert np.array_equal(r, o.random_rotations(500, seed=7, spread_deg=spread))
    assert not np.allclose(r, o.random_rotations(500, seed=8, spread_deg=spread))


def test_random_rotations_are_uniform():
    r = o.random_rotations(N_SAMPLES, seed=2024)
    assert _ks_sqrt_n(o.rotation_angles(r), _haar_angle_cdf) < KS_LIMIT
    z = r[:, :, 2]  # the rotated z axis, uniform on the sphere:
    # mean 0 (each component's standard error 1/sqrt(3n) = 0.004: limit 5 of them), second
    # moments I/3 (standard errors 0.0021 on the diagonal, 0.0018 off it: limit 0.011)
    assert np.abs(z.mean(axis=0)).max() < 5 / math.sqrt(3 * N_SAMPLES)
    assert np.abs(z.T @ z / N_SAMPLES - np.eye(3) / 3).max() < 0.011


def test_uniform_euler_angles_fail():
    """The check above has power: uniform misset angles are not uniform rotations."""
    angles = np.random.default_rng(0).uniform(-180, 180, (N_SAMPLES, 3))
    r = np.array([o.misset_matrix(a) for a in angles])
    assert _ks_sqrt_n(o.rotation_angles(r), _haar_angle_cdf) > 2 * KS_LIMIT


def test_random_rotations_with_spread():
    spread = 20.0
    s = spread / o.RTD
    r = o.random_rotations(N_SAMPLES, seed=5, spread_deg=spread)
    t = o.rotation_angles(r)
    assert t.max() <= s + 1e-12
    assert _ks_sqrt_n(t, lambda x: (x - np.sin(x)) / (s - math.sin(s))) < KS_LIMIT
    axes = np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]],
                    axis=1)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    assert np.abs(axes.mean(axis=0)).max() < 5 / math.sqrt(3 * N_SAMPLES)
    assert np.allclose(o.random_rotations(3, seed=1, spread_deg=0.0), np.eye(3))
    with pytest.raises(ValueError, match="spread"):
        o.random_rotations(3, seed=1, spread_deg=181.0)


# --- the command -----------------------------------------------------------------------------


def test_command_writes_matrix_files(tmp_path, capsys):
    prefix = tmp_path / "xtal"
    cell = [str(x) for x in CELL]
    assert main(["--cell", *cell, "--wavelength", "1.2", "--random", "3", "--seed", "9",
                 "--out", str(prefix)]) == 0
    expected = [o.a_matrix(CELL, U=u, wavelength_A=1.2) for u in o.random_rotations(3, 9)]
    for i, a in enumerate(expected, start=1):
        assert np.array_equal(read_mosflm_matrix(f"{prefix}_{i:04d}.mat"), a)
    assert not (tmp_path / "xtal_0004.mat").exists()
    assert "wrote 3 matrix files" in capsys.readouterr().out
    assert main(["--cell", *cell, "--misset", "-1e-3", "-20", "30", "--out", str(prefix)]) == 0
    a = o.a_matrix(CELL, misset_deg=(-1e-3, -20, 30))
    assert np.array_equal(read_mosflm_matrix(f"{prefix}_0001.mat"), a)


def test_command_umatrix_and_ub(tmp_path, capsys):
    u = o.misset_matrix(MISSET)
    cell = [str(x) for x in CELL]
    numbers = [repr(float(x)) for x in u.ravel()]
    assert main(["--cell", *cell, "--umatrix", *numbers, "--out", str(tmp_path / "u")]) == 0
    ub = [repr(float(x)) for x in (u @ o.b_matrix(CELL)).ravel()]
    assert main(["--ub", *ub, "--out", str(tmp_path / "ub")]) == 0
    capsys.readouterr()
    a = o.a_matrix(CELL, misset_deg=MISSET)
    assert np.allclose(read_mosflm_matrix(tmp_path / "u_0001.mat"), a, rtol=0, atol=1e-16)
    assert np.allclose(read_mosflm_matrix(tmp_path / "ub_0001.mat"), a, rtol=0, atol=1e-16)
    assert main(["--cell", *cell, "--misset", *map(str, MISSET)]) == 0  # file on stdout
    assert np.allclose(np.loadtxt(capsys.readouterr().out.splitlines()[:3]), a, atol=1e-17)


def test_command_misset_only(capsys):
    cell = [str(x) for x in CELL]
    assert main(["--cell", *cell, "--random", "4", "--seed", "3", "--misset-only"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    angles = np.loadtxt(out.splitlines())
    assert angles.shape == (4, 3)
    for line, u in zip(angles, o.random_rotations(4, 3), strict=True):
        assert np.allclose(o.misset_matrix(line), u, atol=1e-10)
    assert main(["--cell", *cell, "--misset", "10", "-20", "30", "--misset-only"]) == 0
    assert np.allclose(np.loadtxt(capsys.readouterr().out.splitlines()), MISSET)


@pytest.mark.parametrize("args", [
    ["--cell", "70", "80", "90", "75", "--misset", "1", "2", "3"],
    ["--cell", *"70 80 90 75 85 95".split(), "--umatrix", *"1 0 0 0 1 0 0 0 0".split()],
    ["--cell", *"70 80 90 75 85 95".split(), "--misset", "1", "2", "x"],
    ["--cell", *"70 80 90 75 85 195".split(), "--random", "2", "--out", "never"],
    ["--cell", *"70 80 90 75 85 95".split(), "--random", "2"],
    ["--cell", *"70 80 90 75 85 95".split(), "--misset", "1", "2", "3", "--seed", "4"],
    ["--cell", *"70 80 90 75 85 95".split(), "--random", "2", "--spread", "-1",
     "--misset-only"],
    ["--misset", "1", "2", "3"],
    ["--cell", *"70 80 90 75 85 95".split(), "--misset", "1", "2", "3", "--wavelength", "nan"],
])
def test_command_bad_input(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("torchbragg-orient: error: ")
    assert list(tmp_path.iterdir()) == []


def test_command_unwritable_output(tmp_path, capsys):
    cell = [str(x) for x in CELL]
    assert main(["--cell", *cell, "--misset", "1", "2", "3", "--out",
                 str(tmp_path / "missing" / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err
