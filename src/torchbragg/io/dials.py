"""Detector models of DIALS/dxtbx experiment lists (``.expt``, older ``experiments.json``).

File layout
-----------
An experiment list is a JSON object ``{"__id__": "ExperimentList", "experiment": [...],
"beam": [...], "detector": [...], ...}``. Each experiment refers to its models by index
into those lists (older files may instead name a JSON file holding the model, relative to
the list's folder). A detector is ``{"panels": [...], "hierarchy": {...}}``; each panel has
``name``, ``type``, ``fast_axis``, ``slow_axis``, ``origin`` (mm), ``pixel_size`` (fast,
slow; mm), ``image_size`` (fast, slow; pixels), ``thickness``, ``material``, ``mu``,
``trusted_range``, ``gain``, ``pedestal``, ``px_mm_strategy``, ``identifier``,
``raw_image_offset``, ``mask``. The hierarchy is a tree of groups, each with its own
``fast_axis``/``slow_axis``/``origin`` and a list ``children`` holding groups or panel
references ``{"panel": k}`` (k indexes ``panels``).

Frames (as dxtbx builds them)
-----------------------------
The ``fast_axis``/``slow_axis``/``origin`` stored for a panel or a group are *local*: they are
given in the frame of its parent group (dxtbx writes ``get_local_*``; reading sets the local
frame and then attaches the node under its parent). The root group's parent is the identity
frame, and a detector without ``hierarchy`` puts every panel directly under an identity
root, so its panel vectors are global.

dxtbx's composition rule: with the parent's *global* fast and slow axes normalised, ``pf``
and ``ps``, its normal ``pn = pf x ps`` and its global origin ``po``, a child's global fast
axis is ``R @ local_fast``, its slow axis ``R @ local_slow`` and its origin
``R @ local_origin + po``, where ``R`` has columns ``(pf, ps, pn)``. Applied from the root
down, this gives every panel's global frame.

dxtbx's lab frame: the beam travels along -z (s0 = (0, 0, -1/wavelength); a beam's
``direction`` points back to the source), +y is up for usual beamlines and +x completes the
right-handed frame (the usual rotation axis). It is mapped to the experiment's frame by the
proper rotation taking -z to ``beam`` and +y to ``up`` (so +x goes to ``beam x up``); for
nanoBragg's MOSFLM frame (beam +x, up +y) a dxtbx vector (x, y, z) becomes the lab vector
(-z, y, x): lab = :data:`MOSFLM_FROM_DIALS` @ dxtbx with
MOSFLM_FROM_DIALS = [[0, 0, -1], [0, 1, 0], [1, 0, 0]].

A panel's ``origin`` is the outer corner of its first pixel (pixel centres at
``origin + (i + 0.5) p fast + (j + 0.5) p slow``), which is nanoBragg's pix0, so it becomes
:attr:`torchbragg.panels.Panel.origin_mm` unchanged apart from the frame. Parallax
corrections (``px_mm_strategy``), masks, gains and trusted ranges are not read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import numpy as np

from torchbragg.io.errors import InputFileError, read_input_bytes, show_text
from torchbragg.panels import MultiPanelDetector, Panel

__all__ = ["HC_EV_ANGSTROM", "MOSFLM_FROM_DIALS", "dials_to_lab", "read_dials_detector"]

# lab (nanoBragg MOSFLM: beam +x, up +y) = MOSFLM_FROM_DIALS @ dxtbx (x, y, z)
MOSFLM_FROM_DIALS = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

# photon energy (eV) = HC_EV_ANGSTROM / wavelength (Angstrom)
HC_EV_ANGSTROM = 12398.419843320026

_UNIT_TOL = 1e-6      # |length - 1| allowed for a stored axis before it is normalised
_PERP_TOL = 1e-6      # |fast . slow| allowed for unit axes
_MAX_DEPTH = 64       # deepest hierarchy accepted
_IDENTITY = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.zeros(3))


def dials_to_lab(beam: Sequence[float] = (1.0, 0.0, 0.0),
                 up: Sequence[float] = (0.0, 1.0, 0.0)) -> np.ndarray:
    """(3, 3) rotation taking dxtbx (x, y, z) vectors to the lab frame.

    dxtbx's -z (the direction the beam travels) goes to ``beam``, +y to ``up`` and +x to
    ``beam x up``; the determinant is +1. The defaults are nanoBragg's MOSFLM frame
    (:data:`MOSFLM_FROM_DIALS`).

    Parameters
    ----------
    beam, up:
        (3,) directions in the lab frame (normalised here); they must be perpendicular.
    """
    b = np.asarray(beam, dtype=np.float64).reshape(-1)
    u = np.asarray(up, dtype=np.float64).reshape(-1)
    if b.shape != (3,) or u.shape != (3,) or not min(np.linalg.norm(b), np.linalg.norm(u)) > 0:
        raise ValueError("beam and up must be nonzero 3-vectors")
    b, u = b / np.linalg.norm(b), u / np.linalg.norm(u)
    if abs(b @ u) > 1e-9:
        raise ValueError("beam and up must be perpendicular")
    # columns: images of dxtbx x, y, z
    return np.stack([np.cross(b, u), u, -b], axis=1) + 0.0


# -- JSON helpers ----------------------------------------------------------------------------

def _load_json(path) -> object:
    """The parsed JSON of ``path``; syntax errors name the line json reports."""
    data = read_input_bytes(path)
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise InputFileError(path, f"not valid JSON: {error.msg} (column {error.colno})",
                             error.lineno) from None
    except UnicodeDecodeError:
        raise InputFileError(path, "not valid JSON: not UTF-8 text") from None
    except RecursionError:
        raise InputFileError(path, "not valid JSON: nested too deeply") from None


def _show(value, limit: int = 60) -> str:
    """``value`` as JSON text for a message, shortened to ``limit`` characters."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _numbers(path, where: str, key: str, value, size: int) -> np.ndarray:
    """``value`` as (size,) finite floats, else an error naming ``where`` and ``key``."""
    if not (isinstance(value, list) and len(value) == size and all(map(_is_number, value))):
        raise InputFileError(path, f"{where}: {key} must be {size} finite numbers, got "
                             f"{_show(value)}")
    return np.asarray(value, dtype=np.float64)


