"""Turn nonBragg's scanned options into what to render, and the lines it prints first.

Everything here follows the C program's set-up, in its order: detector size from pixels,
beam centre defaults, fluence from flux, clipping of the sample by the beam, the molecule
count, the step rules of divergence and dispersion, the pivot, the F table, the sources and
the summary block. Inputs are all read and checked here, before anything is printed or
written, so that bad input ends the run with one line and no output.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from torchbragg.background import (
    PixelSampler,
    Placement,
    SourceSet,
    amorphous_scale,
    molecule_count,
    place_detector,
)
from torchbragg.cli.nonbragg_options import BANNER, RTD, NBState
from torchbragg.config import AVOGADRO
from torchbragg.errors import SetupError
from torchbragg.io.images import format_c_g
from torchbragg.io.smv import read_smv, smv_header_geometry
from torchbragg.io.sources import apply_source_defaults, read_sources
from torchbragg.precedence import check_beam_and_distances, fluence_and_clipped_sample
from torchbragg.sources import (
    StepRange,
    auto_range,
    c_rotate_axis,
    dispersion_wavelengths,
    divergence_offsets,
    sane,
)
from torchbragg.stol import StolTable, StructureFactorCurve, read_stol_table

MAX_PIXELS = 1 << 31  # the C program counts pixels in an int


def g(x: float) -> str:
    """C's ``%g``."""
    return format_c_g(x)


def vec(v) -> str:
    """Three numbers with ``%g``, space separated."""
    return " ".join(g(float(x)) for x in v)


@dataclass
class NBPlan:
    """A resolved nonBragg run.

    Attributes
    ----------
    state : NBState
        The scanned options, with the C program's defaults filled in (SI units).
    lines : list of str
        What the C program prints before rendering (after any -img lines and the banner).
    warnings : list of str
        torchbragg's notes for stderr (input files the C program would read differently).
    sampler : PixelSampler
        Detector placement, pixel size and sub-pixels.
    sources : SourceSet
    curve : StructureFactorCurve
    table : StolTable
    scale : torch.Tensor
        r_e^2 x fluence x molecules / steps (photons per summed unit).
    molecules, fluence : float
    steps : int
        Sources x oversample^2.
    roi : list of int
        xmin, xmax, ymin, ymax as the C program holds them (inclusive; defaults to the size).
    osc : float
        Oscillation range for the SMV header (rad).
    img : numpy.ndarray or None
        The ``-img`` pixels (slow, fast), float32.
    """

    state: NBState
    lines: list[str]
    warnings: list[str]
    sampler: PixelSampler
    sources: SourceSet
    curve: StructureFactorCurve
    table: StolTable
    scale: torch.Tensor
    molecules: float
    fluence: float
    steps: int
    roi: list[int]
    osc: float
    img: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def placement(self) -> Placement:
        """The placed detector."""
        return self.sampler.placement


def read_img_header(st: NBState) -> list[str]:
    """Apply an ``-img`` header's geometry to ``st`` (as defaults); the lines to print.

    nonBragg reads SIZE1/SIZE2, PIXEL_SIZE, DISTANCE (the last one in the text: in a header a
    nonBragg or nanoBragg wrote that is CLOSE_DISTANCE's), CLOSE_DISTANCE, WAVELENGTH,
    BEAM_CENTER_X/Y (Y measured from the far edge), ORGX/ORGY, PHI and OSC_RANGE.
    """
    image = read_smv(st.img_path)
    header = smv_header_geometry(image.header_text, "mask", st.pixel_size, path=st.img_path)
    st.fpixels, st.spixels = header["size_fast"], header["size_slow"]
    st.pixel_size = header["pixel_size_m"]
    st.detsize_x, st.detsize_y = header["detsize_f_m"], header["detsize_s_m"]
    for key, attr in (("distance_m", "distance"), ("close_distance_m", "close_distance"),
                      ("wavelength_m", "lambda0"), ("xbeam_m", "Xbeam"), ("ybeam_m", "Ybeam"),
                      ("orgx_px", "ORGX"), ("orgy_px", "ORGY"), ("phi0_rad", "phi0"),
                      ("osc_rad", "osc")):
        if key in header:
            setattr(st, attr, header[key])
    st.img_pixels = image.pixels
    return [f"reading {st.img_path}", f"mmap({st.img_path}) = {hex(image.pixels.ctypes.data)}"]


