"""The TOML spec of a dataset, checked whole before any work, and per-shot draws.

Keys (every other key is an error)::

    base  = "-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -detpixels 32"  # required
    shots = 100          # required, integer >= 1
    seed  = 1            # required, integer >= 0
    geometry = "jungfrau.geom"  # optional: panels that replace base's detector; or a table
                                # [geometry] file = "det.expt", clen_mm = 120 (clen for a
                                # .geom that reads it from image headers)

    [vary]               # optional; each key optional
    orientation = "random"                                  # uniform over rotations
    N = {distribution = "uniform", low = 4, high = 6}       # cells per axis (Na, Nb, Nc)
    mosaic_spread_deg = {distribution = "normal", mean = 0.05, sigma = 0.01}
    fluence = {distribution = "fixed", value = 1e30}        # photons per m^2
    wavelength_A = 1.0                                      # a number: fixed

    [vary.spectrum]      # optional: a new spectrum every shot, around the shot's wavelength
    model = "sase"       # "sase" (spiky, drawn per shot) or "gaussian" (smooth); required
    bandwidth_percent = 0.25                                # envelope FWHM, % of the wavelength
    spike_fwhm_percent = 0.0125                             # sase: one spike's FWHM, %
    sources = 32         # equal-weight wavelengths each shot is rendered with, 1 to 4096
    bins = 512           # grid the spectrum is drawn on (and recorded), 8 to 65536

    [output]             # optional
    compression = "auto"                                    # auto, bslz4, gzip, none

    [background]         # optional: amorphous sample (nonBragg), AmorphousSample
    stol = "water.stol"  # required in the table; F(sin(theta)/lambda) file, spec-relative
    thickness_mm = 0.1   # along the beam, mm, >= 0; may be a distribution (drawn per shot)
    width_mm = 0.1       # mm, >= 0
    height_mm = 0.1      # mm, >= 0
    density_g_per_cm3 = 1.0                                 # g/cm^3, >= 0
    molecular_weight = 18.0                                 # g/mol, > 0

    [detector]           # optional: detector response (noisify), DetectorResponse
    psf = "gauss"        # "gauss", "fiber" or "none" (default: none)
    psf_fwhm_px = 0.0    # PSF FWHM, pixels, >= 0 (0: no PSF)
    psf_radius = 4       # integer >= 1, pixels (default: automatic)
    gain = 1.0           # ADU per photon, > 0
    adc_offset = 40.0    # ADU
    readout = 0.0        # read-out noise, rms ADU, >= 0 (with noise)
    flicker = 0.0        # fractional rms, >= 0 (with noise)
    calibration = 0.03   # fractional rms, >= 0 (with noise; the same in every shot)
    noise = false        # Poisson counts, flicker, calibration and read-out noise

``base`` is a nanoBragg command line; file names in it (``-mat``, ``-hkl``, ...) are taken
relative to the spec file's folder. Output options in it are ignored.

``geometry`` names a CrystFEL ``.geom`` file or a DIALS experiment list (``.expt`` or
``.json``, its first experiment's detector), relative to the spec's folder; its panels replace
the base detector (the base keeps the sensor: thickness, attenuation). Each shot's image holds
the panels where a CrystFEL file's min_ss/min_fs put them (the file's raw data layout),
otherwise one below the other (see :mod:`torchbragg.dataset.layout`). The file's frame is
mapped to the base's lab frame with the beam along the base's beam and "up" along
polarization x beam (for MOSFLM: +y).

``vary.spectrum`` renders each shot with ``sources`` wavelengths at the quantiles of a
spectrum centred on the shot's wavelength (``vary.wavelength_A`` or the base's): a Gaussian
envelope of FWHM ``bandwidth_percent`` and, for ``sase``, random spikes of FWHM
``spike_fwhm_percent`` (default: the bandwidth / 20), which must span three bins of the grid
(+-2 FWHM in ``bins`` points); see :mod:`torchbragg.spectrum`. The base must not set
``-dispersion``, ``-dispsteps`` or ``-sourcefile``; divergence is kept (every divergence
direction gets every wavelength).

Distributions: ``{distribution = "uniform", low, high}`` (low <= high),
``{distribution = "normal", mean, sigma}`` (sigma >= 0), ``{distribution = "fixed", value}``
or a bare number (fixed). ``N`` draws Na, Nb and Nc independently; normal draws of ``N`` are
clipped at 1 and of ``mosaic_spread_deg`` at 0. ``fluence`` and ``wavelength_A`` must be
positive: their uniform ``low`` must be > 0 and their normal ``mean - 6 sigma`` > 0.
``mosaic_spread_deg`` needs mosaic domains in ``base`` (a nonzero ``-mosaic`` and
``-mosaic_dom`` > 1). ``background.thickness_mm`` takes
the same distributions; a normal draw is clipped at 0, a uniform or fixed one must be >= 0.
Keys left out of ``[background]`` and ``[detector]`` take the defaults above (those of
:class:`torchbragg.composite.AmorphousSample` and :class:`~torchbragg.composite.DetectorResponse`).

Determinism: shot ``i`` draws its rotation from ``orientation.random_rotations(1, [seed, i,
0])`` and its other values from ``numpy.random.default_rng([seed, i, 1])`` in the order N,
mosaic_spread_deg, fluence, wavelength_A, then background.thickness_mm (appended, so specs
without it draw as before); a SASE spectrum from ``default_rng([seed, i, 4])``. With
``detector.noise`` shot ``i``'s noise comes from a ``torch.Generator`` seeded with
:func:`noise_seed` (``numpy.random.SeedSequence([seed, i, 2])``), its calibration error from
one seeded with :func:`calibration_seed` (``SeedSequence([seed, 3])``, the same in every
shot, as in noisify); nothing else (workers, order of completion) enters.

Every problem is one :class:`SpecError` line naming the key.
"""

