"""``torchbragg-noisify``: a drop-in for nanoBragg's companion program ``noisify``.

Reads a raw float32 image (``-floatfile``), puts it on a photons-per-pixel scale, and writes

* ``-intfile`` (SMV): the noiseless photons times ``-gain`` plus ``-adc``;
* ``-pgmfile`` (PGM, unless ``-nopgm``): those pixels clipped at 255;
* ``-noisefile`` (SMV, unless ``-nonoise``): with beam flicker, per-pixel calibration error,
  photon shot noise, a point spread function (``-psf gauss|fiber``) and read-out noise.

Same options, same random numbers, same pixels and same stdout as the C program (see
:mod:`torchbragg.noisify.exact` and :mod:`torchbragg.noisify.options`). Exit status: 0 on
success; 2 for bad input or an output that cannot be written (one line on stderr, nothing
half-written); 9 without an input file (usage, as the C program); 130 when interrupted;
143 on SIGTERM while writing; 70 for an internal error.
"""

from __future__ import annotations

import sys

from torchbragg.cli.entry import interrupts_end_the_process
from torchbragg.cli.guard import guarded_main
from torchbragg.errors import one_line

PROG = "torchbragg-noisify"
BANNER = "noisify - add noise to pixels - James Holton 3-19-16"

USAGE = f"""usage: {PROG} -floatfile FILE [options]   (nanoBragg's noisify command line)
  -floatfile FILE     raw float32 image in photons/pixel (also -floatimage, -bin, or any
                      argument containing floatimage.bin)
  -scale S            multiply the input by S first (-fluence F scales by F r_e^2 too)
  -gain G             ADU per photon (default 1)
  -adc A              offset added to every pixel, ADU (default 40)
  -readout_noise R    rms Gaussian read-out noise, ADU (default 0)
  -flicker F          fractional rms source flicker, per pixel (default 0)
  -calibration C      fractional rms static gain error per pixel (default 0.03)
  -seed N             seed of the shot, flicker and read-out noise (default: the clock)
  -calib_seed N       seed of the calibration error (default 123456789)
  -psf gauss|fiber    point spread function shape (default none)
  -psf_fwhm W         its full width at half maximum, um (default 46)
  -psf_radius R       radius to render it, pixels (default 0: automatic)
  -detpixels N        image size, pixels (also -detpixels_x, -detpixels_y; default: from
                      the file size)
  -pixel P            pixel size, mm (default 0.1)
  -distance D, -lambda L, -Xbeam X, -Ybeam Y, -phi P, -osc O, -detsize S
                      values for the SMV header (mm, Angstrom, degrees)
  -header FILE        copy the SMV header (and size) of FILE to the outputs
  -intfile FILE       noiseless SMV image (default intimage.img)
  -noisefile FILE     noisy SMV image (default noiseimage.img); -nonoise: none
  -pgmfile FILE       PGM of the noiseless image (default image.pgm); -nopgm: none
  -bits 16|32         SMV pixel size (default 16)
  -h, -help, --help   print this text and exit; --version prints the version"""


def _say(text: str = "") -> None:
    print(text)


def run(argv: list[str]) -> int:
    """Run noisify on ``argv``; raise UsageError or InputFileError on bad input."""
    if any(arg in ("-h", "-help", "--help") for arg in argv):
        _say(USAGE)
        return 0
    if "--version" in argv:
        from torchbragg.cli.entry import version_line

        _say(version_line().replace("torchbragg", PROG, 1))
        return 0
    from torchbragg.noisify.options import parse_noisify_args

    st = parse_noisify_args(argv)
    for line in st.warnings:
        print(f"{PROG}: warning: {one_line(line)}", file=sys.stderr)
    for line in st.messages:
        _say(line)
    _say(BANNER)
    if st.float_path is None:
        _say(USAGE)
        print(f"{PROG}: error: no input image: give -floatfile FILE", file=sys.stderr)
        return 9
    with interrupts_end_the_process():
        from torchbragg.noisify.program import noisify  # numpy, numba
    return noisify(st, _say, _warn)


def _warn(line: str) -> None:
    print(f"{PROG}: warning: {one_line(line)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status (see the module notes).

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; ``sys.argv[1:]`` when None. ``--debug`` shows the
        traceback of an internal error instead of one line.

    Returns
    -------
    int
        The exit status.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    return guarded_main(PROG, lambda args: run([a for a in args if a != "--debug"]), argv,
                        "lower -psf_radius or the image size")


def main_exit() -> None:
    """Console-script entry point: ``sys.exit(main())``; Ctrl-C during imports exits at once."""
    with interrupts_end_the_process():
        import numpy  # noqa: F401 - before the work starts
    sys.exit(main())