def _check_values(st: NBState) -> None:
    """Refuse values with which the C program divides by zero or renders nonsense."""
    check_beam_and_distances(st)
    if st.fpixels < 0 or st.spixels < 0:
        raise SetupError(f"detector pixel counts must not be negative, got {st.fpixels} x "
                         f"{st.spixels}")
    for value, what, unit in ((st.sample_x * 1e3, "sample thickness (-thick)", " mm"),
                              (st.sample_y * 1e3, "sample width (-sample_y)", " mm"),
                              (st.sample_z * 1e3, "sample height (-sample_z)", " mm"),
                              (st.density / 1e6, "density (-density)", " g/cm^3"),
                              (st.molecules, "molecule count (-molecules)", "")):
        if not (value >= 0 and math.isfinite(value)):
            raise SetupError(f"{what} must be zero or positive and finite, got {value:g}{unit}")
    if not (st.molecular_weight > 0 and math.isfinite(st.molecular_weight)):
        raise SetupError("molecular weight (-MW) must be positive and finite, got "
                         f"{st.molecular_weight:g} g/mol")
    for name, flag in (("fdet", "-fdet_vector"), ("sdet", "-sdet_vector"),
                       ("beam", "-beam_vector"), ("polar_vector", "-polar_vector")):
        if not any(getattr(st, name)) or not all(map(math.isfinite, getattr(st, name))):
            raise SetupError(f"{flag} must be a finite, non-zero vector")
    if not all(map(math.isfinite, (st.fluence, st.flux, st.exposure, st.polarization,
                                   st.detector_rotx, st.detector_roty, st.detector_rotz,
                                   st.detector_twotheta, st.dispersion))):
        raise SetupError("fluence, flux, exposure, polarization, angles and dispersion must "
                         "be finite")


def _detector_size(st: NBState) -> None:
    """Pixels from the size, as the C program: ceil(size / pixel) (no rounding allowance)."""
    if st.fpixels:
        st.detsize_x = st.pixel_size * st.fpixels
    if st.spixels:
        st.detsize_y = st.pixel_size * st.spixels
    ratio_f, ratio_s = st.detsize_x / st.pixel_size, st.detsize_y / st.pixel_size
    if not (0 < ratio_f < MAX_PIXELS and 0 < ratio_s < MAX_PIXELS):
        raise SetupError(f"detector of {st.detsize_x * 1e3:g} x {st.detsize_y * 1e3:g} mm in "
                         f"{st.pixel_size * 1e3:g} mm pixels has no pixels or too many; check "
                         "-detpixels, -detsize and -pixel")
    st.fpixels, st.spixels = math.ceil(ratio_f), math.ceil(ratio_s)
    if st.fpixels * st.spixels >= MAX_PIXELS:
        raise SetupError(f"detector of {st.fpixels} x {st.spixels} pixels is too large")


def _centres(st: NBState) -> None:
    """Defaults of the closest point and the beam spot: the detector centre (C's rule)."""
    if not math.isnan(st.ORGX):
        st.Xclose = st.ORGX * st.pixel_size
    if not math.isnan(st.ORGY):
        st.Yclose = st.ORGY * st.pixel_size
    if math.isnan(st.Xclose):
        st.Xclose = (st.detsize_x - st.pixel_size) / 2.0
    if math.isnan(st.Yclose):
        st.Yclose = (st.detsize_y + st.pixel_size) / 2.0
    if math.isnan(st.Xbeam):
        st.Xbeam = st.Xclose
    if math.isnan(st.Ybeam):
        st.Ybeam = st.Yclose


