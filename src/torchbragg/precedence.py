"""nanoBragg's precedence rules: from the scanned command line to a :class:`SimulationConfig`.

This is the one place that decides what the C program decides between reading its arguments
and rendering: SMV header ingestion, convention defaults for the beam centre, the pivot,
auto-selection of phi, divergence, dispersion, layer and mosaic steps, crystal size from
sample dimensions, oversampling, interpolation, and loading structure factors. It records the
lines the C program prints on the way in :attr:`Plan.messages`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from torchbragg.cli.options import RTD, CState
from torchbragg.config import (
    AVOGADRO,
    BeamConfig,
    CrystalConfig,
    DetectorConfig,
    SamplingConfig,
    SimulationConfig,
    StructureFactorConfig,
)
from torchbragg.errors import SetupError  # noqa: F401 - raised here, part of the API
from torchbragg.geometry import detector_frame
from torchbragg.io import hkl as hkl_io
from torchbragg.io import mosflm, smv
from torchbragg.io import sources as sources_io
from torchbragg.io.images import format_c_g
from torchbragg.lattice import cell_constants, real_and_reciprocal, reciprocal_from_cell
from torchbragg.models.crystal import LAZY_ORIENTATIONS as LAZY_DOMAINS
from torchbragg.mosaic_stream import mosaic_stream
from torchbragg.rng import (
    SharedState,
    axis_angle_umats,
    default_noise_seed,
    mosaic_domains,
    random_misset_angles,
)
from torchbragg.sources import (
    SOURCE_DISTANCE_M,
    SourceGrid,
    auto_range,
    dispersion_wavelengths,
    divergence_indices,
    divergence_offsets,
    grid_positions,
    grid_sources,
    sane,
    step_count,
)

LAZY_SOURCES = LAZY_DOMAINS  # more sources than this are made when needed (SourceGrid)

# Unrotated axes per convention: fdet, sdet, odet, beam, polar, spindle, twotheta axis.
CONVENTION_AXES = {
    "adxv": ((1, 0, 0), (0, -1, 0), (0, 0, 1), (0, 0, 1), (1, 0, 0), (1, 0, 0), (-1, 0, 0)),
    "mosflm": ((0, 0, 1), (0, -1, 0), (1, 0, 0), (1, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, -1)),
    "denzo": ((0, 0, 1), (0, -1, 0), (1, 0, 0), (1, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, -1)),
    "xds": ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "dials": ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0), (0, 1, 0), (0, 1, 0)),
}


@dataclass(frozen=True)
class NumberedLines:
    """``count`` lines ``line(i)``, made as they are printed.

    The C program prints one line per phi step or sensor layer; a run with millions of them
    should not hold millions of strings.
    """

    count: int
    line: Callable[[int], str]

    def __iter__(self) -> Iterator[str]:
        return (self.line(i) for i in range(self.count))


@dataclass
class Plan:
    """A resolved run: the simulation, what to write, and the C program's messages so far.

    ``messages`` holds lines and runs of :class:`NumberedLines`; :meth:`lines` gives them in
    order.
    """

    config: SimulationConfig
    state: CState
    messages: list[str | NumberedLines] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # torchbragg's, for stderr

    def line_count(self) -> int:
        """How many lines :meth:`lines` gives."""
        return sum(1 if isinstance(item, str) else item.count for item in self.messages)

    def lines(self) -> Iterator[str]:
        """The C program's messages, one line at a time."""
        for item in self.messages:
            if isinstance(item, str):
                yield item
            else:
                yield from item


def _unit(v) -> tuple[np.ndarray, float]:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.sqrt(v @ v))
    return (v / n if n != 0 else v * 0), n


def apply_smv_headers(st: CState) -> list[str]:
    """Initialise geometry from ``-mask`` then ``-img`` headers, as nanoBragg does first.

    A mask's BEAM_CENTER_Y is measured from the other edge (the C program stores
    detsize_s - value); an image header's is taken as is. Returns the lines the C program
    prints while doing so.
    """
    lines = []
    keys = (("distance_m", "distance"), ("close_distance_m", "close_distance"),
            ("wavelength_m", "lambda0"), ("xbeam_m", "Xbeam"), ("ybeam_m", "Ybeam"),
            ("orgx_px", "ORGX"), ("orgy_px", "ORGY"), ("phi0_rad", "phi0"), ("osc_rad", "osc"))
    for path, role in ((st.mask_path, "mask"), (st.img_path, "img")):
        if path is None:
            continue
        lines.append(f"reading {path}")
        header = smv.smv_header_geometry(smv.read_smv(path).header_text, role, st.pixel_size,
                                         path=path)
        st.fpixels, st.spixels = header["size_fast"], header["size_slow"]
        st.pixel_size = header["pixel_size_m"]
        st.detsize_f, st.detsize_s = header["detsize_f_m"], header["detsize_s_m"]
        for key, attr in keys:
            if key in header:
                setattr(st, attr, header[key])
    return lines


