"""Random numbers of the C nanoBragg, reproduced bit for bit.

The C program draws all of its random numbers from one uniform generator, ``ran1``:
the Park-Miller "minimal standard" linear congruential generator (multiplier 16807,
modulus 2**31 - 1, evaluated with Schrage's factorisation) followed by a Bays-Durham
shuffle through a 32-entry table. Three consumers use it:

* ``-misset random``: one random rotation from the ``-misset_seed`` stream,
* the mosaic domains: one random rotation per domain from the ``-mosaic_seed`` stream,
* the noise image: one Poisson deviate per pixel from the ``-seed`` stream.

Seeds
-----
Every public function here takes a seed as it is written on the C command line
(``-seed 1234``). The C program stores its negative, ``idum = -1234`` (this is the
number it prints as ``seed: -1234``); a non-positive ``idum`` makes ``ran1`` load its
shuffle table on the next draw. Defaults: the noise seed and the misset seed are both
``-time(NULL)`` taken when the program starts (see `default_noise_seed`), the mosaic
seed is ``-12345678`` (`DEFAULT_MOSAIC_SEED`; the C help text claims 1234567).
(``-mosaic_seed`` and ``-misset_seed`` do not match the C parser's ``-seed`` pattern: the
character before ``seed`` is an underscore.)

Shared generator state
----------------------
Each stream owns its ``idum``, but the shuffle table (``iy`` and ``iv``), the spare
Gaussian deviate of ``gaussdev`` and the cached constants of ``poidev`` are
function-static variables in C, so all streams share one copy of them. Here that copy
is a `SharedState` object that several `Ran1` streams may hold.

The sharing is invisible as long as every stream starts from a non-positive ``idum``:
the first draw of each stream then reloads the table from its own seed, which is what
happens for any seed >= 0 on the command line and for the clock seed. A negative
command-line seed (``-seed -5``) gives a positive ``idum``, and then

* if no stream has drawn yet (``iy == 0``), the table is loaded with ``idum`` replaced
  by 1, i.e. seeds 0, 1 and every negative seed give the same numbers;
* otherwise the table is not reloaded: the new stream continues the table left by the
  previous stream, with its own ``idum``.

The C program uses the streams in the order misset (only with ``-misset random``),
mosaic domains (always: domain 0 draws three numbers even without mosaicity), noise
(only when a noise image is written). To reproduce it for any seed, pass one
`SharedState` to `random_misset`, `mosaic_umats` and `noise_image` in that order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import time
from typing import NamedTuple

import numpy as np

from torchbragg import rng_kernels
from torchbragg.rng_kernels import _NTAB, compiled

__all__ = [
    "DEFAULT_MOSAIC_SEED",
    "NoiseImage",
    "Ran1",
    "SharedState",
    "default_noise_seed",
    "gammln",
    "gaussdev",
    "idum_from_seed",
    "misset_rotation_matrix",
    "mosaic_rotation_umat",
    "mosaic_umats",
    "noise_image",
    "poidev",
    "ran1",
    "ran1_sequence",
    "random_misset",
    "random_misset_angles",
    "umat_to_misset",
]

# Degrees per radian, built as the C program builds it (180 * M_1_PI).
_RTD = 180.0 * 0.318309886183790671537767526745028724

#: Mosaic seed the C program uses when ``-mosaic_seed`` is not given (command-line form).
DEFAULT_MOSAIC_SEED = 12345678

def idum_from_seed(seed: int) -> int:
    """Convert a command-line seed into the ``idum`` value the C program stores.

    Parameters
    ----------
    seed : int
        Value written after ``-seed``, ``-mosaic_seed`` or ``-misset_seed``.

    Returns
    -------
    int
        ``-seed``, the generator state the C program starts from (and prints).
    """
    return -int(seed)


def default_noise_seed() -> int:
    """Return the command-line seed equivalent to the C program's clock seed.

    The C program starts both its noise and its misset stream from ``-time(NULL)``,
    read once at start-up; passing the returned value as ``seed`` reproduces that.

    Returns
    -------
    int
        Seconds since the Unix epoch (the C ``idum`` is its negative).
    """
    return int(time.time())


class SharedState:
    """Function-static variables of the C generators, shared by all streams.

    Attributes
    ----------
    table : numpy.ndarray, int64, shape (33,)
        ``[iy, iv[0], ..., iv[31]]``: the last output and the Bays-Durham shuffle
        table of ``ran1``. ``iy == 0`` means "never loaded".
    gauss_spare : numpy.ndarray, float64, shape (2,)
        ``[has_spare, value]``: the second Box-Muller deviate ``gaussdev`` keeps.
    poisson_cache : numpy.ndarray, float64, shape (4,)
        ``[oldm, sq, alxm, g]``: the float32 constants ``poidev`` keeps for the last
        mean (``oldm`` starts at -1, the others at 0, as in C).
    """

    def __init__(self) -> None:
        self.table = np.zeros(_NTAB + 1, dtype=np.int64)
        self.gauss_spare = np.zeros(2, dtype=np.float64)
        self.poisson_cache = np.array([-1.0, 0.0, 0.0, 0.0], dtype=np.float64)

    def copy(self) -> SharedState:
        """Return an independent copy of this state."""
        other = SharedState()
        other.table[:] = self.table
        other.gauss_spare[:] = self.gauss_spare
        other.poisson_cache[:] = self.poisson_cache
        return other


class Ran1:
    """One random stream of the C program: its own ``idum`` plus shared statics.

    Parameters
    ----------
    idum : int
        Initial C state (``-seed``; see `idum_from_seed`). Non-positive values reload
        the shuffle table on the first draw.
    shared : SharedState, optional
        State shared with streams used before this one; a fresh one by default.
    """

    def __init__(self, idum: int, shared: SharedState | None = None) -> None:
        self._idum = np.array([idum], dtype=np.int64)
        self.shared = SharedState() if shared is None else shared

    @classmethod
    def from_seed(cls, seed: int, shared: SharedState | None = None) -> Ran1:
        """Create the stream the C program builds from a command-line seed."""
        return cls(idum_from_seed(seed), shared)

    @property
    def idum(self) -> int:
        """Current C ``idum`` (the Park-Miller state once the table is loaded)."""
        return int(self._idum[0])

    @property
    def iy(self) -> int:
        """Last shuffled output of the shared table (0 before the first load)."""
        return int(self.shared.table[0])

    @property
    def iv(self) -> np.ndarray:
        """Copy of the shared 32-entry shuffle table, int64, shape (32,)."""
        return self.shared.table[1:].copy()


# ---------------------------------------------------------------------------
# Scalar deviates, named after the C functions.
# ---------------------------------------------------------------------------


def ran1(rng: Ran1) -> float:
    """Draw one uniform deviate, as C ``ran1(&idum)``.

    Parameters
    ----------
    rng : Ran1
        Stream to advance.

    Returns
    -------
    float
        A float32 value in (0, 1), returned as a Python float (exact).
    """
    return float(rng_kernels._ran1(rng._idum, rng.shared.table))


def ran1_sequence(rng: Ran1, n: int) -> np.ndarray:
    """Draw ``n`` successive uniform deviates.

    Parameters
    ----------
    rng : Ran1
        Stream to advance.
    n : int
        Number of deviates.

    Returns
    -------
    numpy.ndarray, float32, shape (n,)
        The values ``ran1`` returns, in order.
    """
    out = np.empty(int(n), dtype=np.float32)
    compiled("_ran1_fill")(rng._idum, rng.shared.table, out)
    return out


def gaussdev(rng: Ran1) -> float:
    """Draw one standard normal deviate, as C ``gaussdev(&idum)``.

    Parameters
    ----------
    rng : Ran1
        Stream to advance; its shared state holds the spare deviate.

    Returns
    -------
    float
        A float32 value (mean 0, rms 1), returned as a Python float.
    """
    return float(compiled("_gaussdev")(rng._idum, rng.shared.table, rng.shared.gauss_spare))


def poidev(xm: float, rng: Ran1) -> float:
    """Draw one Poisson deviate of mean ``xm``, as C ``poidev(xm, &idum)``.

    Means below 12 use the direct method, means up to 1e6 the rejection method, and
    larger means ``xm + sqrt(xm) * gaussdev``. ``xm`` is rounded to float32 first.

    Parameters
    ----------
    xm : float
        Expected number of photons.
    rng : Ran1
        Stream to advance.

    Returns
    -------
    float
        The deviate (a whole number except in the Gaussian regime), float32 precision.
    """
    shared = rng.shared
    return float(
        compiled("_poidev")(np.float32(xm), rng._idum, shared.table, shared.gauss_spare,
                            shared.poisson_cache)
    )


def gammln(xx: float) -> float:
    """Return ln Gamma(xx) as the C ``gammln`` computes it (float in, float out).

    Parameters
    ----------
    xx : float
        Argument > 0; rounded to float32 first.

    Returns
    -------
    float
        ln Gamma(xx) rounded to float32.
    """
    return float(compiled("_gammln")(np.float32(xx)))


# ---------------------------------------------------------------------------
# Random rotations: mosaic domains and -misset random.
# ---------------------------------------------------------------------------


def _load_powf():
    # The C code raises to the 1/3 power in single precision; use the C library's
    # powf where it can be found so the rounding is the C program's.
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        libm = ctypes.CDLL(name)
        fn = libm.powf
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float, ctypes.c_float]
    return fn


_POWF = _load_powf()


def _powf(x: float, y: float) -> float:
    if _POWF is not None:
        return float(_POWF(x, y))
    return float(np.float32(math.pow(float(np.float32(x)), float(np.float32(y)))))


def _f32(x: float) -> float:
    return float(np.float32(x))


def mosaic_axis_angle(mosaicity: float, rng: Ran1) -> tuple[tuple[float, float, float], float]:
    """Draw one mosaic domain's rotation axis and angle, as C ``mosaic_rotation_umat`` does.

    Three uniforms pick the axis (uniform on the sphere) and the angle,
    ``mosaicity * (1 - r3**2)**(1/3)`` with ``r3`` uniform in [-1, 1]. ``mosaicity`` is in
    radians and passes through a C float, like the angle.

    Returns
    -------
    ((v1, v2, v3), angle): unit axis and angle (radians).
    """
    mosaicity = _f32(mosaicity)
    r1 = 2.0 * ran1(rng) - 1.0
    r2 = 2.0 * ran1(rng) - 1.0
    r3 = 2.0 * ran1(rng) - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    rot = _f32(mosaicity * _powf(_f32(1.0 - r3 * r3), _f32(1.0 / 3.0)))
    return (xyrad * math.sin(math.pi * r1), xyrad * math.cos(math.pi * r1), r2), rot


def axis_angle_umat(axis: tuple[float, float, float], rot: float) -> np.ndarray:
    """The (3, 3) rotation by ``rot`` radians about unit ``axis``, in the C program's order."""
    v1, v2, v3 = axis
    cos_r = math.cos(rot)
    one_minus_cos = 1.0 - cos_r
    sin_r = math.sin(rot)
    c1 = one_minus_cos * v1
    c12 = c1 * v2
    c13 = c1 * v3
    c23 = one_minus_cos * v2 * v3
    umat = [
        [cos_r + one_minus_cos * (v1 * v1), c12 - sin_r * v3, c13 + sin_r * v2],
        [c12 + sin_r * v3, cos_r + one_minus_cos * (v2 * v2), c23 - sin_r * v1],
        [c13 - sin_r * v2, c23 + sin_r * v1, cos_r + one_minus_cos * (v3 * v3)],
    ]
    return np.array(umat, dtype=np.float64)


