"""Per-pixel traces: every intermediate quantity of one pixel, recorded by an observer.

The renderer calls its observer, when one is attached, with the tensors of each stage
(geometry of the sub-pixels, per-step Miller indices and factors, the pixel sums). Rendering
without an observer does no extra work. :func:`trace_pixel` renders one pixel with a recording
observer and returns a :class:`PixelTrace`; :func:`format_trace` turns it into readable lines.
The traced pixel is rendered on its own: a tricubic interpolation that switched itself off
earlier in a full render is still on in its trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from torchbragg.config import R_E_SQR_M2
from torchbragg.physics import square_factors


@dataclass
class PixelTrace:
    """Intermediate quantities of one pixel (numpy arrays, SI units).

    Shapes use T layers, Q sub-pixels, S sources, R orientations (phi x mosaic). ``stages``
    maps stage name -> tensor name -> array with the leading pixel dimension removed.
    """

    slow: int
    fast: int
    frame: dict
    lattice_m: np.ndarray  # (R, 3, 3)
    reciprocal_invA: np.ndarray  # (3, 3)
    n_cells: np.ndarray  # (3,)
    shape: str
    incident: np.ndarray  # (S, 3)
    wavelengths_m: np.ndarray  # (S,)
    steps: int
    fluence_per_m2: float
    flags: tuple
    stages: dict = field(default_factory=dict)

    def first(self, stage: str, name: str) -> np.ndarray:
        """Value at the first layer, sub-pixel, source and orientation."""
        value = self.stages[stage][name]
        index = {"geometry": 2, "steps": 4}.get(stage, 0)
        if name in ("scattering", "polar", "cut"):
            index = 3
        for _ in range(index):
            value = value[0]
        return value

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
        stages[stage] = {k: v.detach().cpu().numpy()[0] for k, v in tensors.items()}

    renderer.observer = record
    with torch.no_grad():
        ctx = renderer.context()
        device = simulator.detector.pixel_size_m.device
        renderer.render_pixels(ctx, torch.tensor([fast], device=device),
                               torch.tensor([slow], device=device))
    frame = {k: v.detach().cpu().numpy() for k, v in vars(ctx.frame).items()}
    s = simulator.config.sampling
    return PixelTrace(
        slow=slow, fast=fast, frame=frame,
        lattice_m=ctx.orient.lattice_m.cpu().numpy(),
        reciprocal_invA=ctx.orient.reciprocal_invA.cpu().numpy(),
        n_cells=ctx.orient.n_cells.cpu().numpy(), shape=simulator.crystal.shape,
        incident=ctx.incident.cpu().numpy(), wavelengths_m=ctx.wavelengths.cpu().numpy(),
        steps=ctx.steps, fluence_per_m2=float(simulator.beam.fluence_per_m2),
        flags=(s.oversample_thick, s.oversample_polar, s.oversample_omega), stages=stages)


def _v(x) -> str:
    return " ".join(f"{float(v):.15g}" for v in np.atleast_1d(x))


def _orientation_lines(tr: PixelTrace, t: int, q: int, s: int) -> list[str]:
    st = tr.stages["steps"]
    factors = tr.lattice_factors() if tr.shape == "square" else None
    lines = []
    for r in range(tr.lattice_m.shape[0]):
        lines.append(f"      orientation {r}: a_m {_v(tr.lattice_m[r, 0])} | b_m "
                     f"{_v(tr.lattice_m[r, 1])} | c_m {_v(tr.lattice_m[r, 2])}")
        lines.append(f"        hkl {_v(st['hkl'][t, q, s, r])}  nearest "
                     f"{_v(st['hkl0'][t, q, s, r])}")
        per_axis = "" if factors is None else f" (a b c: {_v(factors[t, q, s, r])})"
        lines.append(f"        F_latt {_v(st['f_latt'][t, q, s, r])}{per_axis}  F_cell "
                     f"{_v(st['f_cell'][t, q, s, r])}  counted {bool(st['counts'][t, q, s, r])}")
    return lines


def format_trace(tr: PixelTrace) -> list[str]:
    """Readable lines of a trace: frame, then layer/sub-pixel/source/orientation, then sums."""
    g, px, fr = tr.stages["geometry"], tr.stages["pixel"], tr.frame
    lines = [f"trace of pixel slow={tr.slow} fast={tr.fast}",
             f"  pix0_m {_v(fr['pix0'])}", f"  fdet {_v(fr['fdet'])}",
             f"  sdet {_v(fr['sdet'])}", f"  odet {_v(fr['odet'])}",
             f"  close_distance_m {_v(fr['close_distance'])}  distance_m {_v(fr['distance'])}",
             f"  reciprocal_invA a* {_v(tr.reciprocal_invA[0])} | b* {_v(tr.reciprocal_invA[1])}"
             f" | c* {_v(tr.reciprocal_invA[2])}"]
    n_t, n_q = g["omega"].shape
    for t in range(n_t):
        for q in range(n_q):
            lines.append(f"  layer {t} sub-pixel {q}: position_m {_v(g['position'][t, q])}")
            lines.append(f"    airpath_m {_v(g['airpath'][t, q])}  omega_sr "
                         f"{_v(g['omega'][t, q])}  capture {_v(g['capture'][t, q])}")
            lines.append(f"    diffracted {_v(g['diffracted'][t, q])}")
            for s in range(tr.incident.shape[0]):
                lines.append(f"    source {s}: incident {_v(tr.incident[s])}  wavelength_m "
                             f"{_v(tr.wavelengths_m[s])}")
                lines.append(f"      scattering_per_m {_v(g['scattering'][t, q, s])}  polar "
                             f"{_v(g['polar'][t, q, s])}  cut_by_dmin {bool(g['cut'][t, q, s])}")
                lines.extend(_orientation_lines(tr, t, q, s))
    lines += [f"  intensity_sum {_v(px['intensity'])}  steps {tr.steps}",
              f"  r_e_sqr_m2 {R_E_SQR_M2:.15g}  fluence_per_m2 {tr.fluence_per_m2:.15g}",
              f"  once-per-pixel factors: omega_sr {_v(px['omega'])}  polar {_v(px['polar'])}"
              f"  capture {_v(px['capture'])}  (1 where applied per step instead; per-step "
              f"flags thick, polar, omega = {tr.flags})",
              f"  pixel_photons {_v(px['values'])}  as_float32 "
              f"{float(np.float32(px['values'])):.9g}"]
    return lines