def _detector_size(st: CState) -> None:
    if st.pixel_size <= 0:
        raise SetupError(f"pixel size must be positive, got {st.pixel_size * 1000:g} mm")
    if st.fpixels < 0 or st.spixels < 0:
        raise SetupError(f"detector pixel counts must be positive, got {st.fpixels} x "
                         f"{st.spixels}")
    if st.fpixels:
        st.detsize_f = st.pixel_size * st.fpixels
    if st.spixels:
        st.detsize_s = st.pixel_size * st.spixels
    st.fpixels = math.ceil(st.detsize_f / st.pixel_size - 0.5)
    st.spixels = math.ceil(st.detsize_s / st.pixel_size - 0.5)
    if st.fpixels <= 0 or st.spixels <= 0:
        raise SetupError(f"detector has no pixels ({st.fpixels} x {st.spixels}); check "
                         "-detpixels, -detsize and -pixel")


def _fluence(st: CState, msgs: list[str]) -> None:
    """Fluence from flux, exposure and beam size; clip the sample to the beam; the flux."""
    fluence_and_clipped_sample(st, msgs)
    if st.exposure > 0.0:
        st.flux = st.fluence / st.exposure * st.beamsize * st.beamsize


def fluence_and_clipped_sample(st, msgs: list[str]) -> None:
    """Fluence from flux, exposure and beam size, and the sample clipped to the beam.

    ``st`` is nanoBragg's or nonBragg's scanned state (both programs do this alike); the
    clipping warnings go to ``msgs``.
    """
    if st.flux != 0.0 and st.exposure > 0.0 and st.beamsize >= 0:
        st.fluence = st.flux * st.exposure / st.beamsize / st.beamsize
    if st.beamsize >= 0:
        for size, what in (("sample_y", "high"), ("sample_z", "wide")):
            if st.beamsize < getattr(st, size):
                msgs.append(f"WARNING: clipping sample ({format_c_g(getattr(st, size))} m "
                            f"{what}) with beam ({format_c_g(st.beamsize)} m)")
                setattr(st, size, st.beamsize)


def _g(x: float) -> str:
    """C's %g."""
    return f"{x:g}"


def _beam_centre(st: CState) -> dict:
    """Convention defaults for the beam centre and the unrotated axes (C's Fbeam etc.)."""
    px, df, ds = st.pixel_size, st.detsize_f, st.detsize_s
    fclose = (st.ORGX - 0.5) * px if not math.isnan(st.ORGX) else df / 2.0
    sclose = (st.ORGY - 0.5) * px if not math.isnan(st.ORGY) else ds / 2.0
    xclose = st.Xclose if not math.isnan(st.Xclose) else fclose
    yclose = st.Yclose if not math.isnan(st.Yclose) else sclose
    xb, yb, conv = st.Xbeam, st.Ybeam, st.convention
    pivot = st.pivot
    if conv in CONVENTION_AXES:
        axes = CONVENTION_AXES[conv]
        st.fdet, st.sdet, st.odet, st.beam, st.polar_vector, st.spindle, st.twotheta_axis = (
            list(map(float, a)) for a in axes)
    if conv == "adxv":
        xb = (df + px) / 2.0 if math.isnan(xb) else xb
        yb = (ds - px) / 2.0 if math.isnan(yb) else yb
        fbeam, sbeam, pivot = xb, ds - yb, "beam"
    elif conv in ("mosflm", "denzo"):
        xb = (ds + px) / 2.0 if math.isnan(xb) else xb
        yb = (df + px) / 2.0 if math.isnan(yb) else yb
        half = 0.5 * px if conv == "mosflm" else 0.0
        fbeam, sbeam, pivot = yb + half, xb + half, "beam"
    else:
        xb = xclose if math.isnan(xb) else xb
        yb = yclose if math.isnan(yb) else yb
        fbeam, sbeam = xb, yb
        if conv in ("xds", "dials"):
            pivot = "sample"
        else:
            fclose, sclose = xb, yb
    return dict(xbeam=xb, ybeam=yb, xclose=xclose, yclose=yclose, fbeam=fbeam, sbeam=sbeam,
                fclose=fclose, sclose=sclose, pivot=pivot)


def _warn_roi(st: CState, warns: list[str]) -> None:
    """-roi beyond the detector: nanoBragg renders the part inside (maybe nothing)."""
    xmin, xmax, ymin, ymax = st.roi
    if xmin > xmax >= 0 or ymin > ymax >= 0:
        return  # reversed: the scan already said so
    outside = (xmin >= st.fpixels or ymin >= st.spixels or xmax >= st.fpixels
               or ymax >= st.spixels)
    if any(v >= 0 for v in st.roi) and outside:
        warns.append(f"-roi {xmin} {xmax} {ymin} {ymax} reaches beyond the {st.fpixels} x "
                     f"{st.spixels} detector (pixels 0..{st.fpixels - 1}, 0..{st.spixels - 1});"
                     " only the part inside is rendered, as in nanoBragg")


def _warn_axes(axes: dict, warns: list[str]) -> None:
    """Detector axes that do not span a plane make every pixel lie on a line."""
    if float(np.linalg.norm(np.cross(axes["fdet"], axes["sdet"]))) < 1e-6:
        warns.append("the fast and slow detector axes are parallel, so the pixels lie on a "
                     "line; nanoBragg renders it so, and so does this run (check "
                     "-fdet_vector and -sdet_vector)")