from __future__ import annotations

import math
import os
import shlex
from dataclasses import dataclass, field

import numpy as np

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

__all__ = ["DatasetSpec", "Distribution", "SpecError", "calibration_seed", "load_spec",
           "noise_seed", "parse_spec", "shot_draws", "shot_spectrum"]

TOP_KEYS = ("base", "shots", "seed", "vary", "output", "background", "detector", "geometry")
GEOMETRY_KEYS = ("file", "clen_mm")
SPECTRUM_KEYS = ("model", "bandwidth_percent", "spike_fwhm_percent", "sources", "bins")
MAX_SPECTRUM_SOURCES = 4096  # wavelengths per shot
MAX_SPECTRUM_BINS = 65536    # spectrum grid points (kept per shot in the truth)
# options the spectrum's sources replace
SOURCE_OPTIONS = ("-dispersion", "-dispsteps", "-sourcefile")
BACKGROUND_KEYS = ("stol", "thickness_mm", "width_mm", "height_mm", "density_g_per_cm3",
                   "molecular_weight")
DETECTOR_KEYS = ("psf", "psf_fwhm_px", "psf_radius", "gain", "adc_offset", "readout", "flicker",
                 "calibration", "noise")
PSF_KINDS = ("gauss", "fiber", "none")
VARY_KEYS = ("orientation", "N", "mosaic_spread_deg", "fluence", "wavelength_A", "spectrum")
SCALAR_KEYS = ("N", "mosaic_spread_deg", "fluence", "wavelength_A")
POSITIVE = ("fluence", "wavelength_A")
COMPRESSIONS = ("auto", "bslz4", "gzip", "none")
# nanoBragg options whose next argument is an input file.
FILE_OPTIONS = ("-mat", "-hkl", "-sourcefile", "-img", "-mask", "-matrix", "-cell_file")
DIST_FIELDS = {"uniform": ("low", "high"), "normal": ("mean", "sigma"), "fixed": ("value",)}


class SpecError(ValueError):
    """A dataset spec that cannot be run (one line naming the key)."""


@dataclass(frozen=True)
class Distribution:
    """One varied scalar: ``kind`` is uniform, normal or fixed; ``a``, ``b`` its numbers."""

    kind: str
    a: float
    b: float = 0.0

    def draw(self, rng: np.random.Generator, size: int | None = None):
        """Values drawn from ``rng`` (fixed: no draw, the value)."""
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b, size)
        if self.kind == "normal":
            return rng.normal(self.a, self.b, size)
        return self.a if size is None else np.full(size, self.a)


