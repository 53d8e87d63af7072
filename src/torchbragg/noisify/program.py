"""The ``noisify`` run itself: read, print, compute and write in the C program's order.

:func:`noisify` takes the scanned options (:class:`~torchbragg.noisify.options.NoisifyOptions`)
and prints, line for line, what the C program prints while it works.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from torchbragg.io.errors import InputFileError, read_input_bytes
from torchbragg.io.images import format_c_g as g
from torchbragg.noisify import exact
from torchbragg.noisify.files import (
    HeaderFile,
    ImageSize,
    read_header_file,
    resolve_image_size,
    smv_header,
    write_int_smv,
    write_noisify_pgm,
)
from torchbragg.noisify.options import NoisifyOptions

__all__ = ["noisify", "read_float_image"]

Say = Callable[[str], None]


def read_float_image(path: str | os.PathLike, st: NoisifyOptions,
                     say: Say) -> tuple[np.ndarray, ImageSize, bytes | None]:
    """Read the input float image and settle the geometry, printing as the C program does.

    ``-header`` (read here) sets the size, pixel size, distance, wavelength and beam centre,
    overriding the command line. The file must hold exactly ``xpixels * ypixels`` float32
    values (the C program reads a short file partly and leaves the rest 0).

    Parameters
    ----------
    path : str or os.PathLike
        The float image.
    st : NoisifyOptions
        Settings; updated in place from the header.
    say : callable
        Prints one stdout line.

    Returns
    -------
    image : numpy.ndarray, float32, shape (ypixels, xpixels)
        The pixels.
    size : ImageSize
        Counts and detector size.
    header : bytes or None
        The ``-header`` file's header bytes, to copy to the outputs.

    Raises
    ------
    InputFileError
        When a file cannot be read or has the wrong size.
    """
    data = read_input_bytes(path)
    xpixels, ypixels = st.xpixels, st.ypixels
    header = None
    if st.header_path is not None:
        say(f"taking header from {st.header_path}")
        frame = read_header_file(st.header_path)
        say(f"reading {st.header_path}")
        xpixels, ypixels = frame.width, frame.height
        _apply_header(st, frame)
        header = frame.raw
    if not data:
        raise InputFileError(path, "empty float image")
    size = resolve_image_size(len(data) // 4, xpixels, ypixels, st.pixel_m, st.detsize_x_m,
                              st.detsize_y_m)
    if size.guessed:
        say("WARNING: guessing xy pixel dimensions.")
    needed = 4 * size.xpixels * size.ypixels
    if len(data) != needed:
        raise InputFileError(path, f"{len(data)} bytes, but {size.xpixels}x{size.ypixels} "
                                   f"float32 pixels need {needed}")
    image = np.frombuffer(data, dtype="<f4").reshape(size.ypixels, size.xpixels)
    return image.astype(np.float32), size, header


def _apply_header(st: NoisifyOptions, header: HeaderFile) -> None:
    """Take pixel size, distance, wavelength and beam centre from a ``-header`` file."""
    pixel = header.value("PIXEL_SIZE")
    if pixel == pixel:  # not NaN: present
        if not pixel > 0:
            raise InputFileError(st.header_path, f"PIXEL_SIZE={g(pixel)} is not positive")
        st.pixel_m = pixel / 1000.0
    detsize_y = st.pixel_m * header.height
    for key, name, divisor in (("DISTANCE", "distance_m", 1000.0),
                               ("WAVELENGTH", "wavelength_A", 1e10),
                               ("BEAM_CENTER_X", "xbeam_m", 1000.0)):
        value = header.value(key)
        if value == value:
            setattr(st, name, value / divisor)
    value = header.value("BEAM_CENTER_Y")
    if value == value:
        st.ybeam_m = detsize_y - value / 1000.0


def _settings_lines(st: NoisifyOptions, size: ImageSize, xbeam: float, ybeam: float) -> list[str]:
    """The block of settings the C program prints before working."""
    lines = [
        f"  distance={g(st.distance_m)} detsize={g(size.detsize_x_m)}x{g(size.detsize_y_m)}  "
        f"pixel={g(st.pixel_m)} meters ({size.xpixels}x{size.ypixels} pixels)",
        f"  Xbeam={g(xbeam)} Ybeam={g(ybeam)}",
    ]
    if st.psf is not None:
        name = "Gaussian" if st.psf == "gauss" else "fiber"
        text = f"  {name} PSF fwhm = {g(st.psf_fwhm_m * 1e6)} um "
        if st.psf_radius == 0:
            lines.append(text + "  with automatic rendering radius")
            text = ""
        lines.append(text + f"  with rendering radius: {st.psf_radius}")
    lines += [
        f"  seed: {st.seed}",
        f"  calibration noise seed: {st.calib_seed}",
        f"  calibration_noise = {g(st.calibration * 100)} %",
        f"  input file scale = {g(st.scale)}",
        f"  readout_noise = {g(st.readout)} ADU",
        f"  flicker_noise = {g(st.flicker * 100)} %",
        f"  quantum_gain = {g(st.gain)} ADU/photon",
        f"  adc_offset = {g(st.adc_offset)} ADU",
        "",
    ]
    return lines


def _photons(st: NoisifyOptions, image: np.ndarray, say: Say, warn: Say) -> np.ndarray:
    """Warn about negative pixels, print the maximum, return the photon image."""
    if (image < 0.0).any():
        for value in image[image < 0.0]:
            say(f"WARNING: negative intensity in {st.float_path}: {g(float(value))}")
    if not np.isfinite(image).all():
        bad = int(np.count_nonzero(~np.isfinite(image)))
        warn(f"{st.float_path}: {bad} pixels are NaN or inf; their integer pixels are "
             "meaningless (noisify reads them as they are)")
    # the largest value above 0; NaN never compares larger (fmax skips it)
    max_i = float(np.fmax.reduce(image, axis=None, initial=0.0))
    on_scale = max_i * st.scale * st.fluence * exact.R_E_SQR
    say(f"maximum value in input file: {g(max_i)} ( {g(on_scale)} on photon scale)")
    return exact.photon_image(image, st.scale, st.fluence)


def _psf(st: NoisifyOptions, photons: np.ndarray, say: Say) -> np.ndarray:
    """Apply the PSF and print the C program's lines."""
    result = exact.apply_psf(photons, st.psf, st.psf_fwhm_m / st.pixel_m, st.psf_radius)
    for line in result.lines:
        say(line)
    return result.image


