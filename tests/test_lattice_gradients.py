"""The lattice factor and its gradients at their singular points, and images smooth in N.

sincg(x, N) = sin(N x)/sin(x) takes a Taylor series near x = 0, where the quotient's
x-derivative cancels catastrophically; the parallelepiped factor works from the reduced phase
pi (h - h0) in both precisions, which makes a continuous N smooth (the unreduced quotient has
poles at whole h when N is not whole) and keeps the whole-N images.
"""

import math

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from torchbragg.cli.parse import parse_args
from torchbragg.physics import lattice_factor, sinc3, sincg, sincg_reduced, square_factors
from torchbragg.precedence import resolve
from torchbragg.simulator import Simulator
from torchbragg.trace import trace_pixel

F64, F32 = torch.float64, torch.float32
EPS64, EPS32 = torch.finfo(F64).eps, torch.finfo(F32).eps
TINY = 1e-17  # what cos(90 degrees) leaves in a Miller index on a symmetry line


def t(x, dtype=F64):
    return torch.as_tensor(x, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# sincg near x = 0: the series and its derivatives
# ---------------------------------------------------------------------------------------------


def series(x, n):
    """sin(N x)/sin(x) and its x- and N-derivatives to order x^8 (exact to double precision
    for |x| max(N, 1) <= 0.05, to 1e-11 for |x| max(N, 1) <= 0.5)."""
    m = n * n - 1
    c4, c6 = m * (3 * n * n - 7) / 360, -m * (3 * n**4 - 18 * n * n + 31) / 15120
    c8 = m * (5 * n**6 - 55 * n**4 + 239 * n * n - 381) / 1814400
    value = n * (1 - m * x * x / 6 + c4 * x**4 + c6 * x**6 + c8 * x**8)
    d_x = n * (-m * x / 3 + 4 * c4 * x**3 + 6 * c6 * x**5 + 8 * c8 * x**7)
    d_n = (1 - (3 * n * n - 1) * x * x / 6 + (15 * n**4 - 30 * n * n + 7) * x**4 / 360
           - (21 * n**6 - 105 * n**4 + 147 * n * n - 31) * x**6 / 15120
           + (45 * n**8 - 420 * n**6 + 1470 * n**4 - 1860 * n * n + 381) * x**8 / 1814400)
    return value, d_x, d_n


def value_and_grads(fn, x, n, dtype):
    x = t(x, dtype).requires_grad_(True)
    n = t(n, dtype).expand_as(x).clone().requires_grad_(True)  # one N per phase
    value = fn(x, n)
    d_x, d_n = torch.autograd.grad(value.sum(), (x, n))
    return value.detach().double(), d_x.double(), d_n.double()


def grid_across_the_series_limit(n, top):
    # |N x| from 0 and 1e-17 to ``top``, across the series limit (0.0062 in float64, 0.18 in
    # float32)
    nx = torch.cat((t([0.0, TINY, 1e-9, 1e-5]), torch.logspace(-4, math.log10(top), 40,
                                                                 dtype=F64)))
    return torch.cat((nx, -nx)) / max(n, 1.0)


@pytest.mark.parametrize("n", [1.0, 1.5, 2.0, 5.0, 5.1, 7.5, 36.0, 200.0])
def test_sincg_and_derivatives_match_the_series_in_float64(n):
    x = grid_across_the_series_limit(n, 0.05)
    value, d_x, d_n = value_and_grads(sincg, x, n, F64)
    ref_value, ref_dx, ref_dn = series(x, n)
    torch.testing.assert_close(value, ref_value, rtol=4 * EPS64, atol=0)
    torch.testing.assert_close(d_n, ref_dn, rtol=8 * EPS64, atol=0)
    # error budget of the x-derivative: above the series limit the quotient's derivative
    # cancels (size N^3 x / 3, error eps N / x), at most 3 eps / limit^2 ~ 2e-11 of it
    # (N >= 1.5; at N = 1 it is exactly 0 on both branches)
    torch.testing.assert_close(d_x, ref_dx, rtol=1e-10, atol=0)


@pytest.mark.parametrize("n", [1.0, 2.0, 5.0, 5.1, 7.5, 36.0])
def test_sincg_and_derivatives_match_the_series_in_float32(n):
    x = grid_across_the_series_limit(n, 0.5).float().double()  # the float32 phases
    value, d_x, d_n = value_and_grads(sincg, x, n, F32)
    ref_value, ref_dx, ref_dn = series(x, t(n).float().double())
    torch.testing.assert_close(value, ref_value, rtol=4 * EPS32, atol=0)
    torch.testing.assert_close(d_n, ref_dn, rtol=8 * EPS32, atol=0)
    # same budget as in float64: 3 eps / limit^2 ~ 1.2e-5 with the float32 limit 0.18
    torch.testing.assert_close(d_x, ref_dx, rtol=3e-5, atol=0)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_sincg_derivative_at_tiny_phase_is_tiny_not_garbage(dtype):
    # the case from the issue: |x| ~ 1e-17 returned a derivative of ~3000 instead of ~0
    _, d_x, d_n = value_and_grads(sincg, [TINY, -TINY, 0.0], 5.0, dtype)
    x = t([TINY, -TINY, 0.0], dtype).double()
    torch.testing.assert_close(d_x, -5.0 * 24.0 * x / 3.0, rtol=4 * EPS32, atol=0)
    torch.testing.assert_close(d_n, torch.ones(3, dtype=F64), rtol=0, atol=0)


def test_sincg_gradcheck_at_singular_points():
    x = t([0.0, TINY, -TINY, 1e-9, 6e-3 / 5, 6.3e-3 / 5, 0.3, -1.2, math.pi / 2])
    for n in (1.0, 1.3, 5.0, 5.1, 36.0):
        args = (x.clone().requires_grad_(True), t(n).expand(len(x)).clone().requires_grad_(True))
        assert gradcheck(sincg, args)


# ---------------------------------------------------------------------------------------------
# the reduced form
# ---------------------------------------------------------------------------------------------

WHOLE = t([-3.0, -1.0, 0.0, 1.0, 2.0, 7.0, 50.0])


def reduced_closed_forms(dh, h0, n):
    """Value and N-derivative of (-1)^(h0 (round(N) - 1)) sin(N pi dh)/sin(pi dh), dh != 0."""
    sign = (-1.0) ** (h0 * (round(n) - 1))
    x = math.pi * dh
    return (sign * torch.sin(n * x) / torch.sin(x), sign * x * torch.cos(n * x) / torch.sin(x))


@pytest.mark.parametrize("n", [2.0, 5.0, 6.0, 36.0])
def test_reduced_form_is_the_unreduced_quotient_for_whole_n(n):
    dh = t([-0.49, -0.2, -0.01, 0.013, 0.25, 0.5])
    h0 = WHOLE[:, None]
    h = h0 + dh
    unreduced = torch.sin(n * math.pi * h) / torch.sin(math.pi * h)
    # the unreduced phase pi h carries an error ~ eps pi |h|, which moves the quotient by up
    # to eps pi |h| N / sin(pi |dh|) ~ 4e-11 (|h| ~ 50, N = 36, dh = 0.01)
    torch.testing.assert_close(sincg_reduced(dh, h0, t(n)), unreduced, rtol=1e-11,
                               atol=2e-12 * n)


@pytest.mark.parametrize("n", [5.0, 5.1, 5.5, 6.0, 6.9])
def test_reduced_form_derivative_in_n_is_that_of_the_reduced_form(n):
    dh = t([-0.5, -0.3, -0.02, 1e-3, 0.11, 0.49])
    for h0 in WHOLE.tolist():
        value, _, d_n = value_and_grads(lambda d, m, h0=h0: sincg_reduced(d, t(h0), m), dh,
                                        n, F64)
        expected_value, expected_dn = reduced_closed_forms(dh, h0, n)
        torch.testing.assert_close(value, expected_value, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(d_n, expected_dn, rtol=1e-12, atol=1e-12)


def test_reduced_form_at_the_lattice_point_is_signed_n_with_unit_n_derivative():
    h0 = t([0.0, 1.0, 1.0, -3.0, 4.0])
    n = t([5.0, 6.0, 5.0, 6.2, 7.0])
    dh = torch.zeros(5, dtype=F64, requires_grad=True)
    nn = n.clone().requires_grad_(True)
    value = sincg_reduced(dh, h0, nn)
    sign = t([1.0, -1.0, 1.0, -1.0, 1.0])  # (-1)^(h0 (round(N) - 1))
    torch.testing.assert_close(value.detach(), sign * n, rtol=0, atol=0)
    d_dh, d_n = torch.autograd.grad(value.sum(), (dh, nn))
    torch.testing.assert_close(d_dh, torch.zeros(5, dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(d_n, sign, rtol=0, atol=0)


def test_reduced_form_gradcheck_at_singular_points():
    dh = t([0.0, TINY, -TINY, 1e-9, -0.3, 0.5, -0.4999])
    for h0 in (0.0, 3.0, -2.0, 50.0):
        for n in (5.0, 5.1, 6.0, 36.3):
            args = (dh.clone().requires_grad_(True), t(h0),
                    t(n).expand(len(dh)).clone().requires_grad_(True))
            assert gradcheck(sincg_reduced, args)


def test_float32_n_derivative_far_from_the_origin_matches_float64():
    dh = t([-0.37, -0.05, 0.002, 0.21, 0.45])
    h0 = t([40.0, -17.0, 93.0, 5.0, -61.0])
    grads = []
    for dtype in (F64, F32):
        n = t([5.1, 6.0, 7.0, 5.5, 9.0], dtype).requires_grad_(True)
        value = sincg_reduced(dh.to(dtype), h0.to(dtype), n)
        (grad,) = torch.autograd.grad(value.sum(), n)
        grads.append(grad.double())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=0)


# ---------------------------------------------------------------------------------------------
# lattice_factor, every spot shape, at singular points
# ---------------------------------------------------------------------------------------------

HKL0 = t([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 3.0], [2.0, -1.0, 3.0], [0.0, 1.0, -4.0],
          [1.0, 0.0, 0.0]])
OFFSETS = t([[0.0, 0.0, 0.0], [TINY, -TINY, 2 * TINY], [0.0, 0.0, 0.0], [1e-9, -2e-9, 0.3],
             [0.01, -0.2, 0.45], [-0.3, TINY, 0.0]])
RECIP = t([[0.01, 0.001, 0.0], [0.0, 0.0125, 0.002], [0.0, 0.0, 0.02]])


@pytest.mark.parametrize("n_cells", [[5.0, 6.0, 7.0], [5.1, 6.4, 7.3], [1.2, 2.4, 36.0]])
@pytest.mark.parametrize("shape", ["square", "round", "gauss"])
def test_lattice_factor_gradcheck_at_singular_points(shape, n_cells):
    def f_latt(hkl, n, recip):
        return lattice_factor(hkl, HKL0, shape, n, recip, 1.3)

    hkl = (HKL0 + OFFSETS).requires_grad_(True)
    n = t(n_cells).requires_grad_(True)
    recip = RECIP.clone().requires_grad_(shape == "gauss")
    assert gradcheck(f_latt, (hkl, n, recip))


def test_lattice_factor_with_offsets_given_gradcheck():
    # the offsets h - h0 as the float32 path passes them (here in float64, for gradcheck)
    for shape in ("square", "round", "gauss"):
        def f_latt(dhkl, n, shape=shape):
            return lattice_factor(None, HKL0, shape, n, RECIP, 1.0, dhkl)

        assert gradcheck(f_latt, (OFFSETS.clone().requires_grad_(True),
                                  t([5.1, 6.0, 7.0]).requires_grad_(True)))


def test_lattice_factors_at_the_origin_are_their_peaks_with_zero_slope():
    n = t([5.0, 6.0, 7.0])
    for shape, peak in (("square", 210.0), ("round", 210.0 * 0.723601254558268),
                        ("gauss", 210.0), ("tophat", 210.0)):
        hkl = (HKL0[:2] + OFFSETS[:2]).requires_grad_(True)
        value = lattice_factor(hkl, HKL0[:2], shape, n, RECIP, 1.0)
        torch.testing.assert_close(value.detach(), t([peak, peak]), rtol=4 * EPS64, atol=0)
        if shape == "tophat":  # a step: no gradient to take
            assert not value.requires_grad
            continue
        (grad,) = torch.autograd.grad(value.sum(), hkl)
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-12)


def test_sinc3_is_exact_near_zero():
    # 1 - x^2/10 + x^4/280 - ...: the closed form (nanoBragg's) gives 0 at x ~ 1e-16
    x = t([TINY, 1e-9, 1e-4, 1e-2, 0.05]).requires_grad_(True)
    value = sinc3(x)
    y = x.detach()
    torch.testing.assert_close(value.detach(), 1 - y**2 / 10 + y**4 / 280 - y**6 / 15120
                               + y**8 / 1330560, rtol=2 * EPS64, atol=0)
    (grad,) = torch.autograd.grad(value.sum(), x)
    torch.testing.assert_close(grad, -y / 5 + y**3 / 70 - y**5 / 2520 + y**7 / 166320,
                               rtol=4 * EPS64, atol=0)


# ---------------------------------------------------------------------------------------------
# the gate at N = 1
# ---------------------------------------------------------------------------------------------


def test_one_cell_gives_factor_one_and_a_continuous_n_leaves_it_smoothly():
    dhkl = t([[0.3, -0.2, 0.45], [TINY, 0.0, -0.01]])
    hkl0 = t([[3.0, -1.0, 2.0], [0.0, 5.0, 1.0]])
    # N <= 1 contributes 1, as nanoBragg's `if (Na > 1)`; N = 1 through the formula, exactly
    for n in (0.0, 0.5, 1.0):
        torch.testing.assert_close(square_factors(dhkl, hkl0, t([n, n, n])),
                                   torch.ones(2, 3, dtype=F64), rtol=0, atol=0)
    # just above 1 the factor moves by O(N - 1) (|d/dN| = |x cot x| <= 1), and the
    # derivative at 1 is the one from above (second-order one-sided difference)
    n = t([1.0, 1.0, 1.0]).requires_grad_(True)
    (grad,) = torch.autograd.grad(square_factors(dhkl, hkl0, n).sum(), n)

    def above(step):
        return square_factors(dhkl, hkl0, t([1.0 + step] * 3)).sum(0)

    step = 1e-5
    assert (above(step) - 2.0).abs().max() <= 2 * step
    one_sided = (-3 * above(0.0) + 4 * above(step) - above(2 * step)) / (2 * step)
    torch.testing.assert_close(grad, one_sided, rtol=1e-7, atol=1e-9)
    assert (grad.abs() > 0.1).all()


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------

# wide pixels reach reflections |h| up to ~15, where the unreduced quotient has its poles
WIDE = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 100 -pixel 2 "
        "-detpixels 16 -oversample 1 -misset 5 3 7")
