"""The summary nanoBragg prints before rendering, from a resolved plan."""

from __future__ import annotations

import math

import numpy as np

from torchbragg.cli.options import RTD
from torchbragg.precedence import Plan

SHAPE_WORDS = {"round": "ellipsoidal", "square": "parallelpiped", "gauss": "gaussian",
               "tophat": "tophat-spot"}


def _g(x: float) -> str:
    return f"{x:g}"


def _vec(v) -> str:
    return " ".join(_g(float(x)) for x in v)


def summary_lines(plan: Plan, n_hkl: int) -> list[str]:
    """The block of settings nanoBragg prints just before it renders."""
    cfg, st, info = plan.config, plan.state, plan.info
    det, beam, xtal, samp = cfg.detector, cfg.beam, cfg.crystal, cfg.sampling
    frame = info["frame"]
    na, nb, nc = xtal.n_cells
    lines = [f"  {n_hkl} initialized hkls (all others ={_g(cfg.structure_factors.default_F)})",
             f"  {SHAPE_WORDS[xtal.shape]} xtal: {na:.0f}x{nb:.0f}x{nc:.0f} cells",
             f"  wave={_g(beam.wavelength_m)} meters +/- {_g(info['disp'].range * 100)}% in "
             f"{info['disp'].steps} steps"]
    lines.append("  polarization effect disabled" if beam.nopolar
                 else f"  Kahn polarization factor: {beam.polarization:f}")
    if det.curved:
        lines.append("  curved detector: all pixels same distance from origin")
    if det.point_pixel:
        lines.append("  pixel obliquity effect disabled")
    lines += [f"  incident fluence: {_g(beam.fluence_per_m2)} photons/m^2",
              f"  distance={_g(frame['distance'])} detsize={_g(det.detsize_f_m)}x"
              f"{_g(det.detsize_s_m)}  pixel={_g(det.pixel_size_m)} meters ({det.fpixels}x"
              f"{det.spixels} pixels)",
              f"  sensor is {_g(det.thickness_m)} m thick in {det.thicksteps} layers with mu= "
              f"{_g(det.mu_per_m)}",
              f"  Xbeam={_g(det.xbeam_m)} Ybeam={_g(det.ybeam_m)}",
              f"  Fbeam={_g(frame['beam_f'])} Sbeam={_g(frame['beam_s'])}",
              f"  Xclose={_g(det.xclose_m)} Yclose={_g(det.yclose_m)}",
              f"  Fclose={_g(frame['close_f'])} Sclose={_g(frame['close_s'])}",
              f"  DIRECTION_OF_DETECTOR_X-AXIS= {_vec(frame['fdet'])}",
              f"  DIRECTION_OF_DETECTOR_Y-AXIS= {_vec(frame['sdet'])}",
              f"  DIRECTION_OF_DETECTOR_Z-AXIS= {_vec(frame['odet'])}",
              f"  INCIDENT_BEAM_DIRECTION= {_vec(beam.beam)}",
              f"  spindle ROTATION_AXIS= {_vec(xtal.spindle)}",
              f"  POLARIZATION_PLANE_NORMAL= {_vec(np.cross(beam.beam, beam.polar_vector))}",
              f"  dials origin= {_vec(dials_origin_mm(frame['pix0']))}",
              "  roi: {} < x < {} && {} < y < {}".format(*det.roi),
              f"  hdivrange={_g(info['hdiv'].range)} hdivstep={_g(info['hdiv'].step)}  radians",
              f"  vdivrange={_g(info['vdiv'].range)} vdivstep={_g(info['vdiv'].step)}  radians",
              f"  {info['n_div']} divergence steps",
              f"  {beam.sources} sources",
              f"  {xtal.domains} mosaic domains over mosaic spread of "
              f"{_g(xtal.mosaic_spread_rad * RTD)} degrees",
              f"  {xtal.phisteps} phi steps from {_g(xtal.phi0_rad * RTD)} to "
              f"{_g((xtal.phi0_rad + xtal.osc_rad) * RTD)} degrees"]
    over = f"  {samp.oversample}x{samp.oversample} pixel oversample steps"
    for flag, word in ((samp.oversample_thick, "thick"), (samp.oversample_polar, "polar"),
                       (samp.oversample_omega, "omega")):
        over += f" +{word}" if flag else ""
    lines.append(over)
    if st.mask_path is not None:
        lines.append(f"  skipping zero-flagged pixels in {st.mask_path}")
    return lines


def noise_lines(seed: int, water_size_m: float) -> list[str]:
    """The noise settings block (the C program prints its seed negated)."""
    return ["", "  noise image paramters:", f"  seed: {-seed}",
            f"  water droplet size: {_g(water_size_m)} m"]


def dials_origin_mm(pix0: np.ndarray) -> list[float]:
    """pix0 in DIALS's lab frame (mm): components along z, y and -x of the MOSFLM frame."""
    return [1000.0 * float(pix0[2]), 1000.0 * float(pix0[1]), -1000.0 * float(pix0[0])]


def solid_angle_line(omega_sum: float, steps: int) -> str:
    """nanoBragg's report of the detector's total solid angle."""
    sr = omega_sum / steps
    return (f"solid angle subtended by detector = {_g(sr)} steradian ( "
            f"{_g(100 * sr / 4 / math.pi)}% sphere)")
