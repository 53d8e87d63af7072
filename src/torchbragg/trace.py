"""Per-pixel traces: every intermediate quantity of one pixel, recorded by an observer.

The renderer calls its observer, when one is attached, with the tensors of each stage
(geometry of the sub-pixels, per-step Miller indices and factors, the pixel sums). Rendering
without an observer does no extra work. :func:`trace_pixel` renders one pixel with a recording
observer and returns a :class:`PixelTrace`; :func:`trace_entries` lists its quantities in the
order the C program computes them, and :func:`format_trace` prints them one per line as
``<scope>: <name> <values>`` (scopes: ``frame``, ``crystal``, ``phi i mosaic j``,
``source s``, ``layer t sub-pixel q``, ``layer t sub-pixel q source s``, the same with
``phi i mosaic j`` for each step, and ``pixel``), which :mod:`torchbragg.tracecompare` reads
back. The traced pixel is rendered on its own: a tricubic interpolation that switched itself
off earlier in a full render is still on in its trace.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from torchbragg.config import R_E_SQR_M2
from torchbragg.physics import square_factors

Entry = tuple[str, str, np.ndarray]  # scope, quantity name, values


@dataclass
class PixelTrace:
    """Intermediate quantities of one pixel (numpy arrays, SI units).

    Shapes use T layers, Q sub-pixels, S sources, R orientations (phi steps x mosaic
    domains, mosaic fastest). ``stages`` maps stage name -> tensor name -> array with the
    leading pixel dimension removed. ``phi_deg`` holds the nominal spindle angle of each
    phi step, ``rotation_deg`` the angle the cell is turned by (they differ only where a
    compatibility switch reuses a stale rotation).
    """

    slow: int
    fast: int
    frame: dict
    lattice_m: np.ndarray  # (R, 3, 3)
    reciprocal_invA: np.ndarray  # (3, 3) at phi = 0
    n_cells: np.ndarray  # (3,)
    shape: str
    incident: np.ndarray  # (S, 3)
    wavelengths_m: np.ndarray  # (S,)
    steps: int
    fluence_per_m2: float
    flags: tuple
    phi_deg: np.ndarray = field(default_factory=lambda: np.zeros(1))  # (phi steps,)
    rotation_deg: np.ndarray = field(default_factory=lambda: np.zeros(1))  # (phi steps,)
    sensor_thickness_m: float = 0.0  # 0: no sensor absorption, every capture fraction is 1
    stages: dict = field(default_factory=dict)

    def lattice_factors(self) -> np.ndarray:
        """(..., 3) per-axis parallelepiped factors sincg(pi h, N) (1 where N <= 1).

        They come from the reduced phase h - h0, as F_latt does (their product).
        """
        hkl = torch.as_tensor(self.stages["steps"]["hkl"])
        hkl0 = torch.as_tensor(self.stages["steps"]["hkl0"])
        return square_factors(hkl - hkl0, hkl0, torch.as_tensor(self.n_cells)).numpy()


def trace_pixel(simulator, slow: int, fast: int) -> PixelTrace:
    """Render pixel (``slow``, ``fast``) of ``simulator`` and record what the kernel computes."""
    renderer = simulator.renderer()
    stages: dict = {}

    def record(stage: str, tensors: dict) -> None:
        arrays = {k: v.detach().cpu().numpy()[0] for k, v in tensors.items()}
        if stage == "steps" and stage in stages:  # runs of orientations come last run first
            arrays = {k: np.concatenate((v, stages[stage][k]), axis=3) for k, v in arrays.items()}
        stages[stage] = arrays

    renderer.observer = record
    with torch.no_grad():
        ctx = renderer.context()
        device = simulator.detector.pixel_size_m.device
        renderer.render_pixels(ctx, torch.tensor([fast], device=device),
                               torch.tensor([slow], device=device))
        crystal = simulator.crystal
        steps = torch.arange(crystal.phisteps, dtype=torch.float64)
        nominal = float(crystal.phi0_rad) + float(crystal.phistep_rad) * steps
        used = crystal.phi_angles().detach().cpu().to(torch.float64)
    frame = {k: v.detach().cpu().numpy() for k, v in vars(ctx.frame).items()}
    s = simulator.config.sampling
    return PixelTrace(
        slow=slow, fast=fast, frame=frame,
        lattice_m=ctx.orient.lattice_m[0:len(ctx.orient.lattice_m)].cpu().numpy(),
        reciprocal_invA=ctx.orient.reciprocal_invA.cpu().numpy(),
        n_cells=ctx.orient.n_cells.cpu().numpy(), shape=simulator.crystal.shape,
        incident=_all(ctx.incident), wavelengths_m=_all(ctx.wavelengths),
        steps=ctx.steps, fluence_per_m2=float(simulator.beam.fluence_per_m2),
        flags=(s.oversample_thick, s.oversample_polar, s.oversample_omega),
        phi_deg=np.degrees(nominal.numpy()), rotation_deg=np.degrees(used.numpy()),
        sensor_thickness_m=float(simulator.detector.config.thickness_m), stages=stages)


def _all(values) -> np.ndarray:
    """A tensor, or every row of a source view made when needed, as numpy."""
    values = values if isinstance(values, torch.Tensor) else values.all()
    return values.detach().cpu().numpy()


def _frame_entries(tr: PixelTrace) -> Iterator[Entry]:
    fr = tr.frame
    for name, key in (("pix0_m", "pix0"), ("fdet", "fdet"), ("sdet", "sdet"), ("odet", "odet"),
                      ("close_distance_m", "close_distance"), ("distance_m", "distance")):
        yield "frame", name, fr[key]
    for axis, row in zip("abc", tr.reciprocal_invA, strict=True):
        yield "crystal", f"{axis}_star_invA", row  # at phi = 0, before the spindle turns it


def _orientation_scope(tr: PixelTrace, r: int) -> str:
    n_mosaic = tr.lattice_m.shape[0] // len(tr.phi_deg)
    return f"phi {r // n_mosaic} mosaic {r % n_mosaic}"


def _orientation_entries(tr: PixelTrace) -> Iterator[Entry]:
    n_mosaic = tr.lattice_m.shape[0] // len(tr.phi_deg)
    for r, lattice in enumerate(tr.lattice_m):
        scope = _orientation_scope(tr, r)
        yield scope, "phi_deg", tr.phi_deg[r // n_mosaic]
        yield scope, "rotation_deg", tr.rotation_deg[r // n_mosaic]
        for axis, row in zip("abc", lattice, strict=True):
            yield scope, f"{axis}_A", row * 1e10


def _step_entries(tr: PixelTrace, factors: np.ndarray | None, t: int, q: int, s: int,
                  prefix: str) -> Iterator[Entry]:
    """Each orientation's step of one (layer, sub-pixel, source) group."""
    st = tr.stages["steps"]
    for r in range(tr.lattice_m.shape[0]):
        scope = f"{prefix} {_orientation_scope(tr, r)}"
        yield scope, "hkl", st["hkl"][t, q, s, r]
        yield scope, "hkl0", st["hkl0"][t, q, s, r]
        if factors is not None:
            for axis, value in zip("abc", factors[t, q, s, r], strict=True):
                yield scope, f"F_latt_{axis}", value
        yield scope, "F_latt", st["f_latt"][t, q, s, r]
        yield scope, "F_cell", st["f_cell"][t, q, s, r]
        yield scope, "counted", st["counts"][t, q, s, r]