# a cubic cell with no misset and the beam on the centre of pixel (9, 9)
CUBIC = ("-cell 100 100 100 90 90 90 -N 5 -default_F 100 -lambda 1 -distance 100 -pixel 0.1 "
         "-detpixels 17 -oversample 1 -misset 0 0 0")


def simulator(args, monkeypatch, tmp_path, dtype=F64):
    monkeypatch.chdir(tmp_path)  # resolve() may read or write Fdump.bin
    return Simulator(resolve(parse_args(args.split()).state).config, dtype=dtype)


def image_sum(sim, index, value):
    with torch.no_grad():
        sim.crystal.n_cells[index] = value
        return sim().sum().item()


def test_the_wide_scene_reaches_whole_indices_away_from_the_origin(monkeypatch, tmp_path):
    sim = simulator(WIDE, monkeypatch, tmp_path)
    hkl0 = trace_pixel(sim, 0, 0).stages["steps"]["hkl0"]
    assert abs(hkl0).max() >= 5


@pytest.mark.parametrize("dtype", [F64, F32])
def test_image_is_smooth_in_n_across_whole_numbers(dtype, monkeypatch, tmp_path):
    sim = simulator(WIDE, monkeypatch, tmp_path, dtype)
    sums = [image_sum(sim, 1, n) for n in (4.9, 4.95, 5.0, 5.05, 5.1)]
    # the spots grow with N: a percent per 0.05, and no pole in between (it was 20x)
    steps = [b / a for a, b in zip(sums, sums[1:], strict=False)]
    assert all(1.0 < r < 1.03 for r in steps), steps
    # and a thin crystal, N = 1 along c: a continuous N just above 1 changes little
    one = [image_sum(sim, 2, n) for n in (1.0, 1.01)]
    assert 1.0 < one[1] / one[0] < 1.02, one


