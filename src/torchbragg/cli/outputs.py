"""Write the images nanoBragg writes, and print what it prints about them."""

from __future__ import annotations

import sys

import numpy as np

from torchbragg.cli.options import CState
from torchbragg.cli.report import dials_origin_mm
from torchbragg.config import SimulationConfig
from torchbragg.io import images, pgm, smv
from torchbragg.rng import NoiseImage, SharedState, default_noise_seed
from torchbragg.rng import noise_image as poisson_noise_image


def _g(x: float) -> str:
    return images.format_c_g(x)


def max_position_m(pixel: tuple[int, int] | None, config: SimulationConfig) -> tuple:
    """Where nanoBragg reports the maximum: the last sub-pixel centre of that pixel (m)."""
    if pixel is None:
        return 0.0, 0.0
    o = config.sampling.oversample
    sub = config.detector.pixel_size_m / o
    slow, fast = pixel
    return sub * (fast * o + o - 1) + sub / 2.0, sub * (slow * o + o - 1) + sub / 2.0


def header_text(config: SimulationConfig, frame: dict, noise_file: bool = False) -> str:
    """SMV header for this run's geometry (the noise image's differs in a signed zero)."""
    det, xtal = config.detector, config.crystal
    return smv.smv_header_text(
        size_fast=det.fpixels, size_slow=det.spixels, pixel_size_m=det.pixel_size_m,
        distance_m=frame["distance"], wavelength_m=config.beam.wavelength_m,
        xbeam_m=det.xbeam_m, ybeam_m=det.ybeam_m, fbeam_m=frame["beam_f"],
        sbeam_m=frame["beam_s"], detsize_s_m=det.detsize_s_m,
        dials_origin_mm=dials_origin_mm(frame["pix0"]),
        orgx_px=frame["close_f"] / det.pixel_size_m + 0.5,
        orgy_px=frame["close_s"] / det.pixel_size_m + 0.5,
        close_distance_m=frame["close_distance"], phi0_rad=xtal.phi0_rad,
        osc_rad=xtal.osc_rad, twotheta_rad=det.twotheta_rad, noise_file=noise_file)


def warn(lines: list[str]) -> None:
    """Print each line on stderr as ``torchbragg: warning: <line>``."""
    for line in lines:
        print(f"torchbragg: warning: {line}", file=sys.stderr)


def noise_warnings(path: str, floats: np.ndarray, noisy: NoiseImage, adc_offset: float,
                   roi: tuple[int, int, int, int] | None) -> list[str]:
    """Say which noise-image pixels nanoBragg's conversion to 16 bits misrepresents.

    Overloads (above 65535) are clipped. Inf and NaN photon counts give 65535 or 0. With a
    negative ``-adc``, a pixel with fewer photons than ``-adc`` goes below 0 and C's cast wraps
    it to near 65535; such a pixel is told by a value of at least ``65536 + adc`` where the
    expected count is under half that (a genuine count there would be tens of sigmas off).
    Returns the warning lines, each starting with ``path``.
    """
    inside = images.roi_mask(floats.shape, roi)
    lines = []
    if noisy.overloads:
        lines.append(f"{path}: {noisy.overloads} pixels exceed 65535 after adding noise and "
                     "are clipped, as nanoBragg does (-scale does not apply to noise)")
    bad = int(np.count_nonzero(~np.isfinite(floats) & inside))
    if bad:
        lines.append(f"{path}: {bad} pixels are inf or NaN in the float image and get no noise "
                     "value (written as 65535 or 0, as nanoBragg does)")
    if adc_offset < 0.0:
        floor = 65536.0 + adc_offset
        with np.errstate(invalid="ignore"):
            wrapped = (noisy.image >= floor) & (floats < floor / 2.0) & inside
        if wrapped.any():
            lines.append(f"{path}: {int(np.count_nonzero(wrapped))} pixels fall below 0 with "
                         "the negative -adc and wrap around to near 65535, as nanoBragg does")
    return lines


def write_outputs(image: np.ndarray, config: SimulationConfig, st: CState, frame: dict,
                  shared: SharedState, say) -> None:
    """Write float, int, PGM and noise images as nanoBragg does; ``say`` prints a line.

    ``image`` (slow, fast) float64 photons; it is stored as float32, as the C program does
    (values beyond its range become inf). Pixels an output cannot represent (inf, NaN,
    clipped, wrapped) are reported on stderr as ``torchbragg: warning: <file>: ...``.
    """
    det = config.detector
    with np.errstate(over="ignore", invalid="ignore"):
        floats = image.astype(np.float32)
    stats = images.image_statistics(floats, det.roi, config.mask)
    say(f"writing {st.float_path} as {floats.size} 4-byte floats")
    # simulate.check_finite already warns when pixels overflow float32 (see write_float_image)
    images.write_float_image(st.float_path, floats)
    fx, fy = max_position_m(stats.max_pixel, config)
    say(f"max_I = {_g(stats.max_I)}  at {_g(fx)} {_g(fy)}")
    say(f"mean= {_g(stats.mean)} rms= {_g(stats.rms)} rmsd= {_g(stats.rmsd)}")
    ints = images.int_image(floats, st.intfile_scale, st.adc_offset, det.roi, stats.max_I)
    say(f"intfile_scale = {_g(ints.scale)}")
    header = header_text(config, frame)
    say(f"writing {st.int_path} as 2-byte integers")
    smv.write_smv(st.int_path, ints.pixels, header)
    warn(ints.warnings(st.int_path))
    if st.write_pgm:
        grey = images.pgm_image(floats, st.pgm_scale, stats.rmsd, ints.scale, det.roi)
        say(f"pgm_scale = {_g(grey.scale)}")
        say(f"writing {st.pgm_path} as 1-byte integers")
        pgm.write_pgm(st.pgm_path, grey.pixels, grey.scale)
        warn(grey.warnings(st.pgm_path))
    if st.calculate_noise:
        seed = st.seed if st.seed is not None else default_noise_seed()
        noisy = poisson_noise_image(floats, seed, st.adc_offset, det.roi, shared)
        say(f"{noisy.photons:.0f} photons on noise image ({noisy.overloads} overloads)")
        say(f"writing {st.noise_path} as 2-byte integers")
        smv.write_smv(st.noise_path, noisy.image, header_text(config, frame, noise_file=True))
        warn(noise_warnings(st.noise_path, floats, noisy, st.adc_offset, det.roi))