def _frame(path, where: str, node: dict, required: bool) -> tuple:
    """Local (fast, slow, origin) of a panel or group: (3,) unit axes and (3,) origin (mm).

    Groups lacking all three keys get the identity frame, as in dxtbx.
    """
    keys = ("fast_axis", "slow_axis", "origin")
    present = [k for k in keys if k in node]
    if not present and not required:
        return _IDENTITY
    missing = [k for k in keys if k not in node]
    if missing:
        raise InputFileError(path, f"{where} lacks {', '.join(missing)}")
    fast, slow, origin = (_numbers(path, where, k, node[k], 3) for k in keys)
    for key, axis in (("fast_axis", fast), ("slow_axis", slow)):
        length = float(np.linalg.norm(axis))
        if length == 0:
            raise InputFileError(path, f"{where}: {key} is a zero vector")
        if abs(length - 1.0) > _UNIT_TOL:
            raise InputFileError(path, f"{where}: {key} is not a unit vector "
                                 f"(length {length:.9g})")
    fast, slow = fast / np.linalg.norm(fast), slow / np.linalg.norm(slow)
    if abs(float(fast @ slow)) > _PERP_TOL:
        raise InputFileError(path, f"{where}: fast_axis and slow_axis are not perpendicular "
                             f"(dot product {float(fast @ slow):.3g})")
    return fast, slow, origin


def _compose(parent: tuple, local: tuple) -> tuple:
    """Global (fast, slow, origin) of a child from its parent's global frame (dxtbx's rule)."""
    pf, ps, po = parent
    pf, ps = pf / np.linalg.norm(pf), ps / np.linalg.norm(ps)
    rot = np.stack([pf, ps, np.cross(pf, ps)], axis=1)
    lf, ls, lo = local
    return rot @ lf, rot @ ls, rot @ lo + po