def _axes(st: CState, msgs: list[str]) -> dict[str, np.ndarray]:
    """Unit axes; an odet that is not already unit length is rebuilt from fdet x sdet."""
    f, _ = _unit(st.fdet)
    s, _ = _unit(st.sdet)
    o, n = _unit(st.odet)
    if n != 1.0:
        msgs.append("WARNING: auto-generating odet_vector")
        o, _ = _unit(np.cross(f, s))
    return dict(fdet=f, sdet=s, odet=o, beam=_unit(st.beam)[0],
                polar=_unit(st.polar_vector)[0], spindle=_unit(st.spindle)[0],
                twotheta_axis=np.asarray(st.twotheta_axis, dtype=np.float64))


def _phi_steps(st: CState) -> tuple[int, float, float]:
    """NanoBragg's auto-selection of (phisteps, osc, phistep), angles in radians."""
    steps, osc, step = st.phisteps, st.osc, st.phistep
    if steps < 0:
        if osc < 0.0:
            return (1, 0.0, 0.0) if step <= 0.0 else (2, step, step)
        if step <= 0.0:
            return 2, osc, osc / 2.0
        count = step_count(osc, step, "-osc / -phistep")
        if count == 0:
            raise SetupError("-osc 0 with a -phistep gives no phi steps")
        return count, osc, step
    steps = max(steps, 1)
    if osc < 0.0:
        if step <= 0.0:
            return steps, 1.0 / RTD, 1.0 / RTD / steps
        return 2, step, step
    if step < 0.0:
        return steps, osc, osc / steps
    return steps, osc, step


def _mosaic(st: CState, msgs: list[str]) -> tuple[int, float]:
    domains, spread = st.mosaic_domains, st.mosaic_spread
    if domains <= 0:
        if spread < 0.0:
            return 1, 0.0
        if spread == 0.0:
            return 1, spread
        msgs.append("WARNING: finite mosaicity with only one domain! upping to 10 mosaic "
                    "domains")
        return 10, spread
    if spread < 0.0:
        msgs.append("WARNING: no mosaic spread specified.  setting mosaic_domains = 1")
        return 1, 0.0
    if spread == 0.0 and not st.zero_spread_domains:
        msgs.append("WARNING: zero mosaic spread specified.  setting mosaic_domains = 1")
        return 1, spread
    return domains, spread


