"""Write the images nanoBragg writes, and print what it prints about them."""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from torchbragg.cli.options import CState
from torchbragg.cli.parse import UsageError
from torchbragg.cli.report import dials_origin_mm
from torchbragg.config import SimulationConfig
from torchbragg.io import images, pgm, smv
from torchbragg.io.image_geometry import ImageGeometry
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

    Then torchbragg's own ``--cbf``, ``--nexus`` and ``--png`` images, when asked for (see
    :func:`write_format_outputs`); without them stdout is the C program's.

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
    write_format_outputs(floats, ints.pixels, config, st, frame, say)


# torchbragg's own image formats (--cbf, --nexus, --png): checked before rendering by
# check_format_outputs, written after nanoBragg's outputs by write_format_outputs.

FORMATS_HINT = 'pip install "torchbragg[formats]"'


def format_output_paths(st: CState) -> list[str]:
    """The files ``--cbf``, ``--nexus`` and ``--png`` name, for the writability check."""
    return [path for path in (st.cbf_path, st.nexus_path, st.png_path) if path is not None]


def ring_spacings_A(text: str) -> list[float]:
    """Parse ``--png-rings``: d-spacings in Å separated by commas (``3.5,2.5,2``).

    Raises
    ------
    UsageError
        Unless every item is a positive finite number.
    """
    spacings = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--png-rings: expected d-spacings in Å separated by commas, e.g. "
                             f"3.5,2.5,2.0; got '{text}'")
        spacings.append(value)
    return spacings


def check_format_outputs(st: CState) -> None:
    """Fail before rendering on a bad ``--png-rings``/``--nexus-compression`` or a missing package.

    The CBF writer needs nothing beyond numpy; the NeXus writer needs h5py (and hdf5plugin
    for ``--nexus-compression bslz4``); the PNG needs matplotlib.

    Raises
    ------
    UsageError
        One line naming the option and, for a missing package, what to install.
    """
    if st.png_rings is not None:
        if st.png_path is None:
            raise UsageError("--png-rings draws on the PNG preview: give --png FILE too")
        ring_spacings_A(st.png_rings)
    if st.nexus_compression != "auto" and st.nexus_path is None:
        raise UsageError("--nexus-compression applies to the NeXus file: give --nexus FILE too")
    if st.nexus_path is not None:
        _nexus_compression(st)
    if st.png_path is not None:
        from torchbragg.plot import _matplotlib

        try:
            _matplotlib()
        except ImportError:
            raise UsageError(f"--png needs matplotlib: {FORMATS_HINT} (or "
                             "'torchbragg[plot]')") from None


def _nexus_compression(st: CState) -> str:
    """The settled NeXus compression, checking h5py and hdf5plugin are there."""
    from torchbragg.io import nexus

    try:
        import h5py  # noqa: F401 - only checking that it is installed
    except ImportError:
        raise UsageError(f"--nexus needs h5py: {FORMATS_HINT}") from None
    try:
        return nexus.choose_compression(st.nexus_compression)
    except ValueError:
        raise UsageError(f"--nexus-compression must be one of "
                         f"{', '.join(nexus.COMPRESSIONS)}, got '{st.nexus_compression}'") \
            from None
    except ImportError:
        raise UsageError(f"--nexus-compression bslz4 needs hdf5plugin: {FORMATS_HINT} (or "
                         "use gzip)") from None


def write_format_outputs(floats: np.ndarray, ints: np.ndarray, config: SimulationConfig,
                         st: CState, frame: dict, say) -> None:
    """Write ``--cbf``, ``--nexus`` and ``--png``, each announced by one ``writing`` line.

    ``floats`` (slow, fast) float32 photons, shown by the PNG; ``ints`` (slow, fast) the
    ``-intfile`` pixels, stored by the CBF and NeXus files (so all integer images agree).
    """
    if st.cbf_path is None and st.nexus_path is None and st.png_path is None:
        return
    geometry = ImageGeometry.from_config(config, frame)
    if st.cbf_path is not None:
        from torchbragg.io import cbf

        say(f"writing {st.cbf_path} as 4-byte integers (miniCBF, byte-offset compressed)")
        cbf.write_cbf(st.cbf_path, ints, geometry)
        problem = cbf.geometry_problem(geometry)
        if problem is not None:
            warn([f"{st.cbf_path}: the miniCBF header cannot describe this detector: "
                  f"{problem}; its pixels are right, but use --nexus for the geometry"])
    if st.nexus_path is not None:
        from torchbragg.io import nexus

        compression = _nexus_compression(st)
        say(f"writing {st.nexus_path} as 4-byte integers (NeXus/NXmx HDF5, "
            f"{'no' if compression == 'none' else compression} compression)")
        nexus.write_nexus(st.nexus_path, ints, geometry, compression)
    if st.png_path is not None:
        from torchbragg.io import png

        rings = ring_spacings_A(st.png_rings) if st.png_rings is not None else None
        say(f"writing {st.png_path} as a PNG preview (log scale)")
        png.write_png(st.png_path, floats, geometry, rings,
                      title=os.path.basename(st.png_path))