def test_float32_gradient_in_n_matches_finite_differences_of_float32_images(monkeypatch,
                                                                            tmp_path):
    sim = simulator(WIDE, monkeypatch, tmp_path, F32)
    n = t([5.0, 5.1, 4.6])
    with torch.no_grad():
        sim.crystal.n_cells.copy_(n)
    sim.crystal.n_cells.requires_grad_(True)
    (grad,) = torch.autograd.grad(sim().sum(), sim.crystal.n_cells)
    sim.crystal.n_cells.requires_grad_(False)
    step = 1e-2
    for i in range(3):
        fd = (image_sum(sim, i, n[i] + step) - image_sum(sim, i, n[i] - step)) / (2 * step)
        image_sum(sim, i, n[i])
        assert fd > 0
        assert grad[i].item() == pytest.approx(fd, rel=0.05), i


@pytest.mark.parametrize("n_cells", [[5.0, 5.0, 5.0], [5.1, 4.7, 6.3]])
def test_gradcheck_image_wrt_n_cells(n_cells, monkeypatch, tmp_path):
    args = WIDE.replace("-pixel 2 -detpixels 16", "-pixel 5 -detpixels 5")
    sim = simulator(args, monkeypatch, tmp_path)

    def render(n):
        return functional_call(sim, {"crystal.n_cells": n}, ())

    assert gradcheck(render, (t(n_cells).requires_grad_(True),))


