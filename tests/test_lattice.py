"""Unit-cell vectors (torchbragg.lattice) by hand and against the C program's printout."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from torchbragg.cli.parse import parse_args
from torchbragg.lattice import cell_constants, real_and_reciprocal, reciprocal_from_cell
from torchbragg.precedence import resolve

F64 = torch.float64


def cell_tensor(a, b, c, alpha, beta, gamma):
    return torch.tensor([a, b, c, math.radians(alpha), math.radians(beta),
                         math.radians(gamma)], dtype=F64)


TRICLINIC = cell_tensor(70, 80, 90, 75, 85, 95)


def volume_by_metric(a, b, c, alpha, beta, gamma):
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    return a * b * c * math.sqrt(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg)


def test_cubic_cell_gives_scaled_identity():
    recip, volume = reciprocal_from_cell(cell_tensor(100, 100, 100, 90, 90, 90))
    torch.testing.assert_close(recip, torch.eye(3, dtype=F64) * 0.01, rtol=0, atol=1e-17)
    torch.testing.assert_close(volume, torch.tensor(1e6, dtype=F64))
    real, reciprocal = real_and_reciprocal(recip, None, cell_tensor(100, 100, 100, 90, 90, 90),
                                           volume)
    torch.testing.assert_close(real, torch.eye(3, dtype=F64) * 100, rtol=0, atol=1e-12)
    torch.testing.assert_close(reciprocal, torch.eye(3, dtype=F64) * 0.01, rtol=0, atol=1e-17)


def test_orthorhombic_cell_lengths():
    recip, volume = reciprocal_from_cell(cell_tensor(40, 50, 60, 90, 90, 90))
    torch.testing.assert_close(torch.diagonal(recip), torch.tensor([1 / 40, 1 / 50, 1 / 60],
                                                                   dtype=F64))
    torch.testing.assert_close(volume, torch.tensor(40 * 50 * 60.0, dtype=F64))


@pytest.mark.parametrize("cell", [(70, 80, 90, 75, 85, 95), (30, 45, 61, 100, 80, 115),
                                  (50, 50, 120, 90, 90, 120)])
def test_volume_matches_metric_tensor_formula(cell):
    _, volume = reciprocal_from_cell(cell_tensor(*cell))
    assert volume.item() == pytest.approx(volume_by_metric(*cell), rel=1e-13)


def test_default_orientation_has_a_star_along_x_and_b_star_in_xy_plane():
    recip, _ = reciprocal_from_cell(TRICLINIC)
    assert recip[0, 1] == 0 and recip[0, 2] == 0
    assert recip[1, 2] == 0
    assert recip[0, 0] > 0 and recip[1, 1] > 0 and recip[2, 2] > 0


def test_reciprocal_lengths_and_gamma_star_follow_the_cell():
    # |a*| = b c sin(alpha) / V etc.; b* makes angle gamma* with a* (x axis)
    recip, volume = reciprocal_from_cell(TRICLINIC)
    a, b, c = 70.0, 80.0, 90.0
    al, be, ga = (math.radians(x) for x in (75, 85, 95))
    v = volume_by_metric(70, 80, 90, 75, 85, 95)
    assert recip[0].norm().item() == pytest.approx(b * c * math.sin(al) / v, rel=1e-13)
    assert recip[1].norm().item() == pytest.approx(c * a * math.sin(be) / v, rel=1e-13)
    cos_ga_star = (math.cos(al) * math.cos(be) - math.cos(ga)) / (math.sin(al) * math.sin(be))
    assert (recip[1, 0] / recip[1].norm()).item() == pytest.approx(cos_ga_star, rel=1e-13)


def test_real_and_reciprocal_are_metric_duals_without_cell_override():
    # from reciprocal vectors alone: a = (b* x c*) / V*, so a.a* = 1, a.b* = 0, ... exactly,
    # and regenerating the reciprocal vectors from a, b, c gives back the input
    for recip in (reciprocal_from_cell(TRICLINIC)[0],
                  torch.tensor([[0.012, 0.001, -0.002], [0.0005, 0.011, 0.003],
                                [-0.001, 0.002, 0.015]], dtype=F64)):
        real, reciprocal = real_and_reciprocal(recip, None, None, None)
        torch.testing.assert_close(real @ recip.T, torch.eye(3, dtype=F64), rtol=0, atol=1e-14)
        torch.testing.assert_close(reciprocal, recip, rtol=1e-13, atol=1e-18)
        torch.testing.assert_close(torch.linalg.det(real) * torch.linalg.det(recip),
                                   torch.tensor(1.0, dtype=F64), rtol=1e-13, atol=0)


def test_c_default_orientation_is_slightly_inexact_for_triclinic_cells():
    # the C program's c* z-component is c* V / (a b c sin gamma*), which equals 1/c only when
    # sin(gamma) = sin(gamma*); so the vectors alone give a cell a little off the input one
    recip, _ = reciprocal_from_cell(TRICLINIC)
    real, _ = real_and_reciprocal(recip, None, None, None)
    lengths = cell_constants(real)[:3]
    assert lengths == pytest.approx([70, 80, 90], rel=5e-3)
    assert lengths != pytest.approx([70, 80, 90], rel=1e-6)
    # an orthogonal cell comes out exactly
    ortho, _ = reciprocal_from_cell(cell_tensor(40, 50, 60, 90, 90, 90))
    real, _ = real_and_reciprocal(ortho, None, None, None)
    assert cell_constants(real) == pytest.approx([40, 50, 60, 90, 90, 90], rel=1e-13)


def test_cell_override_keeps_duality_directions_and_lengths():
    # with the user's cell the C program rescales a, b, c to the given lengths and uses the
    # angle-formula volume: the off-diagonal duality and lengths are exact, a.a* is close to 1
    recip, volume = reciprocal_from_cell(TRICLINIC)
    real, reciprocal = real_and_reciprocal(recip, None, TRICLINIC, volume)
    dual = real @ reciprocal.T
    off_diagonal = dual - torch.diag(torch.diagonal(dual))
    torch.testing.assert_close(off_diagonal, torch.zeros(3, 3, dtype=F64), rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.diagonal(dual), torch.ones(3, dtype=F64), rtol=1e-3, atol=0)
    torch.testing.assert_close(real.norm(dim=1), TRICLINIC[:3], rtol=1e-14, atol=0)


def test_triclinic_cell_matches_c_printout():
    # case tri_misset / rot_twotheta_sample (-cell 70 80 90 75 85 95, no misset yet):
    #   Unit Cell: 70 80 90 75.0391 85.0136 95.0081
    #   real-space cell vectors (Angstrom), columns a b c:
    #   X: 69.28031109 -0.00000000  0.00000000
    #   Y: -7.95101471 77.28816322  0.00000000
    #   Z:  6.08439479 20.65284063 90.00000000
    #   reciprocal-space cell vectors (Angstrom^-1), columns a* b* c*:
    #   X:  0.01443705  0.00148521 -0.00131683
    #   Y:  0.00000000  0.01294122 -0.00296970
    #   Z: -0.00000000 -0.00000000  0.01111337
    #   Recp Cell: 0.014437 0.0130262 0.0115784 ...
    recip, volume = reciprocal_from_cell(TRICLINIC)
    real, reciprocal = real_and_reciprocal(recip, None, TRICLINIC, volume)
    expected_real = torch.tensor([[69.28031109, -0.00000000, 0.00000000],
                                  [-7.95101471, 77.28816322, 0.00000000],
                                  [6.08439479, 20.65284063, 90.00000000]], dtype=F64)
    torch.testing.assert_close(real.T, expected_real, rtol=0, atol=5.01e-9)
    expected_recip = torch.tensor([[0.01443705, 0.00148521, -0.00131683],
                                   [0.00000000, 0.01294122, -0.00296970],
                                   [-0.00000000, -0.00000000, 0.01111337]], dtype=F64)
    torch.testing.assert_close(reciprocal.T, expected_recip, rtol=0, atol=5.01e-9)
    constants = cell_constants(real)
    assert [f"{x:g}" for x in constants] == ["70", "80", "90", "75.0391", "85.0136", "95.0081"]
    recip_lengths = cell_constants(reciprocal)[:3]
    assert [f"{x:g}" for x in recip_lengths] == ["0.014437", "0.0130262", "0.0115784"]
    # the C program prints the angle-formula volume: "volume = 481811 A^3"
    assert f"{volume.item():g}" == "481811"


def report_lines(argv, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return list(resolve(parse_args(argv.split()).state).lines())


def test_cell_report_recp_angles_and_volume_match_c(monkeypatch, tmp_path):
    # case rot_twotheta_sample / tri_misset stdout
    lines = report_lines("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 "
                         "-distance 100 -pixel 0.1 -detpixels 20", monkeypatch, tmp_path)
    assert "Recp Cell: 0.014437 0.0130262 0.0115784 105.535 96.5318 83.4517" in lines
    assert "volume = 481811 A^3" in lines


def test_cell_report_vectors_match_c(monkeypatch, tmp_path):
    lines = report_lines("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 "
                         "-distance 100 -pixel 0.1 -detpixels 20", monkeypatch, tmp_path)
    assert "Unit Cell: 70 80 90 75.0391 85.0136 95.0081" in lines
    start = lines.index("real-space cell vectors (Angstrom):")
    assert lines[start + 2:start + 5] == ["X: 69.28031109 -0.00000000  0.00000000",
                                          "Y: -7.95101471 77.28816322  0.00000000",
                                          "Z:  6.08439479 20.65284063 90.00000000"]


def test_misset_rotates_both_real_and_reciprocal_vectors():
    recip, volume = reciprocal_from_cell(TRICLINIC)
    plain_real, plain_recip = real_and_reciprocal(recip, None, TRICLINIC, volume)
    misset = torch.tensor([0.1, -0.2, 0.3], dtype=F64)
    real, reciprocal = real_and_reciprocal(recip, misset, TRICLINIC, volume)
    # a rotation keeps lengths, angles and the duality
    torch.testing.assert_close(real.norm(dim=1), plain_real.norm(dim=1))
    torch.testing.assert_close(real @ real.T, plain_real @ plain_real.T)
    torch.testing.assert_close(real @ reciprocal.T, plain_real @ plain_recip.T)
    assert not torch.allclose(real, plain_real)


def test_real_and_reciprocal_gradcheck_in_cell_and_misset():
    def f(cell, misset):
        recip, volume = reciprocal_from_cell(cell)
        real, reciprocal = real_and_reciprocal(recip, misset, cell, volume)
        return real, reciprocal * 100

    cell = TRICLINIC.clone().requires_grad_(True)
    misset = torch.tensor([0.1, -0.2, 0.3], dtype=F64, requires_grad=True)
    assert gradcheck(f, (cell, misset))
