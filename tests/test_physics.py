"""Closed forms, limits and gradients of the physics kernels (torchbragg.physics)."""

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from torchbragg.geometry import rotate_axis, unitize
from torchbragg.physics import (
    ROUND_SCALE,
    capture_fraction,
    lattice_factor,
    lattice_factor_square,
    polarization_factor,
    sinc3,
    sincg,
    solid_angle,
)

F64 = torch.float64


def t(x):
    return torch.as_tensor(x, dtype=F64)


# ---------------------------------------------------------------------------------------------
# sincg
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2.0, 5.0, 7.5, 36.0])
def test_sincg_is_sin_nx_over_sin_x(n):
    x = np.linspace(-7.0, 7.0, 1001)
    x = x[np.abs(np.sin(x)) > 1e-3]
    expected = np.sin(n * x) / np.sin(x)
    np.testing.assert_allclose(sincg(t(x), t(n)).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_sincg_at_zero_is_n():
    n = t([1.0, 3.0, 5.5, 47.0])
    torch.testing.assert_close(sincg(torch.zeros(4, dtype=F64), n), n, rtol=0, atol=0)
    # and it is continuous there
    torch.testing.assert_close(sincg(t(1e-8), t(47.0)), t(47.0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 10])
@pytest.mark.parametrize("h", [-3, -1, 1, 2, 5])
def test_sincg_near_lattice_points_is_plus_or_minus_n(h, n):
    # sin(N (h pi + e)) / sin(h pi + e) -> N (-1)^(h (N - 1)) as e -> 0
    e = 1e-7
    sign = (-1) ** (h * (n - 1))
    for x in (math.pi * h + e, math.pi * h - e):
        torch.testing.assert_close(sincg(t(x), t(float(n))), t(float(sign * n)), rtol=1e-6,
                                   atol=0)


def test_sincg_broadcasts_n_per_axis():
    x = t([[0.1, 0.2, 0.3], [0.0, 0.5, 1.0]])
    n = t([5.0, 7.0, 9.0])
    expected = torch.where(x == 0, n, torch.sin(n * x) / torch.sin(x))
    torch.testing.assert_close(sincg(x, n), expected)


def test_sincg_gradcheck_including_near_zero():
    x = t([1e-3, -2e-4, 0.3, -1.2, 2.0, math.pi + 0.05]).requires_grad_(True)
    n = t([5.0, 5.0, 3.0, 7.0, 4.5, 6.0]).requires_grad_(True)
    assert gradcheck(sincg, (x, n))


def test_sincg_gradient_at_zero_is_finite_and_zero_in_x():
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    n = t([2.0, 5.0, 9.0]).requires_grad_(True)
    gx, gn = torch.autograd.grad(sincg(x, n).sum(), (x, n))
    assert torch.isfinite(gx).all() and torch.isfinite(gn).all()
    torch.testing.assert_close(gx, torch.zeros(3, dtype=F64))  # sincg is even in x
    torch.testing.assert_close(gn, torch.ones(3, dtype=F64))  # d N / d N


# ---------------------------------------------------------------------------------------------
# sinc3
# ---------------------------------------------------------------------------------------------


def test_sinc3_closed_form():
    x = np.linspace(0.1, 12.0, 200)
    expected = 3.0 * (np.sin(x) - x * np.cos(x)) / x**3
    np.testing.assert_allclose(sinc3(t(x)).numpy(), expected, rtol=1e-11, atol=1e-14)
    # even function
    torch.testing.assert_close(sinc3(t(-x)), sinc3(t(x)))


@pytest.mark.parametrize("x", [3e-2, 1e-2, 3e-3, 1e-3])
def test_sinc3_matches_series_near_zero(x):
    # 3 (sin x - x cos x) / x^3 = 1 - x^2/10 + x^4/280 - ... (the closed form, nanoBragg's,
    # loses digits to cancellation here; sinc3 takes its series)
    series = 1.0 - x * x / 10.0 + x**4 / 280.0
    assert abs(sinc3(t(x)).item() - series) < 1e-9
    assert abs(sinc3(t(x)).item() - (1.0 - x * x / 10.0)) < x**4 / 280.0 + 1e-9


def test_sinc3_at_zero_is_one_with_finite_gradient():
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    value = sinc3(x)
    torch.testing.assert_close(value, torch.ones(2, dtype=F64), rtol=0, atol=0)
    (g,) = torch.autograd.grad(value.sum(), x)
    assert torch.isfinite(g).all()


def test_sinc3_gradcheck():
    x = t([0.05, 0.3, -0.9, 2.5, 4.4934, 7.0]).requires_grad_(True)
    assert gradcheck(sinc3, (x,))


# ---------------------------------------------------------------------------------------------
# lattice_factor
# ---------------------------------------------------------------------------------------------

N_CELLS = t([5.0, 6.0, 7.0])
RECIP = torch.diag(t([0.01, 0.0125, 0.02]))


def test_square_lattice_factor_is_product_of_sincg():
    # for whole N the reduced form is the unreduced product, to rounding
    g = torch.Generator().manual_seed(4)
    hkl = torch.rand(10, 3, dtype=F64, generator=g) * 6 - 3
    expected = (sincg(math.pi * hkl[:, 0], t(5.0)) * sincg(math.pi * hkl[:, 1], t(6.0))
                * sincg(math.pi * hkl[:, 2], t(7.0)))
    hkl0 = torch.ceil(hkl - 0.5)
    got = lattice_factor(hkl, hkl0, "square", N_CELLS, RECIP, 1.0)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(lattice_factor_square(hkl - hkl0, hkl0, N_CELLS), expected)


def test_square_lattice_factor_skips_axes_with_one_cell_or_fewer():
    dhkl, hkl0 = t([[0.3, 0.2, 0.1]]), t([[2.0, 1.0, -3.0]])
    for n in ([1.0, 6.0, 1.0], [0.0, 6.0, 0.5]):
        got = lattice_factor_square(dhkl, hkl0, t(n))
        # (-1)^(1 x 5) sin(6 pi 0.2) / sin(pi 0.2)
        torch.testing.assert_close(got, -sincg(t([0.2 * math.pi]), t(6.0)), rtol=0, atol=0)


def test_square_lattice_factor_is_smooth_in_n_between_whole_numbers():
    # the unreduced sin(N pi h)/sin(pi h) has poles at whole h when N is not whole; the
    # reduced form stays within its whole-N neighbours
    dhkl, hkl0 = t([[1e-3, 0.0, 0.0]]), t([[3.0, 0.0, 0.0]])
    values = [lattice_factor_square(dhkl, hkl0, t([n, 1.0, 1.0])).item()
              for n in (5.0, 5.1, 5.5, 6.0)]
    assert values[0] == pytest.approx(5.0, rel=1e-4)
    assert values[3] == pytest.approx(-6.0, rel=1e-4)  # (-1)^(3 x 5)
    assert 5.0 < abs(values[1]) < abs(values[2]) < 6.0


@pytest.mark.parametrize(
    ("shape", "peak"),
    [("round", 210.0 * 0.723601254558268), ("gauss", 210.0), ("tophat", 210.0)],
)
def test_lattice_factor_peak_value(shape, peak):
    hkl = t([[2.0, -1.0, 3.0], [0.0, 0.0, 0.0]])
    got = lattice_factor(hkl, hkl.clone(), shape, N_CELLS, RECIP, 1.0)
    torch.testing.assert_close(got, t([peak, peak]), rtol=1e-12, atol=0)


def test_square_lattice_factor_peak_value():
    # Na Nb Nc at the origin; at other whole indices sin(pi h) is not exactly 0 in floating
    # point (nor in the C program), so approach them instead: the sign is (-1)^(h (N-1))
    got = lattice_factor(t([[0.0, 0.0, 0.0]]), t([[0.0, 0.0, 0.0]]), "square", N_CELLS, RECIP,
                         1.0)
    torch.testing.assert_close(got, t([210.0]), rtol=0, atol=0)
    near = t([[2.0 + 1e-8, -1.0 + 1e-8, 3.0 - 1e-8]])
    got = lattice_factor(near, torch.round(near), "square", N_CELLS, RECIP, 1.0)
    # signs: h=2 -> +, k=-1 with Nb=6 -> -, l=3 with Nc=7 -> +
    torch.testing.assert_close(got, t([-210.0]), rtol=1e-6, atol=0)


def test_round_scale_constant_is_the_c_value():
    assert ROUND_SCALE == 0.723601254558268


def test_round_lattice_factor_off_peak():
    hkl0 = t([[1.0, 2.0, -1.0]])
    d = t([[0.02, -0.03, 0.01]])
    fudge = 1.3
    radius = math.sqrt(sum((float(d[0, i]) * float(N_CELLS[i])) ** 2 for i in range(3)) * fudge)
    x = math.pi * radius
    expected = 210.0 * 0.723601254558268 * 3 * (math.sin(x) - x * math.cos(x)) / x**3
    got = lattice_factor(hkl0 + d, hkl0, "round", N_CELLS, RECIP, fudge)
    torch.testing.assert_close(got, t([expected]), rtol=1e-10, atol=0)


def test_gauss_and_tophat_use_reciprocal_distance():
    hkl0 = t([[1.0, 0.0, 0.0]])
    d = t([[0.01, 0.02, -0.015]])
    # |dh a* + dk b* + dl c*|^2 (Na Nb Nc)^2 with the diagonal reciprocal cell above
    rad = ((0.01 * 0.01) ** 2 + (0.02 * 0.0125) ** 2 + (0.015 * 0.02) ** 2) * 210.0**2
    fudge = 2.0
    gauss = lattice_factor(hkl0 + d, hkl0, "gauss", N_CELLS, RECIP, fudge)
    torch.testing.assert_close(gauss, t([210.0 * math.exp(-rad / 0.63 * fudge)]), rtol=1e-12,
                               atol=0)
    inside = lattice_factor(hkl0 + d, hkl0, "tophat", N_CELLS, RECIP, 1.0)
    torch.testing.assert_close(inside, t([210.0]))
    # the top-hat edge is at rad * fudge = 0.3969
    outside = lattice_factor(hkl0 + d, hkl0, "tophat", N_CELLS, RECIP, 0.3969 / rad * 1.001)
    torch.testing.assert_close(outside, t([0.0]))
    edge_in = lattice_factor(hkl0 + d, hkl0, "tophat", N_CELLS, RECIP, 0.3969 / rad * 0.999)
    torch.testing.assert_close(edge_in, t([210.0]))


def test_unknown_shape_is_rejected():
    with pytest.raises(ValueError):
        lattice_factor(t([[0.1, 0.2, 0.3]]), t([[0.0, 0.0, 0.0]]), "cube", N_CELLS, RECIP, 1.0)


# ---------------------------------------------------------------------------------------------
# polarization_factor
# ---------------------------------------------------------------------------------------------

BEAM = t([1.0, 0.0, 0.0])
E_VECTOR = t([0.0, 0.0, 1.0])  # MOSFLM's polarization vector


def diffracted_at(two_theta, azimuth):
    """Unit vector at scattering angle two_theta from +x, swung by azimuth from +z about x."""
    return t([math.cos(two_theta), -math.sin(two_theta) * math.sin(azimuth),
              math.sin(two_theta) * math.cos(azimuth)])


@pytest.mark.parametrize("two_theta", [0.0, 0.2, 0.9, math.pi / 2, 2.4])
def test_unpolarized_factor_is_half_one_plus_cos_squared(two_theta):
    for azimuth in (0.0, 0.7, 2.0):
        got = polarization_factor(0.0, BEAM, diffracted_at(two_theta, azimuth), E_VECTOR)
        expected = 0.5 * (1.0 + math.cos(two_theta) ** 2)
        torch.testing.assert_close(got, t(expected), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("two_theta", [0.2, 0.9, math.pi / 2, 2.4])
def test_fully_polarized_factor_depends_on_e_vector_and_scattering_plane(two_theta):
    c2 = math.cos(two_theta) ** 2
    # E along the normal of the scattering plane (scattering in the x-y plane): no loss
    normal = polarization_factor(1.0, BEAM, t([math.cos(two_theta), math.sin(two_theta), 0.0]),
                                 E_VECTOR)
    torch.testing.assert_close(normal, t(1.0), rtol=1e-12, atol=1e-15)
    # E in the scattering plane (scattering in the x-z plane): cos^2(2 theta)
    in_plane = polarization_factor(1.0, BEAM,
                                   t([math.cos(two_theta), 0.0, math.sin(two_theta)]), E_VECTOR)
    torch.testing.assert_close(in_plane, t(c2), rtol=1e-12, atol=1e-15)


def test_kahn_factor_general_azimuth():
    # 0.5 (1 + cos^2 2t - K cos(2 psi) sin^2 2t), psi measured from E about the beam
    two_theta, azimuth, k = 0.8, 0.6, 0.9
    got = polarization_factor(k, BEAM, diffracted_at(two_theta, azimuth), E_VECTOR)
    c2 = math.cos(two_theta) ** 2
    expected = 0.5 * (1 + c2 - k * math.cos(2 * azimuth) * (1 - c2))
    torch.testing.assert_close(got, t(expected), rtol=1e-12, atol=1e-15)


def test_polarization_factor_batches_over_rays():
    d = torch.stack([diffracted_at(0.5, a) for a in (0.0, 0.5, 1.0, 1.5)])
    got = polarization_factor(0.5, BEAM.expand(4, 3), d, E_VECTOR)
    one_by_one = torch.stack([polarization_factor(0.5, BEAM, v, E_VECTOR) for v in d])
    torch.testing.assert_close(got, one_by_one)


def test_polarization_factor_gradcheck():
    incident = unitize(t([[1.0, 0.02, -0.01], [0.98, -0.1, 0.05]])).requires_grad_(True)
    diffracted = unitize(t([[0.9, 0.3, 0.2], [0.7, -0.4, 0.6]])).requires_grad_(True)
    e_vector = unitize(t([0.1, 0.05, 1.0])).requires_grad_(True)
    kahn = t(0.8).requires_grad_(True)
    assert gradcheck(polarization_factor, (kahn, incident, diffracted, e_vector))


def test_polarization_factor_value_when_beam_is_along_e_vector():
    # no E component normal to the beam: psi is taken as 0, as in the C program
    got = polarization_factor(0.5, t([0.0, 0.0, 1.0]), t([0.6, 0.0, 0.8]), E_VECTOR)
    torch.testing.assert_close(got, t(0.5 * (1 + 0.64 - 0.5 * 0.36)))


def test_polarization_gradient_is_finite_when_beam_is_along_e_vector():
    incident = t([0.0, 0.0, 1.0]).requires_grad_(True)
    grads = torch.autograd.grad(polarization_factor(0.5, incident, t([0.6, 0.0, 0.8]), E_VECTOR),
                                incident)
    assert torch.isfinite(grads[0]).all()


# ---------------------------------------------------------------------------------------------
# solid angle and capture fraction
# ---------------------------------------------------------------------------------------------


def test_solid_angle_is_pixel_area_times_obliquity_over_r_squared():
    pixel, d = 1e-4, 0.1
    r = t([0.1, 0.105, 0.13])
    got = solid_angle(r, t(pixel), t(d), point_pixel=False)
    expected = pixel**2 * d / r**3
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=0)


def test_point_pixel_solid_angle_is_inverse_square():
    r = t([0.1, 0.2])
    got = solid_angle(r, t(1e-4), t(0.1), point_pixel=True)
    torch.testing.assert_close(got, 1.0 / r**2, rtol=1e-14, atol=0)


@pytest.mark.parametrize("parallax", [1.0, 0.8, 0.35])
def test_capture_fraction_sums_over_layers_to_total_absorption(parallax):
    thickness, layers, mu = 450e-6, 4, 1.0 / 320e-6
    step = thickness / layers
    fractions = capture_fraction(torch.arange(layers, dtype=F64), t(step), t(mu), t(parallax))
    assert (fractions > 0).all()
    assert (fractions[1:] < fractions[:-1]).all()  # later layers see fewer photons
    total = 1.0 - math.exp(-mu * thickness / parallax)
    torch.testing.assert_close(fractions.sum(), t(total), rtol=1e-13, atol=0)
    first = 1.0 - math.exp(-mu * step / parallax)
    torch.testing.assert_close(fractions[0], t(first), rtol=1e-13, atol=0)


# ---------------------------------------------------------------------------------------------
# rotate_axis gradient (used by the crystal and detector models)
# ---------------------------------------------------------------------------------------------


def test_rotate_axis_gradcheck():
    g = torch.Generator().manual_seed(5)
    v = torch.randn(3, 3, dtype=F64, generator=g).requires_grad_(True)
    axis = unitize(torch.randn(3, dtype=F64, generator=g)).requires_grad_(True)
    phi = t([0.3, -1.2, 2.0]).requires_grad_(True)
    assert gradcheck(rotate_axis, (v, axis, phi))