def mosaic_rotation_umat(mosaicity: float, rng: Ran1) -> np.ndarray:
    """Draw a random rotation within a spherical cap, as C ``mosaic_rotation_umat``.

    See :func:`mosaic_axis_angle` (the draw) and :func:`axis_angle_umat` (the matrix).

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        Rotation matrix acting on column vectors (``v_new = U @ v``).
    """
    return axis_angle_umat(*mosaic_axis_angle(mosaicity, rng))


def mosaic_domains(mosaic_spread_deg: float, n_domains: int, seed: int = DEFAULT_MOSAIC_SEED,
                   shared: SharedState | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Axes (n, 3) and angles (n,) of the mosaic domains the C program draws.

    Domain 0 is unrotated (zero axis and angle; its three draws still happen). The angles
    are proportional to the spread (up to the C float rounding), so a refined spread rescales
    them with the axes fixed by the seed.
    """
    rng = Ran1.from_seed(seed, shared)
    spread_rad = float(mosaic_spread_deg) / _RTD
    axes = np.zeros((int(n_domains), 3))
    angles = np.zeros(int(n_domains))
    for domain in range(int(n_domains)):
        axis, rot = mosaic_axis_angle(spread_rad, rng)
        if domain > 0:
            axes[domain], angles[domain] = axis, rot
    return axes, angles


def mosaic_umats(
    mosaic_spread_deg: float,
    n_domains: int,
    seed: int = DEFAULT_MOSAIC_SEED,
    shared: SharedState | None = None,
) -> np.ndarray:
    """Build the mosaic domain orientations exactly as the C program does.

    The spread is converted to radians (divided by 180/pi), every domain draws a
    rotation from the mosaic stream, and domain 0 is then replaced by the identity
    (its three draws still happen). The C program only applies these matrices when
    the spread is > 0; with zero spread the rotations are the identity anyway.

    Parameters
    ----------
    mosaic_spread_deg : float
        ``-mosaic`` value, degrees.
    n_domains : int
        ``-mosaic_dom`` value after the C program's defaults are applied (>= 1).
    seed : int, optional
        ``-mosaic_seed`` value (command-line form); 12345678 by default.
    shared : SharedState, optional
        State left by the random-misset stream, if it ran (see module notes).

    Returns
    -------
    numpy.ndarray, float64, shape (n_domains, 3, 3)
        One rotation per domain, acting on column vectors.
    """
    return axis_angle_umats(*mosaic_domains(mosaic_spread_deg, n_domains, seed, shared))


def axis_angle_umats(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations for axes (n, 3) and angles (n,), by :func:`axis_angle_umat`."""
    umats = np.empty((len(angles), 3, 3), dtype=np.float64)
    for domain, (axis, angle) in enumerate(zip(axes, angles, strict=True)):
        umats[domain] = axis_angle_umat(tuple(axis), float(angle))
    return umats


def _unit_rows(rows: list[list[float]]) -> tuple[list[list[float]], list[float]]:
    # Divide each row by its length (when non-zero), keeping the lengths.
    lengths = []
    out = []
    for row in rows:
        m = math.sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2])
        lengths.append(m)
        out.append([v / m for v in row] if m > 0 else list(row))
    return out, lengths


