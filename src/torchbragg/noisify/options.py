"""Scan a ``noisify`` command line exactly as the C program does, with clear errors.

The C program looks at every argument in turn. An argument containing ``floatimage.bin``
names the input. Any other argument starting with ``-`` is tested against every option
pattern, in the C program's order, by substring (``strstr``): ``-readout_noise`` matches
``-readout``, ``-psf_fwhm`` matches ``-psf_fw``; ``-detsize``, ``-detpixels`` and ``-psf``
must match whole. Every matching pattern applies, and a pattern that takes a value reads the
next argument (which is then scanned too, as in C). Differences from C, all for input the C
program misreads silently:

* a value that is not a number (C's ``atof`` reads 0) or not finite, an integer option
  given a fraction, a missing value, a negative ``-psf_fwhm`` or ``-psf_radius``, a
  non-positive ``-pixel``, negative ``-detpixels`` or ``-bits`` other than 16 or 32 is a
  :class:`~torchbragg.cli.parse.UsageError`;
* an argument that matches no option gives a warning (the C program ignores it).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from torchbragg.cli.parse import UsageError, c_atoi

__all__ = ["NoisifyOptions", "parse_noisify_args"]

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)\s*", re.ASCII)


@dataclass
class NoisifyOptions:
    """The C program's variables after its argument scan (SI units where C uses them).

    Attributes
    ----------
    float_path : str or None
        Input float image (``-floatfile``, ``-floatimage``, ``-bin`` or ``*floatimage.bin*``).
    header_path : str or None
        ``-header``: SMV file whose header is copied to the outputs.
    int_path, noise_path, pgm_path : str
        Output files (defaults ``intimage.img``, ``noiseimage.img``, ``image.pgm``).
    distance_m, pixel_m, detsize_x_m, detsize_y_m : float
        Geometry for the SMV header, metres.
    xbeam_m, ybeam_m : float or None
        Beam centre, metres (None: detector centre).
    xpixels, ypixels : int
        ``-detpixels``, ``-detpixels_x``, ``-detpixels_y`` (0: from the file size).
    wavelength_A, phi_deg, osc_deg : float
        Header values, written as given.
    psf : str or None
        ``"gauss"``, ``"fiber"`` or None (no PSF).
    psf_fwhm_m : float
        PSF full width at half maximum, metres, rounded to float32 as the C program stores it.
    psf_radius : int
        Rendering radius in pixels (0: automatic).
    fluence, scale, gain, adc_offset, readout, flicker, calibration : float
        Photon scale (photons/m**2 and dimensionless), ADU per photon, ADU offset, read-out
        rms (ADU), flicker and calibration rms (fractions).
    seed, calib_seed : int
        C ``idum`` values (the negative of what the command line gives).
    bits : int
        16 or 32.
    calculate_noise, write_pgm : bool
        False after ``-nonoise`` / ``-nopgm``.
    messages : list of str
        Lines the C program prints during the scan (stdout).
    warnings : list of str
        torchbragg's warnings about the command line (stderr).
    """

    float_path: str | None = None
    header_path: str | None = None
    int_path: str = "intimage.img"
    noise_path: str = "noiseimage.img"
    pgm_path: str = "image.pgm"
    distance_m: float = 100.0e-3
    pixel_m: float = 0.1e-3
    detsize_x_m: float = 102.4e-3
    detsize_y_m: float = 102.4e-3
    xbeam_m: float | None = None
    ybeam_m: float | None = None
    xpixels: int = 0
    ypixels: int = 0
    wavelength_A: float = 1.0
    phi_deg: float = 0.0
    osc_deg: float = 1.0
    psf: str | None = None
    psf_fwhm_m: float = 4.6e-05
    psf_radius: int = 0
    fluence: float = 125932015286227086360700780544.0
    scale: float = 1.0
    gain: float = 1.0
    adc_offset: float = 40.0
    readout: float = 0.0
    flicker: float = 0.0
    calibration: float = 0.03
    seed: int = 0
    calib_seed: int = 123456789
    badpix_seed: int = 1234
    hotpix_seed: int = 5678
    bits: int = 16
    calculate_noise: bool = True
    write_pgm: bool = True
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _f32(value: float) -> float:
    """Round to the nearest C float."""
    import struct

    return struct.unpack("f", struct.pack("f", value))[0] if math.isfinite(value) else value


def _number(option: str, text: str) -> float:
    """A finite decimal number, as the user meant it (C's atof would read junk as 0)."""
    if _NUMBER.fullmatch(text) is None:
        raise UsageError(f"option {option}: expected a number, got '{text}'")
    value = float(text)
    if not math.isfinite(value):
        raise UsageError(f"option {option}: expected a finite number, got '{text}'")
    return value


def _integer(option: str, text: str) -> int:
    """An integer as C's atoi reads it; text atoi would misread ('1e3', '2.5') is refused."""
    value = _number(option, text)
    if c_atoi(text) != value:
        raise UsageError(f"option {option}: expected an integer, got '{text}'")
    return c_atoi(text)


def _not_negative(option: str, value: float, what: str) -> float:
    if value < 0:
        raise UsageError(f"option {option}: {what} cannot be negative, got {value:g}")
    return value


def _psf_type(st: NoisifyOptions, option: str, text: str) -> None:
    # Substring tests in the C order: "fiber" wins when both appear.
    st.psf = None
    if "gauss" in text:
        st.psf = "gauss"
    if "fiber" in text:
        st.psf = "fiber"
    if st.psf is None:
        st.messages.append(f"WARNING: unknown psf type: {text}")


def _detsize(st: NoisifyOptions, option: str, text: str) -> None:
    st.detsize_x_m = st.detsize_y_m = _number(option, text) / 1000.0


def _detpixels(st: NoisifyOptions, option: str, text: str) -> None:
    st.xpixels = st.ypixels = int(_not_negative(option, _integer(option, text), "pixel count"))


def _pixel(st: NoisifyOptions, option: str, text: str) -> None:
    value = _number(option, text)
    if not value > 0:
        raise UsageError(f"option {option}: the pixel size must be positive, got {value:g}")
    st.pixel_m = value / 1000.0


def _psf_radius(st: NoisifyOptions, option: str, text: str) -> None:
    value = _not_negative(option, _number(option, text), "the PSF radius")
    if value >= 2**31:
        raise UsageError(f"option {option}: PSF radius too large, got {text}")
    st.psf_radius = int(value)  # C assigns atof() to an int: truncation


def _psf_fwhm(st: NoisifyOptions, option: str, text: str) -> None:
    value = _not_negative(option, _number(option, text), "the PSF width")
    st.psf_fwhm_m = _f32(value / 1e6)


def _bits(st: NoisifyOptions, option: str, text: str) -> None:
    value = _integer(option, text)
    if value not in (16, 32):
        raise UsageError(f"option {option}: expected 16 or 32, got '{text}'")
    st.bits = value


def _setter(name: str, kind: str, divisor: float = 1.0) -> Callable:
    """Return an action storing the value as attribute ``name``.

    ``kind``: float ("f", divided by ``divisor``), int ("i"), C idum ("seed": minus the atoi
    value) or text ("s").
    """

    def action(st: NoisifyOptions, option: str, text: str) -> None:
        if kind == "s":
            value: object = text
        elif kind == "i":
            value = _integer(option, text)
        elif kind == "seed":
            value = -_integer(option, text)
        else:
            value = _number(option, text) / divisor
        setattr(st, name, value)

    return action


def _flag(name: str) -> Callable:
    def action(st: NoisifyOptions, option: str, text: str | None) -> None:
        setattr(st, name, False)

    return action


@dataclass(frozen=True)
class _Rule:
    patterns: tuple[str, ...]
    action: Callable
    takes_value: bool = True
    whole: bool = False  # the argument must equal the pattern (C's strlen test)


# The C program's tests, in its order.
_RULES = (
    _Rule(("-lambda",), _setter("wavelength_A", "f")),
    _Rule(("-Xbeam",), _setter("xbeam_m", "f", 1000.0)),
    _Rule(("-Ybeam",), _setter("ybeam_m", "f", 1000.0)),
    _Rule(("-distance",), _setter("distance_m", "f", 1000.0)),
    _Rule(("-detsize",), _detsize, whole=True),
    _Rule(("-detsize_x",), _setter("detsize_x_m", "f", 1000.0)),
    _Rule(("-detsize_y",), _setter("detsize_y_m", "f", 1000.0)),
    _Rule(("-detpixels",), _detpixels, whole=True),
    _Rule(("-detpixels_x",), lambda st, o, t: setattr(
        st, "xpixels", int(_not_negative(o, _integer(o, t), "pixel count")))),
    _Rule(("-detpixels_y",), lambda st, o, t: setattr(
        st, "ypixels", int(_not_negative(o, _integer(o, t), "pixel count")))),
    _Rule(("-pixel",), _pixel),
    _Rule(("-psf",), _psf_type, whole=True),
    _Rule(("-psf_rad",), _psf_radius),
    _Rule(("-psf_si", "-psf_fw", "-psf_wi"), _psf_fwhm),
    _Rule(("-fluence",), _setter("fluence", "f")),
    _Rule(("-floatfile", "-floatimage", "-bin"), _setter("float_path", "s")),
    _Rule(("-header",), _setter("header_path", "s")),
    _Rule(("-pgmfile", "-pgmimage"), _setter("pgm_path", "s")),
    _Rule(("-intfile", "-intimage"), _setter("int_path", "s")),
    _Rule(("-bits",), _bits),
    _Rule(("-noisefile", "-noiseimage"), _setter("noise_path", "s")),
    _Rule(("-nonoise",), _flag("calculate_noise"), takes_value=False),
    _Rule(("-nopgm",), _flag("write_pgm"), takes_value=False),
    _Rule(("-readout", "-readnoi"), _setter("readout", "f")),
    _Rule(("-flicker",), _setter("flicker", "f")),
    _Rule(("-calibration",), _setter("calibration", "f")),
    _Rule(("-scale",), _setter("scale", "f")),
    _Rule(("-seed",), _setter("seed", "seed")),
    _Rule(("-calib_seed",), _setter("calib_seed", "seed")),
    _Rule(("-badpix_seed",), _setter("badpix_seed", "seed")),
    _Rule(("-hotpix_seed",), _setter("hotpix_seed", "seed")),
    _Rule(("-adc",), _setter("adc_offset", "f")),
    _Rule(("-gain",), _setter("gain", "f")),
    _Rule(("-phi",), _setter("phi_deg", "f")),
    _Rule(("-osc",), _setter("osc_deg", "f")),
)


def _matches(rule: _Rule, arg: str) -> bool:
    if rule.whole:
        return arg == rule.patterns[0]
    return any(pattern in arg for pattern in rule.patterns)


def parse_noisify_args(argv: list[str], clock: Callable[[], float] = time.time) -> NoisifyOptions:
    """Scan a noisify command line as the C program does.

    Parameters
    ----------
    argv : list of str
        Arguments after the program name.
    clock : callable
        Seconds since the epoch; without ``-seed`` the noise seed is ``-clock()``, as C's
        ``-time(NULL)``.

    Returns
    -------
    NoisifyOptions
        The settings, with the scan's stdout ``messages`` and stderr ``warnings``.

    Raises
    ------
    UsageError
        For a malformed or missing value (see the module notes).
    """
    st = NoisifyOptions(seed=-int(clock()))
    value_of_previous = False
    for i, arg in enumerate(argv):
        consumed, value_of_previous = value_of_previous, False
        if "floatimage.bin" in arg:
            st.float_path = arg
            continue
        if not arg.startswith("-"):
            continue
        matched = False
        for rule in _RULES:
            if not _matches(rule, arg):
                continue
            matched = True
            if not rule.takes_value:
                rule.action(st, arg, None)
                continue
            if i + 1 >= len(argv):
                raise UsageError(f"option {arg} needs a value")
            rule.action(st, arg, argv[i + 1])
            value_of_previous = True
        if not matched and not consumed and _NUMBER.fullmatch(arg) is None:
            st.warnings.append(f"ignoring unknown option {arg} (noisify ignores it too)")
    return st