# -- models ----------------------------------------------------------------------------------

def _model(path, kind: str, ref, models: list, where: str):
    """The model an experiment refers to: an index into ``models`` or a JSON file name."""
    if isinstance(ref, str):
        try:
            return _load_json(os.path.join(os.path.dirname(os.fspath(path)), ref))
        except InputFileError as error:
            raise InputFileError(error.path, f"{error.message} (the {kind} model named by "
                                 f"{os.fspath(path)} {where})", error.line) from None
    if not isinstance(ref, int) or isinstance(ref, bool) or not 0 <= ref < len(models):
        raise InputFileError(path, f"{where}: {kind} {_show(ref)} is not an "
                             f"index into the {len(models)} {kind} model(s)")
    return models[ref]


def _model_list(path, doc: dict, kind: str) -> list:
    """The file's list of ``kind`` models, [] when absent."""
    models = doc.get(kind, [])
    if models is None:
        return []
    if not isinstance(models, list):
        raise InputFileError(path, f"'{kind}' must be a list of models")
    return models


def _experiments(path, doc: dict) -> list:
    experiments = doc.get("experiment", [])
    if not isinstance(experiments, list) or not all(isinstance(e, dict) for e in experiments):
        raise InputFileError(path, "'experiment' must be a list of objects")
    return experiments


def _detectors(path, doc: dict) -> tuple[list, list]:
    """All detector models and, per model, the experiments that use it.

    The models are the inline list, then the files experiments name (as dxtbx orders them).
    """
    detectors = list(_model_list(path, doc, "detector"))
    users: dict[int, list] = {}
    files: dict[str, int] = {}
    for number, e in enumerate(_experiments(path, doc)):
        e = dict(e, _number=number)     # a copy that knows its place, for messages
        ref = e.get("detector")
        if ref is None:
            continue
        where = f"experiment {number}"
        if isinstance(ref, str):
            if ref not in files:
                files[ref] = len(detectors)
                detectors.append(_model(path, "detector", ref, detectors, where))
            ref = files[ref]
        else:
            _model(path, "detector", ref, detectors, where)   # checks the index
        users.setdefault(ref, []).append(e)
    return detectors, [users.get(i, []) for i in range(len(detectors))]


def _photon_energy(path, doc: dict, users: list) -> float | None:
    """hc / wavelength (eV) of the beam of the first experiment using the detector.

    With no such experiment, the file's only beam (if it has exactly one) is used.
    """
    beams = _model_list(path, doc, "beam")
    if users and users[0].get("beam") is not None:
        beam = _model(path, "beam", users[0]["beam"], beams, f"experiment {users[0]['_number']}")
    elif not users and len(beams) == 1:
        beam = beams[0]
    else:
        return None
    wavelength = beam.get("wavelength") if isinstance(beam, dict) else None
    if _is_number(wavelength) and wavelength > 0:
        return HC_EV_ANGSTROM / wavelength
    return None


# -- panels ----------------------------------------------------------------------------------

def _panel_shape(path, where: str, panel: dict) -> tuple[int, int, float]:
    """(fast pixels, slow pixels, square pixel size in mm) of a panel dict."""
    for key in ("pixel_size", "image_size"):
        if key not in panel:
            raise InputFileError(path, f"{where} lacks {key}")
    pf, ps = _numbers(path, where, "pixel_size", panel["pixel_size"], 2)
    if not (pf > 0 and ps > 0):
        raise InputFileError(path, f"{where}: pixel_size must be positive, got "
                             f"{_show(panel['pixel_size'])}")
    if abs(pf - ps) > 1e-9 * max(pf, ps):
        raise InputFileError(path, f"{where}: pixels are not square (pixel_size {pf:g} x "
                             f"{ps:g} mm); only square pixels are supported")
    size = panel["image_size"]
    nf, ns = _numbers(path, where, "image_size", size, 2)
    if not (nf == int(nf) >= 1 and ns == int(ns) >= 1):
        raise InputFileError(path, f"{where}: image_size must be 2 positive whole numbers, "
                             f"got {_show(size)}")
    return int(nf), int(ns), float(pf)


