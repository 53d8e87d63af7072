"""Multi-panel detectors: panels placed anywhere in the lab, rendered with one experiment.

Frame and conventions
---------------------
Every vector here is in the *experiment's* lab frame, the frame nanoBragg uses for the
experiment's convention (MOSFLM, the default: the beam runs along +x, +y is up and +z
completes the right-handed frame, so MOSFLM's fast axis is +z and its slow axis -y). Lengths
are millimetres in :class:`Panel` and metres inside the simulator.

A :class:`Panel` is placed as nanoBragg places its one detector: the centre of pixel
(slow ``s``, fast ``f``) is at ``origin + (f + 0.5) p fast + (s + 0.5) p slow`` with ``p`` the
pixel size, ``origin`` (nanoBragg's pix0) the outer corner of the first pixel and the panel
normal ``fast x slow``. No convention, pivot or beam centre is applied to a panel: it sits
exactly where its vectors say (see :func:`render_panels`).

CrystFEL geometry files (:func:`read_crystfel_geom`) use their own lab frame: right-handed,
+z along the beam (away from the source), +y up, +x therefore horizontal (to the left when
looking along the beam). They are mapped to the experiment's frame by CrystFEL z -> ``beam``,
y -> ``up`` and x -> ``up x beam``; for MOSFLM (beam +x, up +y) that is
a CrystFEL vector (x, y, z) becomes the lab vector (z, y, -x), i.e. lab = M @ crystfel with
M = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]].

>>> import torchbragg as tb
>>> from torchbragg.panels import render_panels, split_detector
>>> exp = tb.Experiment(detector=tb.detector(pixels=(48, 40), distance_mm=100),
...                     crystal=tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=5),
...                     beam=tb.beam(wavelength_A=6.2),
...                     structure_factors=tb.structure_factors(default_F=100))
>>> images = render_panels(exp, split_detector(exp.config, slow_parts=2))
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call

from torchbragg.config import DetectorConfig, SimulationConfig
from torchbragg.geometry import DBL_MIN, DetectorFrame, dot
from torchbragg.io.errors import InputFileError, parse_number, read_input_bytes, show_text
from torchbragg.models._params import parameter
from torchbragg.models.detector import Detector
from torchbragg.simulator import Simulator

__all__ = [
    "MOSFLM_FROM_CRYSTFEL",
    "MultiPanelDetector",
    "Panel",
    "PanelDetector",
    "PanelRenderer",
    "crystfel_geom_text",
    "crystfel_to_lab",
    "edge_on",
    "panel_config",
    "panel_simulator",
    "read_crystfel_geom",
    "render_panels",
    "split_detector",
]


# -- panels ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Panel:
    """One flat rectangular panel of pixels, placed in the experiment's lab frame.

    Attributes
    ----------
    name:
        Unique name (the key of its image in :func:`render_panels`).
    fpixels, spixels:
        Pixels along the fast and slow axes; its image is (spixels, fpixels).
    pixel_size_mm:
        Edge of a square pixel (mm).
    origin_mm:
        (3,) lab position of the outer corner of the first pixel (nanoBragg's pix0), mm.
    fast, slow:
        (3,) unit vectors along the fast and slow pixel axes (lab frame); they should be
        perpendicular. The normal is ``fast x slow`` and should point away from the sample.
    data_origin:
        (slow, fast) index of the panel's first pixel in the detector's raw data array (a
        CrystFEL file's min_ss, min_fs), or None; datasets place the panel there.
    """

    name: str
    fpixels: int
    spixels: int
    pixel_size_mm: float
    origin_mm: tuple
    fast: tuple
    slow: tuple
    data_origin: tuple | None = None

    def __post_init__(self):
        if int(self.fpixels) <= 0 or int(self.spixels) <= 0:
            raise ValueError(f"panel {self.name}: pixel counts must be positive, got "
                             f"{self.fpixels} x {self.spixels}")
        if not float(self.pixel_size_mm) > 0:
            raise ValueError(f"panel {self.name}: pixel size must be positive, got "
                             f"{self.pixel_size_mm}")
        for field_name in ("origin_mm", "fast", "slow"):
            v = np.asarray(getattr(self, field_name), dtype=np.float64).reshape(-1)
            if v.shape != (3,) or not np.isfinite(v).all():
                raise ValueError(f"panel {self.name}: {field_name} must be 3 finite numbers")
            object.__setattr__(self, field_name, tuple(float(x) for x in v))
        for field_name in ("fast", "slow"):
            if not abs(np.linalg.norm(getattr(self, field_name)) - 1.0) < 1e-9:
                raise ValueError(f"panel {self.name}: {field_name} must be a unit vector")
        if self.data_origin is not None:
            corner = tuple(int(x) for x in self.data_origin)
            if len(corner) != 2 or min(corner) < 0:
                raise ValueError(f"panel {self.name}: data_origin must be two indices >= 0")
            object.__setattr__(self, "data_origin", corner)

    @property
    def normal(self) -> tuple:
        """(3,) unit normal, ``fast x slow`` or its opposite: pointing away from the sample.

        A mirrored panel (fs/ss paired the other way round) has ``fast x slow`` towards the
        sample; the normal is flipped so that its distance and solid angles stay positive.
        """
        n = np.cross(self.fast, self.slow)
        n = n / np.linalg.norm(n)
        centre = (np.asarray(self.origin_mm) + np.asarray(self.fast) * self.fpixels
                  * self.pixel_size_mm / 2 + np.asarray(self.slow) * self.spixels
                  * self.pixel_size_mm / 2)
        if float(n @ centre) < 0:
            n = -n
        return tuple(float(x) + 0.0 for x in n)

    def pixel_centres_mm(self) -> np.ndarray:
        """(spixels, fpixels, 3) lab positions of the pixel centres (mm)."""
        f = (np.arange(self.fpixels) + 0.5) * self.pixel_size_mm
        s = (np.arange(self.spixels) + 0.5) * self.pixel_size_mm
        return (np.asarray(self.origin_mm) + f[None, :, None] * np.asarray(self.fast)
                + s[:, None, None] * np.asarray(self.slow))


@dataclass(frozen=True)
class MultiPanelDetector:
    """Panels with unique names, and what a geometry file said besides (may be None).

    Attributes
    ----------
    panels:
        The panels, in file order.
    photon_energy_eV:
        Photon energy a geometry file gave (not applied to the experiment).
    """

    panels: tuple
    photon_energy_eV: float | None = None

    def __post_init__(self):
        panels = tuple(self.panels)
        if not panels:
            raise ValueError("a multi-panel detector needs at least one panel")
        names = [p.name for p in panels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"panel names must be unique, repeated: {', '.join(dup)}")
        object.__setattr__(self, "panels", panels)

    def __len__(self) -> int:
        return len(self.panels)

    def __iter__(self):
        return iter(self.panels)

    def __getitem__(self, name: str) -> Panel:
        for p in self.panels:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        """Panel names in order."""
        return [p.name for p in self.panels]


# -- rendering -------------------------------------------------------------------------------

class PanelDetector(Detector):
    """A :class:`Detector` whose frame is fixed: pix0 and the axes of one panel.

    ``pix0_m`` (3,) is a parameter (metres) so a panel's position can be refined; the axes are
    buffers. Rotations, two-theta, pivot and beam centre of the config are not applied.
    """

    def __init__(self, config: DetectorConfig, pix0_m: Sequence[float],
                 dtype: torch.dtype = torch.float64):
        super().__init__(config, dtype)
        self.pix0_m = parameter(tuple(float(x) for x in pix0_m), dtype)

    def frame(self, beam: torch.Tensor) -> DetectorFrame:
        """The panel's frame for incident-beam direction ``beam`` (3,), as nanoBragg reports it."""
        f, s, o, pix0 = self.fdet0, self.sdet0, self.odet0, self.pix0_m
        ratio = dot(beam, o)
        ratio = torch.where(ratio == 0, torch.full_like(ratio, DBL_MIN), ratio)
        close_distance = dot(pix0, o)
        to_spot = close_distance / ratio * beam - pix0
        return DetectorFrame(fdet=f, sdet=s, odet=o, pix0=pix0, close_f=-dot(pix0, f),
                             close_s=-dot(pix0, s), close_distance=close_distance,
                             beam_f=dot(f, to_spot), beam_s=dot(s, to_spot),
                             distance=close_distance / ratio)


def panel_config(config: SimulationConfig, panel: Panel) -> SimulationConfig:
    """``config`` with its detector replaced by ``panel`` (custom convention, sample pivot).

    The sensor (thickness, layers, attenuation, point pixels) is kept; rotations, two-theta,
    ROI and mask are dropped. The detector fields (close distance, Fclose, Sclose, beam
    centre) are set to describe the panel, for reports; :class:`PanelDetector` places it.
    """
    det = config.detector
    if det.curved:
        raise ValueError("multi-panel rendering does not support a curved detector")
    m = 1e-3
    pix0 = np.asarray(panel.origin_mm) * m
    f, s, o = (np.asarray(v) for v in (panel.fast, panel.slow, panel.normal))
    close = float(pix0 @ o)
    beam = np.asarray(config.beam.beam, dtype=np.float64)
    ratio = float(beam @ o) or DBL_MIN
    to_spot = close / ratio * beam - pix0
    new = dataclasses.replace(
        det, convention="custom", pivot="sample", fdet=panel.fast, sdet=panel.slow,
        odet=panel.normal, pixel_size_m=panel.pixel_size_mm * m, fpixels=int(panel.fpixels),
        spixels=int(panel.spixels), distance_m=close / ratio, close_distance_m=close,
        close_f_m=float(-pix0 @ f), close_s_m=float(-pix0 @ s),
        beam_f_m=float(f @ to_spot), beam_s_m=float(s @ to_spot),
        rotations_rad=(0.0, 0.0, 0.0), twotheta_rad=0.0,
        roi=(0, int(panel.fpixels) - 1, 0, int(panel.spixels) - 1))
    return dataclasses.replace(config, detector=new, mask=None)


def panel_simulator(experiment, panel: Panel) -> Simulator:
    """A simulator for one panel that shares the experiment's crystal, beam and structure factors.

    Parameters set on the experiment (``exp.set``, ``requires_grad``) act on the panel too.
    """
    base = experiment.simulator
    sim = Simulator(panel_config(base.config, panel), base.compute_dtype, "cpu", base.kernel,
                    base.say)
    sim.detector = PanelDetector(sim.config.detector, np.asarray(panel.origin_mm) * 1e-3)
    sim.crystal, sim.beam = base.crystal, base.beam
    sim.structure_factors = base.structure_factors
    return sim.to(base.rendered.device)


def edge_on(detector: MultiPanelDetector, beam: Sequence[float]) -> Panel | None:
    """The first panel whose plane holds the beam direction (within 1e-3 rad), or None."""
    beam = np.asarray(beam, dtype=np.float64)
    for panel in detector:
        if abs(float(np.asarray(panel.normal) @ beam)) < 1e-3:
            return panel
    return None


class PanelRenderer:
    """Renders every panel with one experiment; the panels' simulators are built once.

    The simulators share the experiment's crystal, beam and structure-factor modules, so
    values set with ``experiment.set`` apply to later renders. ``simulators`` maps panel
    name -> :class:`Simulator`.
    """

    def __init__(self, experiment, detector: MultiPanelDetector):
        panel = edge_on(detector, experiment.config.beam.beam)
        if panel is not None:
            raise ValueError(f"panel {panel.name} is edge-on to the beam: its frame does not "
                             "match the experiment's convention (for a .geom file pass "
                             "to_lab=crystfel_to_lab(beam, up))")
        self.experiment, self.detector = experiment, detector
        self.simulators = {p.name: panel_simulator(experiment, p) for p in detector}

    def __call__(self, values: Mapping[str, torch.Tensor] | None = None,
                 memory_budget_mb: float | None = None) -> dict[str, torch.Tensor]:
        """Panel name -> (spixels, fpixels) image (photons); see :func:`render_panels`."""
        shared, origins = self._split(values or {})
        subs = self.experiment.substitutions(shared) if shared else {}
        kwargs = dict(memory_budget_mb=memory_budget_mb)
        out = {}
        for name, sim in self.simulators.items():
            mine = dict(subs)
            if name in origins:
                origin = torch.as_tensor(origins[name], dtype=sim.detector.pix0_m.dtype,
                                         device=sim.detector.pix0_m.device)
                mine["detector.pix0_m"] = origin.reshape(3) * 1e-3
            out[name] = (functional_call(sim, mine, (), kwargs, strict=False) if mine
                         else sim(**kwargs))
        return out

    def _split(self, values: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
        """Experiment values, and panel origins (mm) by panel name."""
        shared, origins = {}, {}
        for name, value in values.items():
            if name.startswith("detector."):
                raise ValueError(f"detector parameters do not apply to panels: {name} (move a "
                                 "panel with panels.<name>.origin_mm)")
            if name.startswith("panels."):
                panel, _, what = name[len("panels."):].rpartition(".")
                if what != "origin_mm" or panel not in self.simulators:
                    raise ValueError(f"unknown panel parameter {name!r}; known: "
                                     "panels.<name>.origin_mm for the panels "
                                     f"{', '.join(self.simulators)}")
                origins[panel] = value
            else:
                shared[name] = value
        return shared, origins


def render_panels(experiment, detector: MultiPanelDetector,
                  values: Mapping[str, torch.Tensor] | None = None,
                  memory_budget_mb: float | None = None) -> dict[str, torch.Tensor]:
    """Render every panel with the experiment's crystal, beam, structure factors and sampling.

    Parameters
    ----------
    experiment:
        A :class:`torchbragg.Experiment`; its own detector is not used (only its sensor
        settings: thickness, attenuation, point pixels).
    detector:
        The panels, in the experiment's lab frame.
    values:
        Parameters by name in user units, as for ``Experiment.render`` (not ``detector.*``),
        and ``panels.<name>.origin_mm`` (3,): a panel's first-pixel outer corner (mm, lab
        frame); those that require gradients carry them into the images.
    memory_budget_mb:
        Per panel.

    Returns
    -------
    dict
        Panel name -> (spixels, fpixels) image in photons per pixel (float64).

    Notes
    -----
    Each panel is rendered by its own :class:`Simulator` (one kernel call per panel); every
    pixel gets what the single-panel simulator would give at the same place. To render many
    times, build a :class:`PanelRenderer` once.
    """
    return PanelRenderer(experiment, detector)(values, memory_budget_mb)


# -- splitting one detector ------------------------------------------------------------------

def single_panel(config: SimulationConfig, name: str = "p0") -> Panel:
    """The resolved detector of ``config`` (after pivot and rotations) as one panel."""
    det = Detector(config.detector)
    with torch.no_grad():
        beam = torch.as_tensor(config.beam.beam, dtype=torch.float64)
        frame = det.frame(beam)
    return Panel(name, config.detector.fpixels, config.detector.spixels,
                 config.detector.pixel_size_m * 1e3,
                 tuple(frame.pix0.numpy() * 1e3), tuple(frame.fdet.numpy()),
                 tuple(frame.sdet.numpy()))


def split_detector(config: SimulationConfig, fast_parts: int = 1,
                   slow_parts: int = 1) -> MultiPanelDetector:
    """Cut the single detector of ``config`` into a grid of panels.

    Parameters
    ----------
    config:
        A resolved config (``experiment.config``); its detector is placed as nanoBragg places
        it (convention, pivot, rotations), then cut.
    fast_parts, slow_parts:
        Number of panels along each axis; the pixel counts must divide evenly.

    Returns
    -------
    MultiPanelDetector
        Panels named ``"s{i}f{j}"`` (slow part i, fast part j), slow-major; panel ``s{i}f{j}``
        covers pixels ``[i*ns:(i+1)*ns, j*nf:(j+1)*nf]`` of the single image.
    """
    whole = single_panel(config)
    nf, ns = whole.fpixels // fast_parts, whole.spixels // slow_parts
    if nf * fast_parts != whole.fpixels or ns * slow_parts != whole.spixels:
        raise ValueError(f"cannot cut {whole.fpixels} x {whole.spixels} pixels into "
                         f"{fast_parts} x {slow_parts} equal panels")
    o, f, s = (np.asarray(v) for v in (whole.origin_mm, whole.fast, whole.slow))
    px = whole.pixel_size_mm
    panels = [Panel(f"s{i}f{j}", nf, ns, px, tuple(o + j * nf * px * f + i * ns * px * s),
                    whole.fast, whole.slow)
              for i in range(slow_parts) for j in range(fast_parts)]
    return MultiPanelDetector(tuple(panels))


# -- CrystFEL geometry files -----------------------------------------------------------------

# lab (nanoBragg MOSFLM) = MOSFLM_FROM_CRYSTFEL @ CrystFEL (x, y, z)
MOSFLM_FROM_CRYSTFEL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])

_PANEL_REQUIRED = ("min_fs", "max_fs", "min_ss", "max_ss", "fs", "ss", "corner_x", "corner_y")
_NUMERIC = ("min_fs", "max_fs", "min_ss", "max_ss", "corner_x", "corner_y", "coffset", "res")
_VECTOR_TERM = re.compile(r"([+-]?)\s*(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)?"
                          r"\s*([xyz])")


def crystfel_to_lab(beam: Sequence[float] = (1.0, 0.0, 0.0),
                    up: Sequence[float] = (0.0, 1.0, 0.0)) -> np.ndarray:
    """(3, 3) matrix taking CrystFEL (x, y, z) vectors to the lab frame.

    CrystFEL's z (along the beam) goes to ``beam``, y (up) to ``up``, x to ``up x beam``.
    The defaults are nanoBragg's MOSFLM frame (:data:`MOSFLM_FROM_CRYSTFEL`).
    """
    b = np.asarray(beam, dtype=np.float64)
    u = np.asarray(up, dtype=np.float64)
    b, u = b / np.linalg.norm(b), u / np.linalg.norm(u)
    if abs(b @ u) > 1e-9:
        raise ValueError("beam and up must be perpendicular")
    return np.stack([np.cross(u, b), u, b], axis=1)


@dataclass
class _Entry:
    value: str
    line: int


def _parse_vector(path, entry: _Entry, key: str) -> np.ndarray:
    """A CrystFEL direction such as ``+1.0x -0.0y`` as (3,) floats."""
    text = entry.value.replace(" ", "")
    vec = np.zeros(3)
    pos = 0
    for m in _VECTOR_TERM.finditer(text):
        if m.start() != pos or m.group(0) == "":
            break
        coeff = 1.0 if m.group(2) is None else float(m.group(2))
        vec["xyz".index(m.group(3))] += -coeff if m.group(1) == "-" else coeff
        pos = m.end()
    if pos != len(text) or not text:
        raise InputFileError(path, f"{key}: expected a direction such as '+1.0x -0.0y', got "
                             f"{show_text(entry.value)}", entry.line)
    if not np.linalg.norm(vec) > 0:
        raise InputFileError(path, f"{key}: zero direction", entry.line)
    return vec


def _number(path, entry: _Entry, key: str) -> float:
    value = parse_number(entry.value.encode("latin-1"))
    if value is None or not np.isfinite(value):
        raise InputFileError(path, f"{key}: expected a number, got {show_text(entry.value)}",
                             entry.line)
    return value


def _scan_geom(path, text: str) -> tuple[dict, dict]:
    """Global and per-panel ``key = value`` entries; panels keep the globals set before them."""
    globals_: dict[str, _Entry] = {}
    panels: dict[str, dict[str, _Entry]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise InputFileError(path, f"expected 'key = value', got {show_text(raw)}", number)
        key, value = (part.strip() for part in line.split("=", 1))
        if not key or not value:
            raise InputFileError(path, f"expected 'key = value', got {show_text(raw)}", number)
        if key.startswith(("rigid_group", "bad")):
            continue  # rigid groups and bad regions do not place pixels
        if "/" in key:
            name, prop = key.rsplit("/", 1)
            if not name or not prop:
                raise InputFileError(path, f"malformed key {show_text(key)}", number)
            entries = panels.setdefault(name, dict(globals_))
            entries[prop] = _Entry(value, number)
        else:
            globals_[key] = _Entry(value, number)
    return globals_, panels


def _length_m(text: str) -> float | None:
    """CrystFEL's ``clen``: metres, or a number with ``m``/``mm``; None for a header path."""
    parts = text.split()
    factor = {"m": 1.0, "mm": 1e-3}.get(parts[1] if len(parts) == 2 else "m")
    value = parse_number(parts[0].encode("latin-1")) if parts and len(parts) <= 2 else None
    return None if value is None or factor is None else value * factor


def _energy_eV(text: str) -> float | None:
    """CrystFEL's ``photon_energy``: eV, or a number with ``eV``/``keV``; None otherwise."""
    parts = text.split()
    factor = {"ev": 1.0, "kev": 1e3}.get(parts[1].lower() if len(parts) == 2 else "ev")
    value = parse_number(parts[0].encode("latin-1")) if parts and len(parts) <= 2 else None
    return None if value is None or factor is None else value * factor


def _panel_from_entries(path, name: str, e: dict, to_lab: np.ndarray,
                        clen_m: float | None, last_line: int) -> Panel:
    missing = [k for k in (*_PANEL_REQUIRED, "res", "clen") if k not in e]
    if missing:
        line = max((x.line for x in e.values()), default=last_line)
        raise InputFileError(path, f"panel {name} lacks {', '.join(missing)}", line)
    num = {k: _number(path, e[k], f"{name}/{k}") for k in _NUMERIC if k in e}
    for k in ("min_fs", "max_fs", "min_ss", "max_ss"):
        if num[k] != int(num[k]) or num[k] < 0:
            raise InputFileError(path, f"{name}/{k}: expected a pixel index, got "
                                 f"{show_text(e[k].value)}", e[k].line)
    nf, ns = int(num["max_fs"] - num["min_fs"]) + 1, int(num["max_ss"] - num["min_ss"]) + 1
    if nf <= 0 or ns <= 0:
        raise InputFileError(path, f"panel {name}: max_fs/max_ss below min_fs/min_ss",
                             e["max_ss"].line)
    if not num["res"] > 0:
        raise InputFileError(path, f"{name}: res must be positive (pixels per metre)",
                             e["res"].line)
    clen = _length_m(e["clen"].value)
    if clen is None:
        if clen_m is None:
            raise InputFileError(path, f"clen is read from the image header "
                                 f"({show_text(e['clen'].value)}); give the camera length "
                                 "(clen_m=..., or geometry.clen_mm in a dataset spec)",
                                 e["clen"].line)
        clen = clen_m
    fs, ss = (_parse_vector(path, e[k], f"{name}/{k}") for k in ("fs", "ss"))
    res = num["res"]
    corner = np.array([num["corner_x"] / res, num["corner_y"] / res,
                       clen + num.get("coffset", 0.0)])
    for key, vec in (("fs", fs), ("ss", ss)):
        if abs(np.linalg.norm(vec) - 1.0) > 1e-3:  # CrystFEL's steps are one pixel long
            raise InputFileError(path, f"{name}/{key} has length {np.linalg.norm(vec):.4g}, "
                                 "not 1 (a one-pixel step)", e[key].line)
    fast, slow = to_lab @ (fs / np.linalg.norm(fs)), to_lab @ (ss / np.linalg.norm(ss))
    origin = to_lab @ corner * 1e3
    try:
        return Panel(name, nf, ns, 1e3 / res, tuple(origin), tuple(fast), tuple(slow),
                     (int(num["min_ss"]), int(num["min_fs"])))
    except (ValueError, OverflowError) as err:  # e.g. a res so small the corner is infinite
        raise InputFileError(path, f"{err} (res {num['res']:g}, corner_x "
                             f"{num['corner_x']:g}, corner_y {num['corner_y']:g})",
                             e["res"].line) from None


def crystfel_geom_text(detector: MultiPanelDetector, places: Sequence[tuple[int, int]], *,
                       from_lab: np.ndarray | None = None,
                       photon_energy_eV: float | None = None, adu_per_photon: float = 1.0,
                       data: str = "/entry/data/data") -> str:
    """A CrystFEL geometry file describing ``detector`` whose pixels sit at ``places``.

    Parameters
    ----------
    detector:
        The panels (lab frame, mm).
    places:
        (min_ss, min_fs) of each panel in the data array (one per panel, in order).
    from_lab:
        (3, 3) matrix from the lab frame to CrystFEL's (the transpose of ``to_lab``);
        default ``MOSFLM_FROM_CRYSTFEL.T``.
    photon_energy_eV, adu_per_photon:
        Written when given (the energy) and always (the gain).
    data:
        The HDF5 dataset the images are in; its first dimension is the frame (``dim0 = %``).

    Returns
    -------
    str
        The file's text: ``clen`` the panels' mean distance along CrystFEL z (m), each panel
        its ``coffset``, ``res`` (pixels per metre), corner (pixels) and fs/ss directions with
        z components; :func:`read_crystfel_geom` reads it back to the same panels.
    """
    from_lab = MOSFLM_FROM_CRYSTFEL.T if from_lab is None else np.asarray(from_lab, float)
    corners = [from_lab @ np.asarray(p.origin_mm) * 1e-3 for p in detector]
    clen = float(np.mean([c[2] for c in corners]))
    lines = ["; written by torchbragg", f"clen = {clen!r}", f"adu_per_photon = {adu_per_photon!r}",
             f"data = {data}", "dim0 = %", "dim1 = ss", "dim2 = fs"]
    if photon_energy_eV is not None:
        lines.append(f"photon_energy = {photon_energy_eV!r}")
    lines.append("")
    for p, corner, (ss0, fs0) in zip(detector, corners, places, strict=True):
        res = 1e3 / p.pixel_size_mm
        fs, ss = (from_lab @ np.asarray(v) for v in (p.fast, p.slow))
        lines += [f"{p.name}/min_fs = {fs0}", f"{p.name}/max_fs = {fs0 + p.fpixels - 1}",
                  f"{p.name}/min_ss = {ss0}", f"{p.name}/max_ss = {ss0 + p.spixels - 1}",
                  f"{p.name}/res = {res!r}", f"{p.name}/fs = {_direction(fs)}",
                  f"{p.name}/ss = {_direction(ss)}",
                  f"{p.name}/corner_x = {float(corner[0] * res)!r}",
                  f"{p.name}/corner_y = {float(corner[1] * res)!r}",
                  f"{p.name}/coffset = {float(corner[2] - clen)!r}", ""]
    return "\n".join(lines)


def _direction(v: np.ndarray) -> str:
    """A CrystFEL direction: ``+1.0x -0.0y +0.0z`` with every digit Python keeps."""
    return " ".join(f"{'-' if x < 0 else '+'}{abs(float(x))!r}{axis}"
                    for x, axis in zip(v, "xyz", strict=True))


def read_crystfel_geom(path: str | os.PathLike, *, clen_m: float | None = None,
                       to_lab: np.ndarray | None = None) -> MultiPanelDetector:
    """Panels of a CrystFEL ``.geom`` file, in nanoBragg's lab frame.

    Parameters
    ----------
    path:
        The geometry file. Per panel ``min_fs``, ``max_fs``, ``min_ss``, ``max_ss``, ``fs``,
        ``ss``, ``corner_x``, ``corner_y`` (pixels) and optional ``coffset`` (m); ``res``
        (pixels per metre) and ``clen`` (m) per panel or global. A global value applies to
        the panels first named after it (as in CrystFEL). Rigid groups, bad regions and
        keys that do not place pixels (data, dim, mask, adu_per_eV, ...) are ignored.
    clen_m:
        Camera length (m) to use when the file reads ``clen`` from an image header.
    to_lab:
        (3, 3) matrix from CrystFEL (x, y, z) to the lab frame; default
        :data:`MOSFLM_FROM_CRYSTFEL` (see :func:`crystfel_to_lab` for other conventions).

    Returns
    -------
    MultiPanelDetector
        One panel per CrystFEL panel (its pixels min_fs..max_fs by min_ss..max_ss; its
        ``data_origin`` (min_ss, min_fs)), with ``photon_energy_eV`` when the file gives a
        number.

    Raises
    ------
    InputFileError
        Unreadable file, a line that is not ``key = value``, a bad number or direction, or
        a panel lacking a key; the message names the file and line.
    """
    text = read_input_bytes(path).decode("latin-1")
    to_lab = MOSFLM_FROM_CRYSTFEL if to_lab is None else np.asarray(to_lab, dtype=np.float64)
    globals_, entries = _scan_geom(path, text)
    last_line = max(1, len(text.splitlines()))
    if not entries:
        raise InputFileError(path, "no panels (lines such as 'p0/min_fs = 0')")
    with np.errstate(all="ignore"):  # huge numbers overflow to values the checks refuse
        panels = tuple(_panel_from_entries(path, name, e, to_lab, clen_m, last_line)
                       for name, e in entries.items())
    energy = None
    if "photon_energy" in globals_:
        energy = _energy_eV(globals_["photon_energy"].value)
    return MultiPanelDetector(panels, energy)
