"""Bit-exact checks of torchbragg.rng against numbers produced by the C nanoBragg.

Reference values come from the golden noise case and from a build of the C program
(unmodified generator functions) that printed its intermediate results.
"""

import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from torchbragg import rng

GOLDEN_NOISE = Path(__file__).parent / "data" / "golden" / "noise"

# ---------------------------------------------------------------------------
# Plain-Python reference of ran1 (Park-Miller + Bays-Durham shuffle), used to
# cross-check the compiled generator. `table` is [iy, iv...] and may be shared.
# ---------------------------------------------------------------------------

IA, IM, IQ, IR, NTAB = 16807, 2147483647, 127773, 2836, 32
NDIV = 1 + (IM - 1) // NTAB


def _step(x):
    k = x // IQ
    x = IA * (x - k * IQ) - IR * k
    return x + IM if x < 0 else x


def reference_ran1(state, table):
    if state[0] <= 0 or table[0] == 0:
        state[0] = 1 if -state[0] < 1 else -state[0]
        for j in range(NTAB + 7, -1, -1):
            state[0] = _step(state[0])
            if j < NTAB:
                table[1 + j] = state[0]
        table[0] = table[1]
    state[0] = _step(state[0])
    j = table[0] // NDIV
    table[0] = table[1 + j]
    table[1 + j] = state[0]
    temp = np.float32(table[0] / IM)
    return float(np.float32(1.0 - 1.2e-7)) if temp > 1.0 - 1.2e-7 else float(temp)


def reference_sequence(idum, n, table=None):
    table = [0] * (NTAB + 1) if table is None else table
    state = [idum]
    return np.array([reference_ran1(state, table) for _ in range(n)], np.float32), state, table


def synthetic_means():
    """Means that visit every poidev regime and the 16-bit clipping, shape (32, 40)."""
    parts = [
        np.zeros(40),
        np.linspace(0.0, 11.99, 400),
        [11.999999, 12.0, 12.000001, 12.5, -1.0, -0.25],
        np.geomspace(12.0, 2.0e6, 600),
        [999999.94, 1.0e6, 1000000.06, 1000000.1, 1.0e6 + 1, 65494.9, 65495.1, 65496.0],
        np.geomspace(1.0e6, 1.0e9, 226),
    ]
    return np.concatenate(parts).astype(np.float32).reshape(32, 40)


def digest(image):
    return hashlib.sha256(np.asarray(image).astype("<u2").tobytes()).hexdigest()


# ---------------------------------------------------------------------------
# Golden noise image
# ---------------------------------------------------------------------------


def read_smv(path):
    raw = gzip.decompress(path.read_bytes())
    header = raw[:512].decode("ascii", "replace")
    fields = dict(
        item.strip().split("=", 1) for item in header.strip("{}\f ").split(";") if "=" in item
    )
    shape = (int(fields["SIZE2"]), int(fields["SIZE1"]))
    return np.frombuffer(raw[512:], "<u2").reshape(shape)


def test_golden_noise_image_matches_c_exactly():
    expected = read_smv(GOLDEN_NOISE / "noise.img.gz")
    floats = np.frombuffer(gzip.decompress((GOLDEN_NOISE / "float.bin.gz").read_bytes()), "<f4")
    floats = floats.reshape(expected.shape)
    # The C run used "-seed 1234 -scale 2000"; -scale only affects the int image.
    result = rng.noise_image(floats, seed=1234, adc_offset=40.0)
    assert result.image.dtype == np.uint16
    assert result.image.shape == (128, 128)
    np.testing.assert_array_equal(result.image, expected)
    # stdout: "seed: -1234" and "112216 photons on noise image (0 overloads)"
    assert rng.idum_from_seed(1234) == -1234
    assert f"{result.photons:.0f}" == "112216"
    assert result.overloads == 0


def test_noise_image_float64_input_is_rounded_to_float32_like_c():
    floats = synthetic_means()[:8]
    as64 = floats.astype(np.float64) + 1e-12  # rounds back to the same float32 values
    a = rng.noise_image(floats, 99)
    b = rng.noise_image(as64, 99)
    np.testing.assert_array_equal(a.image, b.image)