def _sample_entries(tr: PixelTrace) -> Iterator[Entry]:
    """Each (layer, sub-pixel) sample, its sources and their steps."""
    g = tr.stages["geometry"]
    factors = tr.lattice_factors() if tr.shape == "square" else None
    per_step_capture = tr.sensor_thickness_m > 0 or tr.flags[0]
    n_t, n_q = g["omega"].shape
    for t in range(n_t):
        for q in range(n_q):
            scope = f"layer {t} sub-pixel {q}"
            yield scope, "position_m", g["position"][t, q]
            yield scope, "airpath_m", g["airpath"][t, q]
            yield scope, "omega_sr", g["omega"][t, q]
            # the solid angle's obliquity factor, and the sensor's (for the capture fraction)
            yield scope, "obliquity", tr.frame["close_distance"] / g["airpath"][t, q]
            yield scope, "parallax", np.dot(g["diffracted"][t, q], tr.frame["odet"])
            # the value used: 1 without a sensor thickness, unless -oversample_thick applies
            # the layer formula anyway (0 then, as in nanoBragg)
            used = g["capture"][t, q] if per_step_capture else np.array(1.0)
            yield scope, "capture_fraction", used
            yield scope, "diffracted", g["diffracted"][t, q]
            for s in range(tr.incident.shape[0]):
                yield f"{scope} source {s}", "scattering_per_m", g["scattering"][t, q, s]
                yield f"{scope} source {s}", "polar", g["polar"][t, q, s]
                yield f"{scope} source {s}", "cut_by_dmin", g["cut"][t, q, s]
                yield from _step_entries(tr, factors, t, q, s, f"{scope} source {s}")


def _pixel_entries(tr: PixelTrace) -> Iterator[Entry]:
    """Sums and scale factors; a factor applied per step shows its last step's value."""
    px, g = tr.stages["pixel"], tr.stages["geometry"]
    thick, pol, omg = tr.flags
    yield "pixel", "intensity_sum", px["intensity"]
    yield "pixel", "steps", np.array(tr.steps)
    yield "pixel", "intensity_per_step", px["intensity"] / tr.steps
    yield "pixel", "r_e_sqr_m2", np.array(R_E_SQR_M2)
    yield "pixel", "fluence_per_m2", np.array(tr.fluence_per_m2)
    yield "pixel", "oversample_thick", np.array(thick)
    yield "pixel", "oversample_polar", np.array(pol)
    yield "pixel", "oversample_omega", np.array(omg)
    yield "pixel", "capture_fraction", g["capture"][-1, -1] if thick else px["capture"]
    yield "pixel", "polar", g["polar"][-1, -1, -1] if pol else px["polar"]
    yield "pixel", "omega_sr", g["omega"][-1, -1] if omg else px["omega"]
    yield "pixel", "cos_2theta", np.dot(tr.incident[-1], g["diffracted"][-1, -1])
    yield "pixel", "photons", px["values"]
    yield "pixel", "photons_float32", np.float32(px["values"])


def trace_entries(tr: PixelTrace) -> list[Entry]:
    """Every quantity of the trace as (scope, name, values), in the C program's order."""
    sources = [e for s in range(tr.incident.shape[0])
               for e in ((f"source {s}", "incident", tr.incident[s]),
                         (f"source {s}", "wavelength_m", tr.wavelengths_m[s]))]
    return [*_frame_entries(tr), *_orientation_entries(tr), *sources, *_sample_entries(tr),
            *_pixel_entries(tr)]


def format_value(values) -> str:
    """Numbers with 15 significant digits (booleans as 0/1), space separated."""
    flat = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
    return " ".join("nan" if math.isnan(v) else f"{v + 0.0:.15g}" for v in flat)  # no -0


def format_trace(tr: PixelTrace) -> list[str]:
    """One ``<scope>: <name> <values>`` line per quantity, after a title line."""
    lines = [f"trace of pixel slow={tr.slow} fast={tr.fast}"]
    lines += [f"{scope}: {name} {format_value(values)}"
              for scope, name, values in trace_entries(tr)]
    return lines