def _roi(st: NBState) -> list[int]:
    xmin, xmax, ymin, ymax = st.roi
    return [xmin if xmin >= 0 else 0, xmax if xmax >= 0 else st.fpixels,
            ymin if ymin >= 0 else 0, ymax if ymax >= 0 else st.spixels]


def _fluence_and_sample(st: NBState, lines: list[str]) -> float:
    """Fluence from flux, the sample clipped to the beam; returns the molecule count."""
    fluence_and_clipped_sample(st, lines)
    volume = st.sample_x * st.sample_y * st.sample_z
    if st.molecules != 0:
        if volume == 0:
            raise SetupError("-molecules needs a sample of non-zero volume to set the density")
        st.density = st.molecules / volume / AVOGADRO * st.molecular_weight
    return float(molecule_count(st.sample_x, st.sample_y, st.sample_z, st.density,
                                st.molecular_weight))


def header_osc(st: NBState) -> float:
    """The oscillation range the SMV header reports (rad), by the C program's phi rules."""
    if st.phisteps < 0:
        if st.osc < 0.0:
            return 0.0 if st.phistep <= 0.0 else st.phistep
        return st.osc
    if st.osc < 0.0:
        return 1.0 / RTD if st.phistep <= 0.0 else st.phistep
    return st.osc


def _unit_list(v) -> list[float]:
    """A vector normalised as the C program's unitize (plain floats)."""
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return [x / n for x in v] if n != 0 else [0.0, 0.0, 0.0]


def _placement(st: NBState, lines: list[str]) -> Placement:
    lines.append("pivoting detector around sample" if st.pivot == "sample"
                 else "pivoting detector around direct beam spot")
    close = None if math.isnan(st.close_distance) else st.close_distance
    return place_detector(beam=st.beam, fdet=st.fdet, sdet=st.sdet, distance_m=st.distance,
                          close_distance_m=close, beam_xy_m=(st.Xbeam, st.Ybeam),
                          close_xy_m=(st.Xclose, st.Yclose), pivot=st.pivot,
                          rotations_rad=(st.detector_rotx, st.detector_roty,
                                         st.detector_rotz),
                          twotheta_rad=st.detector_twotheta, twotheta_axis=st.twotheta_axis)


def _grid_sources(st: NBState, beam: list[float], polar: list[float], hdiv: StepRange,
                  vdiv: StepRange, disp: StepRange, lines: list[str]):
    """The divergence x dispersion grid: positions (n, 3), weights, wavelengths, count."""
    offsets = divergence_offsets(hdiv, vdiv, st.round_div)
    lines.extend(f"divergence deviation: {g(h)} {g(v)}" for h, v in offsets.tolist())
    waves = dispersion_wavelengths(st.lambda0, disp)
    lines.extend(f"lambda{i} = {w:.15g}" for i, w in enumerate(waves))
    b = [float(x) for x in beam]
    vert = _unit_list([b[1] * polar[2] - b[2] * polar[1], b[2] * polar[0] - b[0] * polar[2],
                       b[0] * polar[1] - b[1] * polar[0]])
    start = [-st.source_distance * x for x in b]
    positions = [c_rotate_axis(c_rotate_axis(start, polar, v), vert, h)
                 for h, v in offsets.tolist() for _ in waves]
    lambdas = [w for _ in range(len(offsets)) for w in waves]
    return (np.array(positions, dtype=np.float64).reshape(-1, 3), np.ones(len(lambdas)),
            np.array(lambdas, dtype=np.float64), len(offsets))


