"""Beam divergence / dispersion sampling (torchbragg.sources) and nanoBragg's step rules."""

import math

import numpy as np
import pytest

import torchbragg.sources as sources_module
from torchbragg.cli.parse import parse_args
from torchbragg.precedence import resolve
from torchbragg.sources import (
    SOURCE_DISTANCE_M,
    StepRange,
    auto_range,
    c_rotate_axis,
    dispersion_wavelengths,
    divergence_offsets,
    grid_positions,
    grid_sources,
    sane,
)

NOT_GIVEN = -1.0
SC = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -pixel 0.1"


def resolve_args(argv, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return resolve(parse_args(argv.split()).state)


# ---------------------------------------------------------------------------------------------
# auto_range: every branch of the C program's rule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "rng", "step", "expected"),
    [
        # nothing given: one step, no range
        (-1, NOT_GIVEN, NOT_GIVEN, StepRange(1, 0.0, 0.0)),
        # step alone: range = step, 2 steps
        (-1, NOT_GIVEN, 0.25, StepRange(2, 0.25, 0.25)),
        # range alone: step = range, 2 steps
        (-1, 3.0, NOT_GIVEN, StepRange(2, 3.0, 3.0)),
        # range and step: steps = ceil(range / step)
        (-1, 3.0, 0.75, StepRange(4, 3.0, 0.75)),
        (-1, 3.0, 0.7, StepRange(5, 3.0, 0.7)),
        # steps alone: range 1, step 1/steps
        (4, NOT_GIVEN, NOT_GIVEN, StepRange(4, 1.0, 0.25)),
        # steps and step: the steps are overridden, range = step, 2 steps
        (7, NOT_GIVEN, 0.5, StepRange(2, 0.5, 0.5)),
        # steps and range: step = range / (steps - 1), at least 2 steps
        (5, 0.04, NOT_GIVEN, StepRange(5, 0.04, 0.01)),
        (1, 0.04, NOT_GIVEN, StepRange(2, 0.04, 0.04)),
        # everything given: as given
        (3, 2.0, 0.3, StepRange(3, 2.0, 0.3)),
    ],
)
def test_auto_range_branches(steps, rng, step, expected):
    got = auto_range(steps, rng, step)
    assert got.steps == expected.steps
    assert got.range == pytest.approx(expected.range, rel=1e-15)
    assert got.step == pytest.approx(expected.step, rel=1e-15)


@pytest.mark.parametrize(
    ("steps", "rng", "step", "expected"),
    [
        # the detector-layer variant: range alone halves the step, steps alone use 0.5 um
        (-1, 450e-6, NOT_GIVEN, StepRange(2, 450e-6, 225e-6)),
        (4, NOT_GIVEN, NOT_GIVEN, StepRange(4, 0.5e-6, 0.125e-6)),
        # the other branches are as for divergence
        (-1, NOT_GIVEN, NOT_GIVEN, StepRange(1, 0.0, 0.0)),
        (-1, 450e-6, 150e-6, StepRange(3, 450e-6, 150e-6)),
        (3, 450e-6, NOT_GIVEN, StepRange(3, 450e-6, 225e-6)),
    ],
)
def test_auto_range_one_sided_layer_variant(steps, rng, step, expected):
    got = auto_range(steps, rng, step, one_sided=True)
    assert got.steps == expected.steps
    assert got.range == pytest.approx(expected.range, rel=1e-15)
    assert got.step == pytest.approx(expected.step, rel=1e-15)


def test_zero_range_counts_as_given():
    # 0 is "given" for the range (only negative means not given) ... then sane() drops it
    r = auto_range(-1, 0.0, NOT_GIVEN)
    assert r == StepRange(2, 0.0, 0.0)
    assert sane(r) == StepRange(1, 0.0, 0.0)


@pytest.mark.parametrize("bad", [StepRange(0, 1.0, 0.5), StepRange(3, 0.0, 0.5),
                                 StepRange(3, 1.0, 0.0), StepRange(3, -1.0, 0.5)])
def test_sane_collapses_degenerate_ranges_to_one_step(bad):
    assert sane(bad) == StepRange(1, 0.0, 0.0)