def _write_int(st: NoisifyOptions, path: str, header: bytes, pixels: exact.ADUImage,
               say: Say, count: int | None) -> None:
    """Print the 'writing' line and write one SMV image."""
    nbytes = st.bits // 8
    if count is None:
        say(f"writing {path} as {nbytes}-byte integers")
    else:
        say(f"writing {path} as {count} {nbytes}-byte integers")
    write_int_smv(path, header, pixels.pixels(st.bits))


def noisify(st: NoisifyOptions, say: Say, warn: Say) -> int:
    """Run noisify with the scanned options; return the exit status (0).

    Parameters
    ----------
    st : NoisifyOptions
        Options from :func:`~torchbragg.noisify.options.parse_noisify_args` (``float_path``
        set).
    say : callable
        Prints one stdout line.
    warn : callable
        Prints one torchbragg warning on stderr.

    Returns
    -------
    int
        0.

    Raises
    ------
    InputFileError, OSError
        Unreadable or wrong-sized inputs; unwritable outputs.
    """
    image, size, header = read_float_image(st.float_path, st, say)
    pixels = size.xpixels * size.ypixels
    say(f"importing {pixels} pixel intensites: {st.float_path}")
    xbeam = size.detsize_x_m / 2.0 if st.xbeam_m is None else st.xbeam_m
    ybeam = size.detsize_y_m / 2.0 if st.ybeam_m is None else st.ybeam_m
    if not st.calculate_noise:
        st.calibration = st.readout = st.flicker = 0.0
    for line in _settings_lines(st, size, xbeam, ybeam):
        say(line)
    photons = _photons(st, image, say, warn)
    use_psf = st.psf is not None and st.psf_fwhm_m > 0.0
    if use_psf and not st.calculate_noise:
        say(f"  applying PSF to noiseless image width = {g(st.psf_fwhm_m / st.pixel_m)} pixels")
        photons = _psf(st, photons, say)

    if header is None:
        header = smv_header(st.bits, size.xpixels, size.ypixels, st.pixel_m, st.distance_m,
                            st.wavelength_A, xbeam, ybeam, size.detsize_y_m, st.phi_deg,
                            st.osc_deg)
    noiseless = _noiseless_adu(photons, st.gain, st.adc_offset, st.bits)
    _write_int(st, st.int_path, header, noiseless, say, pixels)
    if st.write_pgm:
        say(f"writing {st.pgm_path} as 1-byte integers")
        write_noisify_pgm(st.pgm_path, noiseless.pixels16)
    if not st.calculate_noise:
        return 0

    streams = exact.NoiseStreams(st.seed, st.calib_seed)
    counts, total = exact.shot_noise(photons, streams, st.flicker, st.calibration)
    if use_psf:
        say(f"{total:.0f} photons on noise image before PSF")
        say(f"  applying PSF width = {g(st.psf_fwhm_m * 1e6)} um")
        counts = _psf(st, counts, say)
    noisy = exact.adu_image(counts, st.gain, st.adc_offset, st.readout, st.bits, streams)
    say(f"{noisy.photons:.0f} photons on noise image ({noisy.overloads} overloads)")
    _write_int(st, st.noise_path, header, noisy, say, None)
    return 0


def _noiseless_adu(photons: np.ndarray, gain: float, adc_offset: float,
                   bits: int) -> exact.ADUImage:
    """The noiseless integers: ``photons * gain + adc``, clipped at 65535 for both widths.

    The 16-bit pixels are always made (the PGM uses them), the 32-bit ones for ``bits`` 32.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        adu = photons.astype(np.float64)
        adu *= gain
        adu += adc_offset
        np.minimum(adu, 65535.0, out=adu)  # NaN stays NaN (C's comparison is false)
    empty = np.zeros((0, 0), dtype=np.uint32)
    return exact.ADUImage(_cast(adu, 16), _cast(adu, 32) if bits == 32 else empty)


def _cast(adu: np.ndarray, bits: int) -> np.ndarray:
    """x86-64 C casts of doubles: 16 bits through a 32-bit int, 32 bits through a 64-bit int."""
    dtype = np.uint16 if bits == 16 else np.uint32
    if (adu >= 0.0).all():  # (no NaN either) plain truncation
        return adu.astype(dtype)
    # NaN and out-of-range values become INT_MIN / INT64_MIN, whose low bits are 0
    limit = 2.0**31 if bits == 16 else 2.0**63
    valid = (adu > -limit - 1.0) & (adu < limit)
    whole = np.trunc(np.where(valid, adu, 0.0)).astype(np.int64)
    return (whole & ((1 << bits) - 1)).astype(dtype)