def _walk(path, node: dict, parent: tuple, panels: list, frames: dict, depth: int,
          where: str, det: int) -> None:
    """Give every panel below group ``node`` its global frame (in dxtbx axes), in ``frames``."""
    if depth > _MAX_DEPTH:
        raise InputFileError(path, f"{where}: hierarchy deeper than {_MAX_DEPTH} levels")
    frame = _compose(parent, _frame(path, where, node, required=False))
    children = node.get("children")
    if not isinstance(children, list):
        raise InputFileError(path, f"{where}: 'children' must be a list")
    for number, child in enumerate(children):
        here = f"{where} child {number}"
        if not isinstance(child, dict):
            raise InputFileError(path, f"{here} must be an object")
        if "panel" not in child:
            _walk(path, child, frame, panels, frames, depth + 1, here, det)
            continue
        k = child["panel"]
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(panels):
            raise InputFileError(path, f"{here}: panel {_show(k)} is not an "
                                 f"index into the {len(panels)} panel(s)")
        if k in frames:
            raise InputFileError(path, f"{here}: panel {k} appears twice in the hierarchy")
        local = _frame(path, _panel_where(det, k, panels), panels[k], required=True)
        frames[k] = _compose(frame, local)


def _panel_where(det: int, k: int, panels: list) -> str:
    name = panels[k].get("name") if isinstance(panels[k], dict) else None
    label = f" ({show_text(name)})" if isinstance(name, str) and name else ""
    return f"detector {det} panel {k}{label}"


def _global_frames(path, det: dict, index: int) -> list:
    """(fast, slow, origin) in dxtbx's lab frame for every panel of detector ``det``."""
    panels = det["panels"]
    where = f"detector {index}"
    hierarchy = det.get("hierarchy")
    if hierarchy is None:   # no tree: panels hang from an identity root, vectors are global
        return [_compose(_IDENTITY, _frame(path, _panel_where(index, k, panels), p, True))
                for k, p in enumerate(panels)]
    if not isinstance(hierarchy, dict) or "panel" in hierarchy:
        raise InputFileError(path, f"{where}: 'hierarchy' must be a group object")
    frames: dict[int, tuple] = {}
    _walk(path, hierarchy, _IDENTITY, panels, frames, 0, f"{where} hierarchy", index)
    missing = [k for k in range(len(panels)) if k not in frames]
    if missing:
        raise InputFileError(path, f"{where}: panel(s) {', '.join(map(str, missing[:8]))} "
                             "are not in the hierarchy")
    return [frames[k] for k in range(len(panels))]


def _unique_names(panels: list) -> list[str]:
    """Panel names: a non-empty name no other panel has is kept, others become ``p{k}``."""
    raw = [p.get("name") if isinstance(p.get("name"), str) else "" for p in panels]
    kept = {n for n in raw if n and raw.count(n) == 1}
    used = set(kept)
    names = []
    for k, name in enumerate(raw):
        if name in kept:
            names.append(name)
            continue
        candidate, n = f"p{k}", 0
        while candidate in used:
            n += 1
            candidate = f"p{k}.{n}"
        used.add(candidate)
        names.append(candidate)
    return names


def _detector_dict(path, det, index: int) -> dict:
    """The detector model as ``{"panels": [...], ...}`` (dxtbx also accepts a bare panel list)."""
    if isinstance(det, list):
        det = {"panels": det}
    if not isinstance(det, dict):
        raise InputFileError(path, f"detector {index} must be an object with 'panels'")
    panels = det.get("panels")
    if not isinstance(panels, list) or not panels:
        raise InputFileError(path, f"detector {index} has no panels")
    for k, p in enumerate(panels):
        if not isinstance(p, dict):
            raise InputFileError(path, f"detector {index} panel {k} must be an object")
    return det


