"""Rotations and the detector frame (torchbragg.geometry), by hand and against the C program.

Numbers quoted from the C program come from the golden cases' printed reports (the case is
named next to each); they are copied here so that the suite runs on a clean clone.
"""

import math

import pytest
import torch

from torchbragg.cli.parse import parse_args
from torchbragg.geometry import detector_frame, rotate_axis, rotate_xyz, unitize
from torchbragg.precedence import resolve
from torchbragg.simulator import Simulator

F64 = torch.float64
HALF_PI = math.pi / 2


def vec(*xs):
    return torch.tensor(xs, dtype=F64)


def assert_vec(actual, expected, atol=1e-12):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), rtol=0, atol=atol)


def config_from(args, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return resolve(parse_args(args.split()).state).config


def frame_from(args, monkeypatch, tmp_path):
    sim = Simulator(config_from(args, monkeypatch, tmp_path))
    return sim.detector.frame(sim.beam.direction)


# ---------------------------------------------------------------------------------------------
# rotate_xyz
# ---------------------------------------------------------------------------------------------

X, Y, Z = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
MX, MY, MZ = (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)


@pytest.mark.parametrize(
    ("angles", "v", "expected"),
    [
        # about x: y -> z, z -> -y, x fixed
        ((HALF_PI, 0, 0), Y, Z), ((HALF_PI, 0, 0), Z, MY), ((HALF_PI, 0, 0), X, X),
        # about y: z -> x, x -> -z, y fixed
        ((0, HALF_PI, 0), Z, X), ((0, HALF_PI, 0), X, MZ), ((0, HALF_PI, 0), Y, Y),
        # about z: x -> y, y -> -x, z fixed
        ((0, 0, HALF_PI), X, Y), ((0, 0, HALF_PI), Y, MX), ((0, 0, HALF_PI), Z, Z),
    ],
)
def test_rotate_xyz_quarter_turn_about_each_axis_is_right_handed(angles, v, expected):
    rx, ry, rz = (torch.tensor(a, dtype=F64) for a in angles)
    assert_vec(rotate_xyz(vec(*v), rx, ry, rz), expected)


def test_rotate_xyz_applies_x_then_y_then_z():
    q = torch.tensor(HALF_PI, dtype=F64)
    # y --x--> z --y--> x --z--> y ; the reverse order would give -y
    assert_vec(rotate_xyz(vec(*Y), q, q, q), Y)
    # matches the matrix product Rz @ Ry @ Rx for arbitrary angles
    rx, ry, rz = (torch.tensor(a, dtype=F64) for a in (0.3, -1.1, 2.2))
    cx, sx, cy, sy, cz, sz = (math.cos(0.3), math.sin(0.3), math.cos(-1.1), math.sin(-1.1),
                              math.cos(2.2), math.sin(2.2))
    r_x = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=F64)
    r_y = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=F64)
    r_z = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=F64)
    vs = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    expected = vs @ (r_z @ r_y @ r_x).T
    assert_vec(rotate_xyz(vs, rx, ry, rz), expected)


def test_rotate_xyz_preserves_length():
    vs = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    angles = (torch.tensor(a, dtype=F64) for a in (0.7, 1.9, -2.5))
    out = rotate_xyz(vs, *angles)
    assert_vec(out.norm(dim=-1), vs.norm(dim=-1))


# ---------------------------------------------------------------------------------------------
# rotate_axis
# ---------------------------------------------------------------------------------------------


def rodrigues_matrix(axis, phi):
    """exp(phi [axis]_x), the rotation matrix, computed independently of the code under test."""
    kx, ky, kz = axis.tolist()
    skew = torch.tensor([[0, -kz, ky], [kz, 0, -kx], [-ky, kx, 0]], dtype=F64)
    return torch.linalg.matrix_exp(phi * skew)


def test_rotate_axis_quarter_turns():
    q = torch.tensor(HALF_PI, dtype=F64)
    assert_vec(rotate_axis(vec(*X), vec(*Z), q), Y)
    assert_vec(rotate_axis(vec(*Y), vec(*X), q), Z)
    assert_vec(rotate_axis(vec(*Z), vec(*Y), q), X)
    # the MOSFLM two-theta axis is -z: x swings to -y
    assert_vec(rotate_axis(vec(*X), vec(*MZ), q), MY)