def _file_sources(st: NBState, beam: list[float], warnings: list[str]):
    table = read_sources(st.source_path)
    table = apply_source_defaults(table, np.array(beam), st.lambda0, st.source_distance)
    for line in table.warnings:
        if "negative source weight" in line or "ignores source weights" in line:
            continue  # nonBragg, unlike nanoBragg, does use the weights
        warnings.append(line.replace("nanoBragg", "nonBragg"))
    if np.any(~(table.wavelength_m > 0)):
        raise SetupError(f"{st.source_path}: source wavelengths must be positive")
    return table.position_m, table.weight, table.wavelength_m, -1


def _sources(st: NBState, lines: list[str], warnings: list[str], steps: dict):
    """Sources (file or grid), with the lines the C program prints about them."""
    beam = _unit_list(st.beam)
    polar = _unit_list(st.polar_vector)
    if st.source_path is not None:
        pos, weight, waves, n_div = _file_sources(st, beam, warnings)
    else:
        pos, weight, waves, n_div = _grid_sources(st, beam, polar, steps["hdiv"],
                                                  steps["vdiv"], steps["disp"], lines)
    if len(waves) == 0:
        raise SetupError("no x-ray sources: the divergence grid is empty")
    lines.append(f"  created a total of {len(waves)} sources:")
    lines.extend(f"{vec(p)}   {g(w)} {g(lam)}" for p, w, lam in zip(pos.tolist(),
                                                                    weight.tolist(),
                                                                    waves.tolist(), strict=True))
    return SourceSet.from_positions(pos, waves, weight), n_div


def _steps(st: NBState) -> dict[str, StepRange]:
    """Divergence and dispersion ranges by the C program's auto-selection and sanity rules."""
    names = {"hdiv": (st.hdivsteps, st.hdivrange, st.hdivstep, "-hdivrange / -hdivstep"),
             "vdiv": (st.vdivsteps, st.vdivrange, st.vdivstep, "-vdivrange / -vdivstep"),
             "disp": (st.dispsteps, st.dispersion, -1.0, "-dispersion / dispstep")}
    try:
        return {key: sane(auto_range(n, r, s, names=what)) for key, (n, r, s, what) in
                names.items()}
    except SetupError as err:  # worded for nanoBragg, whose rules these are too
        raise SetupError(str(err).replace("nanoBragg", "nonBragg")) from None


def _summary(st: NBState, plan_values: dict) -> list[str]:
    p: Placement = plan_values["placement"]
    steps = plan_values["steps"]
    lines = [f"  {plan_values['points']} initialized F points (will cubic-spline interpolate "
             "between them)",
             f"  wave={g(st.lambda0)} meters +/- {g(steps['disp'].range * 100)}% in "
             f"{steps['disp'].steps} steps",
             "  polarization effect disabled" if st.nopolar
             else f"  Kahn polarization factor: {st.polarization:f}"]
    if st.curved_detector:
        lines.append("  curved detector: all pixels same distance from origin")
    if st.point_pixel:
        lines.append("  pixel obliquity effect disabled")
    if st.Fmap:
        lines.append("  Fmap mode: plotting structure factor at every pixel")
    lines += [f"  incident fluence: {g(st.fluence)} photons/m^2",
              f"  sample is {g(st.sample_x)} m thick x {g(st.sample_y)} m high x "
              f"{g(st.sample_z)} m wide, {g(st.density / 1e6)} g/cm^3 and "
              f"{g(st.molecular_weight)} g/mol ({g(plan_values['molecules'])} molecules)",
              f"  distance={g(p.distance)} detsize={g(st.detsize_x)}x{g(st.detsize_y)}  "
              f"pixel={g(st.pixel_size)} meters ({st.fpixels}x{st.spixels} pixels)",
              f"  Xbeam={g(p.xbeam)} Ybeam={g(p.ybeam)}",
              f"  detector origin: {vec(p.pix0)}",
              f"  DIRECTION_OF_DETECTOR_X-AXIS= {vec(p.fdet)}",
              f"  DIRECTION_OF_DETECTOR_Y-AXIS= {vec(p.sdet)}",
              f"  INCIDENT_BEAM_DIRECTION= {vec(p.beam)}",
              f"  POLARIZATION_PLANE_NORMAL= {vec(_unit_list(st.polar_vector))}",
              "  roi: {} < x < {} && {} < y < {}".format(*plan_values["roi"]),
              f"  hdivrange={g(steps['hdiv'].range)} hdivstep={g(steps['hdiv'].step)}  "
              "radians",
              f"  vdivrange={g(steps['vdiv'].range)} vdivstep={g(steps['vdiv'].step)}  "
              "radians",
              f"  {plan_values['n_div']} divergence steps",
              f"  {plan_values['sources']} sources",
              f"  {plan_values['oversample']} pixel oversample steps"]
    return lines