def test_cubic_scene_has_tiny_miller_indices_on_the_beam_lines(monkeypatch, tmp_path):
    sim = simulator(CUBIC, monkeypatch, tmp_path)
    image = sim()
    assert image[9, 9] == image.max()
    assert (trace_pixel(sim, 9, 9).stages["steps"]["hkl"] == 0).all()
    beside = abs(trace_pixel(sim, 9, 8).stages["steps"]["hkl"]).min()
    assert 0 < beside < 1e-15


@pytest.mark.parametrize(("name", "step"), [("misset_rad", 1e-6), ("cell", 1e-6)])
def test_cubic_scene_gradients_match_finite_differences(name, step, monkeypatch, tmp_path):
    sim = simulator(CUBIC, monkeypatch, tmp_path)
    param = getattr(sim.crystal, name)
    param.requires_grad_(True)
    (grad,) = torch.autograd.grad(sim().sum(), param)
    param.requires_grad_(False)
    fds = []
    for i in range(param.numel()):
        with torch.no_grad():
            original = param[i].item()
            param[i] = original + step
            up = sim().sum().item()
            param[i] = original - step
            down = sim().sum().item()
            param[i] = original
        fds.append((up - down) / (2 * step))
    fds = t(fds)
    scale = fds.abs().max()
    assert scale > 0
    torch.testing.assert_close(grad, fds, rtol=0, atol=1e-6 * scale.item())