# ---------------------------------------------------------------------------
# ran1
# ---------------------------------------------------------------------------


def test_ran1_matches_c_printout():
    stream = rng.Ran1(-1234)
    values = rng.ran1_sequence(stream, 100000)
    expected_head = [0.661984384, 0.134913027, 0.0410350449, 0.94013375, 0.411033601]
    np.testing.assert_array_equal(values[:5], np.float32(expected_head))
    assert values[-1] == np.float32(0.709522307)
    assert stream.idum == 1924101656

    default_mosaic = rng.Ran1.from_seed(rng.DEFAULT_MOSAIC_SEED)
    assert [rng.ran1(default_mosaic) for _ in range(3)] == [
        float(np.float32(v)) for v in (0.765989304, 0.023453664, 0.589726627)
    ]
    assert default_mosaic.idum == 1312812850


@pytest.mark.parametrize("idum", [-1, -1234, -987654321, 0, 5, -2147483647, 2147483647])
def test_ran1_matches_plain_python_reference(idum):
    stream = rng.Ran1(idum)
    got = rng.ran1_sequence(stream, 3000)
    want, state, table = reference_sequence(idum, 3000)
    np.testing.assert_array_equal(got, want)
    assert stream.idum == state[0]
    assert stream.iy == table[0]
    np.testing.assert_array_equal(stream.iv, table[1:])


def test_non_negative_idum_without_table_behaves_like_seed_one():
    ones = rng.ran1_sequence(rng.Ran1(-1), 50)
    for idum in (0, 1, 7, 123456):
        np.testing.assert_array_equal(rng.ran1_sequence(rng.Ran1(idum), 50), ones)


def test_positive_idum_continues_the_shared_table():
    shared = rng.SharedState()
    rng.ran1_sequence(rng.Ran1(-4242, shared), 10)
    table = [int(v) for v in shared.table]
    got = rng.ran1_sequence(rng.Ran1(7, shared), 100)
    want, _, _ = reference_sequence(7, 100, table)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, rng.ran1_sequence(rng.Ran1(7), 100))


def test_ran1_range():
    values = rng.ran1_sequence(rng.Ran1(-31), 20000)
    assert values.dtype == np.float32
    assert values.min() > 0.0
    assert values.max() <= np.float32(1.0 - 1.2e-7)


# ---------------------------------------------------------------------------
# gammln, gaussdev, poidev
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (1.0, 0.0),
        (2.0, -4.4408921e-16),
        (12.5, 18.7343483),
        (100.25, 360.284546),
        (1000001.0, 12815518.0),
        (0.5, 0.572364926),
    ],
)
def test_gammln_matches_c(x, expected):
    assert rng.gammln(x) == float(np.float32(expected))


def test_gaussdev_matches_c_and_keeps_spare():
    stream = rng.Ran1(-99)
    got = [rng.gaussdev(stream) for _ in range(5)]
    expected = [-0.381855279, 0.606110215, -1.24749267, -0.158318013, 2.29782009]
    assert got == [float(np.float32(v)) for v in expected]
    assert stream.shared.gauss_spare[0] == 1.0


def test_poidev_scalar_agrees_with_noise_loop():
    means = synthetic_means().ravel()[::7]
    stream = rng.Ran1(-2024)
    scalars = np.array([rng.poidev(m, stream) for m in means])
    image = rng.noise_image(means, 2024, adc_offset=0.0)
    clipped = np.minimum(scalars, 65535.0)
    np.testing.assert_array_equal(image.image, clipped.astype(np.uint16))
    assert np.all(scalars[means < 1.0e6] == np.floor(scalars[means < 1.0e6]))


def test_poidev_statistics():
    stream = rng.Ran1(-5)
    for mean in (0.7, 30.0, 5.0e6):
        draws = np.array([rng.poidev(mean, stream) for _ in range(4000)])
        assert abs(draws.mean() - mean) < 5 * np.sqrt(mean / draws.size)
        assert abs(draws.var() / mean - 1.0) < 0.15


