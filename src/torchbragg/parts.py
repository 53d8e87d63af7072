"""Keyword descriptions of a diffraction experiment, with units in the names.

:func:`detector`, :func:`crystal`, :func:`beam`, :func:`structure_factors` and
:func:`sampling` each return a :class:`Part`: the nanoBragg options their keywords stand for.
:class:`torchbragg.experiment.Experiment` scans the parts as the command line is scanned and
applies nanoBragg's precedence rules, so every default and convention is the C program's. A
keyword left out (None) keeps nanoBragg's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from torchbragg.io.hkl import HKLTable

CONVENTIONS = ("mosflm", "xds", "adxv", "denzo", "dials", "custom")
SHAPES = {"square": "-square_xtal", "round": "-round_xtal", "gauss": "-gauss_xtal",
          "tophat": "-tophat_spots"}


@dataclass(frozen=True)
class Part:
    """One part of an experiment: nanoBragg options and what the command line cannot say.

    ``args`` are command-line tokens; ``state`` sets fields of the scanned state directly
    (continuous N, a structure-factor table, mosaic domains kept at zero spread).
    """

    kind: str
    args: tuple[str, ...] = ()
    state: Mapping = field(default_factory=dict)


def _num(x: float) -> str:
    return repr(float(x))


def _vec(name: str, values, n: int = 3) -> list[str]:
    values = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
    if len(values) != n:
        raise ValueError(f"{name} needs {n} values, got {len(values)}")
    return [_num(v) for v in values]


def _opt(args: list[str], flag: str, value) -> None:
    if value is not None:
        args += [flag, _num(value)]


def _positive(name: str, value) -> None:
    if value is not None and not float(value) > 0:
        raise ValueError(f"{name} must be positive, got {value}")


def detector(*, pixels: int | Sequence[int] | None = None, pixel_size_mm: float | None = None,
             distance_mm: float | None = None, close_distance_mm: float | None = None,
             beam_center_mm: Sequence[float] | None = None,
             origin_px: Sequence[float] | None = None, convention: str | None = None,
             pivot: str | None = None, rotations_deg: Sequence[float] | None = None,
             twotheta_deg: float | None = None, twotheta_axis: Sequence[float] | None = None,
             fdet_vector=None, sdet_vector=None, odet_vector=None, beam_vector=None,
             polar_vector=None, thickness_um: float | None = None,
             thicksteps: int | None = None, attenuation_length_um: float | None = None,
             point_pixel: bool = False, curved: bool = False,
             roi: Sequence[int] | None = None) -> Part:
    """A pixel detector (nanoBragg defaults: 1024 x 1024 pixels of 0.1 mm at 100 mm, MOSFLM).

    ``pixels`` is a count per edge or (fast, slow). ``beam_center_mm`` is (X, Y) as the
    convention reads -Xbeam/-Ybeam; ``origin_px`` is XDS's (ORGX, ORGY). ``rotations_deg``
    turn the detector about x, y, z; ``twotheta_deg`` swings it about ``twotheta_axis`` (pivot
    sample). Giving any of the axis vectors selects the custom convention. ``roi`` is
    (xmin, xmax, ymin, ymax) pixels, inclusive.
    """
    args: list[str] = []
    if convention is not None:
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, "
                             f"got {convention!r}")
        if convention != "custom":
            args.append("-" + convention)
    if pixels is not None:
        fast, slow = (pixels, pixels) if np.ndim(pixels) == 0 else tuple(pixels)
        if int(fast) <= 0 or int(slow) <= 0:
            raise ValueError(f"pixels must be positive, got {pixels}")
        args += ["-detpixels_f", str(int(fast)), "-detpixels_s", str(int(slow))]
    for name, value in (("pixel_size_mm", pixel_size_mm), ("distance_mm", distance_mm),
                        ("close_distance_mm", close_distance_mm)):
        _positive(name, value)
    _opt(args, "-pixel", pixel_size_mm)
    _opt(args, "-distance", distance_mm)
    _opt(args, "-close_distance", close_distance_mm)
    for name, flag, value in (("fdet_vector", "-fdet_vector", fdet_vector),
                              ("sdet_vector", "-sdet_vector", sdet_vector),
                              ("odet_vector", "-odet_vector", odet_vector),
                              ("beam_vector", "-beam_vector", beam_vector),
                              ("polar_vector", "-polar_vector", polar_vector),
                              ("twotheta_axis", "-twotheta_axis", twotheta_axis)):
        if value is not None:
            args += [flag, *_vec(name, value)]
    if beam_center_mm is not None:
        x, y = _vec("beam_center_mm", beam_center_mm, 2)
        args += ["-Xbeam", x, "-Ybeam", y]
    if origin_px is not None:
        x, y = _vec("origin_px", origin_px, 2)
        args += ["-ORGX", x, "-ORGY", y]
    if rotations_deg is not None:
        for flag, value in zip(("-detector_rotx", "-detector_roty", "-detector_rotz"),
                               _vec("rotations_deg", rotations_deg), strict=True):
            args += [flag, value]
    _opt(args, "-twotheta", twotheta_deg)
    if pivot is not None:
        if pivot not in ("beam", "sample"):
            raise ValueError(f"pivot must be 'beam' or 'sample', got {pivot!r}")
        args += ["-pivot", pivot]
    _detector_sensor(args, thickness_um, thicksteps, attenuation_length_um)
    args += ["-point_pixel"] if point_pixel else []
    args += ["-curved_det"] if curved else []
    if roi is not None:
        args += ["-roi", *(str(int(float(v))) for v in _vec("roi", roi, 4))]
    return Part("detector", tuple(args))


def _detector_sensor(args: list[str], thickness_um, thicksteps, attenuation_length_um) -> None:
    if thickness_um is not None and float(thickness_um) < 0:
        raise ValueError(f"thickness_um must not be negative, got {thickness_um}")
    _positive("attenuation_length_um", attenuation_length_um)
    _opt(args, "-detector_thick", thickness_um)
    if thicksteps is not None:
        args += ["-detector_thicksteps", str(int(thicksteps))]
    _opt(args, "-detector_abs", attenuation_length_um)


def crystal(*, cell: Sequence[float] | None = None, mosflm_matrix: str | None = None,
            misset_deg: Sequence[float] | str | None = None, misset_seed: int | None = None,
            n_cells: float | Sequence[float] | None = None,
            size_um: Sequence[float] | None = None, shape: str | None = None,
            fudge: float | None = None, mosaic_spread_deg: float | None = None,
            mosaic_domains: int | None = None, mosaic_seed: int | None = None,
            phi0_deg: float | None = None, osc_deg: float | None = None,
            phisteps: int | None = None, phistep_deg: float | None = None,
            spindle_axis: Sequence[float] | None = None) -> Part:
    """A small crystal: its cell, orientation, size, spot shape, mosaicity and rotation.

    ``cell`` is (a, b, c) in Å and (alpha, beta, gamma) in degrees; ``mosflm_matrix`` a
    MOSFLM orientation file (both: the matrix orients, the cell sets the lengths).
    ``misset_deg`` rotates the crystal about x, y, z (or ``"random"``, drawn from
    ``misset_seed``). ``n_cells`` is N or (Na, Nb, Nc), continuous; ``size_um`` sets them from
    the crystal's size instead. ``shape``: square, round, gauss or tophat. Mosaic domains are
    drawn from ``mosaic_seed``; domains asked for with zero spread are kept (so that the
    spread can be refined from zero), where nanoBragg would use one.
    """
    args: list[str] = []
    state: dict = {}
    if cell is not None:
        args += ["-cell", *_vec("cell", cell, 6)]
    if mosflm_matrix is not None:
        args += ["-mat", str(mosflm_matrix)]
    if isinstance(misset_deg, str):
        if misset_deg != "random":
            raise ValueError(f"misset_deg must be three angles or 'random', got {misset_deg!r}")
        args += ["-misset", "random"]
    elif misset_deg is not None:
        args += ["-misset", *_vec("misset_deg", misset_deg)]
    if misset_seed is not None:
        args += ["-misset_seed", str(int(misset_seed))]
    if n_cells is not None:
        n = np.broadcast_to(np.asarray(n_cells, dtype=np.float64), (3,))
        if not (n >= 1).all():
            raise ValueError(f"n_cells must be at least 1, got {n_cells}")
        state.update(Na=float(n[0]), Nb=float(n[1]), Nc=float(n[2]))
    if size_um is not None:
        for flag, value in zip(("-xtal_x", "-xtal_y", "-xtal_z"), _vec("size_um", size_um),
                               strict=True):
            args += [flag, value]
    if shape is not None:
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
        args.append(SHAPES[shape])
    _opt(args, "-fudge", fudge)
    _crystal_motion(args, state, mosaic_spread_deg, mosaic_domains, mosaic_seed)
    _opt(args, "-phi", phi0_deg)
    _opt(args, "-osc", osc_deg)
    _opt(args, "-phistep", phistep_deg)
    if phisteps is not None:
        args += ["-phisteps", str(int(phisteps))]
    if spindle_axis is not None:
        args += ["-spindle_axis", *_vec("spindle_axis", spindle_axis)]
    return Part("crystal", tuple(args), state)


def _crystal_motion(args: list[str], state: dict, spread, domains, seed) -> None:
    if spread is not None and float(spread) < 0:
        raise ValueError(f"mosaic_spread_deg must not be negative, got {spread}")
    _opt(args, "-mosaic", spread)
    if domains is not None:
        if int(domains) < 1:
            raise ValueError(f"mosaic_domains must be at least 1, got {domains}")
        args += ["-mosaic_dom", str(int(domains))]
        state["zero_spread_domains"] = True
    if seed is not None:
        args += ["-mosaic_seed", str(int(seed))]


def beam(*, wavelength_A: float | None = None, energy_eV: float | None = None,
         fluence_per_m2: float | None = None, flux_per_s: float | None = None,
         exposure_s: float | None = None, beamsize_mm: float | None = None,
         polarization: float | None = None, unpolarized: bool = False,
         divergence_mrad: Sequence[float] | None = None,
         divergence_steps: Sequence[int] | None = None, round_divergence: bool | None = None,
         dispersion_percent: float | None = None, dispersion_steps: int | None = None,
         source_file: str | None = None) -> Part:
    """The incident beam (nanoBragg defaults: 1 Å, its fluence, unpolarized Kahn factor 0).

    ``divergence_mrad`` is the full (horizontal, vertical) range sampled in
    ``divergence_steps`` (h, v); ``dispersion_percent`` the full spectral width in
    ``dispersion_steps``. ``unpolarized`` is nanoBragg's -nopolar (no polarization factor).
    """
    args: list[str] = []
    for name, value in (("wavelength_A", wavelength_A), ("energy_eV", energy_eV),
                        ("beamsize_mm", beamsize_mm), ("exposure_s", exposure_s)):
        _positive(name, value)
    _opt(args, "-lambda", wavelength_A)
    _opt(args, "-energy", energy_eV)
    _opt(args, "-fluence", fluence_per_m2)
    _opt(args, "-flux", flux_per_s)
    _opt(args, "-exposure", exposure_s)
    _opt(args, "-beamsize", beamsize_mm)
    _opt(args, "-polar", polarization)
    args += ["-nopolar"] if unpolarized else []
    if divergence_mrad is not None:
        h, v = _vec("divergence_mrad", divergence_mrad, 2)
        args += ["-hdivrange", h, "-vdivrange", v]
    if divergence_steps is not None:
        h, v = (int(float(x)) for x in _vec("divergence_steps", divergence_steps, 2))
        args += ["-hdivsteps", str(h), "-vdivsteps", str(v)]
    if round_divergence is not None:
        args.append("-round_div" if round_divergence else "-square_div")
    _opt(args, "-dispersion", dispersion_percent)
    if dispersion_steps is not None:
        args += ["-dispsteps", str(int(dispersion_steps))]
    if source_file is not None:
        args += ["-sourcefile", str(source_file)]
    return Part("beam", tuple(args))


def structure_factors(F=None, *, hkl_file: str | None = None, default_F: float | None = None,
                      hkl_min: Sequence[int] | None = None,
                      interpolate: bool | None = None, column: str | None = None,
                      model_dmin_A: float | None = None) -> Part:
    """Structure-factor amplitudes.

    ``F`` is a mapping {(h, k, l): F} or a dense array (nh, nk, nl) whose [0, 0, 0] element
    is (h, k, l) = ``hkl_min``; ``hkl_file`` an HKL text file (h k l F per line), an MTZ or
    mmCIF reflection file (amplitude ``column`` chosen when None) or an atomic model (PDB or
    mmCIF; F computed to ``model_dmin_A`` Å, by default the detector corner's resolution),
    recognised by content and expanded to P1 with Friedel mates. Reflections not listed have
    ``default_F``. ``interpolate`` None is nanoBragg's automatic choice (tricubic
    interpolation for crystals of 2 or fewer cells on an axis).
    """
    args: list[str] = []
    state: dict = {}
    if F is not None and hkl_file is not None:
        raise ValueError("give F or hkl_file, not both")
    if (column is not None or model_dmin_A is not None) and hkl_file is None:
        raise ValueError("column and model_dmin_A apply to an hkl_file")
    if F is not None:
        state["hkl_table"] = _table(F, hkl_min, 0.0 if default_F is None else float(default_F))
    if hkl_file is not None:
        args += ["-hkl", str(hkl_file)]
        if column is not None:
            state["hkl_column"] = str(column)
        if model_dmin_A is not None:
            state["model_dmin"] = repr(float(model_dmin_A))
    _opt(args, "-default_F", default_F)
    if interpolate is not None:
        args.append("-interpolate" if interpolate else "-nointerpolate")
    return Part("structure_factors", tuple(args), state)


def _table(F, hkl_min, default_F: float) -> HKLTable:
    """A dense :class:`HKLTable` from a mapping {(h, k, l): F} or an array at ``hkl_min``."""
    if isinstance(F, Mapping):
        if not F:
            raise ValueError("F is an empty mapping")
        hkl = np.array([tuple(int(i) for i in key) for key in F], dtype=np.int64)
        lo, hi = hkl.min(0), hkl.max(0)
        grid = np.full(tuple(hi - lo + 1), default_F, dtype=np.float64)
        grid[tuple((hkl - lo).T)] = [float(v) for v in F.values()]
        n = len(F)
    else:
        grid = np.array(F, dtype=np.float64)
        if grid.ndim != 3 or grid.size == 0:
            raise ValueError(f"F must be a mapping or a 3-D array, got shape {grid.shape}")
        if hkl_min is None:
            raise ValueError("an F array needs hkl_min, the (h, k, l) of F[0, 0, 0]")
        lo = np.array([int(i) for i in hkl_min])
        hi = lo + np.array(grid.shape) - 1
        n = grid.size
    if not np.isfinite(grid).all():
        raise ValueError("F holds values that are not finite")
    return HKLTable(h_min=int(lo[0]), h_max=int(hi[0]), k_min=int(lo[1]), k_max=int(hi[1]),
                    l_min=int(lo[2]), l_max=int(hi[2]), F=grid, n_entries=int(n))


def sampling(*, oversample: int | None = None, oversample_thick: bool = False,
             oversample_polar: bool = False, oversample_omega: bool = False,
             dmin_A: float | None = None, water_um: float | None = None) -> Part:
    """Sub-pixel sampling (None: nanoBragg's automatic choice), resolution cut, water layer."""
    args: list[str] = []
    if oversample is not None:
        if int(oversample) < 1:
            raise ValueError(f"oversample must be at least 1, got {oversample}")
        args += ["-oversample", str(int(oversample))]
    args += ["-oversample_thick"] if oversample_thick else []
    args += ["-oversample_polar"] if oversample_polar else []
    args += ["-oversample_omega"] if oversample_omega else []
    _opt(args, "-dmin", dmin_A)
    _opt(args, "-water", water_um)
    return Part("sampling", tuple(args))