def _positive_finite(value: float, what: str, shown: float, unit: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise SetupError(f"{what} must be positive and finite, got {shown:g} {unit}")


def check_beam_and_distances(st) -> None:
    """Wavelength, pixel size, distances and -beamsize with -flux: positive and finite.

    ``st`` is nanoBragg's or nonBragg's scanned state (the same fields, in metres).
    """
    _positive_finite(st.lambda0, "wavelength (-lambda/-wave/-energy)", st.lambda0 * 1e10, "Å")
    _positive_finite(st.pixel_size, "pixel size (-pixel)", st.pixel_size * 1e3, "mm")
    _positive_finite(st.distance, "detector distance (-distance)", st.distance * 1e3, "mm")
    if not math.isnan(st.close_distance):
        _positive_finite(st.close_distance, "detector distance (-close_distance)",
                         st.close_distance * 1e3, "mm")
    if st.flux != 0.0 and st.exposure > 0.0 and not st.beamsize > 0:
        raise SetupError(f"-beamsize must be positive to turn -flux into a fluence, got "
                         f"{st.beamsize * 1e3:g} mm")


def _check_values(st: CState) -> None:
    check_beam_and_distances(st)
    for name in ("fdet", "sdet", "beam", "spindle"):
        if not any(getattr(st, name)):
            flag = "-spindle_axis" if name == "spindle" else f"-{name}_vector"
            raise SetupError(f"{flag} must not be the zero vector")
    if not abs(st.mosaic_spread) < 1e30:  # the C program passes it through a float
        raise SetupError(f"-mosaic {st.mosaic_spread * RTD:g} degrees is too large")
    if not abs(st.water_size) < 1e30:
        raise SetupError(f"-water {st.water_size * 1e6:g} um is too large")


def _warn_negative_counts(st: CState, warns: list[str]) -> None:
    """A negative step count is nanoBragg's "not given": the count is then chosen for you.

    -1 is the unset value, so only counts below it can be told apart and warned about.
    """
    counts = (("-phisteps", st.phisteps), ("-mosaic_dom", st.mosaic_domains),
              ("-dispsteps", st.dispsteps), ("-hdivsteps", st.hdivsteps),
              ("-vdivsteps", st.vdivsteps), ("-detector_thicksteps", st.detector_thicksteps),
              ("-oversample", st.oversample))
    for name, value in counts:
        if value < -1:
            warns.append(f"{name} {value}: nanoBragg reads a negative count as not given and "
                         "chooses the count itself, as if the option were left out; so does "
                         "this run")


def _warn_step_overflow(steps: int, warns: list[str]) -> None:
    """NanoBragg divides the image by its step count, an int that wraps beyond 2^31 - 1."""
    wrapped = (steps + 2**31) % 2**32 - 2**31
    if wrapped != steps:
        warns.append(f"sources x mosaic domains x phi steps x oversample^2 = {steps} overflows "
                     f"nanoBragg's int step count, which wraps to {wrapped}: its image (and "
                     f"solid-angle line) would be divided by {wrapped}; this run divides by "
                     f"{steps}")


def _thickness(st: CState, msgs: list[str]) -> tuple[int, float, float, float]:
    r = sane(auto_range(st.detector_thicksteps, st.detector_thick, -1.0, one_sided=True))
    mu = st.detector_mu
    if r.range > 0.0 and mu < 0.0:
        mu = 1.0 / r.range
        msgs.append(f"WARNING: setting detector attenuation depth to {mu:g} m")
    return r.steps, r.range, r.step, mu


def resolve(st: CState) -> Plan:
    """Apply nanoBragg's precedence rules to the scanned command line.

    Raises
    ------
    SetupError
        For impossible values (non-positive wavelength or pixel size, step counts beyond C's
        int, ...).
    torchbragg.io.errors.InputFileError
        For unreadable or malformed input files.
    """
    msgs: list[str] = []
    warns: list[str] = []
    _check_values(st)
    _warn_negative_counts(st, warns)
    _detector_size(st)
    _warn_roi(st, warns)
    _fluence(st, msgs)
    centre = _beam_centre(st)
    axes = _axes(st, msgs)
    _warn_axes(axes, warns)
    msgs.append("nanoBragg nanocrystal diffraction simulator - James Holton and Ken Frankel "
                "5-17-17")
    phisteps, osc, phistep = _phi_steps(st)
    hdiv = sane(auto_range(st.hdivsteps, st.hdivrange, st.hdivstep,
                           names="-hdivrange / -hdivstep"))
    vdiv = sane(auto_range(st.vdivsteps, st.vdivrange, st.vdivstep,
                           names="-vdivrange / -vdivstep"))
    disp = sane(auto_range(st.dispsteps, st.dispersion, -1.0))
    nthick, thick, thickstep, mu = _thickness(st, msgs)
    domains, spread = _mosaic(st, msgs)
    msgs.append(f"{st.convention} convention selected.")
    det = _detector_config(st, centre, axes, (nthick, thick, thickstep, mu))
    frame = _frame(det, axes)
    msgs.append("pivoting detector around sample" if det.pivot == "sample" else
                "pivoting detector around direct beam spot")
    beam_in_det = [float(np.dot(axes["beam"], frame[k])) for k in ("fdet", "sdet", "odet")]
    msgs.append("XDS incident beam: " + " ".join(_g(x) for x in beam_in_det))
    interpolate = st.interpolate
    if interpolate > 1:
        auto = st.Na <= 2 or st.Nb <= 2 or st.Nc <= 2
        msgs.append("auto-selected tricubic interpolation of structure factors" if auto
                    else "auto-selected no interpolation")
        interpolate = int(auto)
    shared = SharedState()  # the C generators' static state, shared by all their streams
    crystal, info = _crystal(st, axes, msgs, (phisteps, osc, phistep), (domains, spread),
                             shared)
    info["rng_shared"] = shared
    info["cell_A_deg"] = _cell_A_deg(crystal)
    oversample = _oversample(st, info, frame, msgs, warns)
    info["detector_dmin_A"] = _model_resolution_A(st, frame, axes["beam"], disp.range,
                                                  (hdiv.range, vdiv.range), crystal)
    sf = _structure_factors(st, bool(interpolate), msgs, info)
    warns.extend(info.pop("reader_warnings", []))
    phi0 = st.phi0
    msgs.append(NumberedLines(nthick, lambda i: f"thick{i} = {_g(thickstep * i * 1e6)} um"))
    msgs.append(NumberedLines(phisteps, lambda i: f"phi{i} = {_g((phi0 + phistep * i) * RTD)}"))
    beam = _beam(st, axes, hdiv, vdiv, disp, msgs, warns)
    msgs.append(f"  created a total of {domains} mosaic domains")
    sampling = SamplingConfig(oversample=oversample, oversample_thick=st.oversample_thick,
                              oversample_polar=st.oversample_polar,
                              oversample_omega=st.oversample_omega, dmin_m=st.dmin,
                              water_size_m=st.water_size)
    mask = _mask(st)
    config = SimulationConfig(detector=det, beam=beam, crystal=crystal, structure_factors=sf,
                              sampling=sampling, mask=mask)
    _warn_step_overflow(config.steps, warns)
    # the C program's divergence count stays -1 when the sources come from a file
    n_div = -1 if st.source_path else len(divergence_indices(hdiv, vdiv, st.round_div)[0])
    info.update(frame=frame, hdiv=hdiv, vdiv=vdiv, disp=disp, n_div=n_div)
    return Plan(config=config, state=st, messages=msgs, info=info, warnings=warns)


def _detector_config(st: CState, centre: dict, axes: dict, thick: tuple) -> DetectorConfig:
    nthick, thickness, thickstep, mu = thick
    roi = list(st.roi)
    defaults = (0, st.fpixels, 0, st.spixels)
    roi = tuple(d if v < 0 else v for v, d in zip(roi, defaults, strict=True))
    close = None if math.isnan(st.close_distance) else st.close_distance
    return DetectorConfig(
        convention=st.convention, pivot=centre["pivot"], fdet=tuple(axes["fdet"]),
        sdet=tuple(axes["sdet"]), odet=tuple(axes["odet"]),
        twotheta_axis=tuple(axes["twotheta_axis"]), pixel_size_m=st.pixel_size,
        fpixels=st.fpixels, spixels=st.spixels, distance_m=st.distance,
        close_distance_m=close, beam_f_m=centre["fbeam"], beam_s_m=centre["sbeam"],
        close_f_m=centre["fclose"], close_s_m=centre["sclose"],
        rotations_rad=(st.detector_rotx, st.detector_roty, st.detector_rotz),
        twotheta_rad=st.detector_twotheta, curved=st.curved_detector,
        point_pixel=st.point_pixel, thickness_m=thickness, thicksteps=nthick,
        thickstep_m=thickstep, mu_per_m=mu, roi=roi, xbeam_m=centre["xbeam"],
        ybeam_m=centre["ybeam"], xclose_m=centre["xclose"], yclose_m=centre["yclose"])


def _frame(det: DetectorConfig, axes: dict) -> dict:
    """The rotated detector frame as plain floats (for reports and auto-selection)."""
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    fr = detector_frame(
        {k: t(axes[k]) for k in ("fdet", "sdet", "odet", "beam", "twotheta_axis")},
        t(det.rotations_rad), t(det.twotheta_rad), det.pivot,
        t((det.beam_f_m, det.beam_s_m)), t((det.close_f_m, det.close_s_m)), t(det.distance_m),
        None if det.close_distance_m is None else t(det.close_distance_m))
    return {k: (v.numpy() if v.ndim else float(v)) for k, v in vars(fr).items()}


def _orientation(st: CState, msgs: list[str], shared: SharedState):
    """Starting reciprocal vectors, cell and misset as the C program sets them up."""
    cell = recip = volume = None
    if st.user_cell:
        a, b, c, al, be, ga = st.cell
        b = b if b > 0 else a
        c = c if c > 0 else a
        al, be, ga = (x if x > 0 else math.pi / 2 for x in (al, be, ga))
        for length in (a, b, c):
            if not 1e-50 < length < 1e50:  # beyond, products of lengths over- or underflow
                raise SetupError(f"unit cell length {length:g} A is out of range")
        cell = (a, b, c, al, be, ga)
        half = (al + be + ga) / 2
        if math.sin(half) * math.sin(half - al) * math.sin(half - be) * math.sin(half - ga) < 0:
            raise SetupError("impossible unit cell angles " + " ".join(
                f"{x * RTD:g}" for x in (al, be, ga)) + " (no parallelepiped has them)")
        recip, volume = reciprocal_from_cell(torch.tensor(cell, dtype=torch.float64))
        if not (math.isfinite(float(volume)) and bool(torch.isfinite(recip).all())
                and 0 < float(volume) and math.isfinite(1 / float(volume))):
            raise SetupError("impossible unit cell " + " ".join(f"{x:g}" for x in st.cell[:3])
                             + " " + " ".join(f"{x * RTD:g}" for x in cell[3:])
                             + ": no finite, positive volume")
    mat = None
    if st.mat_path is not None:
        msgs.append(f"reading {st.mat_path}")
        mat = np.stack(mosflm.reciprocal_vectors_from_mosflm(
            mosflm.read_mosflm_matrix(st.mat_path), wavelength_m=st.lambda0, path=st.mat_path))
        recip = torch.tensor(mat, dtype=torch.float64)
    misset = None
    if st.misset_mode == -1:
        seed = st.misset_seed if st.misset_seed is not None else default_noise_seed()
        misset = tuple(float(x) for x in random_misset_angles(seed, shared))
        msgs.append("random orientation misset angles: "
                    + " ".join(f"{x * RTD:f}" for x in misset) + " deg")
    elif st.misset_mode == 1:
        misset = tuple(st.misset_rad)
    return cell, recip, volume, mat, misset


def _crystal(st: CState, axes: dict, msgs: list[str], phi: tuple, mosaic: tuple,
             shared: SharedState) -> tuple[CrystalConfig, dict]:
    cell, recip, volume, mat, misset = _orientation(st, msgs, shared)
    t = torch.tensor
    real, reciprocal = real_and_reciprocal(
        recip, None if misset is None else t(misset, dtype=torch.float64),
        None if cell is None else t(cell, dtype=torch.float64), volume)
    lengths_m = [float(torch.linalg.norm(v)) * 1e-10 for v in real]
    sizes = (st.sample_x, st.sample_y, st.sample_z)
    n = [st.Na, st.Nb, st.Nc]
    for i in range(3):
        if sizes[i] > 0:
            cells = sizes[i] / lengths_m[i]
            if not cells < 2.0**31:  # a C int in nanoBragg; also inf and NaN
                raise SetupError(f"the crystal size {sizes[i] * 1e6:g} um holds {cells:g} unit "
                                 "cells along one axis, more than nanoBragg counts")
            n[i] = float(math.ceil(cells))
        n[i] = max(n[i], 1.0)
    phisteps, osc, phistep = phi
    domains, spread = mosaic
    # domains drawn at zero spread (kept for refinement, see CState.zero_spread_domains) are
    # drawn at 1 radian, so that their angles scale with the spread
    reference = spread if spread > 0 else 1.0
    stream = None
    if domains > LAZY_DOMAINS:  # drawn when needed (see mosaic_stream)
        stream = mosaic_stream(reference * RTD, domains, st.mosaic_seed, shared)
        mos_axes, mos_angles, umats = np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3, 3))
    else:
        mos_axes, mos_angles = mosaic_domains(reference * RTD, domains, st.mosaic_seed, shared)
        umats = axis_angle_umats(mos_axes, mos_angles * (spread / reference))
    crystal = CrystalConfig(
        cell=cell, mosflm_reciprocal_invA=mat, misset_rad=misset, n_cells=tuple(n),
        shape=st.xtal_shape, fudge=st.fudge, spindle=tuple(axes["spindle"]),
        phi0_rad=st.phi0, phistep_rad=phistep, phisteps=phisteps, osc_rad=osc,
        mosaic_spread_rad=spread, mosaic_umats=np.asarray(umats, dtype=np.float64),
        mosaic_axes=mos_axes, mosaic_angles_rad=mos_angles, mosaic_reference_rad=reference,
        stale_phi0=st.stale_phi0, mosaic_stream=stream)
    v_cell = float(volume) if volume is not None else 1.0 / float(torch.linalg.det(recip))
    msgs.extend(_cell_report(real, reciprocal, v_cell))
    size = [lengths_m[i] * n[i] for i in range(3)]
    return crystal, dict(xtal_size_m=size, n_cells_product=n[0] * n[1] * n[2])