# ---------------------------------------------------------------------------
# Noise loop details (reference digests from the C functions)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "sha", "overloads", "photons"),
    [
        (
            {"seed": 777},
            "ffda7e1089e76febf70bc6ad5d73ca1e33198317c4d0e50976a287a35b18c85e",
            404,
            33148659243.875,
        ),
        (
            {"seed": 5, "adc_offset": 10.0, "roi": (5, 30, 3, 20)},
            "3be1028abd38125537c75a4b3a4eb4e4c4184d5b592a23f8ef9d5a2b7d69e75a",
            0,
            990289.0,
        ),
        (
            {"seed": 42, "adc_offset": -50.5},
            "1684b24fd8dd94f15fe027c2a4fee7fe6ddd95b1575be71b0f1bf585a6a2dec2",
            403,
            33148355589.375,
        ),
        (
            {"seed": -7},
            "a8bf8c5ebf07641daa389e430a0bf51aa175cdedb387e9b9d954c8cbf10a039f",
            403,
            33148502424.125,
        ),
    ],
)
def test_noise_image_matches_c_digests(kwargs, sha, overloads, photons):
    result = rng.noise_image(synthetic_means(), **kwargs)
    assert digest(result.image) == sha
    assert result.overloads == overloads
    assert result.photons == photons


def test_noise_roi_pixels_outside_stay_zero():
    result = rng.noise_image(synthetic_means(), 5, adc_offset=10.0, roi=(5, 30, 3, 20))
    inside = np.zeros((32, 40), bool)
    inside[3:21, 5:31] = True
    assert np.all(result.image[~inside] == 0)
    assert np.all(result.image[inside] >= 10)


def test_noise_negative_offset_wraps_like_c_cast():
    result = rng.noise_image(np.zeros(4, np.float32), 42, adc_offset=-50.5)
    np.testing.assert_array_equal(result.image, [65486] * 4)


def test_noise_special_values_match_c():
    means = np.array([0, 5, np.nan, 20, np.inf, 7, -np.inf, 3e9, 100, 2.5e4], np.float32)
    result = rng.noise_image(means, 9)
    np.testing.assert_array_equal(result.image, [40, 45, 0, 59, 0, 52, 40, 65535, 133, 24855])
    assert result.overloads == 1
    assert np.isnan(result.photons)


def test_noise_first_call_poisson_cache_quirk():
    # A first mean of exactly -1 equals poidev's initial cached mean, so the C code
    # reuses its zero-initialised exp(-mean) and counts until the product underflows.
    result = rng.noise_image(np.array([-1.0, 2.0, -1.0, 30.0], np.float32), 3)
    np.testing.assert_array_equal(result.image, [141, 41, 40, 77])


def test_noise_after_mosaic_stream_shares_table():
    # Mosaic seed 4242 (3 domains), then a noise seed of -7 (positive idum): no reload.
    shared = rng.SharedState()
    rng.mosaic_umats(0.5, 3, 4242, shared)
    stream = rng.Ran1.from_seed(-7, shared)
    result = rng.noise_image(synthetic_means(), stream)
    assert digest(result.image) == (
        "f524156f13c481a21346fd931f703cb05d1d70a6e74a80edf93fb4f084277468"
    )
    assert result.overloads == 402
    assert result.photons == 33148710753.0
    assert stream.idum == 1293230612


def test_noise_image_large_is_fast():
    means = np.tile(synthetic_means()[:, :32] % 50.0, (32, 32))  # about 1 megapixel
    rng.noise_image(means[:2], 1)  # compile / load the cached kernel
    start = time.perf_counter()
    rng.noise_image(means, 1)
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------------------
# Rotations
# ---------------------------------------------------------------------------

MOSAIC_DOMAIN_11 = [
    [0.9999304489288523, -0.011078911724068731, -0.0040441340178279106],
    [0.011074144453451897, 0.99993796056874984, -0.0011993073973325281],
    [0.004057170142838613, 0.0011544386599158731, 0.99999110328133045],
]