@dataclass(frozen=True)
class DatasetSpec:
    """A checked spec: the base arguments (paths resolved), shot count, seed, what varies."""

    text: str
    base: tuple[str, ...]
    shots: int
    seed: int
    orientation: bool = False
    vary: dict = field(default_factory=dict)
    compression: str = "auto"
    background: dict | None = None
    detector: dict | None = None
    geometry: dict | None = None
    spectrum: dict | None = None


def load_spec(path: str | os.PathLike) -> DatasetSpec:
    """Read and check the spec file at ``path``; :class:`SpecError` on any problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise SpecError(f"cannot read the spec {os.fspath(path)!r}: {err.strerror}") from None
    return parse_spec(text, os.path.dirname(os.path.abspath(path)))


def parse_spec(text: str, folder: str = ".") -> DatasetSpec:
    """Check spec ``text``; relative paths in ``base`` are taken from ``folder``."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"malformed TOML: {err}") from None
    _unknown(table, TOP_KEYS, "")
    for key in ("base", "shots", "seed"):
        if key not in table:
            raise SpecError(f"missing key {key!r}")
    shots = _integer(table["shots"], "shots", 1)
    seed = _integer(table["seed"], "seed", 0)
    base = _base(table["base"], folder)
    vary = table.get("vary", {})
    if not isinstance(vary, dict):
        raise SpecError("vary must be a table")
    _unknown(vary, VARY_KEYS, "vary.")
    orientation = _orientation(vary.get("orientation"))
    dists = {k: _distribution(vary[k], k) for k in SCALAR_KEYS if k in vary}
    if "mosaic_spread_deg" in dists and not _mosaic_domains(base):
        raise SpecError("vary.mosaic_spread_deg needs mosaic domains in base: a nonzero "
                        "-mosaic spread and -mosaic_dom > 1")
    return DatasetSpec(text, base, shots, seed, orientation, dists, _compression(table),
                       _background(table, folder), _detector(table),
                       _geometry(table.get("geometry"), folder), _spectrum(vary, base))


def _unknown(table: dict, allowed: tuple[str, ...], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"unknown key '{prefix}{key}'; known: {', '.join(allowed)}")