def _cell_report(real: torch.Tensor, recip: torch.Tensor, v_cell: float) -> list[str]:
    """The C program's unit-cell printout (lengths Å, angles degrees, vectors as columns).

    ``v_cell`` is the volume the C program carries (from the cell constants when given), not
    the determinant of ``real``; it prints that one.
    """
    lines = ["Unit Cell: " + " ".join(_g(x) for x in cell_constants(real, recip, v_cell)),
             "Recp Cell: " + " ".join(_g(x) for x in cell_constants(recip, real, 1 / v_cell)),
             f"volume = {_g(v_cell)} A^3"]
    real, recip = real.numpy(), recip.numpy()
    for title, names, m in (("real-space cell vectors (Angstrom):", ("a", "b", "c"), real),
                            ("reciprocal-space cell vectors (Angstrom^-1):",
                             ("a_star", "b_star", "c_star"), recip)):
        lines.append(title)
        lines.append("     " + "  ".join(f"{n:<10s}" for n in names))
        for axis, row in zip("XYZ", m.T, strict=True):
            lines.append(f"{axis}: " + " ".join(f"{x:11.8f}" for x in row))
    return lines


def c_int(value: float) -> int:
    """C's conversion of a double to int on x86-64: truncation, INT_MIN when out of range."""
    if not math.isfinite(value) or not -2.0**31 <= value < 2.0**31:
        return -(2**31)
    return int(value)