def _unit_cross(p: list[float], q: list[float]) -> list[float]:
    c = [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]]
    m = math.sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2])
    return [v / m for v in c] if m > 0 else c


def umat_to_misset(umat: np.ndarray) -> np.ndarray:
    """Decompose a rotation matrix into misset angles, as C ``umat2misset``.

    The rows are normalised, empty rows are rebuilt from cross products of the
    others, and the angles satisfy ``U = Rz(rotz) @ Ry(roty) @ Rx(rotx)``.

    Parameters
    ----------
    umat : numpy.ndarray, shape (3, 3)
        Rotation matrix (row-major, as C stores ``umat[9]``).

    Returns
    -------
    numpy.ndarray, float64, shape (3,)
        ``[rotx, roty, rotz]`` in radians.
    """
    rows = [[float(v) for v in row] for row in np.asarray(umat, dtype=np.float64).reshape(3, 3)]
    rows, (mx, my, mz) = _unit_rows(rows)
    # Degenerate input: fill missing rows with the matching unit axes.
    if mx >= 0 and my <= 0 and mz <= 0:
        rows[1], rows[2] = [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my >= 0 and mz <= 0:
        rows[0], rows[2] = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my <= 0 and mz >= 0:
        rows[0], rows[1] = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    # Twice: replace each empty row by the cross product of the other two.
    for _ in range(2):
        x_cross_y = _unit_cross(rows[0], rows[1])
        y_cross_z = _unit_cross(rows[1], rows[2])
        z_cross_x = _unit_cross(rows[2], rows[0])
        if mx <= 0:
            rows[0] = y_cross_z
        if my <= 0:
            rows[1] = z_cross_x
        if mz <= 0:
            rows[2] = x_cross_y
    (uxx, uxy, _), (uyx, uyy, _), (uzx, uzy, uzz) = _unit_rows(rows)[0]
    if uzx * uzx < 1.0:
        rotx = math.atan2(uzy, uzz)
        roty = math.atan2(-uzx, math.sqrt(uzy * uzy + uzz * uzz))
        rotz = math.atan2(uyx, uxx)
    else:
        rotx = math.atan2(1, 1) * 4
        roty = math.atan2(1, 1) * 2
        rotz = math.atan2(uxy, -uyy)
    return np.array([rotx, roty, rotz], dtype=np.float64)


def misset_rotation_matrix(angles_rad: np.ndarray) -> np.ndarray:
    """Return the rotation the C ``rotate`` applies for misset angles.

    ``rotate`` turns a vector about x, then y, then z (each step skipped when its
    angle is exactly 0), so the matrix is ``Rz @ Ry @ Rx``. The C program applies it
    to the reciprocal cell vectors one axis at a time; composing the matrix first
    can differ from that in the last bit.

    Parameters
    ----------
    angles_rad : array_like, shape (3,)
        ``[rotx, roty, rotz]``, radians.

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        Rotation acting on column vectors.
    """
    rx, ry, rz = (float(a) for a in angles_rad)
    mat_x = np.array(
        [[1.0, 0.0, 0.0], [0.0, math.cos(rx), -math.sin(rx)], [0.0, math.sin(rx), math.cos(rx)]]
    )
    mat_y = np.array(
        [[math.cos(ry), 0.0, math.sin(ry)], [0.0, 1.0, 0.0], [-math.sin(ry), 0.0, math.cos(ry)]]
    )
    mat_z = np.array(
        [[math.cos(rz), -math.sin(rz), 0.0], [math.sin(rz), math.cos(rz), 0.0], [0.0, 0.0, 1.0]]
    )
    return mat_z @ mat_y @ mat_x


def random_misset_angles(seed: int, shared: SharedState | None = None) -> np.ndarray:
    """Misset angles the C program derives for ``-misset random``.

    The C program draws one `mosaic_rotation_umat` from the misset stream with
    ``mosaicity = 90`` (meant as degrees, used as 90 radians: the angle law
    ``90 * (1 - r**2)**(1/3)`` then wraps around many times), converts the matrix to
    angles with `umat_to_misset` and rotates the cell by those angles.

    Parameters
    ----------
    seed : int
        ``-misset_seed`` value (command-line form).
    shared : SharedState, optional
        Generator state shared with later streams (see module notes).

    Returns
    -------
    numpy.ndarray, float64, shape (3,)
        ``[rotx, roty, rotz]`` in radians, exactly as passed to the C ``rotate``.
    """
    rng = Ran1.from_seed(seed, shared)
    return umat_to_misset(mosaic_rotation_umat(90.0, rng))


def random_misset(seed: int, shared: SharedState | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Orientation applied by ``-misset random`` and the angles the C program prints.

    Parameters
    ----------
    seed : int
        ``-misset_seed`` value (command-line form).
    shared : SharedState, optional
        Generator state shared with later streams (see module notes).

    Returns
    -------
    umat : numpy.ndarray, float64, shape (3, 3)
        ``Rz @ Ry @ Rx`` of the derived angles (see `misset_rotation_matrix`).
    angles_deg : numpy.ndarray, float64, shape (3,)
        The angles in degrees, as printed with ``%f`` after
        "random orientation misset angles:".
    """
    angles = random_misset_angles(seed, shared)
    return misset_rotation_matrix(angles), angles * _RTD


# ---------------------------------------------------------------------------
# Noise image.
# ---------------------------------------------------------------------------


class NoiseImage(NamedTuple):
    """Result of `noise_image`.

    Attributes
    ----------
    image : numpy.ndarray, uint16, same shape as the input
        Noisy pixel values (Poisson photons + ADC offset, clipped at 65535).
    overloads : int
        Number of pixels clipped at 65535.
    photons : float
        Sum of the Poisson deviates before the offset and the clipping; the C program
        prints it as ``"%.0f photons on noise image (%d overloads)"``.
    """

    image: np.ndarray
    overloads: int
    photons: float


def noise_image(
    float_image: np.ndarray,
    seed: int | Ran1,
    adc_offset: float = 40.0,
    roi: tuple[int, int, int, int] | None = None,
    shared: SharedState | None = None,
) -> NoiseImage:
    """Render the C program's noise image from its float image.

    Each pixel, in C order (slow index outer, fast index inner), gets a Poisson
    deviate whose mean is the float-image value in photons (``-scale`` plays no part),
    plus ``adc_offset``; values above 65535 are clipped and counted as overloads, and
    the result is truncated (not rounded) to an unsigned 16-bit integer. Pixels
    outside the ROI draw no random number and stay 0.

    Parameters
    ----------
    float_image : numpy.ndarray, shape (spixels, fpixels) or any shape
        Photons per pixel; rounded to float32 first, as the C program stores it.
        Flattened in C order when not 2-D.
    seed : int or Ran1
        ``-seed`` value (command-line form), or a stream to continue.
    adc_offset : float, optional
        ``-adc`` value, 40 by default.
    roi : tuple of int, optional
        ``(xmin, xmax, ymin, ymax)`` inclusive bounds on (fast, slow) pixel indices,
        as ``-roi`` sets them; the whole image by default. Needs a 2-D image.
    shared : SharedState, optional
        State left by earlier streams (see module notes); ignored when ``seed`` is a
        `Ran1`.

    Returns
    -------
    NoiseImage
        ``(image, overloads, photons)``.
    """
    values = np.asarray(float_image)
    shape = values.shape
    if roi is not None and values.ndim != 2:
        raise ValueError("roi needs a 2-D image (slow, fast)")
    spixels, fpixels = shape if values.ndim == 2 else (1, values.size)
    bounds = np.array(
        (0, fpixels, 0, spixels) if roi is None else [int(v) for v in roi], dtype=np.int64
    )
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    rng = seed if isinstance(seed, Ran1) else Ran1.from_seed(seed, shared)
    out = np.zeros(flat.size, dtype=np.uint16)
    photons, overloads = compiled("_noise_kernel")(
        flat,
        fpixels,
        spixels,
        bounds,
        float(adc_offset),
        rng._idum,
        rng.shared.table,
        rng.shared.gauss_spare,
        rng.shared.poisson_cache,
        out,
    )
    return NoiseImage(out.reshape(shape), int(overloads), float(photons))