def test_mosaic_umats_match_c_case_mosaic():
    # golden case "mosaic": -mosaic 0.8 -mosaic_dom 12 -mosaic_seed 4242
    umats = rng.mosaic_umats(0.8, 12, 4242)
    assert umats.shape == (12, 3, 3)
    assert umats.dtype == np.float64
    np.testing.assert_array_equal(umats[0], np.eye(3))
    np.testing.assert_array_equal(umats[11], MOSAIC_DOMAIN_11)
    assert hashlib.sha256(umats.astype("<f8").tobytes()).hexdigest() == (
        "320ad993ba3027d8219dfa01be21fe6ad19d81970374e46141e026cdfab6ae75"
    )
    np.testing.assert_allclose(
        umats @ umats.transpose(0, 2, 1), np.broadcast_to(np.eye(3), umats.shape), atol=1e-12
    )


def test_mosaic_umats_after_random_misset_share_table():
    # -misset random -misset_seed 31337 -mosaic 30 -mosaic_dom 200 -mosaic_seed -3
    shared = rng.SharedState()
    rng.random_misset(31337, shared)
    umats = rng.mosaic_umats(30.0, 200, -3, shared)
    assert hashlib.sha256(umats.astype("<f8").tobytes()).hexdigest() == (
        "bcccf0d4381c0ef3c7e4653bb011917263992629ade412b92686d43886513754"
    )


def test_mosaic_zero_spread_is_identity():
    umats = rng.mosaic_umats(0.0, 3, 1)
    np.testing.assert_array_equal(umats, np.broadcast_to(np.eye(3), (3, 3, 3)))


RANDOM_UMAT_31337 = [
    [0.92221769100644169, 0.36118776922452506, -0.13805044642216283],
    [-0.37728023637239522, 0.76231229145283386, -0.52587032008159507],
    [-0.084700375663492686, 0.53705061741193538, 0.83928688819730901],
]


def test_random_misset_matches_c():
    stream = rng.Ran1.from_seed(31337)
    np.testing.assert_array_equal(rng.mosaic_rotation_umat(90.0, stream), RANDOM_UMAT_31337)
    assert stream.idum == 19282479
    angles = rng.random_misset_angles(31337)
    np.testing.assert_array_equal(
        angles, [0.56923458493795298, 0.084801979606217659, -0.38832741511669411]
    )
    umat, degrees = rng.random_misset(31337)
    # "random orientation misset angles: 32.614739 4.858796 -22.249522 deg"
    assert " ".join(f"{d:f}" for d in degrees) == "32.614739 4.858796 -22.249522"
    np.testing.assert_allclose(umat, RANDOM_UMAT_31337, atol=1e-15)
    # C rotates a* = (0.0144344..., 0, 0) by the angles into:
    a_star = umat @ [0.014434413849126214, 0.0, 0.0]
    np.testing.assert_allclose(
        a_star, [0.013311671810972581, -0.0054458190688953124, -0.0012226002755033115], rtol=1e-14
    )


@pytest.mark.parametrize("seed", [0, 1, -5])
def test_random_misset_seeds_that_reload_as_one(seed):
    degrees = rng.random_misset(seed)[1]
    assert " ".join(f"{d:f}" for d in degrees) == "4.662957 -11.844979 17.622548"


def test_umat_to_misset_round_trip_and_degenerate_rows():
    angles = np.array([0.3, -0.7, 2.1])
    np.testing.assert_allclose(rng.umat_to_misset(rng.misset_rotation_matrix(angles)), angles)
    # A missing third row is rebuilt from the cross product of the first two.
    partial = rng.misset_rotation_matrix(angles)
    partial[2] = 0.0
    np.testing.assert_allclose(rng.umat_to_misset(partial), angles, atol=1e-12)


def test_default_noise_seed_is_the_clock():
    assert abs(rng.default_noise_seed() - time.time()) < 5