def _oversample(st: CState, info: dict, frame: dict, msgs: list[str],
                warns: list[str]) -> int:
    size = info["xtal_size_m"]
    msgs.append("crystal is " + " x ".join(_g(s * 1e6) for s in size) + " microns")
    biggest = max(size)
    recip_px = st.lambda0 * frame["distance"] / st.pixel_size
    ratio = 3.0 * biggest / recip_px if recip_px > 0 else math.inf
    wanted = math.ceil(ratio) if math.isfinite(ratio) else math.inf
    recommended = max(c_int(float(wanted)), 1)
    if st.oversample <= 0 and recommended == 1 and wanted > 1:
        warns.append(f"the recommended oversampling ({_g(float(wanted))}) overflows nanoBragg's "
                     "integer, which then uses 1, and so does this run; set -oversample")
    oversample = st.oversample
    if oversample <= 0:
        oversample = recommended
        msgs.append(f"auto-selected {oversample}-fold oversampling")
    if oversample < recommended:
        msgs.append(f"WARNING: maximum dimension of sample is {_g(biggest * 1e10)} A")
        msgs.append(f"         but reciprocal pixel size is {_g(recip_px * 1e10)} A")
        msgs.append("         intensity may vary significantly across a pixel!")
        msgs.append(f"         recommend -oversample {recommended} to work around this")
    volume = size[0] * size[1] * size[2]
    msgs.append(f"approximate MW = {_g(volume * 1.2e6 * AVOGADRO / info['n_cells_product'])}")
    return oversample


def _structure_factors(st: CState, interpolate: bool, msgs: list[str],
                       info: dict) -> StructureFactorConfig:
    """Structure factors from -hkl, the dump file, a table given from Python, or none.

    With none, every reflection has default_F; ``st.dump_path`` None: no dump file is read or
    written.
    """
    table = st.hkl_table
    for given, name in ((st.hkl_column, "--hkl-column"), (st.model_dmin, "--model-dmin")):
        if given is not None and st.hkl_path is None:
            raise SetupError(f"{name} applies to an -hkl file, and none is given")
    if table is None and st.hkl_path is None:
        if st.dump_path is not None and os.path.exists(st.dump_path):
            msgs.append(f"reading Fs from {st.dump_path}")
            table = hkl_io.read_fdump(st.dump_path)
        elif st.default_F == 0.0:
            raise SetupError("no -hkl file and no dump file to read, and -default_F is 0")
    elif table is None:
        table = _read_hkl(st, msgs, info)
        info["reader_warnings"] = list(table.warnings) + info.pop("reader_warnings_extra", [])
    info["n_hkl_read"] = 0 if table is None else table.n_entries
    if table is None or table.n_entries == 0:
        return StructureFactorConfig(grid=None, default_F=st.default_F, interpolate=False)
    return StructureFactorConfig(grid=table.F, hkl_min=(table.h_min, table.k_min, table.l_min),
                                 default_F=st.default_F, interpolate=interpolate)