def test_rotate_axis_matches_matrix_exponential_of_the_axis():
    g = torch.Generator().manual_seed(3)
    for phi in (0.0, 0.4, -1.3, 2.9, math.pi):
        axis = unitize(torch.randn(3, dtype=F64, generator=g))
        vs = torch.randn(4, 3, dtype=F64, generator=g)
        expected = vs @ rodrigues_matrix(axis, phi).T
        assert_vec(rotate_axis(vs, axis, torch.tensor(phi, dtype=F64)), expected)


def test_rotate_axis_closed_form_components():
    # v = x, axis = (0, s, c) unit in the y-z plane: the component along the axis is 0, so
    # x -> x cos(phi) + (axis x x) sin(phi) with axis x x = (0, c, -s)
    s, c = math.sin(0.6), math.cos(0.6)
    phi = 0.9
    out = rotate_axis(vec(*X), vec(0.0, s, c), torch.tensor(phi, dtype=F64))
    assert_vec(out, [math.cos(phi), c * math.sin(phi), -s * math.sin(phi)])
    # a vector along the axis is unchanged
    assert_vec(rotate_axis(vec(0.0, s, c), vec(0.0, s, c), torch.tensor(phi, dtype=F64)),
               [0.0, s, c])


def test_rotate_axis_broadcasts_angles():
    phis = torch.tensor([0.0, HALF_PI, math.pi], dtype=F64)
    out = rotate_axis(vec(*X)[None], vec(*Z), phis)
    assert_vec(out, [X, Y, MX])


# ---------------------------------------------------------------------------------------------
# detector_frame
# ---------------------------------------------------------------------------------------------

MOSFLM_AXES = dict(fdet=vec(*Z), sdet=vec(*MY), odet=vec(*X), beam=vec(*X), twotheta_axis=vec(*MZ))
NO_ROTATION = torch.zeros(3, dtype=F64)


def mosflm_frame(pivot="beam", rotations=NO_ROTATION, twotheta=0.0, distance=0.1,
                 beam_fs=(0.0129, 0.0129), close_fs=(0.0128, 0.0128), close_distance=None):
    return detector_frame(
        MOSFLM_AXES, rotations, torch.tensor(twotheta, dtype=F64), pivot,
        vec(*beam_fs), vec(*close_fs), torch.tensor(distance, dtype=F64),
        None if close_distance is None else torch.tensor(close_distance, dtype=F64))


def test_mosflm_beam_pivot_pix0_by_hand():
    # pix0 = -Fbeam fdet - Sbeam sdet + distance beam = (d, Sbeam, -Fbeam)
    fr = mosflm_frame()
    assert_vec(fr.pix0, [0.1, 0.0129, -0.0129])
    assert_vec(fr.fdet, Z)
    assert_vec(fr.sdet, MY)
    assert_vec(fr.odet, X)
    assert_vec(fr.close_distance, 0.1)
    assert_vec(fr.distance, 0.1)
    assert_vec(torch.stack((fr.beam_f, fr.beam_s)), [0.0129, 0.0129])
    assert_vec(torch.stack((fr.close_f, fr.close_s)), [0.0129, 0.0129])


def test_mosflm_twotheta_90_about_minus_z_points_normal_along_minus_y():
    fr = mosflm_frame(twotheta=HALF_PI)
    assert_vec(fr.odet, MY)
    assert_vec(fr.fdet, Z)  # fast axis lies along the two-theta axis
    assert_vec(fr.sdet, MX)
    # MOSFLM's frame has fdet x sdet = odet, and a rotation keeps it so
    assert_vec(torch.linalg.cross(fr.fdet, fr.sdet), fr.odet)


def test_beam_pivot_keeps_direct_beam_spot_under_detector_rotations():
    rotations = vec(0.05, -0.08, 0.11)
    fr = mosflm_frame(rotations=rotations, beam_fs=(0.011, 0.007))
    assert_vec(torch.stack((fr.beam_f, fr.beam_s)), [0.011, 0.007])
    # the beam hits the detector plane at distance along the beam
    spot = fr.pix0 + fr.beam_f * fr.fdet + fr.beam_s * fr.sdet
    assert_vec(spot, fr.distance * vec(*X))
    assert_vec(torch.dot(fr.pix0, fr.odet), fr.close_distance)


@pytest.mark.parametrize("twotheta", [0.0, 0.3, -0.7])
def test_sample_pivot_keeps_point_of_closest_approach(twotheta):
    rotations = vec(-0.07, 0.02, 0.12)
    fr = mosflm_frame(pivot="sample", rotations=rotations, twotheta=twotheta,
                      close_fs=(0.0093, 0.0121), close_distance=0.095)
    # rotation swings the plane about the sample: it stays 0.095 m away
    assert_vec(torch.abs(torch.dot(fr.pix0, fr.odet)), 0.095)
    assert_vec(fr.close_distance, 0.095)
    assert_vec(torch.stack((fr.close_f, fr.close_s)), [0.0093, 0.0121])
    # the close point is the foot of the perpendicular from the sample
    foot = fr.pix0 + fr.close_f * fr.fdet + fr.close_s * fr.sdet
    assert_vec(foot, fr.close_distance * fr.odet)