def _read_table(st: NBState, warnings: list[str]) -> tuple[StolTable, StructureFactorCurve]:
    table = read_stol_table(st.stol_path)
    warnings.extend(table.warnings)
    return table, StructureFactorCurve.from_table(table, st.stol_mult)


def build_plan(st: NBState, device: torch.device | str = "cpu") -> NBPlan:
    """Resolve ``st`` as the C program does; raise SetupError or InputFileError on bad input.

    ``st`` is completed in place (detector size, centres, clipped sample, fluence...).
    """
    _check_values(st)
    _detector_size(st)
    _centres(st)
    roi = _roi(st)
    lines: list[str] = []
    warnings: list[str] = []
    molecules = _fluence_and_sample(st, lines)
    steps = _steps(st)
    placement = _placement(st, lines)
    lines.append(f"reading {st.stol_path}")
    table, curve = _read_table(st, warnings)
    sources, n_div = _sources(st, lines, warnings, steps)
    oversample = st.oversample if st.oversample > 0 else 1
    n_steps = len(sources) * oversample * oversample
    lines += _summary(st, {"placement": placement, "steps": steps, "points": curve.points,
                           "molecules": molecules, "roi": roi, "n_div": n_div,
                           "sources": len(sources), "oversample": oversample})
    sampler = PixelSampler(placement, torch.tensor(st.pixel_size, dtype=torch.float64),
                           st.fpixels, st.spixels, oversample, curved=st.curved_detector,
                           point_pixel=st.point_pixel)
    img = _img_pixels(st)
    _move(sampler, device)
    return NBPlan(state=st, lines=lines, warnings=warnings, sampler=sampler,
                  sources=sources.to(device), curve=curve.to(device), table=table,
                  scale=amorphous_scale(st.fluence, molecules, n_steps).to(device),
                  molecules=molecules, fluence=st.fluence, steps=n_steps, roi=roi,
                  osc=header_osc(st), img=img, info={"steps": steps})


def _img_pixels(st: NBState) -> np.ndarray | None:
    pixels = getattr(st, "img_pixels", None)
    if pixels is None:
        return None
    if pixels.shape != (st.spixels, st.fpixels):
        raise SetupError(f"{st.img_path} is {pixels.shape[1]} x {pixels.shape[0]} pixels but "
                         f"the detector is {st.fpixels} x {st.spixels}")
    return pixels.astype(np.float32)


def _move(sampler: PixelSampler, device) -> None:
    """Put the placed detector's tensors on ``device``."""
    p = sampler.placement
    for name in vars(p):
        setattr(p, name, getattr(p, name).to(device))
    sampler.pixel_size_m = sampler.pixel_size_m.to(device)


def describe_paths(st: NBState) -> list[str]:
    """Output files the run writes, in the C program's order."""
    paths = [st.float_path, st.int_path, st.pgm_path]
    if st.calculate_noise:
        paths.append(st.noise_path)
    if st.img_path is not None:
        paths.insert(0, st.stolout_path)
    return [os.fspath(p) for p in paths]


__all__ = ["BANNER", "NBPlan", "build_plan", "describe_paths", "header_osc", "read_img_header"]