def _model_resolution_A(st: CState, frame: dict, beam: np.ndarray, dispersion: float,
                        divergence_rad: tuple[float, float], crystal) -> float:
    """The resolution (Å) to compute a model's F to, for every step to find its reflection.

    The largest scattering angle the detector's corners reach (on the arc for a curved
    detector), widened by half the divergence, at the shortest wavelength; then three
    reciprocal-cell lengths more, for the nearest-hkl rounding and the neighbours tricubic
    interpolation reads.
    """
    px = st.pixel_size
    corners = np.array([frame["pix0"] + frame["fdet"] * f * px + frame["sdet"] * s * px
                        for f in (0, st.fpixels) for s in (0, st.spixels)])
    norms = np.linalg.norm(corners, axis=1)
    two_theta = np.arccos(np.clip(corners @ beam / norms, -1.0, 1.0))
    if st.curved_detector:  # pixels lie on a sphere: the flat offset is the arc length
        offsets = np.linalg.norm(corners - (corners @ frame["odet"])[:, None] * frame["odet"],
                                 axis=1)
        two_theta = np.maximum(two_theta, offsets / frame["distance"])
    two_theta = min(float(two_theta.max()) + max(divergence_rad) / 2.0, math.pi)
    shortest = st.lambda0 * (1.0 - dispersion / 2.0) * 1e10
    reach = 2.0 * math.sin(two_theta / 2.0) / shortest + 3.0 * longest_reciprocal_invA(crystal)
    return 1.0 / reach if reach > 0 else math.inf


def _cell_A_deg(crystal) -> tuple[float, ...] | None:
    """The crystal's cell: a, b, c (Å), alpha, beta, gamma (degrees), from -cell or -mat."""
    if crystal.cell is not None:
        a, b, c, al, be, ga = crystal.cell
        return (a, b, c, al * RTD, be * RTD, ga * RTD)
    recip = np.asarray(crystal.mosflm_reciprocal_invA, dtype=np.float64)  # rows a*, b*, c*
    if abs(np.linalg.det(recip)) == 0.0:
        return None
    real = np.linalg.inv(recip).T  # rows a, b, c
    lengths = np.linalg.norm(real, axis=1)
    angle = lambda i, j: math.degrees(math.acos(real[i] @ real[j] / lengths[i] / lengths[j]))  # noqa: E731
    return (*lengths.tolist(), angle(1, 2), angle(2, 0), angle(0, 1))


def longest_reciprocal_invA(crystal) -> float:
    """The longest of |a*|, |b*|, |c*| (1/Å) of the crystal's cell or matrix."""
    if crystal.mosflm_reciprocal_invA is not None:
        return float(np.linalg.norm(crystal.mosflm_reciprocal_invA, axis=1).max())
    a, b, c, al, be, ga = crystal.cell
    cosines = np.cos([al, be, ga])
    volume = a * b * c * math.sqrt(max(1.0 - (cosines ** 2).sum()
                                       + 2.0 * cosines.prod(), 0.0))
    if volume == 0.0:
        return 0.0
    sines = np.sin([al, be, ga])
    return float(max(b * c * sines[0], c * a * sines[1], a * b * sines[2]) / volume)


def _model_dmin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise SetupError(f"--model-dmin must be a positive resolution in Å, got '{text}'")
    return value


def _warn_other_cell(st: CState, file_cell: tuple | None, info: dict) -> None:
    """A reflection or model file whose cell differs from the crystal's by more than 1 %."""
    ours = info.get("cell_A_deg")
    if file_cell is None or ours is None:
        return
    if any(abs(x - y) > 0.01 * abs(y) for x, y in zip(file_cell, ours, strict=True)):
        shown = lambda cell: " ".join(_g(round(x, 3)) for x in cell)  # noqa: E731
        info.setdefault("reader_warnings_extra", []).append(
            f"{st.hkl_path} has the cell {shown(file_cell)} but the crystal's is "
            f"{shown(ours)}: its F are used on the crystal's lattice as they are")


def _read_hkl(st: CState, msgs: list[str], info: dict) -> hkl_io.HKLTable:
    """The -hkl file: nanoBragg's text format, an MTZ, an mmCIF reflection file or a model.

    A model's structure factors are computed to ``--model-dmin`` Å, else to the d-spacing
    the detector's corners reach.
    """
    from torchbragg.io import reflections

    msgs.append(f"counting entries in {st.hkl_path}")
    dmin = info["detector_dmin_A"] if st.model_dmin is None else _model_dmin(st.model_dmin)
    if reflections.file_kind(st.hkl_path) == "model":
        msgs.append(f"computing structure factors of the model to {_g(dmin)} A")
    kind = reflections.file_kind(st.hkl_path)
    if st.model_dmin is not None and kind != "model":
        raise SetupError(f"--model-dmin applies to a model, but {st.hkl_path} holds "
                         "reflections")
    table = reflections.read_structure_factors(st.hkl_path, st.default_F,
                                               column=st.hkl_column, dmin_A=dmin)
    if kind != "text":  # nanoBragg reads only text: its stdout stays as it is
        msgs.append(f"structure factors: {table.source}")
    _warn_other_cell(st, getattr(table, "cell", None), info)
    if st.default_F != 0.0:
        msgs.append(f"initializing to default_F = {_g(st.default_F)}:")
        msgs.append("done initializing:")
    msgs.append(f"re-reading {st.hkl_path}")
    if st.dump_path is None:
        return table
    try:
        hkl_io.write_fdump(st.dump_path, table)
        msgs.append(f"writing dump file for next time: {st.dump_path}")
    except OSError:
        msgs.append(f"WARNING: unable to open dump file: {st.dump_path}")
    return table