def test_sample_pivot_with_explicit_close_distance_sets_distance_along_beam():
    rotations = vec(0.0, 0.0, 0.2)  # tilts the normal (x) towards y by 0.2 rad
    fr = mosflm_frame(pivot="sample", rotations=rotations, close_distance=0.09)
    assert_vec(fr.close_distance, 0.09)
    assert_vec(fr.distance, 0.09 / math.cos(0.2))


def test_close_distance_derived_from_distance_uses_tilt_before_twotheta():
    # as the C program: close_distance = |beam . rotated normal| x distance, where the normal
    # has the x/y/z rotations but not the two-theta swing
    fr = mosflm_frame(pivot="sample", rotations=vec(0.0, 0.0, 0.2), twotheta=0.5, distance=0.1)
    assert_vec(fr.close_distance, 0.1 * math.cos(0.2))
    assert_vec(fr.distance, 0.1)


def test_detector_axes_stay_orthonormal():
    fr = mosflm_frame(pivot="sample", rotations=vec(0.3, -0.2, 0.5), twotheta=0.4)
    m = torch.stack((fr.fdet, fr.sdet, fr.odet))
    assert_vec(m @ m.T, torch.eye(3, dtype=F64))


# ---------------------------------------------------------------------------------------------
# conventions and C reference numbers, through the command line
# ---------------------------------------------------------------------------------------------

TRICLINIC = "-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 -pixel 0.1"


@pytest.mark.parametrize(
    ("flag", "twotheta_axis", "polar", "spindle"),
    [("-xds", X, X, X), ("-dials", Y, Y, Y)],
)
def test_xds_and_dials_conventions_give_documented_axes(flag, twotheta_axis, polar, spindle,
                                                        monkeypatch, tmp_path):
    c = config_from(f"{TRICLINIC} {flag} -Xbeam 9.0 -Ybeam 7.5 -detpixels 160",
                    monkeypatch, tmp_path)
    det = c.detector
    assert det.convention == flag[1:]
    assert det.pivot == "sample"
    assert tuple(det.fdet) == X
    assert tuple(det.sdet) == Y
    assert tuple(det.odet) == Z
    assert tuple(det.twotheta_axis) == twotheta_axis
    assert tuple(c.beam.beam) == Z
    assert tuple(c.beam.polar_vector) == polar
    assert tuple(c.crystal.spindle) == spindle


def test_mosflm_is_the_default_convention(monkeypatch, tmp_path):
    c = config_from(f"{TRICLINIC} -detpixels 160", monkeypatch, tmp_path)
    det = c.detector
    assert (det.convention, det.pivot) == ("mosflm", "beam")
    assert (tuple(det.fdet), tuple(det.sdet), tuple(det.odet)) == (Z, MY, X)
    assert tuple(det.twotheta_axis) == MZ
    assert tuple(c.beam.beam) == X


def dials_origin_mm(pix0):
    # as the C program prints it: pix0 . (0,0,1), pix0 . (0,1,0), pix0 . (-1,0,0), in mm
    return torch.stack((pix0[2], pix0[1], -pix0[0])) * 1000


def test_sc_default_frame_matches_c(monkeypatch, tmp_path):
    # case sc_default: Fbeam=0.0129 Sbeam=0.0129, dials origin= -12.9 12.9 -100
    fr = frame_from("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
                    "-pixel 0.1 -detpixels 256", monkeypatch, tmp_path)
    assert_vec(fr.pix0, [0.1, 0.0129, -0.0129], atol=1e-15)
    assert_vec(dials_origin_mm(fr.pix0), [-12.9, 12.9, -100], atol=1e-10)


def test_xds_frame_ignores_xbeam_under_sample_pivot_as_c(monkeypatch, tmp_path):
    # case conv_xds: Xbeam=0.0082 Ybeam=0.0113 but Fbeam=0.009 Sbeam=0.009 (the sample pivot
    # uses the close point, the detector centre), dials origin= 100 -9 9
    fr = frame_from(f"{TRICLINIC} -xds -Xbeam 8.2 -Ybeam 11.3 -detpixels 180",
                    monkeypatch, tmp_path)
    assert_vec(torch.stack((fr.beam_f, fr.beam_s)), [0.009, 0.009], atol=1e-15)
    assert_vec(dials_origin_mm(fr.pix0), [100, -9, 9], atol=1e-10)