def read_dials_detector(path: str | os.PathLike, *, index: int = 0,
                        to_lab: np.ndarray | None = None) -> MultiPanelDetector:
    """Panels of one detector model of a DIALS/dxtbx experiment list, in the lab frame.

    Parameters
    ----------
    path:
        An experiment list (``.expt``, or an older ``experiments.json``: a JSON object with a
        ``detector`` list), or a bare detector model ``{"panels": [...], "hierarchy": ...}``.
    index:
        Which detector model: an index into the file's ``detector`` list (followed by the
        models older files name by file, in the order experiments first name them). dxtbx
        writes the models in the order the experiments first use them, so the default 0 is
        the first experiment's detector.
    to_lab:
        (3, 3) matrix from dxtbx (x, y, z) to the lab frame; default
        :data:`MOSFLM_FROM_DIALS` (see :func:`dials_to_lab` for other conventions).

    Returns
    -------
    MultiPanelDetector
        One panel per dxtbx panel, in dxtbx's panel order, each placed at its global frame
        (the hierarchy composed as dxtbx does). A panel keeps its dxtbx name when it is a
        non-empty name no other panel has; otherwise it is called ``p{k}`` (k its index in
        the panel list, with a suffix ``.1``, ``.2``, ... if a kept name already reads so).
        ``photon_energy_eV`` is ``12398.419843320026 / wavelength`` (wavelength in Angstrom)
        of the beam of the first experiment using this detector (or of the file's only
        beam when no experiment uses it), None when there is none.

    Raises
    ------
    InputFileError
        Unreadable file, invalid JSON (with its line), no detector, ``index`` out of range,
        a panel lacking a key, non-square pixels, a zero, non-unit or non-perpendicular
        axis, a malformed hierarchy; the message names the file.

    Notes
    -----
    The beam direction stored in the file is not used: the detector is mapped with the
    fixed rotation ``to_lab``. Axes are normalised after composition, so a tree whose
    group axes are slightly non-perpendicular gives unit panel axes.
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {index!r}")
    to_lab = MOSFLM_FROM_DIALS if to_lab is None else np.asarray(to_lab, dtype=np.float64)
    if to_lab.shape != (3, 3) or not np.isfinite(to_lab).all():
        raise ValueError("to_lab must be a finite (3, 3) matrix")
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise InputFileError(path, "expected a DIALS experiment list (a JSON object)")
    if "panels" in doc and "detector" not in doc:    # a bare detector model
        detectors, users, doc = [doc], [[]], {}
    else:
        kind = doc.get("__id__", "ExperimentList")
        if kind != "ExperimentList":
            raise InputFileError(path, f"expected an ExperimentList, got __id__ "
                                 f"{show_text(str(kind))}")
        detectors, users = _detectors(path, doc)
    if not detectors:
        raise InputFileError(path, "no detector model (empty or missing 'detector' list)")
    if not 0 <= index < len(detectors):
        raise InputFileError(path, f"detector index {index} is out of range: the file has "
                             f"{len(detectors)} detector model(s)")
    det = _detector_dict(path, detectors[index], index)
    panels = det["panels"]
    frames = _global_frames(path, det, index)
    names = _unique_names(panels)
    out = []
    for k, (panel, name, frame) in enumerate(zip(panels, names, frames, strict=True)):
        fast, slow, origin = frame
        nf, ns, pixel = _panel_shape(path, _panel_where(index, k, panels), panel)
        fast, slow = to_lab @ fast, to_lab @ slow
        try:
            out.append(Panel(name, nf, ns, pixel, tuple(to_lab @ origin),
                             tuple(fast / np.linalg.norm(fast)),
                             tuple(slow / np.linalg.norm(slow))))
        except ValueError as error:   # e.g. an origin overflowing to inf
            raise InputFileError(path, f"{_panel_where(index, k, panels)}: {error}") from None
    return MultiPanelDetector(tuple(out), _photon_energy(path, doc, users[index]))
