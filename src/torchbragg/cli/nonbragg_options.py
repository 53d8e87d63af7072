"""nonBragg's command line, declared as data, and its scan.

nonBragg (the C companion of nanoBragg) scans its arguments as nanoBragg does: every argument
starting with ``-`` is tested against a list of patterns, mostly by substring (``strstr``),
some with an exact length or exact equality, and every pattern that matches is applied, in
the order of the C source; values are read with ``atof``/``atoi``, which take ``"abc"`` as 0.
Its list differs from nanoBragg's (sample size, density and molecular weight matter here; no
crystal, no detector conventions: ``-xds`` does nothing; ``-detsize_x``/``-detsize_y`` instead
of ``-detsize_f``/``-detsize_s``; ``-gain``, ``-ignore``, ``-source_distance``, ``-Fmap``...),
so it is declared here, in the C program's order, with the C program's unit conversions.

The scan follows :mod:`torchbragg.cli.parse`: the option the user meant (the longest pattern
matching the argument) must have its values, and numbers where numbers are expected;
other patterns matching by accident are applied as the C program applies them, with a
warning when they change something; a nanoBragg option that nonBragg does not read is
ignored with a warning (as nonBragg ignores it), and anything else unknown is an error
unless ``--allow-unknown``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from torchbragg.cli import parse
from torchbragg.cli.options import RULES as NANOBRAGG_RULES
from torchbragg.cli.parse import (
    UsageError,
    c_atof,
    c_atoi,
    is_number,
    report_problems,
    scan_arguments,
    split_own_options,
    strict_value,
    values_after,
)

# Degrees per radian as the C program computes it (180.0*M_1_PI).
RTD = 180.0 * 0.318309886183790671537767526745028724
# The first line nonBragg prints.
BANNER = ("nonBragg amorphous material diffraction simulator - James Holton and Ken Frankel "
          "3-19-16")
# The C program's default fluence (photons/m^2).
DEFAULT_FLUENCE = 125932015286227086360700780544.0


@dataclass
class NBState:
    """nonBragg's variables after its argument scan (SI units, angles in radians).

    NaN and negative sentinels mean "not given", exactly as in the C program; the plan
    (:mod:`torchbragg.cli.nonbragg_plan`) resolves them.
    """

    # files
    img_path: str | None = None
    stol_path: str | None = None
    stol_option: str = "-stol"  # -stol, -4stol or -Q: the unit of the table's first column
    stol_mult: float = 1e10
    stolout_path: str = "output.stol"
    source_path: str | None = None
    float_path: str = "floatimage.bin"
    int_path: str = "intimage.img"
    pgm_path: str = "image.pgm"
    noise_path: str = "noiseimage.img"
    # sample
    sample_x: float = 1e-4
    sample_y: float = 1e-4
    sample_z: float = 1e-4
    density: float = 1.0e6
    molecules: float = 0.0
    molecular_weight: float = 18.0
    # detector
    Xbeam: float = math.nan
    Ybeam: float = math.nan
    Xclose: float = math.nan
    Yclose: float = math.nan
    ORGX: float = math.nan
    ORGY: float = math.nan
    pivot: str = "beam"
    fdet: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    sdet: list = field(default_factory=lambda: [0.0, -1.0, 0.0])
    odet: list = field(default_factory=lambda: [1.0, 0.0, 0.0])
    beam: list = field(default_factory=lambda: [1.0, 0.0, 0.0])
    polar_vector: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    spindle: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    twotheta_axis: list = field(default_factory=lambda: [0.0, 1.0, 0.0])
    pix0_given: list | None = None
    distance: float = 100.0e-3
    close_distance: float = math.nan
    source_distance: float = 10.0
    detector_twotheta: float = 0.0
    detector_rotx: float = 0.0
    detector_roty: float = 0.0
    detector_rotz: float = 0.0
    detsize_x: float = 102.4e-3
    detsize_y: float = 102.4e-3
    fpixels: int = 0
    spixels: int = 0
    pixel_size: float = 0.1e-3
    curved_detector: bool = False
    point_pixel: bool = False
    Fmap: bool = False
    roi: list = field(default_factory=lambda: [-1, -1, -1, -1])
    # beam
    polarization: float = 0.0
    nopolar: bool = False
    lambda0: float = 1.0e-10
    fluence: float = DEFAULT_FLUENCE
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
    # sampling and spindle (the spindle only reaches the SMV header)
    oversample: int = -1
    phi0: float = 0.0
    osc: float = -1.0
    phistep: float = -1.0
    phisteps: int = -1
    # outputs, noise and -img analysis
    adc_offset: float = 40.0
    quantum_gain: float = 1.0
    ignore_values: list = field(default_factory=list)
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    output_pgm: bool = True  # read by the C program, never used: the PGM is always written
    calculate_noise: bool = True
    printout: bool = False
    printout_pixel: list | None = None  # fast, slow
    progress: bool = True
    seed: int | None = None  # command-line form (the C program stores its negative)
    given: set = field(default_factory=set)  # patterns the command line used
    img_pixels: object = None  # the -img pixels (numpy, slow x fast), once read


Apply = Callable[[NBState, list], None]


@dataclass(frozen=True)
class NBRule:
    """One ``if`` of nonBragg's argument scan.

    Attributes
    ----------
    patterns:
        Texts searched for in the argument (C's ``strstr``), any of which matches; a pattern
        starting with ``=`` must equal the argument (C's ``strcmp``).
    kinds:
        One converter per value read: ``f`` float (atof), ``i`` int (atoi), ``s`` string.
    apply:
        Sets the C variables from the values.
    help:
        One line for the usage text.
    need:
        Arguments the C program requires after the option (``argc > i + need``), when that
        differs from the number of values read.
    exact_len, min_len:
        The argument must have exactly / more than this many characters.
    note:
        Why the option has no effect, for options the C program reads and never uses.
    """

    patterns: tuple[str, ...]
    kinds: str
    apply: Apply
    help: str
    need: int | None = None
    exact_len: int | None = None
    min_len: int | None = None
    note: str = ""

    @property
    def name(self) -> str:
        """The first spelling, as the usage lists it."""
        return self.patterns[0].lstrip("=")

    def matched(self, token: str) -> str | None:
        """The pattern that matches ``token`` (the longest), or None."""
        if self.exact_len is not None and len(token) != self.exact_len:
            return None
        if self.min_len is not None and not len(token) > self.min_len:
            return None
        hits = [p.lstrip("=") for p in self.patterns
                if (token == p[1:] if p.startswith("=") else p in token)]
        return max(hits, key=len) if hits else None

    @property
    def required(self) -> int:
        """Arguments needed after the option for the C program to apply it."""
        return len(self.kinds) if self.need is None else self.need


def _set(name: str, scale: Callable[[float], float] | None = None, **extra) -> Apply:
    """Store the value (converted by ``scale``) in ``name``, and fixed ``extra`` settings."""

    def apply(st: NBState, v: list) -> None:
        setattr(st, name, scale(v[0]) if scale else v[0])
        for key, value in extra.items():
            setattr(st, key, value)

    return apply


def _flag(**settings) -> Apply:
    def apply(st: NBState, v: list) -> None:
        for key, value in settings.items():
            setattr(st, key, value)

    return apply


def _mm(*names: str, **extra) -> Apply:
    """Lengths given in mm, stored in metres as the C program divides them (x / 1000)."""

    def apply(st: NBState, v: list) -> None:
        for n in names:
            setattr(st, n, v[0] / 1000)
        for key, value in extra.items():
            setattr(st, key, value)

    return apply


def _vector(name: str) -> Apply:
    return lambda st, v: setattr(st, name, [float(x) for x in v[:3]])


def _both(*names: str) -> Apply:
    def apply(st: NBState, v: list) -> None:
        for n in names:
            setattr(st, n, v[0])

    return apply


def _pivot(st: NBState, v: list) -> None:
    if "sample" in v[0]:
        st.pivot = "sample"
    if "beam" in v[0]:
        st.pivot = "beam"


def _energy(st: NBState, v: list) -> None:
    # hc = 12398.42 eV Å; a zero energy is left to the wavelength check (infinite)
    st.lambda0 = (12398.42 / v[0]) / 1.0e10 if v[0] != 0 else math.inf


def _stol(option: str, mult: float) -> Apply:
    def apply(st: NBState, v: list) -> None:
        st.stol_path, st.stol_option, st.stol_mult = v[0], option, mult

    return apply


def _ignore(st: NBState, v: list) -> None:
    st.ignore_values.append(v[0])


def _seed(st: NBState, v: list) -> None:
    st.seed = int(v[0])


def _roi(st: NBState, v: list) -> None:
    st.roi = [int(x) for x in v[:4]]


def _printout_pixel(st: NBState, v: list) -> None:
    st.printout_pixel = [int(v[0]), int(v[1])]


def _pix0(st: NBState, v: list) -> None:
    st.pix0_given = [float(x) for x in v[:3]]


_DEG = lambda x: x / RTD  # noqa: E731
_MM = lambda x: x / 1000.0  # noqa: E731
_MRAD = lambda x: x / 1000.0  # noqa: E731

_UNUSED = "nonBragg reads it but never uses it"
_IMG_ONLY = "used only with -img"

# nonBragg's argument scan, in the order of the C source.
RULES: tuple[NBRule, ...] = (
    NBRule(("-samplesize", "-sample_size"), "f", _mm("sample_x", "sample_y", "sample_z"),
           "sample size in all three directions (mm; a cube)"),
    NBRule(("-sample_thick", "-sample_x", "-thick"), "f", _mm("sample_x"),
           "sample thickness along the beam (mm)"),
    NBRule(("-sample_width", "-sample_y", "-width"), "f", _mm("sample_y"),
           "sample height (vertical, mm; clipped to the beam size)"),
    NBRule(("-sample_heigh", "-sample_z", "-heigh"), "f", _mm("sample_z"),
           "sample width (horizontal, mm; clipped to the beam size)"),
    NBRule(("-density", "-sample_den"), "f", _set("density", lambda x: x * 1e6),
           "sample density (g/cm^3)"),
    NBRule(("-molecules", "-sample_molecules"), "f", _set("molecules"),
           "number of molecules in the beam (sets the density)"),
    NBRule(("=-MW", "-molecular"), "f", _set("molecular_weight"),
           "molecular weight of the sample material (g/mol)"),
    NBRule(("-Xbeam",), "f", _set("Xbeam", _MM, pivot="beam"),
           "direct-beam spot along the fast axis (mm)"),
    NBRule(("-Ybeam",), "f", _set("Ybeam", _MM, pivot="beam"),
           "direct-beam spot along the slow axis (mm)"),
    NBRule(("-Xclose",), "f", _set("Xclose", _MM, pivot="sample"),
           "point of closest approach, fast (mm)"),
    NBRule(("-Yclose",), "f", _set("Yclose", _MM, pivot="sample"),
           "point of closest approach, slow (mm)"),
    NBRule(("-ORGX",), "f", _set("ORGX", pivot="sample"), "XDS origin, fast (pixels)"),
    NBRule(("-ORGY",), "f", _set("ORGY", pivot="sample"), "XDS origin, slow (pixels)"),
    NBRule(("-pivot",), "s", _pivot, "detector pivot: sample or beam"),
    NBRule(("-fdet_vector",), "fff", _vector("fdet"), "fast-axis direction"),
    NBRule(("-sdet_vector",), "fff", _vector("sdet"), "slow-axis direction"),
    NBRule(("-odet_vector",), "fff", _vector("odet"), "detector normal",
           note="nonBragg replaces it with fdet x sdet"),
    NBRule(("-beam_vector",), "fff", _vector("beam"), "x-ray beam direction"),
    NBRule(("-polar_vector",), "fff", _vector("polar_vector"), "E vector of the beam"),
    NBRule(("-spindle_axis",), "fff", _vector("spindle"), "spindle axis", note=_UNUSED),
    NBRule(("-twotheta_axis",), "fff", _vector("twotheta_axis"),
           "two-theta rotation axis (used as given, not normalised)"),
    NBRule(("-pix0_vector",), "fff", _pix0, "detector origin",
           note="nonBragg recomputes it from the beam centre and distance"),
    NBRule(("-distance",), "f", _set("distance", _MM, pivot="beam"),
           "sample to direct-beam spot (mm)"),
    NBRule(("-close_distance",), "f", _set("close_distance", _MM, pivot="sample"),
           "sample to detector plane (mm)"),
    NBRule(("-source_distance",), "f", _set("source_distance", _MM),
           "distance of generated source points (mm; printed only)"),
    NBRule(("-twotheta",), "f", _set("detector_twotheta", _DEG, pivot="sample"),
           "detector two-theta swing (degrees)"),
    NBRule(("-detector_rotx",), "f", _set("detector_rotx", _DEG),
           "detector rotation about x (degrees)"),
    NBRule(("-detector_roty",), "f", _set("detector_roty", _DEG),
           "detector rotation about y (degrees)"),
    NBRule(("-detector_rotz",), "f", _set("detector_rotz", _DEG),
           "detector rotation about z (degrees)"),
    NBRule(("-detsize",), "f", _mm("detsize_x", "detsize_y"), "detector size (mm)",
           exact_len=8),
    NBRule(("-detsize_x",), "f", _set("detsize_x", _MM), "detector fast size (mm)"),
    NBRule(("-detsize_y",), "f", _set("detsize_y", _MM), "detector slow size (mm)"),
    NBRule(("-detpixels",), "i", _both("fpixels", "spixels"), "detector size (pixels)",
           exact_len=10),
    NBRule(("-detpixels_f", "-detpixels_x"), "i", _set("fpixels"), "fast pixels"),
    NBRule(("-detpixels_s", "-detpixels_y"), "i", _set("spixels"), "slow pixels"),
    NBRule(("-curved_det",), "", _flag(curved_detector=True),
           "every pixel at the same distance from the sample", need=1),
    NBRule(("-pixel",), "f", _set("pixel_size", _MM), "pixel size (mm)"),
    NBRule(("-point_pixel",), "", _flag(point_pixel=True),
           "solid angle 1/distance^2 (no pixel obliquity)"),
    NBRule(("-Fmap",), "", _flag(Fmap=True), "write F (not intensity) of every pixel"),
    NBRule(("-polar",), "f", _set("polarization", nopolar=False), "Kahn polarization factor",
           exact_len=6),
    NBRule(("-nopolar",), "", _flag(nopolar=True), "no polarization correction"),
    NBRule(("-oversample",), "i", _set("oversample"), "sub-pixels per pixel edge"),
    NBRule(("-roi",), "iiii", _roi, "render only xmin xmax ymin ymax (pixels)"),
    NBRule(("-lambda", "-wave"), "f", _set("lambda0", lambda x: x / 1.0e10), "wavelength (Å)"),
    NBRule(("-energy",), "f", _energy, "photon energy (eV)"),
    NBRule(("-fluence",), "f", _set("fluence"), "photons per m^2"),
    NBRule(("-flux",), "f", _set("flux"), "photons per second"),
    NBRule(("-exposure",), "f", _set("exposure"), "exposure time (s)"),
    NBRule(("-beamsize",), "f", _set("beamsize", lambda x: x / 1000),
           "beam size (mm, square; clips the sample)"),
    NBRule(("-dispersion",), "f", _set("dispersion", lambda x: x / 100.0),
           "spectral dispersion (percent)"),
    NBRule(("-dispsteps",), "i", _set("dispsteps"), "wavelengths"),
    NBRule(("-divergence",), "f", _mm("hdivrange", "vdivrange"),
           "divergence in both directions (mrad)"),
    NBRule(("-hdivrange",), "f", _set("hdivrange", _MRAD), "horizontal divergence (mrad)"),
    NBRule(("-vdivrange",), "f", _set("vdivrange", _MRAD), "vertical divergence (mrad)"),
    NBRule(("-hdivstep",), "f", _set("hdivstep", _MRAD), "horizontal divergence step (mrad)",
           exact_len=9),
    NBRule(("-hdivsteps",), "i", _set("hdivsteps"), "horizontal divergence steps"),
    NBRule(("-vdivstep",), "f", _set("vdivstep", _MRAD), "vertical divergence step (mrad)",
           exact_len=9),
    NBRule(("-vdivsteps",), "i", _set("vdivsteps"), "vertical divergence steps"),
    NBRule(("-divsteps",), "i", _both("hdivsteps", "vdivsteps"),
           "divergence steps in both directions"),
    NBRule(("-round_div",), "", _flag(round_div=True), "trim the divergence grid to an ellipse"),
    NBRule(("-square_div",), "", _flag(round_div=False), "full divergence grid"),
    NBRule(("-adc",), "f", _set("adc_offset"), "offset added to SMV pixels"),
    NBRule(("-gain",), "f", _set("quantum_gain"), "-img pixels per photon", note=_IMG_ONLY),
    NBRule(("-phi",), "f", _set("phi0", _DEG), "spindle angle (degrees; SMV header only)",
           exact_len=4),
    NBRule(("-osc",), "f", _set("osc", _DEG), "oscillation range (degrees; SMV header only)"),
    NBRule(("-phistep",), "f", _set("phistep", _DEG), "spindle step (degrees; header only)",
           exact_len=8),
    NBRule(("-phisteps",), "i", _set("phisteps"), "spindle steps (SMV header only)"),
    NBRule(("-img",), "s", _set("img_path"),
           "SMV image: its header sets the geometry; F vs sin(theta)/lambda goes to -stolout"),
    NBRule(("-ignore",), "f", _ignore, "-img pixel value to skip (repeatable)",
           note=_IMG_ONLY),
    NBRule(("-stolout",), "s", _set("stolout_path"), "F vs sin(theta)/lambda from -img",
           min_len=7, note=_IMG_ONLY),
    NBRule(("-stol",), "s", _stol("-stol", 1e10), "F of one molecule vs sin(theta)/lambda (Å)",
           exact_len=5),
    NBRule(("-4stol",), "s", _stol("-4stol", 1e10 / 4), "F vs 4 sin(theta)/lambda (Å)",
           exact_len=6),
    NBRule(("-Q",), "s", _stol("-Q", 1e10 / math.pi / 4), "F vs Q = 4 pi sin(theta)/lambda",
           exact_len=2),
    NBRule(("-sourcefile",), "s", _set("source_path"), "x y z weight lambda per source"),
    NBRule(("-floatfile", "-floatimage"), "s", _set("float_path"), "raw float32 image"),
    NBRule(("-intfile", "-intimage"), "s", _set("int_path"), "noiseless SMV image"),
    NBRule(("-pgmfile", "-pgmimage"), "s", _set("pgm_path"), "8-bit PGM image"),
    NBRule(("-noisefile", "-noiseimage"), "s", _set("noise_path", calculate_noise=True),
           "SMV image with Poisson noise"),
    NBRule(("-nonoise",), "", _flag(calculate_noise=False), "no noise image"),
    NBRule(("-nopgm",), "", _flag(output_pgm=False), "no PGM image",
           note="nonBragg writes the PGM anyway"),
    NBRule(("-noreject",), "", _flag(), "no outlier rejection for -stolout", note=_UNUSED),
    NBRule(("-scale",), "f", _set("intfile_scale"), "scale of the SMV image (default auto)"),
    NBRule(("-pgmscale",), "f", _set("pgm_scale"), "scale of the PGM image (default auto)"),
    NBRule(("-coherent",), "", _flag(coherent=True), "coherent sources", note=_UNUSED),
    NBRule(("-printout",), "", _flag(printout=True), "print pixel values"),
    NBRule(("-noprogress",), "", _flag(progress=False), "no progress meter"),
    NBRule(("-progress",), "", _flag(progress=True), "progress meter"),
    NBRule(("-printout_pixel",), "ii", _printout_pixel, "print one pixel: fast slow"),
    NBRule(("-seed",), "i", _seed, "noise seed"),
)

# Where one if of the C program lists two spellings, matching both is one option.
_QUIET_SIDE = {("-printout_pixel", "-printout")}


@dataclass
class ParsedNB:
    """The C variables after the scan, warnings, and torchbragg's own options."""

    state: NBState
    warnings: list[str] = field(default_factory=list)
    extensions: dict = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # printed while reading -img


# torchbragg's own options for this command: name -> number of values
OWN_OPTIONS = {"--allow-unknown": 0, "--device": 1, "--chunk-elements": 1, "--debug": 0,
               "--help": 0, "--version": 0}

def _strict(option: str, kind: str, text: str):
    """A value the user meant: a finite number where one is expected, not another option."""
    if text.startswith("-") and not is_number(text) and any(r.matched(text) for r in RULES):
        raise UsageError(f"option {option}: expected a value, got the option {text}")
    return strict_value(option, kind, text)


def _lenient(kind: str, text: str):
    return text if kind == "s" else (c_atoi(text) if kind == "i" else c_atof(text))


def _changed(before: NBState, after: NBState) -> bool:
    def same(x, y):
        return x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)

    return any(not same(getattr(before, k), getattr(after, k)) for k in vars(before)
               if k not in ("given", "img_pixels"))


def _apply_token(argv: list[str], i: int, st: NBState, warnings: list[str]) -> int | None:
    """Apply every rule matching ``argv[i]``; return the values taken, None if none matched."""
    token = argv[i]
    matches = [(rule, rule.matched(token)) for rule in RULES]
    matches = [(rule, hit) for rule, hit in matches if hit is not None]
    if not matches:
        return None
    primary, primary_hit = max(matches, key=lambda m: len(m[1]))
    taken = 0
    for rule, hit in matches:
        available = len(argv) - i - 1
        texts = argv[i + 1:i + 1 + len(rule.kinds)]
        if rule is primary:
            if available < rule.required and not rule.kinds:
                warnings.append(f"WARNING: {token} is the last argument; nonBragg ignores it "
                                "there (it wants an argument after it), and so does this run")
                continue
            if available < rule.required:
                raise UsageError(f"option {token}: expected {rule.required} value(s), got "
                                 f"{available}")
            values = [_strict(token, k, t) for k, t in zip(rule.kinds, texts, strict=True)]
            taken = len(rule.kinds)
            warnings.extend(_value_notes(token, rule.kinds, texts))
            if rule.note and rule.note != _IMG_ONLY:
                warnings.append(f"WARNING: {token}: {rule.note}; accepted")
            st.given.add(primary_hit)
        else:
            if available < rule.required:
                continue
            values = [_lenient(k, t) for k, t in zip(rule.kinds, texts, strict=True)]
            trial = copy.deepcopy(replace(st, img_pixels=None))
            rule.apply(trial, values)
            if _changed(st, trial) and (primary_hit, hit) not in _QUIET_SIDE:
                read = " ".join([hit, *texts])
                warnings.append(f"WARNING: {token} also matches nonBragg's option {hit} "
                                f"(options are matched by substring), so this run also "
                                f"applies '{read}' as nonBragg does")
        rule.apply(st, values)
    return taken


def _value_notes(option: str, kinds: str, texts: list[str]) -> list[str]:
    """Warn where atoi reads an integer differently from what it says."""
    notes = []
    for kind, text in zip(kinds, texts, strict=True):
        if kind == "i" and c_atoi(text) != int(float(text)):
            notes.append(f"WARNING: option {option}: '{text}' is read as {c_atoi(text)} "
                         "(nonBragg reads integers with atoi), and so does this run")
    return notes


def _nanobragg_rule(token: str):
    """The nanoBragg option ``token`` is, or None."""
    hits = [r for r in NANOBRAGG_RULES if r.matches(token)]
    return max(hits, key=lambda r: len(r.pattern)) if hits else None


def _nanobragg_values(rule, argv: list[str], i: int) -> int:
    """How many arguments after a nanoBragg-only option are its values."""
    rest = argv[i + 1:]
    if rule.pattern == "-misset" and rest and "rand" in rest[0]:
        return 1
    n = rule.nargs if rule.nargs >= 0 else 6
    count = 0
    while count < n and count < len(rest) and (not rest[count].startswith("-")
                                              or is_number(rest[count])):
        count += 1
    return count


def suggest(token: str) -> str:
    """The nonBragg option nearest to an unknown one, as ' (did you mean -x?)' or ''."""
    return parse.suggest(token, [p.lstrip("=") for r in RULES for p in r.patterns])


def parse_nonbragg(argv: list[str], read_img=None) -> ParsedNB:
    """Scan ``argv`` (without the program name) as nonBragg does.

    Like the C program, ``-img`` is found first: ``read_img(state) -> lines``, when given,
    then sets the header's geometry as defaults that the options override (its lines are
    kept in :attr:`ParsedNB.messages`).

    Raises
    ------
    UsageError
        For a missing or malformed value of the option meant, or (without
        ``--allow-unknown``) an argument no option reads.
    """
    argv, ext = split_own_options(list(argv), OWN_OPTIONS, "torchbragg-nonbragg")
    st = NBState()
    for i, token in enumerate(argv[:-1]):
        if token.startswith("-") and "-img" in token:
            st.img_path = argv[i + 1]
    messages = read_img(st) if read_img is not None and st.img_path is not None else []
    warnings: list[str] = []

    def unmatched(args: list[str], i: int, problems: list[str]) -> int:
        token = args[i]
        nano = _nanobragg_rule(token)
        if nano is not None:
            warnings.append(f"WARNING: {token} is a nanoBragg option that nonBragg does not "
                            "read; ignored, as nonBragg ignores it")
            return _nanobragg_values(nano, args, i)
        problems.append(f"unknown option {token}{suggest(token)}")
        return values_after(args, i)

    problems = scan_arguments(argv, lambda args, i: _apply_token(args, i, st, warnings),
                              unmatched)
    _report(problems, ext, warnings)
    if st.img_path is None:
        warnings.extend(f"WARNING: {rule.name} is used only with -img; accepted and ignored"
                        for rule in RULES if rule.note == _IMG_ONLY
                        and any(p.lstrip("=") in st.given for p in rule.patterns))
    return ParsedNB(state=st, warnings=warnings, extensions=ext, messages=messages)


def _report(problems: list[str], ext: dict, warnings: list[str]) -> None:
    report_problems(problems, ext, warnings, "nonBragg")


def usage_text() -> str:
    """The options, one line each (from the table above)."""
    lines = ["usage: torchbragg-nonbragg -stol water.stol [options]",
             "  (nonBragg's command line: amorphous scattering from F vs sin(theta)/lambda; "
             "options match by substring as in nonBragg)"]
    for rule in RULES:
        names = ", ".join(p.lstrip("=") for p in rule.patterns)
        gap = "\n" + " " * 25 if len(names) > 22 else " " * (23 - len(names))
        note = f" ({rule.note})" if rule.note else ""
        lines.append(f"  {names}{gap}{rule.help}{note}")
    lines += ["torchbragg-nonbragg's own options:",
              "  --device cpu|cuda         where to render",
              "  --chunk-elements N        pixel x sub-pixel x source steps per chunk",
              "  --allow-unknown           warn about options nonBragg ignores instead of "
              "stopping",
              "  --debug                   show the traceback of an internal error",
              "  -h, -help, --help         print this text and exit",
              "  --version                 print torchbragg's version and exit"]
    return "\n".join(lines)