def test_sane_keeps_good_ranges():
    good = StepRange(4, 0.003, 0.00075)
    assert sane(good) is good


# ---------------------------------------------------------------------------------------------
# divergence grid
# ---------------------------------------------------------------------------------------------

# case divergence (-hdivrange 3 -hdivstep 0.75 -vdivrange 2 -vdivstep 0.5, in mrad): the C
# program printed "11 divergence steps" and these "divergence deviation: hdiv vdiv" lines
GOLDEN_DIVERGENCE = [(-0.0015, 0), (-0.00075, -0.0005), (-0.00075, 0), (-0.00075, 0.0005),
                     (0, -0.001), (0, -0.0005), (0, 0), (0, 0.0005), (0.00075, -0.0005),
                     (0.00075, 0), (0.00075, 0.0005)]


def test_round_divergence_trims_the_golden_grid_to_an_ellipse():
    h = sane(auto_range(-1, 0.003, 0.00075))
    v = sane(auto_range(-1, 0.002, 0.0005))
    assert (h.steps, v.steps) == (4, 4)
    square = divergence_offsets(h, v, round_div=False)
    assert len(square) == 16
    # nanoBragg order: h outer, v inner, both from -range/2
    assert square[0] == pytest.approx((-0.0015, -0.001))
    assert square[1] == pytest.approx((-0.0015, -0.0005))
    assert square[-1] == pytest.approx((0.00075, 0.0005))
    trimmed = divergence_offsets(h, v, round_div=True)
    assert len(trimmed) == 11
    np.testing.assert_allclose(np.array(trimmed), np.array(GOLDEN_DIVERGENCE), rtol=0,
                               atol=1e-18)


def test_square_divergence_keeps_the_full_grid():
    # case divergence_square (-divergence 2.5 -divsteps 3 -square_div): "9 divergence steps"
    h = sane(auto_range(3, 0.0025, NOT_GIVEN))
    assert h == StepRange(3, 0.0025, 0.00125)
    assert len(divergence_offsets(h, h, round_div=False)) == 9
    # an odd grid's round trim drops the four corners
    assert len(divergence_offsets(h, h, round_div=True)) == 5


def test_no_divergence_is_one_untrimmed_source():
    one = StepRange(1, 0.0, 0.0)
    assert divergence_offsets(one, one, round_div=True).tolist() == [[0.0, 0.0]]


def test_divergence_in_one_direction_only_is_not_trimmed_by_the_other_axis():
    # a zero-range axis makes the C test NaN, which never trims
    h = sane(auto_range(5, 0.004, NOT_GIVEN))
    one = StepRange(1, 0.0, 0.0)
    assert len(divergence_offsets(h, one, round_div=True)) == 5


@pytest.mark.parametrize(
    ("args", "count"),
    [(f"{SC} -hdivrange 3 -hdivstep 0.75 -vdivrange 2 -vdivstep 0.5 -detpixels 16", 11),
     (f"{SC} -divergence 2.5 -divsteps 3 -square_div -detpixels 16", 9)],
)
def test_command_line_divergence_source_counts_match_c(args, count, monkeypatch, tmp_path):
    # cases divergence ("11 sources") and divergence_square ("9 sources")
    plan = resolve_args(args, monkeypatch, tmp_path)
    assert len(plan.config.beam.source_wavelengths_m) == count
    directions = plan.config.beam.source_directions
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# dispersion
# ---------------------------------------------------------------------------------------------


def test_dispersion_wavelengths_span_the_fractional_range():
    # case dispersion (-lambda 6.2 -dispersion 4 -dispsteps 5) printed
    # lambda0 = 6.076e-10 ... lambda4 = 6.324e-10
    d = sane(auto_range(5, 0.04, NOT_GIVEN))
    got = dispersion_wavelengths(6.2e-10, d)
    np.testing.assert_allclose(got, [6.076e-10, 6.138e-10, 6.2e-10, 6.262e-10, 6.324e-10],
                               rtol=1e-14)


def test_no_dispersion_is_the_nominal_wavelength():
    assert dispersion_wavelengths(1e-10, StepRange(1, 0.0, 0.0)) == [1e-10]