def _beam(st: CState, axes: dict, hdiv, vdiv, disp, msgs: list[str],
          warns: list[str]) -> BeamConfig:
    grid = {}
    if st.source_path is not None:
        table = sources_io.apply_source_defaults(sources_io.read_sources(st.source_path),
                                                 axes["beam"], st.lambda0, SOURCE_DISTANCE_M)
        pos, weights, lambdas = table.position_m, table.weight, table.wavelength_m
        warns.extend(table.warnings)
    else:
        offsets = divergence_offsets(hdiv, vdiv, st.round_div)
        msgs.append(NumberedLines(len(offsets), lambda i: "divergence deviation: "
                                  f"{_g(offsets[i, 0])} {_g(offsets[i, 1])}"))
        if len(offsets) * disp.steps > LAZY_SOURCES:
            return _grid_beam(st, axes, offsets, disp, (hdiv.range, vdiv.range), msgs)
        waves = dispersion_wavelengths(st.lambda0, disp)
        msgs.extend(f"lambda{i} = {w:.15g}" for i, w in enumerate(waves))
        pos, weights, lambdas = grid_sources(axes["beam"], axes["polar"], offsets, waves)
        grid = dict(divergence_offsets_rad=np.repeat(offsets, len(waves), axis=0),
                    divergence_rad=(hdiv.range, vdiv.range), dispersion=disp.range)
    msgs.append(f"  created a total of {len(lambdas)} sources:")
    for p, w, lam in zip(pos, weights, lambdas, strict=True):
        msgs.append(f"{_g(p[0])} {_g(p[1])} {_g(p[2])}   {_g(w)} {_g(lam)}")
    if len(lambdas) == 0:
        raise SetupError("no x-ray sources: the divergence grid or source file is empty")
    if np.any(np.asarray(lambdas) <= 0):
        raise SetupError("source wavelengths must be positive")
    dirs = np.array([_unit(p)[0] for p in pos]).reshape(-1, 3)
    return BeamConfig(wavelength_m=st.lambda0, beam=tuple(axes["beam"]),
                      polar_vector=tuple(axes["polar"]), source_directions=dirs,
                      source_wavelengths_m=np.asarray(lambdas, dtype=np.float64),
                      source_weights=np.asarray(weights, dtype=np.float64),
                      polarization=st.polarization, nopolar=st.nopolar,
                      fluence_per_m2=st.fluence, flux_per_s=st.flux, exposure_s=st.exposure,
                      beamsize_m=st.beamsize, **grid)


def _grid_beam(st: CState, axes: dict, offsets: np.ndarray, disp, ranges: tuple,
               msgs: list) -> BeamConfig:
    """A beam whose sources (too many to list) come from a SourceGrid when needed."""
    positions = grid_positions(axes["beam"], axes["polar"], offsets)
    grid = SourceGrid(positions, offsets, st.lambda0, disp)
    lambda0 = st.lambda0
    msgs.append(NumberedLines(disp.steps, lambda i: f"lambda{i} = "
                              f"{lambda0 * (1.0 + disp.step * i - disp.range / 2.0):.15g}"))
    msgs.append(f"  created a total of {grid.count} sources:")
    msgs.append(NumberedLines(grid.count, grid.line))
    ends = grid.wavelengths(np.array([0, grid.count - 1]))
    if not (ends > 0).all():
        raise SetupError("source wavelengths must be positive")
    empty = np.zeros((0, 3))
    return BeamConfig(wavelength_m=st.lambda0, beam=tuple(axes["beam"]),
                      polar_vector=tuple(axes["polar"]), source_directions=empty,
                      source_wavelengths_m=np.zeros(0), source_weights=np.zeros(0),
                      polarization=st.polarization, nopolar=st.nopolar,
                      fluence_per_m2=st.fluence, flux_per_s=st.flux, exposure_s=st.exposure,
                      beamsize_m=st.beamsize, divergence_offsets_rad=grid.offsets_rad,
                      divergence_rad=ranges, dispersion=disp.range, source_grid=grid)


def _mask(st: CState) -> np.ndarray | None:
    if st.mask_path is None:
        return None
    pixels = smv.read_smv(st.mask_path).pixels
    if pixels.shape != (st.spixels, st.fpixels):
        raise SetupError(f"{st.mask_path}: mask is {pixels.shape[1]} x {pixels.shape[0]} "
                         f"pixels but the detector is {st.fpixels} x {st.spixels}")
    return pixels != 0
