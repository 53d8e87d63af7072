"""Orientation matrices for ``-mat`` and ``-misset``: cells, U matrices, random rotations.

What nanoBragg's helper scripts (``UBtoA.awk``, ``random_orientations.com``) were used for,
written afresh in numpy.

Conventions (those of nanoBragg, and so of :mod:`torchbragg.precedence` and
:mod:`torchbragg.io.mosflm`):

* **B matrix.** ``-cell`` puts a* along x and b* in the x-y plane (z component 0), with the
  y component of b* and the z component of c* positive. As a matrix whose *columns* are
  a*, b*, c* (1/Å) this is upper triangular, like the Busing & Levy B matrix. For cells
  with sin(gamma) != sin(gamma*) nanoBragg's ``-cell`` crystal is not exactly the cell
  given when at most one angle is 90 degrees (its angles are off, by 0.04 degree for
  75 85 95, more for sharper cells): :func:`b_matrix` gives that crystal by default, the
  exact cell with ``exact=True``.
* **Misset.** ``-misset rx ry rz`` (degrees) turns the reciprocal vectors about x by rx,
  then about y by ry, then about z by rz (right-handed, fixed lab axes), that is by the
  matrix ``Rz(rz) @ Ry(ry) @ Rx(rx)`` acting on column vectors. With ``-mat`` the same
  rotation is applied to the vectors read from the matrix.
* **A matrix.** A MOSFLM ``-mat`` file starts with nine numbers, three per row: row i holds
  component i (x, y, z) of a*, b*, c*, so the *columns* are a*, b*, c*, each multiplied by
  the wavelength in Å (dimensionless). nanoBragg multiplies column j by ``1e-10/lambda0``
  (lambda0 in metres: the ``-lambda``/``-energy`` wavelength) to get a*, b*, c* in 1/Å.
  So ``A = wavelength_A * U @ B``, and the file must be written for the wavelength the
  simulation runs at.

All matrices here are float64 numpy arrays; rotations act on column vectors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

__all__ = [
    "a_matrix",
    "b_matrix",
    "misset_angles",
    "misset_matrix",
    "mosflm_matrix_text",
    "nearest_rotation",
    "random_rotations",
    "rotation_angles",
    "u_matrix",
    "write_mosflm_matrix",
]

RTD = 180.0 / math.pi  # degrees per radian, as nanoBragg divides by it
# A U matrix may be off a rotation by this much (max |U^T U - I|): U matrices typed or
# printed with a few decimals pass, anything else is an error.
ROTATION_TOLERANCE = 1e-4
# A cell given with an A matrix may differ from the cell the A matrix holds by this much
# (relative), to allow cells printed with a few decimals.
CELL_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------
# cells and matrices


def _check_cell(cell: Sequence[float]) -> tuple[float, ...]:
    """Six finite cell constants: positive lengths (Å), angles in (0, 180) degrees, a real cell."""
    values = np.asarray(cell, dtype=np.float64).ravel()
    if values.shape != (6,):
        raise ValueError(f"a cell is 6 numbers (a b c alpha beta gamma), got {values.size}")
    if not np.isfinite(values).all():
        raise ValueError("the cell holds a value that is not a finite number")
    a, b, c, al, be, ga = (float(x) for x in values)
    if min(a, b, c) <= 0:
        raise ValueError(f"cell lengths must be positive, got {a:g} {b:g} {c:g}")
    if not all(0 < x < 180 for x in (al, be, ga)):
        raise ValueError("cell angles must lie between 0 and 180 degrees, got "
                         f"{al:g} {be:g} {ga:g}")
    al, be, ga = al / RTD, be / RTD, ga / RTD
    half = (al + be + ga) / 2
    if math.sin(half) * math.sin(half - al) * math.sin(half - be) * math.sin(half - ga) <= 0:
        raise ValueError("impossible cell angles " + " ".join(f"{x:g}" for x in values[3:])
                         + " (no parallelepiped has them)")
    return a, b, c, al, be, ga


def _nanobragg_start(cell: Sequence[float]) -> np.ndarray:
    """The reciprocal vectors ``-cell`` starts from (columns), as nanoBragg writes them down.

    The formulae of :func:`torchbragg.lattice.reciprocal_from_cell` and nanoBragg.c, including
    its z component of c*, ``c* V / (a b c sin(gamma*))``; the exact value is ``1/c``. The two
    differ unless sin(gamma) = sin(gamma*), which holds when two of the angles are 90 degrees.
    """
    a, b, c, al, be, ga = _check_cell(cell)
    s = (al + be + ga) / 2
    skew = abs(math.sin(s) * math.sin(s - al) * math.sin(s - be) * math.sin(s - ga))
    volume = 2.0 * a * b * c * math.sqrt(skew)
    a_s, b_s, c_s = (b * c * math.sin(al) / volume, c * a * math.sin(be) / volume,
                     a * b * math.sin(ga) / volume)
    cos_al_s = (math.cos(be) * math.cos(ga) - math.cos(al)) / (math.sin(be) * math.sin(ga))
    cos_be_s = (math.cos(ga) * math.cos(al) - math.cos(be)) / (math.sin(ga) * math.sin(al))
    cos_ga_s = (math.cos(al) * math.cos(be) - math.cos(ga)) / (math.sin(al) * math.sin(be))
    sin_ga_s = min(c / (volume * a_s * b_s), 1.0)
    a_star = (a_s, 0.0, 0.0)
    b_star = (b_s * cos_ga_s, b_s * sin_ga_s, 0.0)
    c_star = (c_s * cos_be_s, c_s * (cos_al_s - cos_be_s * cos_ga_s) / sin_ga_s,
              c_s * volume / (a * b * c * sin_ga_s))
    return np.array([a_star, b_star, c_star], dtype=np.float64).T


def _dual(vectors: np.ndarray) -> np.ndarray:
    """The dual basis (columns) of basis ``vectors`` (columns): ``inv(vectors).T``."""
    return np.linalg.inv(vectors).T


def b_matrix(cell: Sequence[float], *, exact: bool = False) -> np.ndarray:
    """Reciprocal-space B matrix of a cell, by default the crystal nanoBragg's ``-cell`` makes.

    ``-cell`` (nanoBragg.c, and :mod:`torchbragg.lattice` after it) writes down a*, b*, c*
    with a* along x and b* in the x-y plane, takes the real axes along b* x c*, c* x a*,
    a* x b*, and scales them to the lengths a, b, c. The z component of c* it starts from is
    ``c* V/(a b c sin(gamma*))`` where ``1/c`` is exact, so for a cell with
    sin(gamma) != sin(gamma*) (at most one angle of 90 degrees: triclinic cells, rhombohedral
    cells in the rhombohedral setting) the real axes it ends with have the given lengths but
    other angles (75.04, 85.01, 95.01 degrees for a cell given as 75, 85, 95; B differs by
    4% for 60, 60, 60). The default B here is that crystal (the reciprocal basis
    of those real axes), so that ``-mat`` with :func:`a_matrix` renders the same image as
    ``-cell`` with ``-misset``; ``exact=True`` gives the textbook (Busing & Levy) B of the
    cell as given. The two agree, to rounding, for every cell with two angles of 90 degrees
    (orthorhombic, tetragonal, hexagonal, cubic, monoclinic in any setting).

    Parameters
    ----------
    cell : sequence of 6 float
        a, b, c in Å and alpha, beta, gamma in degrees.
    exact : bool
        False: the crystal ``-cell`` simulates; True: the exact cell.

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        Upper-triangular matrix whose columns are a*, b*, c* in 1/Å (positive diagonal).

    Raises
    ------
    ValueError
        When the cell is not six finite numbers, has a length <= 0, an angle outside
        (0, 180) degrees, or angles no parallelepiped has.
    """
    start = _nanobragg_start(cell)
    lengths = np.asarray(cell, dtype=np.float64).ravel()[:3]
    if exact:
        start[2, 2] = 1.0 / lengths[2]
        return start
    real = _dual(start)
    real *= lengths / np.linalg.norm(real, axis=0)
    b = _dual(real)
    b[np.tril_indices(3, -1)] = 0.0  # zero already but for rounding
    return b


def misset_matrix(misset_deg: Sequence[float]) -> np.ndarray:
    """The rotation ``-misset rx ry rz`` applies: ``Rz(rz) @ Ry(ry) @ Rx(rx)``.

    Parameters
    ----------
    misset_deg : sequence of 3 float
        Rotations about the lab x, y and z axes in degrees, applied in that order.

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        Rotation acting on column vectors.
    """
    angles = np.asarray(misset_deg, dtype=np.float64).ravel()
    if angles.shape != (3,) or not np.isfinite(angles).all():
        raise ValueError("misset angles are 3 finite numbers (degrees about x, y, z)")
    rx, ry, rz = (float(x) / RTD for x in angles)
    cx, sx, cy, sy, cz, sz = (math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry),
                              math.cos(rz), math.sin(rz))
    mat_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    mat_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    mat_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return mat_z @ mat_y @ mat_x


def _matrix3(name: str, value) -> np.ndarray:
    """``value`` as a finite float64 (3, 3) array, else ValueError naming ``name``."""
    m = np.asarray(value, dtype=np.float64)
    if m.size == 9:
        m = m.reshape(3, 3)
    if m.shape != (3, 3):
        raise ValueError(f"{name} must be a 3x3 matrix (9 numbers), got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} holds a value that is not a finite number")
    return m


def nearest_rotation(U, tolerance: float = ROTATION_TOLERANCE) -> np.ndarray:
    """The proper rotation nearest to ``U``, after checking ``U`` is close to one.

    Parameters
    ----------
    U : array_like, shape (3, 3) or (9,)
        Nearly orthonormal matrix with determinant near +1 (row by row when flat).
    tolerance : float
        Largest allowed ``max |U^T U - I|``.

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        The orthogonal polar factor of ``U`` (``W @ Vt`` of its SVD); equal to ``U`` to
        rounding when ``U`` is a rotation.

    Raises
    ------
    ValueError
        When ``U`` is not finite, singular, not orthonormal within ``tolerance``, or a
        reflection (determinant < 0).
    """
    U = _matrix3("U", U)
    det = float(np.linalg.det(U))
    if not abs(det) > 1e-12:
        raise ValueError("U is singular (determinant 0), not a rotation")
    error = float(np.abs(U.T @ U - np.eye(3)).max())
    if error > tolerance:
        raise ValueError(f"U is not orthonormal (max |U^T U - I| = {error:.3g}, "
                         f"allowed {tolerance:g}), not a rotation")
    if det < 0:
        raise ValueError("U has determinant -1: a reflection, not a rotation")
    w, _, vt = np.linalg.svd(U)
    return w @ vt


def u_matrix(A) -> np.ndarray:
    """The orthogonal factor U of an A (or UB) matrix: ``A = U @ R``, R upper triangular.

    For ``A = wavelength * U @ B`` with a rotation U and a B matrix from :func:`b_matrix`,
    this gives back U (the QR decomposition with a positive diagonal in R is unique).

    Parameters
    ----------
    A : array_like, shape (3, 3)
        Matrix of rank 3, columns a*, b*, c* (any common scale).

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        Orthogonal matrix; determinant -1 when ``A`` is left-handed.
    """
    q, r = np.linalg.qr(_matrix3("A", A))
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return q * signs


def a_matrix(cell: Sequence[float] | None = None, U=None, UB=None, wavelength_A: float = 1.0,
             misset_deg: Sequence[float] | None = None, *, exact_cell: bool = False
             ) -> np.ndarray:
    """The MOSFLM A matrix nanoBragg and torchbragg read with ``-mat``.

    ``A = wavelength_A * M @ U @ B(cell)`` (or ``wavelength_A * M @ UB``), where M is the
    misset rotation (identity when ``misset_deg`` is None) and B is :func:`b_matrix`.
    Columns are a*, b*, c* times the wavelength, rows x, y, z: the layout of
    :func:`torchbragg.io.mosflm.read_mosflm_matrix`. Giving ``cell`` and ``misset_deg``
    yields the crystal ``-cell ... -misset ...`` builds (``-mat`` then renders the same
    image, to rounding, at the same ``-lambda``); with ``UB`` or ``U``, ``misset_deg`` turns
    the result further, as ``-misset`` does to a ``-mat`` matrix.

    Parameters
    ----------
    cell : sequence of 6 float, optional
        a, b, c (Å), alpha, beta, gamma (degrees); needed unless ``UB`` is given.
    U : array_like, shape (3, 3) or (9,), optional
        Rotation (row by row when flat); replaced by the nearest exact rotation (see
        :func:`nearest_rotation`). Not with ``UB``.
    UB : array_like, shape (3, 3) or (9,), optional
        Reciprocal vectors a*, b*, c* in 1/Å as columns; rank 3. Not with ``cell`` or ``U``.
    wavelength_A : float
        The wavelength of the simulation in Å (``-lambda``), > 0.
    misset_deg : sequence of 3 float, optional
        Rotations about x, y, z in degrees, as ``-misset`` applies them.
    exact_cell : bool
        Use the exact B matrix of ``cell`` instead of the crystal ``-cell`` simulates (see
        :func:`b_matrix`; they differ only when at most one cell angle is 90 degrees).

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        The A matrix (dimensionless).

    Raises
    ------
    ValueError
        For a missing or conflicting input, a bad cell, U or UB, or a wavelength that is not
        a positive finite number.
    """
    if not (isinstance(wavelength_A, (int, float, np.floating, np.integer))
            and math.isfinite(wavelength_A) and wavelength_A > 0):
        raise ValueError(f"the wavelength must be a positive number of Å, got {wavelength_A!r}")
    if UB is not None:
        if cell is not None or U is not None:
            raise ValueError("give UB alone, or a cell with U or misset angles, not both")
        ub = _matrix3("UB", UB)
        _check_rank(ub, "UB")
    else:
        if cell is None:
            raise ValueError("a cell is needed unless UB is given")
        rotation = np.eye(3) if U is None else nearest_rotation(U)
        ub = rotation @ b_matrix(cell, exact=exact_cell)
    if misset_deg is not None:
        ub = misset_matrix(misset_deg) @ ub
    return ub * float(wavelength_A)


def _check_rank(matrix: np.ndarray, name: str) -> None:
    """ValueError unless ``matrix`` has rank 3 by the criterion :mod:`io.mosflm` uses."""
    from torchbragg.io.mosflm import SINGULAR_TOLERANCE

    scale = float(np.abs(matrix).max())
    singular = np.linalg.svd(matrix / scale, compute_uv=False) if scale > 0 else np.zeros(3)
    if not singular[2] > SINGULAR_TOLERANCE * singular[0]:
        raise ValueError(f"{name} is singular: its columns a*, b*, c* must be independent")


# ---------------------------------------------------------------------------------------------
# misset angles


def misset_angles(U) -> np.ndarray:
    """The ``-misset`` angles that give rotation ``U``: inverse of :func:`misset_matrix`.

    Decomposes ``U = Rz(rz) @ Ry(ry) @ Rx(rx)`` with ry in [-90, 90] and rx, rz in
    (-180, 180]. At ry = +-90 (gimbal lock) only rz - rx or rz + rx is defined; rx is then
    taken as 0.

    Parameters
    ----------
    U : array_like, shape (3, 3) or (9,)
        Rotation (see :func:`nearest_rotation` for the tolerance; it is snapped to the
        nearest exact rotation first).

    Returns
    -------
    numpy.ndarray, float64, shape (3,)
        rx, ry, rz in degrees, for ``-misset rx ry rz``.

    Raises
    ------
    ValueError
        When ``U`` is not a rotation.
    """
    u = nearest_rotation(U)
    ry = math.atan2(-u[2, 0], math.hypot(u[0, 0], u[1, 0]))
    if math.hypot(u[2, 1], u[2, 2]) > 1e-12:
        rx = math.atan2(u[2, 1], u[2, 2])
        rz = math.atan2(u[1, 0], u[0, 0])
    else:  # cos(ry) = 0: U = Rz(rz) Ry(+-90) with rx = 0
        rx = 0.0
        rz = math.atan2(-u[0, 1], u[1, 1])
    return np.array([rx, ry, rz]) * RTD


# ---------------------------------------------------------------------------------------------
# random rotations


def _quaternion_matrices(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) of unit quaternions ``q`` (n, 4) as (w, x, y, z)."""
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` directions uniform on the unit sphere in ``dim`` dimensions, shape (n, dim)."""
    v = rng.standard_normal((n, dim))
    norms = np.linalg.norm(v, axis=1)
    while True:  # a zero vector has probability 0; redraw it all the same
        bad = ~(norms > 1e-150)
        if not bad.any():
            return v / norms[:, None]
        v[bad] = rng.standard_normal((int(bad.sum()), dim))
        norms = np.linalg.norm(v, axis=1)


def _axis_angle_matrices(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Right-handed rotations (n, 3, 3) by ``angles`` (n,) radians about unit ``axes`` (n, 3)."""
    half = angles / 2
    q = np.concatenate([np.cos(half)[:, None], axes * np.sin(half)[:, None]], axis=1)
    return _quaternion_matrices(q)


def _ball_angles(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    """``n`` rotation angles (radians) with density (1 - cos t) / (s - sin s) on [0, s].

    Rejection from the proposal t = s u^(1/3) (density 3 t^2 / s^3), accepting with
    probability (1 - cos t) / (t^2 / 2) = sinc^2(t/2) <= 1 (at least 6/pi^2 on average).
    """
    out = np.empty(0)
    while out.size < n:
        want = max(n - out.size, 16)
        t = spread * rng.random(want) ** (1.0 / 3.0)
        accept = rng.random(want) < np.sinc(t / (2 * np.pi)) ** 2
        out = np.concatenate([out, t[accept]])
    return out[:n]


def random_rotations(n: int, seed, spread_deg: float | None = None) -> np.ndarray:
    """Random rotation matrices, reproducible from ``seed``.

    Without ``spread_deg`` the rotations are uniform over SO(3) (the Haar measure): unit
    quaternions from four independent normal deviates, normalised (a direction uniform on
    the 3-sphere, which is Haar-uniform on SO(3)). Their rotation angles then have the
    density (1 - cos t)/pi on [0, pi] and their axes are uniform on the sphere.

    With ``spread_deg = s`` the rotations are uniform (Haar) over the set of rotations
    within angle s of the identity, a "sphere" of rotations of angular radius s: the axis
    is uniform on the sphere and the angle t has density (1 - cos t)/(s - sin s) on [0, s].
    This is the uniform distribution conditioned on t <= s, so s = 180 gives uniform
    rotations again. For small s it is the same as a rotation vector uniform in a ball of
    radius s (density 3 t^2/s^3, the cube-root law nanoBragg's mosaic domains use); the
    two differ by the factor sinc^2(t/2), i.e. by under 1% in density below s = 20 degrees.
    The Haar version was chosen because it is the one with no preferred frame at any s and
    it joins the uniform case continuously.

    Parameters
    ----------
    n : int
        Number of rotations, >= 0.
    seed : int, sequence of int or numpy.random.SeedSequence
        Seed for ``numpy.random.default_rng``; the same seed gives the same matrices.
    spread_deg : float, optional
        Largest rotation angle in degrees, 0 <= s <= 180 (0 gives identities).

    Returns
    -------
    numpy.ndarray, float64, shape (n, 3, 3)
        Proper rotations acting on column vectors.

    Raises
    ------
    ValueError
        For a negative ``n`` or a spread outside [0, 180].
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"the number of rotations must be an integer >= 0, got {n!r}")
    if seed is None:
        raise ValueError("give a seed (an integer): the same seed gives the same rotations")
    rng = np.random.default_rng(seed)
    n = int(n)
    if spread_deg is None:
        return _quaternion_matrices(_unit_vectors(rng, n, 4))
    spread = float(spread_deg)
    if not 0.0 <= spread <= 180.0:
        raise ValueError(f"the spread must lie between 0 and 180 degrees, got {spread_deg!r}")
    axes = _unit_vectors(rng, n, 3)
    angles = _ball_angles(rng, n, spread / RTD) if spread > 0 else np.zeros(n)
    return _axis_angle_matrices(axes, angles)


def rotation_angles(rotations: np.ndarray) -> np.ndarray:
    """Rotation angles (radians, in [0, pi]) of rotation matrices (..., 3, 3)."""
    trace = np.trace(np.asarray(rotations, dtype=np.float64), axis1=-2, axis2=-1)
    return np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))


# ---------------------------------------------------------------------------------------------
# matrix files


def _row(values, fmt: str) -> str:
    return "".join(format(float(x), fmt) for x in values) + "\n"


def mosflm_matrix_text(A, cell: Sequence[float] | None = None) -> str:
    """Text of a MOSFLM matrix file for ``A`` (see :func:`write_mosflm_matrix`)."""
    A = _matrix3("A", A)
    _check_rank(A, "the A matrix")
    u = u_matrix(A)
    if cell is not None:
        _check_cell_matches(A, u, cell)
    lines = [_row(row, " 24.16e") for row in A]  # 17 digits: exact round trip
    lines.append(_row((0.0, 0.0, 0.0), "12.3f"))
    lines.extend(_row(row, "12.8f") for row in np.round(u, 8) + 0.0)  # no "-0.00000000"
    if cell is not None:
        lines.append(_row(np.asarray(cell, dtype=np.float64).ravel(), "12.4f"))
        lines.append(_row((0.0, 0.0, 0.0), "12.3f"))
    return "".join(lines)


def _check_cell_matches(A: np.ndarray, u: np.ndarray, cell: Sequence[float]) -> None:
    """ValueError unless ``A`` is ``U @ B(cell)`` times some wavelength, either B convention."""
    scaled = u.T @ A  # wavelength * B when the cell matches
    errors = []
    for exact in (False, True):
        b = b_matrix(cell, exact=exact)
        wavelength = float(np.trace(scaled) / np.trace(b))
        errors.append(float(np.abs(scaled - wavelength * b).max() / np.abs(scaled).max()))
    error = min(errors)
    if not error <= CELL_TOLERANCE:
        raise ValueError(f"the cell does not match the A matrix (relative difference "
                         f"{error:.3g})")


def write_mosflm_matrix(path: str | os.PathLike, A, cell: Sequence[float] | None = None) -> None:
    """Write a MOSFLM orientation matrix file for ``-mat``, atomically.

    Layout (MOSFLM's): three lines of the A matrix (row i: component i of a*, b*, c* times
    the wavelength), written with 17 significant digits so that
    :func:`torchbragg.io.mosflm.read_mosflm_matrix` gives back exactly ``A``; a line of
    missetting angles (0 0 0, the orientation being all in A); three lines of the U matrix
    (the orthogonal factor of A, see :func:`u_matrix`); and, when ``cell`` is given, a line
    with the cell and a last line of zero missets. nanoBragg and torchbragg read only the
    first nine numbers.

    Parameters
    ----------
    path : str or os.PathLike
        File to write (replaced in one step, see :func:`torchbragg.io.images.write_atomic`).
    A : array_like, shape (3, 3) or (9,)
        The A matrix (see :func:`a_matrix`), rank 3.
    cell : sequence of 6 float, optional
        a, b, c (Å), alpha, beta, gamma (degrees), written for reference; must be the cell
        A holds (to a relative 1e-4, as :func:`b_matrix` gives it with or without
        ``exact``).

    Raises
    ------
    ValueError
        For a singular or non-finite A, a bad cell, or a cell that does not match A.
    OSError
        When the file cannot be written (the message names ``path``).
    """
    from torchbragg.io.images import write_atomic

    text = mosflm_matrix_text(A, cell)
    write_atomic(path, [text.encode("ascii")])