def test_command_line_dispersion_matches_c(monkeypatch, tmp_path):
    plan = resolve_args(f"{SC} -dispersion 4 -dispsteps 5 -detpixels 16", monkeypatch, tmp_path)
    np.testing.assert_allclose(plan.config.beam.source_wavelengths_m,
                               [6.076e-10, 6.138e-10, 6.2e-10, 6.262e-10, 6.324e-10], rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# grid_sources
# ---------------------------------------------------------------------------------------------

MOSFLM_BEAM = np.array([1.0, 0.0, 0.0])
MOSFLM_POLAR = np.array([0.0, 0.0, 1.0])


def test_single_source_sits_up_beam():
    pos, weights, lambdas = grid_sources(MOSFLM_BEAM, MOSFLM_POLAR, [(0.0, 0.0)], [1e-10])
    np.testing.assert_allclose(pos, [[-SOURCE_DISTANCE_M, 0.0, 0.0]], atol=1e-15)
    assert weights.tolist() == [1.0]
    assert lambdas.tolist() == [1e-10]


def test_vertical_divergence_swings_about_the_polarization_vector():
    vd = 0.002
    pos, _, _ = grid_sources(MOSFLM_BEAM, MOSFLM_POLAR, [(0.0, vd)], [1e-10])
    # -10 x rotated about +z by vd
    expected = SOURCE_DISTANCE_M * np.array([-math.cos(vd), -math.sin(vd), 0.0])
    np.testing.assert_allclose(pos[0], expected, rtol=0, atol=1e-15)


def test_horizontal_divergence_swings_about_beam_cross_polarization():
    hd = 0.003
    pos, _, _ = grid_sources(MOSFLM_BEAM, MOSFLM_POLAR, [(hd, 0.0)], [1e-10])
    # beam x E = x x z = -y; -10 x rotated about -y by hd
    expected = SOURCE_DISTANCE_M * np.array([-math.cos(hd), 0.0, -math.sin(hd)])
    np.testing.assert_allclose(pos[0], expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("round_div", [True, False])
def test_grid_positions_equal_the_c_rotations_bit_for_bit(round_div):
    """The array version of the grid equals nanoBragg's loops and rotations, point by point."""
    h, v = StepRange(7, 0.003, 0.0005), StepRange(6, 0.002, 0.0004)
    beam, polar = np.array([0.6, 0.0, -0.8]), np.array([0.0, 1.0, 0.0])
    offsets = divergence_offsets(h, v, round_div)
    expected_offsets = []
    for ih in range(h.steps):
        for iv in range(v.steps):
            hd, vd = h.step * ih - h.range / 2.0, v.step * iv - v.range / 2.0
            test_h = (hd * hd - h.step * h.step / 4.0 * (1 - h.steps % 2)) / h.range / h.range
            test_v = (vd * vd - v.step * v.step / 4.0 * (1 - v.steps % 2)) / v.range / v.range
            if not (round_div and test_h + test_v > 1.1 / 4.0):
                expected_offsets.append((hd, vd))
    assert offsets.tolist() == [list(pair) for pair in expected_offsets]
    vert = sources_module._c_unit_cross(beam.tolist(), polar.tolist())
    start = [-SOURCE_DISTANCE_M * x for x in beam.tolist()]
    expected = [c_rotate_axis(c_rotate_axis(start, polar.tolist(), vd), vert, hd)
                for hd, vd in expected_offsets]
    assert grid_positions(beam, polar, offsets).tolist() == expected


def test_sources_are_divergence_major_with_equal_weights():
    offsets = [(0.0, 0.0), (0.001, 0.0), (0.0, 0.001)]
    lambdas = [0.9e-10, 1.0e-10]
    pos, weights, lam = grid_sources(MOSFLM_BEAM, MOSFLM_POLAR, offsets, lambdas)
    assert pos.shape == (6, 3)
    assert lam.tolist() == lambdas * 3
    np.testing.assert_array_equal(pos[0], pos[1])
    np.testing.assert_array_equal(pos[2], pos[3])
    np.testing.assert_allclose(weights, 1.0 / 6)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), SOURCE_DISTANCE_M, rtol=1e-15)