def test_rot_twotheta_beam_pivot_matches_c(monkeypatch, tmp_path):
    # case rot_twotheta (printed with %g, six significant digits)
    fr = frame_from(f"{TRICLINIC} -detector_rotx 5 -detector_roty 3 -detector_rotz 2 "
                    "-twotheta 15 -detpixels 200", monkeypatch, tmp_path)
    tol = dict(rtol=5e-6, atol=5e-7)
    expected = {
        "fdet": [0.0311948, -0.0966502, 0.994829],      # DIRECTION_OF_DETECTOR_X-AXIS
        "sdet": [-0.22854, -0.969636, -0.0870363],      # DIRECTION_OF_DETECTOR_Y-AXIS
        "odet": [0.973035, -0.224643, -0.052336],       # DIRECTION_OF_DETECTOR_Z-AXIS
    }
    for name, value in expected.items():
        torch.testing.assert_close(getattr(fr, name), vec(*value), **tol)
    scalars = dict(distance=0.0974964, beam_f=0.0100219, beam_s=0.0106722,
                   close_f=0.00698052, close_s=0.032954)
    for name, value in scalars.items():
        torch.testing.assert_close(getattr(fr, name), torch.tensor(value, dtype=F64), **tol)
    torch.testing.assert_close(dials_origin_mm(fr.pix0), vec(-9.16871, 10.7695, -101.993),
                               **tol)


def test_rot_twotheta_sample_matches_c_where_twotheta_axis_resets_twotheta(monkeypatch,
                                                                            tmp_path):
    # case rot_twotheta_sample: the C program's option scan also matches -twotheta_axis as
    # -twotheta, so "-twotheta_axis 0 1 0" after "-twotheta 20" leaves two-theta at 0
    args = (f"{TRICLINIC} -pivot sample -detector_rotx -4 -detector_rotz 7 -twotheta 20 "
            "-twotheta_axis 0 1 0 -detpixels 200")
    c = config_from(args, monkeypatch, tmp_path)
    assert c.detector.twotheta_rad == 0.0
    assert c.detector.pivot == "sample"
    fr = frame_from(args, monkeypatch, tmp_path)
    tol = dict(rtol=5e-6, atol=5e-7)
    expected = {
        "fdet": [-0.00850118, 0.0692365, 0.997564],     # DIRECTION_OF_DETECTOR_X-AXIS
        "sdet": [0.121572, -0.990128, 0.0697565],       # DIRECTION_OF_DETECTOR_Y-AXIS
        "odet": [0.992546, 0.121869, 0.0],              # DIRECTION_OF_DETECTOR_Z-AXIS
    }
    for name, value in expected.items():
        torch.testing.assert_close(getattr(fr, name), vec(*value), **tol)
    scalars = dict(beam_f=0.00914988, beam_s=0.0221572, close_f=0.01, close_s=0.01)
    for name, value in scalars.items():
        torch.testing.assert_close(getattr(fr, name), torch.tensor(value, dtype=F64), **tol)
    torch.testing.assert_close(dials_origin_mm(fr.pix0), vec(-10.6732, 21.305, -97.3841),
                               **tol)


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pivot", ["beam", "sample"])
def test_detector_frame_gradcheck(pivot):
    def frame(rotations, twotheta, beam_fs, close_fs, distance):
        fr = detector_frame(MOSFLM_AXES, rotations, twotheta, pivot, beam_fs, close_fs,
                            distance, None)
        return (fr.fdet, fr.sdet, fr.odet, fr.pix0 * 10, fr.beam_f * 10, fr.close_s * 10,
                fr.distance)

    inputs = (vec(0.05, -0.03, 0.08), torch.tensor(0.2, dtype=F64), vec(0.011, 0.009),
              vec(0.0105, 0.0095), torch.tensor(0.1, dtype=F64))
    assert torch.autograd.gradcheck(frame, tuple(x.requires_grad_(True) for x in inputs))


def test_unitize_keeps_zero_vector_and_normalises_others():
    assert_vec(unitize(vec(0.0, 0.0, 0.0)), [0.0, 0.0, 0.0])
    assert_vec(unitize(vec(3.0, 0.0, -4.0)), [0.6, 0.0, -0.8])


def test_unitize_gradient_at_zero_vector_is_finite():
    v = torch.zeros(3, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(unitize(v).sum(), v)
    assert torch.isfinite(g).all()