def _integer(value, key: str, least: int, most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SpecError(f"{key} must be an integer >= {least}, got {value!r}")
    if most is not None and value > most:
        raise SpecError(f"{key} must be at most {most}, got {value!r}")
    return value


def _base(value, folder: str) -> tuple[str, ...]:
    if not isinstance(value, str) or not value.strip():
        raise SpecError("base must be a nanoBragg command line (a non-empty string)")
    try:
        argv = shlex.split(value)
    except ValueError as err:
        raise SpecError(f"base: {err}") from None
    out = list(argv)
    for k, arg in enumerate(argv[:-1]):
        if arg in FILE_OPTIONS:
            path = os.path.join(folder, os.path.expanduser(argv[k + 1]))
            if not os.path.isfile(path):
                raise SpecError(f"base: {arg} names a missing file {argv[k + 1]!r}")
            out[k + 1] = os.path.abspath(path)
    return tuple(out)


def _mosaic_domains(base: tuple[str, ...]) -> bool:
    """Whether ``base`` makes mosaic domains: a nonzero -mosaic and -mosaic_dom > 1.

    (nanoBragg keeps one domain at zero spread; with a spread and no -mosaic_dom it takes
    10.)
    """
    spread, domains = _option_number(base, "-mosaic"), _option_number(base, "-mosaic_dom")
    if domains is not None and 0 < int(domains) <= 1:
        return False
    return spread is not None and spread != 0.0 and (domains is None or domains > 1
                                                     or domains <= 0)


def _option_number(base: tuple[str, ...], option: str) -> float | None:
    """The last value ``base`` gives ``option``, as a number (None: not given or not one)."""
    value = None
    for k, arg in enumerate(base[:-1]):
        if arg == option:
            try:
                value = float(base[k + 1])
            except ValueError:
                value = None
    return value if value is not None and math.isfinite(value) else None


def _orientation(value) -> bool:
    if value is None or value == "fixed":
        return False
    if value == "random":
        return True
    raise SpecError(f"vary.orientation must be \"random\" or \"fixed\", got {value!r}")


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _distribution(value, key: str, name: str | None = None) -> Distribution:
    name = name or f"vary.{key}"
    if not isinstance(value, dict):
        dist = Distribution("fixed", _number(value, name))
    else:
        kind = value.get("distribution")
        if kind not in DIST_FIELDS:
            raise SpecError(f"{name}.distribution must be one of uniform, normal, fixed, "
                            f"got {kind!r}")
        fields = DIST_FIELDS[kind]
        _unknown(value, ("distribution", *fields), f"{name}.")
        for f in fields:
            if f not in value:
                raise SpecError(f"{name} ({kind}) needs {f!r}")
        dist = Distribution(kind, *(_number(value[f], f"{name}.{f}") for f in fields))
    _check_range(dist, key, name)
    return dist


def _check_range(dist: Distribution, key: str, name: str) -> None:
    if dist.kind == "uniform" and dist.a > dist.b:
        raise SpecError(f"{name}: low {dist.a:g} > high {dist.b:g}")
    if dist.kind == "normal" and dist.b < 0:
        raise SpecError(f"{name}: negative sigma {dist.b:g}")
    low = dist.a - 6 * dist.b if dist.kind == "normal" else dist.a
    if key in POSITIVE and not low > 0:
        raise SpecError(f"{name} must stay > 0 (uniform low > 0, normal mean - 6 sigma > 0)")
    if key == "N" and dist.kind != "normal" and low < 1:
        raise SpecError(f"{name} must be >= 1 cell")
    if key == "mosaic_spread_deg" and dist.kind != "normal" and low < 0:
        raise SpecError(f"{name} must be >= 0 degrees")
    if key == "thickness_mm" and dist.kind != "normal" and low < 0:
        raise SpecError(f"{name} must be >= 0 mm")


def _compression(table: dict) -> str:
    output = table.get("output", {})
    if not isinstance(output, dict):
        raise SpecError("output must be a table")
    _unknown(output, ("compression",), "output.")
    value = output.get("compression", "auto")
    if value not in COMPRESSIONS:
        raise SpecError(f"output.compression must be one of {', '.join(COMPRESSIONS)}, "
                        f"got {value!r}")
    return value


def _table(table: dict, key: str, allowed: tuple[str, ...]) -> dict | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(f"{key} must be a table")
    _unknown(value, allowed, f"{key}.")
    return value


def _at_least(value, name: str, least: float, strict: bool = False) -> float:
    number = _number(value, name)
    if number < least or (strict and number == least):
        raise SpecError(f"{name} must be {'>' if strict else '>='} {least:g}, got {value!r}")
    return number


def _background(table: dict, folder: str) -> dict | None:
    """The checked [background] table: AmorphousSample's keys, the stol path resolved."""
    value = _table(table, "background", BACKGROUND_KEYS)
    if value is None:
        return None
    if "stol" not in value:
        raise SpecError("background needs 'stol' (a sin(theta)/lambda F table file)")
    stol = value["stol"]
    if not isinstance(stol, str) or not stol:
        raise SpecError(f"background.stol must be a file name, got {stol!r}")
    path = os.path.abspath(os.path.join(folder, os.path.expanduser(stol)))
    if not os.path.isfile(path):
        raise SpecError(f"background.stol names a missing file {stol!r}")
    from torchbragg.io.errors import InputFileError
    from torchbragg.stol import read_stol_table

    try:
        read_stol_table(path)
    except InputFileError as err:
        raise SpecError(f"background.stol: {' '.join(str(err).split())}") from None
    out: dict = {"stol": path}
    thickness = _distribution(value.get("thickness_mm", 0.1), "thickness_mm",
                              "background.thickness_mm")
    if thickness.kind == "fixed":
        out["thickness_mm"] = thickness.a
    else:
        out["thickness_mm"] = thickness
    for key, default in (("width_mm", 0.1), ("height_mm", 0.1), ("density_g_per_cm3", 1.0)):
        out[key] = _at_least(value.get(key, default), f"background.{key}", 0.0)
    out["molecular_weight"] = _at_least(value.get("molecular_weight", 18.0),
                                        "background.molecular_weight", 0.0, strict=True)
    return out


def _detector(table: dict) -> dict | None:
    """The checked [detector] table: DetectorResponse's keys."""
    value = _table(table, "detector", DETECTOR_KEYS)
    if value is None:
        return None
    psf = value.get("psf", "none")
    if psf not in PSF_KINDS:
        raise SpecError(f"detector.psf must be one of {', '.join(PSF_KINDS)}, got {psf!r}")
    out: dict = {"psf": None if psf == "none" else psf,
                 "psf_fwhm_px": _at_least(value.get("psf_fwhm_px", 0.0), "detector.psf_fwhm_px",
                                          0.0),
                 "psf_radius": None}
    if "psf_radius" in value:
        out["psf_radius"] = _integer(value["psf_radius"], "detector.psf_radius", 1)
    out["gain"] = _at_least(value.get("gain", 1.0), "detector.gain", 0.0, strict=True)
    out["adc_offset"] = _number(value.get("adc_offset", 40.0), "detector.adc_offset")
    for key, default in (("readout", 0.0), ("flicker", 0.0), ("calibration", 0.03)):
        out[key] = _at_least(value.get(key, default), f"detector.{key}", 0.0)
    noise = value.get("noise", False)
    if not isinstance(noise, bool):
        raise SpecError(f"detector.noise must be true or false, got {noise!r}")
    out["noise"] = noise
    return out


def _geometry(value, folder: str) -> dict | None:
    """The checked geometry: {"path", "kind" (crystfel, dials), "clen_m"}; the file is read."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"file": value}
    if not isinstance(value, dict):
        raise SpecError(f"geometry must be a file name or a table, got {value!r}")
    _unknown(value, GEOMETRY_KEYS, "geometry.")
    name = value.get("file")
    if not isinstance(name, str) or not name:
        raise SpecError(f"geometry.file must be a file name, got {name!r}")
    path = os.path.abspath(os.path.join(folder, os.path.expanduser(name)))
    if not os.path.isfile(path):
        raise SpecError(f"geometry names a missing file {name!r}")
    kind = "crystfel" if path.lower().endswith(".geom") else "dials"
    if kind == "dials" and not path.lower().endswith((".expt", ".json")):
        raise SpecError(f"geometry: {name!r} is neither a CrystFEL .geom file nor a DIALS "
                        "experiment list (.expt, .json)")
    clen_m = None
    if "clen_mm" in value and kind == "dials":
        raise SpecError("geometry.clen_mm applies to a CrystFEL .geom file (a DIALS "
                        "experiment list places its panels itself)")
    if "clen_mm" in value:
        clen_m = _at_least(value["clen_mm"], "geometry.clen_mm", 0.0, strict=True) * 1e-3
    out = {"path": path, "kind": kind, "clen_m": clen_m}
    read_geometry(out)
    return out


def read_geometry(geometry: dict, to_lab: np.ndarray | None = None):
    """The panels of a checked ``geometry`` (see :func:`_geometry`), mapped with ``to_lab``.

    Returns a :class:`torchbragg.panels.MultiPanelDetector`; a bad file is a SpecError.
    """
    from torchbragg.io.errors import InputFileError

    try:
        if geometry["kind"] == "crystfel":
            from torchbragg.panels import read_crystfel_geom

            return read_crystfel_geom(geometry["path"], clen_m=geometry["clen_m"],
                                      to_lab=to_lab)
        from torchbragg.io.dials import read_dials_detector

        return read_dials_detector(geometry["path"], to_lab=to_lab)
    except (InputFileError, ValueError) as err:
        raise SpecError(f"geometry: {' '.join(str(err).split())}") from None


def _spectrum(vary: dict, base: tuple[str, ...]) -> dict | None:
    """The checked vary.spectrum table, defaults filled in."""
    value = vary.get("spectrum")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError("vary.spectrum must be a table")
    _unknown(value, SPECTRUM_KEYS, "vary.spectrum.")
    model = value.get("model")
    if model not in ("sase", "gaussian"):
        raise SpecError(f"vary.spectrum.model must be \"sase\" or \"gaussian\", got {model!r}")
    if model == "gaussian" and "spike_fwhm_percent" in value:
        raise SpecError("vary.spectrum.spike_fwhm_percent applies to the sase model only")
    given = [opt for opt in SOURCE_OPTIONS if opt in base]
    if given:
        raise SpecError(f"vary.spectrum makes the sources: remove {', '.join(given)} from base")
    if "bandwidth_percent" not in value:
        raise SpecError("vary.spectrum needs 'bandwidth_percent'")
    bandwidth = _at_least(value["bandwidth_percent"], "vary.spectrum.bandwidth_percent", 0.0,
                          strict=True)
    if bandwidth >= 100.0 / 2.0 / 2.0:
        raise SpecError("vary.spectrum.bandwidth_percent must be below 25 (the grid reaches "
                        "two FWHM either side)")
    out = {"model": model, "bandwidth_percent": bandwidth,
           "sources": _integer(value.get("sources", 32), "vary.spectrum.sources", 1,
                               MAX_SPECTRUM_SOURCES),
           "bins": _integer(value.get("bins", 512), "vary.spectrum.bins", 8,
                            MAX_SPECTRUM_BINS)}
    if model == "sase":
        out["spike_fwhm_percent"] = _at_least(value.get("spike_fwhm_percent", bandwidth / 20),
                                              "vary.spectrum.spike_fwhm_percent", 0.0,
                                              strict=True)
        try:
            from torchbragg.spectrum import sase_spectrum

            sase_spectrum(np.random.default_rng(0), 1.0, bandwidth, out["spike_fwhm_percent"],
                          out["bins"])
        except ValueError as err:
            raise SpecError(f"vary.spectrum: {err}") from None
    return out


def shot_spectrum(spec: DatasetSpec, index: int, centre_A: float):
    """Shot ``index``'s spectrum around ``centre_A`` (Å), from (seed, index) only."""
    from torchbragg.spectrum import gaussian_spectrum, sase_spectrum

    s = spec.spectrum
    if s["model"] == "gaussian":
        return gaussian_spectrum(centre_A, s["bandwidth_percent"], s["bins"])
    rng = np.random.default_rng([spec.seed, index, 4])
    return sase_spectrum(rng, centre_A, s["bandwidth_percent"], s["spike_fwhm_percent"],
                         s["bins"])


def noise_seed(spec: DatasetSpec, index: int) -> int:
    """The seed of shot ``index``'s noise generator (63 bits), from (seed, index) only."""
    return int(np.random.SeedSequence([spec.seed, index, 2]).generate_state(1, np.uint64)[0] >> 1)


def calibration_seed(spec: DatasetSpec) -> int:
    """The seed of the calibration error (the same in every shot), from the seed only."""
    return int(np.random.SeedSequence([spec.seed, 3]).generate_state(1, np.uint64)[0] >> 1)


def shot_draws(spec: DatasetSpec, index: int) -> dict:
    """The values shot ``index`` sets, from (seed, index) only.

    Returns
    -------
    dict
        ``rotation`` (3, 3) when the orientation varies; ``N`` (3,), ``mosaic_spread_deg``,
        ``fluence``, ``wavelength_A`` for those that vary; ``thickness_mm`` with a
        ``[background]`` (drawn last when it varies, else its fixed value).
    """
    from torchbragg.orientation import random_rotations

    out: dict = {}
    if spec.orientation:
        out["rotation"] = random_rotations(1, [spec.seed, index, 0])[0]
    rng = np.random.default_rng([spec.seed, index, 1])
    for key in SCALAR_KEYS:
        dist = spec.vary.get(key)
        if dist is None:
            continue
        if key == "N":
            out[key] = np.maximum(np.asarray(dist.draw(rng, 3), dtype=np.float64), 1.0)
        elif key == "mosaic_spread_deg":
            out[key] = max(float(dist.draw(rng)), 0.0)
        else:
            out[key] = float(dist.draw(rng))
    if spec.background is not None:
        thickness = spec.background["thickness_mm"]
        if isinstance(thickness, Distribution):
            thickness = max(float(thickness.draw(rng)), 0.0)
        out["thickness_mm"] = float(thickness)
    return out
