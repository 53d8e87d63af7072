"""The nanoBragg command-line options, declared as data.

nanoBragg scans every argument that starts with ``-`` against a list of patterns, mostly by
substring (``strstr``), some with an exact length or exact equality, and applies *every* pattern
that matches, in the order of its source. ``-matrix`` therefore works as ``-mat``, and
``-misset_seed`` also sets the ``-misset`` angles from the arguments after it. :data:`RULES`
lists those patterns in the C program's order, each with the number of values it reads, what
it sets in :class:`CState` (units converted as the C program converts them, so SI inside) and
its help text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

RTD = 180.0 / math.pi


@dataclass
class CState:
    """The C program's variables after the argument scan (SI units, angles in radians).

    ``nan`` and negative sentinels mean "not given", exactly as in nanoBragg; the precedence
    rules in :mod:`torchbragg.config` resolve them.
    """

    # files
    img_path: str | None = None
    mask_path: str | None = None
    mat_path: str | None = None
    hkl_path: str | None = None
    hkl_column: str | None = None  # --hkl-column: the MTZ / mmCIF amplitude column
    model_dmin: str | None = None  # --model-dmin: resolution (Å) of F from a model
    dump_path: str = "Fdump.bin"
    source_path: str | None = None
    stol_path: str | None = None
    stolout_path: str | None = None
    float_path: str = "floatimage.bin"
    int_path: str = "intimage.img"
    pgm_path: str = "image.pgm"
    noise_path: str = "noiseimage.img"
    # crystal
    Na: float = 1.0
    Nb: float = 1.0
    Nc: float = 1.0
    user_cell: bool = False
    cell: list = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    misset_mode: int = 0  # 0 none, 1 angles, -1 random
    misset_rad: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    sample_x: float = 0.0
    sample_y: float = 0.0
    sample_z: float = 0.0
    density: float = 1.0e6
    molecular_weight: float = 18.0
    xtal_shape: str = "square"
    fudge: float = 1.0
    # detector
    Xbeam: float = math.nan
    Ybeam: float = math.nan
    Xclose: float = math.nan
    Yclose: float = math.nan
    ORGX: float = math.nan
    ORGY: float = math.nan
    close_distance: float = math.nan
    distance: float = 100.0e-3
    pivot: str = "beam"
    convention: str = "mosflm"
    fdet: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    sdet: list = field(default_factory=lambda: [0.0, -1.0, 0.0])
    odet: list = field(default_factory=lambda: [1.0, 0.0, 0.0])
    beam: list = field(default_factory=lambda: [1.0, 0.0, 0.0])
    polar_vector: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    spindle: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    # the C program's default (used by the custom convention): {0,0,1,0}, magnitude first
    twotheta_axis: list = field(default_factory=lambda: [0.0, 1.0, 0.0])
    pix0_given: list | None = None
    detector_mu: float = -1.0
    detector_thick: float = 0.0
    detector_thicksteps: int = -1
    detector_rotx: float = 0.0
    detector_roty: float = 0.0
    detector_rotz: float = 0.0
    detector_twotheta: float = 0.0
    detsize_f: float = 102.4e-3
    detsize_s: float = 102.4e-3
    fpixels: int = 0
    spixels: int = 0
    pixel_size: float = 0.1e-3
    curved_detector: bool = False
    point_pixel: bool = False
    roi: list = field(default_factory=lambda: [-1, -1, -1, -1])
    # beam
    polarization: float = 0.0
    nopolar: bool = False
    lambda0: float = 1.0e-10
    fluence: float = 125932015286227086360700780544.0
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    dispersion: float = 0.0
    dispsteps: int = -1
    hdivrange: float = -1.0
    vdivrange: float = -1.0
    hdivstep: float = -1.0
    vdivstep: float = -1.0
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    coherent: bool = False
    # sampling
    oversample: int = -1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    mosaic_spread: float = -1.0
    mosaic_domains: int = -1
    phi0: float = 0.0
    osc: float = -1.0
    phistep: float = -1.0
    phisteps: int = -1
    dmin: float = 0.0
    default_F: float = 0.0
    interpolate: int = 2  # 2 = auto
    water_size: float = 0.0
    stol_file_mult: float = 1e10
    # outputs and noise
    adc_offset: float = 40.0
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    write_pgm: bool = True
    calculate_noise: bool = True
    printout: bool = False
    printout_pixel: list | None = None  # fast, slow
    trace_pixel: list | None = None  # slow, fast (torchbragg's own option)
    progress: bool = True
    seed: int | None = None  # command-line form; None: from the clock
    mosaic_seed: int = 12345678
    misset_seed: int | None = None  # None: from the clock, as the C program does
    # not C: set by the Python API only
    zero_spread_domains: bool = False  # keep -mosaic_dom domains at zero spread (refinement)
    hkl_table: object = None  # an io.hkl.HKLTable given directly instead of -hkl
    stale_phi0: bool = False  # --stale-phi0: the released C program's phi = 0 behaviour
    # torchbragg's other image formats (see OUTPUT_OPTIONS); None: not written
    cbf_path: str | None = None  # --cbf
    nexus_path: str | None = None  # --nexus
    nexus_compression: str = "auto"  # --nexus-compression: auto, bslz4, gzip or none
    png_path: str | None = None  # --png
    png_rings: str | None = None  # --png-rings: d-spacings in Å as given, e.g. "3.5,2.5"


Apply = Callable[[CState, list], None]


@dataclass(frozen=True)
class Rule:
    """One pattern of the C argument scan.

    Attributes
    ----------
    pattern:
        The text searched for in the argument.
    nargs:
        Values read after the option (``-1``: the variable-length ``-cell`` list).
    kinds:
        Converter name per value: ``"f"`` float, ``"i"`` int, ``"s"`` string.
    apply:
        Sets the C variables from the converted values.
    exact_len:
        The argument must also have this length (C's ``strlen(argv[i]) == n``).
    exact:
        The argument must equal the pattern (C's ``strcmp``).
    min_len:
        The argument must be longer than this (C's ``strlen(argv[i]) > n``).
    stop:
        No further pattern is tried for this argument (C's ``continue``).
    help:
        One line of help.
    group:
        Topic, for the usage listing.
    """

    pattern: str
    nargs: int
    kinds: str
    apply: Apply
    help: str
    group: str
    exact_len: int | None = None
    exact: bool = False
    min_len: int | None = None
    stop: bool = False

    def matches(self, token: str) -> bool:
        """Return True if the C program applies this rule to ``token``."""
        if self.exact:
            return token == self.pattern
        if self.pattern not in token:
            return False
        if self.exact_len is not None and len(token) != self.exact_len:
            return False
        return self.min_len is None or len(token) > self.min_len


def _set(name: str, scale: float = 1.0, **extra) -> Apply:
    """Build an ``apply`` that stores one value times ``scale`` and fixed extra settings."""

    def apply(st: CState, v: list) -> None:
        setattr(st, name, v[0] * scale if scale != 1.0 else v[0])
        for key, value in extra.items():
            setattr(st, key, value)

    return apply


def _flag(**settings) -> Apply:
    def apply(st: CState, v: list) -> None:
        for key, value in settings.items():
            setattr(st, key, value)

    return apply


def _vector(name: str) -> Apply:
    def apply(st: CState, v: list) -> None:
        setattr(st, name, [float(x) for x in v[:3]])
        st.convention = "custom"

    return apply


def _cell(st: CState, v: list) -> None:
    st.user_cell = True
    for i, x in enumerate(v[:6]):
        st.cell[i] = x if i < 3 else x / RTD


def _misset(st: CState, v: list) -> None:
    if isinstance(v[0], str):
        st.misset_mode = -1
        return
    st.misset_mode = 1
    st.misset_rad = [x / RTD for x in v[:3]]


def _size(*names: str) -> Apply:
    def apply(st: CState, v: list) -> None:
        for n in names:
            setattr(st, n, v[0] / 1000.0)

    return apply


def _pivot(st: CState, v: list) -> None:
    if "sample" in v[0]:
        st.pivot = "sample"
    if "beam" in v[0]:
        st.pivot = "beam"


def _detector_abs(st: CState, v: list) -> None:
    if isinstance(v[0], str) or v[0] == 0.0:
        st.detector_thick = 0.0
        st.detector_mu = 0.0
    else:  # a depth too small to hold in metres absorbs everything at once
        depth_m = v[0] * 1e-6
        st.detector_mu = 1.0 / depth_m if depth_m != 0.0 else math.inf


def _convention(name: str, pivot: str) -> Apply:
    return _flag(convention=name, pivot=pivot)


def _seed(name: str) -> Apply:
    """Store a seed as written on the command line (the C program keeps its negative)."""

    def apply(st: CState, v: list) -> None:
        setattr(st, name, int(v[0]))

    return apply


def _energy(st: CState, v: list) -> None:
    # 12398.42 eV Å is hc; a zero energy is left to the wavelength check (infinite)
    st.lambda0 = 12398.42 / v[0] / 1e10 if v[0] != 0 else math.inf


def _roi(st: CState, v: list) -> None:
    st.roi = [int(x) for x in v[:4]]


def _Ns(st: CState, v: list) -> None:
    st.Na = st.Nb = st.Nc = float(v[0])


def _pix0(st: CState, v: list) -> None:
    st.convention = "custom"
    st.pix0_given = [float(x) for x in v[:3]]


def _printout_pixel(st: CState, v: list) -> None:
    st.printout_pixel = [int(v[0]), int(v[1])]


def _trace_pixel(st: CState, v: list) -> None:
    st.trace_pixel = [int(v[0]), int(v[1])]


_G_IN, _G_XTAL, _G_DET, _G_BEAM, _G_SAMP, _G_OUT = (
    "input files",
    "crystal",
    "detector",
    "beam",
    "sampling",
    "output and noise",
)

RULES: tuple[Rule, ...] = (
    Rule("-Na", 1, "i", _set("Na"), "unit cells along a", _G_XTAL),
    Rule("-Nb", 1, "i", _set("Nb"), "unit cells along b", _G_XTAL),
    Rule("-Nc", 1, "i", _set("Nc"), "unit cells along c", _G_XTAL),
    Rule("-N", 1, "i", _Ns, "unit cells in all directions", _G_XTAL, exact=True),
    Rule("-cell", -1, "f", _cell, "unit cell a b c alpha beta gamma (Å, degrees)", _G_XTAL),
    Rule("-misset", 3, "f", _misset, "crystal rotations about x y z (degrees), or 'random'",
         _G_XTAL),
    Rule("-samplesize", 1, "f", _size("sample_x", "sample_y", "sample_z"),
         "crystal full width (mm), all directions", _G_XTAL),
    Rule("-sample_size", 1, "f", _size("sample_x", "sample_y", "sample_z"),
         "crystal full width (mm), all directions", _G_XTAL),
    Rule("-sample_thick", 1, "f", _size("sample_x"), "crystal size along x (mm)", _G_XTAL),
    Rule("-sample_x", 1, "f", _size("sample_x"), "crystal size along x (mm)", _G_XTAL),
    Rule("-sample_width", 1, "f", _size("sample_y"), "crystal size along y (mm)", _G_XTAL),
    Rule("-sample_y", 1, "f", _size("sample_y"), "crystal size along y (mm)", _G_XTAL),
    Rule("-width", 1, "f", _size("sample_y"), "crystal size along y (mm)", _G_XTAL),
    Rule("-sample_heigh", 1, "f", _size("sample_z"), "crystal size along z (mm)", _G_XTAL),
    Rule("-sample_z", 1, "f", _size("sample_z"), "crystal size along z (mm)", _G_XTAL),
    Rule("-heigh", 1, "f", _size("sample_z"), "crystal size along z (mm)", _G_XTAL),
    Rule("-xtalsize", 1, "f", _size("sample_x", "sample_y", "sample_z"),
         "crystal full width (mm), all directions", _G_XTAL),
    Rule("-xtal_size", 1, "f", _size("sample_x", "sample_y", "sample_z"),
         "crystal full width (mm), all directions", _G_XTAL),
    Rule("-xtal_thick", 1, "f", _size("sample_x"), "crystal size along x (mm)", _G_XTAL),
    Rule("-xtal_x", 1, "f", _size("sample_x"), "crystal size along x (mm)", _G_XTAL),
    Rule("-xtal_width", 1, "f", _size("sample_y"), "crystal size along y (mm)", _G_XTAL),
    Rule("-xtal_y", 1, "f", _size("sample_y"), "crystal size along y (mm)", _G_XTAL),
    Rule("-xtal_heigh", 1, "f", _size("sample_z"), "crystal size along z (mm)", _G_XTAL),
    Rule("-xtal_z", 1, "f", _size("sample_z"), "crystal size along z (mm)", _G_XTAL),
    Rule("-density", 1, "f", _set("density", 1e6),
         "sample density (g/cm^3; read, not used by the C program)", _G_XTAL),
    Rule("-sample_den", 1, "f", _set("density", 1e6),
         "sample density (g/cm^3; read, not used by the C program)", _G_XTAL),
    Rule("-MW", 1, "f", _set("molecular_weight"),
         "molecular weight (read, not used by the C program)", _G_XTAL, exact=True),
    Rule("-molec", 1, "f", _set("molecular_weight"),
         "molecular weight (read, not used by the C program)", _G_XTAL),
    Rule("-Xbeam", 1, "f", _set("Xbeam", 1e-3, pivot="beam"),
         "direct-beam position, convention X (mm)", _G_DET),
    Rule("-Ybeam", 1, "f", _set("Ybeam", 1e-3, pivot="beam"),
         "direct-beam position, convention Y (mm)", _G_DET),
    Rule("-Xclose", 1, "f", _set("Xclose", 1e-3, pivot="sample"),
         "point of closest approach, fast (mm)", _G_DET),
    Rule("-Yclose", 1, "f", _set("Yclose", 1e-3, pivot="sample"),
         "point of closest approach, slow (mm)", _G_DET),
    Rule("-ORGX", 1, "f", _set("ORGX", pivot="sample"), "XDS origin, fast (pixels)", _G_DET),
    Rule("-ORGY", 1, "f", _set("ORGY", pivot="sample"), "XDS origin, slow (pixels)", _G_DET),
    Rule("-pivot", 1, "s", _pivot, "detector pivot: sample or beam", _G_DET),
    Rule("-mosflm", 0, "", _convention("mosflm", "beam"), "MOSFLM convention (default)",
         _G_DET),
    Rule("-xds", 0, "", _convention("xds", "sample"), "XDS convention", _G_DET),
    Rule("-adxv", 0, "", _convention("adxv", "beam"), "ADXV convention", _G_DET),
    Rule("-denzo", 0, "", _convention("denzo", "beam"), "DENZO convention", _G_DET),
    Rule("-dials", 0, "", _convention("dials", "beam"), "DIALS convention", _G_DET),
    Rule("-fdet_vector", 3, "fff", _vector("fdet"), "fast-axis unit vector", _G_DET),
    Rule("-sdet_vector", 3, "fff", _vector("sdet"), "slow-axis unit vector", _G_DET),
    Rule("-odet_vector", 3, "fff", _vector("odet"), "detector normal unit vector", _G_DET),
    Rule("-beam_vector", 3, "fff", _vector("beam"), "x-ray beam direction", _G_BEAM),
    Rule("-polar_vector", 3, "fff", _vector("polar_vector"), "E-vector of the beam", _G_BEAM),
    Rule("-spindle_axis", 3, "fff", _vector("spindle"), "phi rotation axis", _G_XTAL),
    Rule("-twotheta_axis", 3, "fff", _vector("twotheta_axis"), "two-theta rotation axis",
         _G_DET),
    Rule("-pix0_vector", 3, "fff", _pix0,
         "vector to the first pixel (accepted; nanoBragg recomputes it)", _G_DET),
    Rule("-distance", 1, "f", _set("distance", 1e-3, pivot="beam"),
         "sample to beam spot distance (mm)", _G_DET),
    Rule("-close_distance", 1, "f", _set("close_distance", 1e-3, pivot="sample"),
         "sample to detector plane distance (mm)", _G_DET),
    Rule("-detector_abs", 1, "s", _detector_abs,
         "sensor attenuation depth (um) or 'inf'", _G_DET),
    Rule("-detector_thick", 1, "f", _set("detector_thick", 1e-6), "sensor thickness (um)",
         _G_DET, exact_len=15),
    Rule("-detector_thicksteps", 1, "i", _set("detector_thicksteps"), "sensor layers", _G_DET),
    Rule("-thicksteps", 1, "i", _set("detector_thicksteps"), "sensor layers", _G_DET),
    Rule("-twotheta", 1, "f", _set("detector_twotheta", 1 / RTD, pivot="sample"),
         "detector two-theta swing (degrees)", _G_DET),
    Rule("-detector_rotx", 1, "f", _set("detector_rotx", 1 / RTD),
         "detector rotation about x (degrees)", _G_DET),
    Rule("-detector_roty", 1, "f", _set("detector_roty", 1 / RTD),
         "detector rotation about y (degrees)", _G_DET),
    Rule("-detector_rotz", 1, "f", _set("detector_rotz", 1 / RTD),
         "detector rotation about z (degrees)", _G_DET),
    Rule("-detsize", 1, "f", _size("detsize_f", "detsize_s"), "detector size (mm)", _G_DET,
         exact_len=8),
    Rule("-detsize_f", 1, "f", _size("detsize_f"), "detector fast size (mm)", _G_DET),
    Rule("-detsize_s", 1, "f", _size("detsize_s"), "detector slow size (mm)", _G_DET),
    Rule("-detpixels", 1, "i", lambda st, v: _flag(fpixels=v[0], spixels=v[0])(st, v),
         "detector size (pixels)", _G_DET, exact_len=10),
    Rule("-detpixels_f", 1, "i", _set("fpixels"), "fast pixels", _G_DET),
    Rule("-detpixels_x", 1, "i", _set("fpixels"), "fast pixels", _G_DET),
    Rule("-detpixels_s", 1, "i", _set("spixels"), "slow pixels", _G_DET),
    Rule("-detpixels_y", 1, "i", _set("spixels"), "slow pixels", _G_DET),
    Rule("-curved_det", 0, "", _flag(curved_detector=True),
         "all pixels the same distance from the sample", _G_DET),
    Rule("-pixel", 1, "f", _set("pixel_size", 1e-3), "pixel size (mm)", _G_DET),
    Rule("-point_pixel", 0, "", _flag(point_pixel=True), "no pixel obliquity", _G_DET),
    Rule("-polar", 1, "f", _set("polarization", nopolar=False), "Kahn polarization factor",
         _G_BEAM, exact_len=6),
    Rule("-nopolar", 0, "", _flag(nopolar=True), "no polarization correction", _G_BEAM),
    Rule("-oversample_thick", 0, "", _flag(oversample_thick=True),
         "sensor absorption per sub-pixel", _G_SAMP, stop=True),
    Rule("-oversample_polar", 0, "", _flag(oversample_polar=True),
         "polarization per sub-pixel", _G_SAMP, stop=True),
    Rule("-oversample_omega", 0, "", _flag(oversample_omega=True),
         "solid angle per sub-pixel", _G_SAMP, stop=True),
    Rule("-oversample", 1, "i", _set("oversample"), "sub-pixels per pixel edge", _G_SAMP),
    Rule("-roi", 4, "iiii", _roi, "render only xmin xmax ymin ymax (pixels)", _G_DET),
    Rule("-lambda", 1, "f", _set("lambda0", 1e-10), "wavelength (Å)", _G_BEAM),
    Rule("-wave", 1, "f", _set("lambda0", 1e-10), "wavelength (Å)", _G_BEAM),
    Rule("-energy", 1, "f", _energy, "photon energy (eV)", _G_BEAM),
    Rule("-fluence", 1, "f", _set("fluence"), "photons per m^2", _G_BEAM),
    Rule("-flux", 1, "f", _set("flux"), "photons per second", _G_BEAM),
    Rule("-exposure", 1, "f", _set("exposure"), "exposure time (s)", _G_BEAM),
    Rule("-beamsize", 1, "f", _set("beamsize", 1e-3), "beam size (mm)", _G_BEAM),
    Rule("-mosaic", 1, "f", _set("mosaic_spread", 1 / RTD), "mosaic spread (degrees)", _G_SAMP,
         exact_len=7),
    Rule("-mosaici", 1, "f", _set("mosaic_spread", 1 / RTD), "mosaic spread (degrees)",
         _G_SAMP),
    Rule("-mosaic_spr", 1, "f", _set("mosaic_spread", 1 / RTD), "mosaic spread (degrees)",
         _G_SAMP),
    Rule("-mosaic_dom", 1, "i", _set("mosaic_domains"), "mosaic domains", _G_SAMP),
    Rule("-dispersion", 1, "f", _set("dispersion", 1e-2), "spectral width (percent)",
         _G_BEAM),
    Rule("-dispsteps", 1, "i", _set("dispsteps"), "wavelengths", _G_BEAM),
    Rule("-divergence", 1, "f", _size("hdivrange", "vdivrange"), "divergence (mrad)",
         _G_BEAM),
    Rule("-hdivrange", 1, "f", _size("hdivrange"), "horizontal divergence (mrad)", _G_BEAM),
    Rule("-vdivrange", 1, "f", _size("vdivrange"), "vertical divergence (mrad)", _G_BEAM),
    Rule("-hdivstep", 1, "f", _size("hdivstep"), "horizontal divergence step (mrad)", _G_BEAM,
         exact_len=9),
    Rule("-hdivsteps", 1, "i", _set("hdivsteps"), "horizontal divergence steps", _G_BEAM),
    Rule("-vdivstep", 1, "f", _size("vdivstep"), "vertical divergence step (mrad)", _G_BEAM,
         exact_len=9),
    Rule("-vdivsteps", 1, "i", _set("vdivsteps"), "vertical divergence steps", _G_BEAM),
    Rule("-divsteps", 1, "i", lambda st, v: _flag(hdivsteps=v[0], vdivsteps=v[0])(st, v),
         "divergence steps in both directions", _G_BEAM),
    Rule("-round_div", 0, "", _flag(round_div=True), "trim divergence grid to an ellipse",
         _G_BEAM),
    Rule("-square_div", 0, "", _flag(round_div=False), "full divergence grid", _G_BEAM),
    Rule("-adc", 1, "f", _set("adc_offset"), "offset added to SMV pixels", _G_OUT),
    Rule("-phi", 1, "f", _set("phi0", 1 / RTD), "starting spindle angle (degrees)", _G_SAMP,
         exact_len=4),
    Rule("-osc", 1, "f", _set("osc", 1 / RTD), "oscillation range (degrees)", _G_SAMP),
    Rule("-phistep", 1, "f", _set("phistep", 1 / RTD), "spindle step (degrees)", _G_SAMP,
         exact_len=8),
    Rule("-phisteps", 1, "i", _set("phisteps"), "spindle steps", _G_SAMP),
    Rule("-dmin", 1, "f", _set("dmin", 1e-10), "resolution limit (Å)", _G_SAMP),
    Rule("-mat", 1, "s", _set("mat_path"), "MOSFLM orientation matrix file", _G_IN),
    Rule("-hkl", 1, "s", _set("hkl_path"), "structure factors h k l F", _G_IN),
    Rule("-default_F", 1, "f", _set("default_F"), "F for unlisted reflections", _G_IN),
    Rule("-dump", 1, "s", _set("dump_path"), "structure-factor cache file", _G_IN),
    Rule("-img", 1, "s", _set("img_path"), "SMV file whose header sets the geometry", _G_IN),
    Rule("-mask", 1, "s", _set("mask_path"),
         "SMV file: pixels that are 0 are not rendered; its header sets the geometry", _G_IN),
    Rule("-stolout", 1, "s", _set("stolout_path"), "(read, not used by the C program)", _G_IN,
         min_len=7),
    Rule("-stol", 1, "s", _flag(), "amorphous F vs sin(theta)/lambda (not used)", _G_IN,
         exact_len=5),
    Rule("-4stol", 1, "s", _flag(), "amorphous F vs 4 sin(theta)/lambda (not used)", _G_IN,
         exact_len=6),
    Rule("-Q", 1, "s", _flag(), "amorphous F vs Q (not used)", _G_IN, exact_len=2),
    Rule("-sourcefile", 1, "s", _set("source_path"), "x y z weight lambda per source", _G_IN),
    Rule("-floatfile", 1, "s", _set("float_path"), "raw float32 image", _G_OUT),
    Rule("-floatimage", 1, "s", _set("float_path"), "raw float32 image", _G_OUT),
    Rule("-intfile", 1, "s", _set("int_path"), "noiseless SMV image", _G_OUT),
    Rule("-intimage", 1, "s", _set("int_path"), "noiseless SMV image", _G_OUT),
    Rule("-pgmfile", 1, "s", _set("pgm_path", write_pgm=True), "8-bit PGM image", _G_OUT),
    Rule("-pgmimage", 1, "s", _set("pgm_path", write_pgm=True), "8-bit PGM image", _G_OUT),
    Rule("-noisefile", 1, "s", _set("noise_path", calculate_noise=True),
         "SMV image with Poisson noise", _G_OUT),
    Rule("-noiseimage", 1, "s", _set("noise_path", calculate_noise=True),
         "SMV image with Poisson noise", _G_OUT),
    Rule("-nonoise", 0, "", _flag(calculate_noise=False), "no noise image", _G_OUT),
    Rule("-nopgm", 0, "", _flag(write_pgm=False), "no PGM image", _G_OUT),
    Rule("-scale", 1, "f", _set("intfile_scale"), "scale of the SMV image (default auto)",
         _G_OUT),
    Rule("-pgmscale", 1, "f", _set("pgm_scale", write_pgm=True), "scale of the PGM image",
         _G_OUT),
    Rule("-coherent", 0, "", _flag(coherent=True), "(read, not used by the C program)",
         _G_BEAM),
    Rule("-printout", 0, "", _flag(printout=True), "print pixel values", _G_OUT),
    Rule("-noprogress", 0, "", _flag(progress=False), "no progress meter", _G_OUT),
    Rule("-progress", 0, "", _flag(progress=True), "progress meter", _G_OUT),
    Rule("-interpolate", 0, "", _flag(interpolate=1), "tricubic interpolation of F", _G_IN),
    Rule("-nointerpolate", 0, "", _flag(interpolate=0), "nearest-index F", _G_IN),
    Rule("-round_xtal", 0, "", _flag(xtal_shape="round"), "ellipsoidal crystal", _G_XTAL),
    Rule("-square_xtal", 0, "", _flag(xtal_shape="square"), "parallelepiped crystal",
         _G_XTAL),
    Rule("-gauss_xtal", 0, "", _flag(xtal_shape="gauss"), "Gaussian spots", _G_XTAL),
    Rule("-binary_spots", 0, "", _flag(xtal_shape="tophat"), "top-hat spots", _G_XTAL),
    Rule("-tophat_spots", 0, "", _flag(xtal_shape="tophat"), "top-hat spots", _G_XTAL),
    Rule("-fudge", 1, "f", _set("fudge"), "spot-shape width factor", _G_XTAL),
    Rule("-printout_pixel", 2, "ii", _printout_pixel, "print one pixel: fast slow", _G_OUT),
    Rule("-trace_pixel", 2, "ii", _trace_pixel,
         "print every intermediate quantity of pixel: slow fast (torchbragg only)", _G_OUT),
    Rule("-seed", 1, "i", _seed("seed"), "noise seed", _G_OUT),
    Rule("-mosaic_seed", 1, "i", _seed("mosaic_seed"), "mosaic domain seed", _G_SAMP),
    Rule("-misset_seed", 1, "i", _seed("misset_seed"), "seed for -misset random",
         _G_XTAL),
    Rule("-water", 1, "f", _set("water_size", 1e-6), "water layer thickness (um)", _G_XTAL),
)

# Flags the C program reads and then never uses; accepted with a warning.
UNUSED_BY_C = ("-stol", "-4stol", "-Q", "-stolout", "-coherent", "-density", "-sample_den",
               "-molec", "-MW")


@dataclass(frozen=True)
class OwnOption:
    """One of torchbragg's own ``--name VALUE`` options that sets a :class:`CState` field.

    Attributes
    ----------
    name:
        The option as typed, e.g. ``--cbf``.
    metavar:
        What the value is, for the usage text.
    field:
        The :class:`CState` attribute that receives the value (a string, checked later).
    help:
        One line of help.
    """

    name: str
    metavar: str
    field: str
    help: str

    @property
    def key(self) -> str:
        """The name as :func:`torchbragg.cli.parse.parse_args` keys its extensions."""
        return self.name[2:].replace("-", "_")

    def usage_line(self) -> str:
        """The line for the usage text, aligned as the other own options are."""
        names = f"{self.name} {self.metavar}"
        gap = "\n" + " " * 28 if len(names) > 25 else " " * (26 - len(names))
        return f"  {names}{gap}{self.help}"


# Image formats beside nanoBragg's: each takes one value (see torchbragg.cli.outputs).
OUTPUT_OPTIONS: tuple[OwnOption, ...] = (
    OwnOption("--cbf", "FILE", "cbf_path",
              "miniCBF image (Pilatus-style header) of the -intfile integers"),
    OwnOption("--nexus", "FILE", "nexus_path",
              "NeXus/NXmx HDF5 image of the -intfile integers"),
    OwnOption("--nexus-compression", "auto|bslz4|gzip|none", "nexus_compression",
              "compression of the NeXus pixels (auto: bslz4 with hdf5plugin, else gzip)"),
    OwnOption("--png", "FILE", "png_path", "PNG preview of the float image (log scale)"),
    OwnOption("--png-rings", "D1,D2,...", "png_rings",
              "resolution rings on the PNG preview at these d-spacings (Å)"),
)


# Structure factors from an MTZ, mmCIF or model file given to -hkl (see io/reflections.py).
INPUT_OPTIONS: tuple[OwnOption, ...] = (
    OwnOption("--hkl-column", "NAME", "hkl_column",
              "amplitude column of an MTZ or mmCIF -hkl file (default: chosen)"),
    OwnOption("--model-dmin", "ANGSTROM", "model_dmin",
              "resolution of F computed from a model -hkl file (default: detector corner)"),
)


def apply_output_options(st: CState, ext: dict) -> None:
    """Copy the own options of :data:`OUTPUT_OPTIONS` and :data:`INPUT_OPTIONS` into ``st``.

    ``ext`` holds parse_args' extensions. The values stay strings;
    :func:`torchbragg.cli.outputs.check_format_outputs` and the structure-factor reader check
    them before rendering.
    """
    for option in OUTPUT_OPTIONS + INPUT_OPTIONS:
        if option.key in ext:
            setattr(st, option.field, ext[option.key])
