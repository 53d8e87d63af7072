"""Write the images nanoBragg writes, and print what it prints about them."""

from __future__ import annotations

import numpy as np

from torchbragg.cli.options import CState
from torchbragg.cli.report import dials_origin_mm
from torchbragg.config import SimulationConfig
from torchbragg.io import images, pgm, smv
from torchbragg.rng import SharedState, default_noise_seed
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


def write_outputs(image: np.ndarray, config: SimulationConfig, st: CState, frame: dict,
                  shared: SharedState, say) -> None:
    """Write float, int, PGM and noise images as nanoBragg does; ``say`` prints a line.

    ``image`` (slow, fast) float64 photons; it is stored as float32, as the C program does.
    """
    det = config.detector
    floats = image.astype(np.float32)
    stats = images.image_statistics(floats, det.roi, config.mask)
    say(f"writing {st.float_path} as {floats.size} 4-byte floats")
    images.write_float_image(st.float_path, floats)
    fx, fy = max_position_m(stats.max_pixel, config)
    say(f"max_I = {_g(stats.max_I)}  at {_g(fx)} {_g(fy)}")
    say(f"mean= {_g(stats.mean)} rms= {_g(stats.rms)} rmsd= {_g(stats.rmsd)}")
    ints = images.int_image(floats, st.intfile_scale, st.adc_offset, det.roi, stats.max_I)
    say(f"intfile_scale = {_g(ints.scale)}")
    header = header_text(config, frame)
    say(f"writing {st.int_path} as 2-byte integers")
    smv.write_smv(st.int_path, ints.pixels, header)
    if st.write_pgm:
        grey = images.pgm_image(floats, st.pgm_scale, stats.rmsd, ints.scale, det.roi)
        say(f"pgm_scale = {_g(grey.scale)}")
        say(f"writing {st.pgm_path} as 1-byte integers")
        pgm.write_pgm(st.pgm_path, grey.pixels, grey.scale)
    if st.calculate_noise:
        seed = st.seed if st.seed is not None else default_noise_seed()
        noisy = poisson_noise_image(floats, seed, st.adc_offset, det.roi, shared)
        say(f"{noisy.photons:.0f} photons on noise image ({noisy.overloads} overloads)")
        say(f"writing {st.noise_path} as 2-byte integers")
        smv.write_smv(st.noise_path, noisy.image, header_text(config, frame, noise_file=True))
