"""The rendering kernel: intensities of a chunk of pixels, vectorised over all sampling steps.

For each pixel nanoBragg loops over sensor layers (T), sub-pixels (Q = oversample^2), sources
(S) and orientations (R = phi steps x mosaic domains, mosaic fastest), in that order, and adds
F_cell^2 F_latt^2. Here those loops are tensor dimensions; only chunks are iterated: of
pixels, or for a pixel too big for one chunk, of its (layer, sub-pixel, source) groups in loop
order (and of orientations if even one group is too big).

nanoBragg's particular rules, reproduced here:

* the sum is divided by steps = S x R x Q (not T) and scaled by r_e^2 x fluence;
* a pixel too big for one chunk is rendered in runs of (layer, sub-pixel, source) groups, in
  loop order, so memory stays within the budget whatever the number of steps;
* solid angle, polarization and capture fraction multiply the pixel sum once, using the value
  from the first sub-pixel (solid angle), the first sub-pixel and source not cut by -dmin
  (polarization) and the first sub-pixel of the last layer (capture fraction);
* with ``-oversample_omega/_polar/_thick`` the matching factor instead multiplies the running
  sum after every step that contributes: I <- (I + term) x factor. That recurrence is linear,
  and is evaluated here in closed form with per-group powers and suffix products;
* steps cut by -dmin, and steps whose lattice factor is exactly 0 (with no water background),
  neither add nor multiply;
* tricubic interpolation that meets a neighbourhood outside the HKL grid switches itself off
  for the rest of the run, in nanoBragg's (single-threaded) loop order; that evaluation and
  all later ones use the nearest-index lookup (default_F off the grid), as the C code's
  fall-through does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from torchbragg.config import AVOGADRO, R_E_SQR_M2, WATER_F, WATER_MW, SamplingConfig
from torchbragg.geometry import DetectorFrame, dot, norm
from torchbragg.models.beam import Beam, SourceRuns
from torchbragg.models.crystal import Crystal, Orientations
from torchbragg.models.detector import Detector
from torchbragg.models.structure_factors import StructureFactors, lookup_nearest
from torchbragg.physics import capture_fraction, lattice_factor, polarization_factor, solid_angle

# Default working memory per chunk. On CPU small chunks stay in cache and avoid page faults
# (64 MiB measured fastest on the Pilatus benchmark); on a GPU large chunks amortise launches.
DEFAULT_MEMORY_BUDGET_MB = {"cpu": 64, "cuda": 2048}
# Orientations per run when they are computed a run at a time (see crystal.LatticeRuns).
LAZY_RUN = 4096
# Rough peak bytes per (pixel, step) evaluation in float64, and extra for tricubic lookup.
BYTES_PER_EVAL = 480
BYTES_PER_INTERP_EVAL = 64 * 8 * 4


def memory_budget_bytes(megabytes: float | None = None, device: str = "cpu") -> int:
    """Working memory for one chunk (bytes).

    The argument (MiB), else $TORCHBRAGG_MEMORY_MB, else the default for the device type.
    """
    if megabytes is None:
        default = DEFAULT_MEMORY_BUDGET_MB.get(device, DEFAULT_MEMORY_BUDGET_MB["cpu"])
        megabytes = float(os.environ.get("TORCHBRAGG_MEMORY_MB", default))
    return int(megabytes * 2**20)


@dataclass
class InterpolationState:
    """Whether tricubic interpolation is still on, and where it switched off."""

    active: bool
    switched_off_at: dict | None = None


@dataclass
class Context:
    """Per-image quantities shared by all chunks (tensors on the render device)."""

    frame: DetectorFrame
    beam_dir: torch.Tensor
    incident: torch.Tensor  # (S, 3)
    wavelengths: torch.Tensor  # (S,)
    orient: Orientations
    layer_offsets: torch.Tensor  # (T,)
    layers: torch.Tensor  # (T,) 0, 1, ... as floats
    steps: int
    i_bg: torch.Tensor
    scale: torch.Tensor  # r_e^2 x fluence / steps
    thickstep_m: torch.Tensor  # sensor layer thickness
    mu_per_m: torch.Tensor  # sensor attenuation coefficient
    padded_F: tuple[torch.Tensor, torch.Tensor]  # StructureFactors.padded(), once per image


@dataclass
class ChunkResult:
    """Pixel values of one chunk and what the statistics need."""

    values: torch.Tensor  # (P,)
    omega_sum: torch.Tensor  # scalar


class Renderer:
    """Composes the physical models into pixel intensities; see the module docstring."""

    def __init__(self, detector: Detector, crystal: Crystal, beam: Beam,
                 structure_factors: StructureFactors, sampling: SamplingConfig,
                 compute_dtype: torch.dtype = torch.float64):
        self.detector, self.crystal, self.beam = detector, crystal, beam
        self.sf, self.sampling = structure_factors, sampling
        self.interp = InterpolationState(active=structure_factors.interpolate)
        # observer(stage, tensors): sees intermediate tensors of each chunk (see trace.py)
        self.observer = None
        # precision of the per-step sum; geometry and everything else stay float64
        self.compute_dtype = compute_dtype
        # tick(fraction): how much of the current chunk is done, after each run of
        # orientations or groups (progress within chunks of long runs)
        self.tick = None
        self._span = (0.0, 1.0)  # the part of the chunk the current loop covers

    def _observe(self, stage: str, **tensors: torch.Tensor) -> None:
        if self.observer is not None:
            self.observer(stage, tensors)

    def _tick(self, done: int, of: int) -> None:
        """``done`` of ``of`` runs of the current loop are finished."""
        if self.tick is not None:
            low, high = self._span
            self.tick(low + (high - low) * done / of)

    def context(self) -> Context:
        """Evaluate the models once per image."""
        det, beam = self.detector, self.beam
        frame = det.frame(beam.direction)
        cfg = det.config
        dtype, device = det.pixel_size_m.dtype, det.pixel_size_m.device
        layers = torch.arange(cfg.thicksteps, dtype=dtype, device=device)
        orient = self.crystal()
        steps = (beam.source_count * orient.lattice_m.shape[0]
                 * self.sampling.oversample ** 2)
        water = self.sampling.water_size_m
        i_bg = (WATER_F * WATER_F * R_E_SQR_M2 * beam.fluence_per_m2 * water ** 3 * 1e6
                * AVOGADRO / WATER_MW)
        thickstep = det.thickstep_m()
        if beam.source_grid is None:
            incident, wavelengths = beam.incident(), beam.source_wavelengths()
        else:  # too many sources to hold: made a run at a time
            incident, wavelengths = SourceRuns(beam, 0), SourceRuns(beam, 1)
        return Context(frame=frame, beam_dir=beam.direction, incident=incident,
                       wavelengths=wavelengths, orient=orient,
                       layer_offsets=layers * thickstep, layers=layers, steps=steps,
                       i_bg=i_bg, scale=R_E_SQR_M2 * beam.fluence_per_m2 / steps,
                       thickstep_m=thickstep, mu_per_m=det.mu_per_m,
                       padded_F=self.sf.padded())

    def groups_per_pixel(self, ctx: Context) -> int:
        """Number of (layer, sub-pixel, source) groups per pixel."""
        return len(ctx.layers) * self.sampling.oversample ** 2 * ctx.incident.shape[0]

    def bytes_per_eval(self) -> int:
        """Estimated peak working memory per evaluation (Miller indices are always float64)."""
        return BYTES_PER_EVAL + (BYTES_PER_INTERP_EVAL if self.interp.active else 0)

    def render_pixels(self, ctx: Context, fast: torch.Tensor, slow: torch.Tensor,
                      orientation_chunk: int | None = None) -> ChunkResult:
        """Intensities (photons) of pixels ``fast``, ``slow`` (P,), in raster order."""
        geo = self._subpixel_geometry(ctx, fast, slow)
        flags = self._flags()
        size, per_step = self._orientation_runs(ctx, orientation_chunk)
        if per_step:
            total = self._accumulate_recurrence(ctx, geo, size, flags)
        else:
            total = ctx.i_bg + self._plain_sum(ctx, geo, size)
        once = self._once_per_pixel(geo, flags)
        values = ctx.scale * total * once["omega"] * once["polar"] * once["capture"]
        self._observe("pixel", intensity=total, values=values, **once)
        return ChunkResult(values=values, omega_sum=self._omega_sum(geo, flags))

    def render_pixel_split(self, ctx: Context, fast: torch.Tensor, slow: torch.Tensor,
                           group_chunk: int, orientation_chunk: int | None) -> ChunkResult:
        """One pixel whose (layer, sub-pixel, source) groups do not fit in one chunk.

        Runs of ``group_chunk`` groups are rendered in loop order, carrying the running sum;
        the once-per-pixel factors are picked up where their group falls.
        """
        n_groups = self.groups_per_pixel(ctx)
        flags = self._flags()
        size, per_step = self._orientation_runs(ctx, orientation_chunk)
        total = ctx.i_bg * torch.ones(1, dtype=ctx.layers.dtype, device=ctx.layers.device)
        found: dict = {"omega_sum": 0.0}
        starts = range(0, n_groups, group_chunk)
        for k, g0 in enumerate(starts):
            groups = torch.arange(g0, min(g0 + group_chunk, n_groups), device=fast.device)
            geo = self._group_geometry(ctx, fast, slow, groups)
            self._span = (k / len(starts), (k + 1) / len(starts))
            if per_step:
                total = self._accumulate_recurrence(ctx, geo, size, flags, start=total)
            else:
                total = total + self._plain_sum(ctx, geo, size)
            self._pick_once(geo, groups, found)
        self._span = (0.0, 1.0)
        once = self._once_from_picks(found, flags, total)
        values = ctx.scale * total * once["omega"] * once["polar"] * once["capture"]
        self._observe("pixel", intensity=total, values=values, **once)
        return ChunkResult(values=values, omega_sum=found["omega_sum"])

    def _pick_once(self, geo: dict, groups: torch.Tensor, found: dict) -> None:
        """Remember the first omega, the last layer's first capture, the first uncut polar."""
        n_s = self.beam.source_count
        last_layer_first = (self.detector.config.thicksteps - 1) * self.sampling.oversample ** 2
        omega, capture = geo["omega"][0, 0], geo["capture"][0, 0]  # (G,)
        polar, cut = geo["polar"][0, 0, :, 0], geo["cut"][0, 0, :, 0]
        if "omega" not in found:
            found["omega"] = omega[0]
        at = groups == last_layer_first * n_s
        if bool(at.any()):
            found["capture"] = capture[at][0]
        if "polar" not in found and bool((~cut).any()):
            found["polar"] = polar[~cut][0]
        first_source = groups % n_s == 0  # one solid angle per (layer, sub-pixel)
        if self.sampling.oversample_omega:
            found["omega_sum"] = found["omega_sum"] + omega[first_source].sum()
        else:
            found["omega_sum"] = found["omega_sum"] + found["omega"] * first_source.sum()

    def _once_from_picks(self, found: dict, flags: tuple[bool, bool, bool],
                         total: torch.Tensor) -> dict:
        thick, pol, omg = flags
        one = torch.ones_like(total)
        polar = found.get("polar", torch.zeros_like(one[0]))
        return dict(
            omega=one if omg else found["omega"] * one,
            polar=one if (pol or self.beam.nopolar) else polar * one,
            capture=(one if thick or self.detector.config.thickness_m == 0.0
                     else found["capture"] * one))

    def plain(self) -> bool:
        """Whether this image takes the plain path: one sum over all steps, no recurrence.

        That is the path the fused kernel (:mod:`torchbragg.fused`) implements.
        """
        return not (any(self._flags()) or self.interp.active)

    def _orientation_runs(self, ctx: Context, orientation_chunk: int | None) -> tuple[int, bool]:
        """Orientations per run, and whether steps must be kept apart (not just summed).

        Steps are kept apart for the per-step corrections and for interpolation (whose
        switch-off follows loop order, so it splits orientations only when they are made a run
        at a time: see :meth:`_find_switch_off`); otherwise runs of orientations are summed
        one after another.
        """
        n_orient = ctx.orient.lattice_m.shape[0]
        size = n_orient if self.interp.active else (orientation_chunk or n_orient)
        if ctx.orient.lazy:
            size = min(size, LAZY_RUN)  # computed a run at a time
        return size, any(self._flags()) or self.interp.active

    def _flags(self) -> tuple[bool, bool, bool]:
        s = self.sampling
        return s.oversample_thick, s.oversample_polar, s.oversample_omega

    def _subpixel_geometry(self, ctx: Context, fast: torch.Tensor, slow: torch.Tensor) -> dict:
        """Per (pixel, layer, sub-pixel[, source]) quantities that do not depend on orientation."""
        pos = self.detector.subpixel_positions(ctx.frame, ctx.beam_dir, fast, slow,
                                               self.sampling.oversample,
                                               ctx.layer_offsets)  # (P, T, Q, 3)
        incident, wavelengths = ctx.incident, ctx.wavelengths
        if isinstance(incident, SourceRuns):  # all at once only for a trace
            incident, wavelengths = incident.all(), wavelengths.all()
        return self._geometry(ctx, fast, slow, pos, ctx.layers[:, None], incident,
                              wavelengths)

    def _group_geometry(self, ctx: Context, fast: torch.Tensor, slow: torch.Tensor,
                        groups: torch.Tensor) -> dict:
        """Geometry of one pixel for a run of flattened (layer, sub-pixel, source) groups.

        Shapes are those of :meth:`_subpixel_geometry` with P = T = S = 1 and the groups in
        place of the sub-pixels, so the per-step code applies unchanged and keeps loop order.
        """
        n_q = self.sampling.oversample ** 2
        n_s = ctx.incident.shape[0]
        t, q, s = groups // (n_q * n_s), (groups // n_s) % n_q, groups % n_s
        o = self.sampling.oversample
        pos = self.detector.sample_positions(ctx.frame, ctx.beam_dir, fast[:, None, None],
                                             slow[:, None, None], q // o, q % o,
                                             ctx.layer_offsets[t], o)  # (1, 1, G, 3)
        return self._geometry(ctx, fast, slow, pos, ctx.layers[t], ctx.incident[s][:, None],
                              ctx.wavelengths[s][:, None])

    def _geometry(self, ctx: Context, fast: torch.Tensor, slow: torch.Tensor,
                  pos: torch.Tensor, layers: torch.Tensor, incident: torch.Tensor,
                  wavelengths: torch.Tensor) -> dict:
        """Solid angle, capture, scattering vectors, polarization and -dmin cut at ``pos``.

        ``layers`` broadcasts against ``pos[..., 0]``; ``incident`` (..., 3) and
        ``wavelengths`` (...) broadcast against the added source dimension.
        """
        det, frame, cfg = self.detector, ctx.frame, self.detector.config
        airpath = norm(pos)
        diffracted = pos / airpath[..., None]
        omega = solid_angle(airpath, det.pixel_size_m, frame.close_distance, cfg.point_pixel)
        parallax = dot(diffracted, frame.odet)
        capture = capture_fraction(layers, ctx.thickstep_m, ctx.mu_per_m, parallax)
        d = diffracted[..., None, :]  # a source dimension
        scattering = (d - incident) / wavelengths[..., None]
        stol = 0.5 * norm(scattering)
        dmin = self.sampling.dmin_m
        cut = (stol > 0) & (dmin > 0.5 / torch.where(stol > 0, stol, torch.ones_like(stol)))
        cut = cut if dmin > 0 else torch.zeros_like(cut)
        polar = polarization_factor(self.beam.polarization, incident, d, self.beam.polar_vector)
        self._observe("geometry", fast=fast, slow=slow, position=pos, airpath=airpath,
                      diffracted=diffracted, omega=omega, capture=capture,
                      scattering=scattering, polar=polar, cut=cut)
        return dict(scattering=scattering, omega=omega, capture=capture, polar=polar, cut=cut)

    def _terms(self, ctx: Context, geo: dict, lattice: torch.Tensor,
               switch: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """F_cell^2 F_latt^2 per step, (P, T, Q, S, R'), and which steps count (not skipped).

        ``switch`` (loop-order index where interpolation switches off, this run's first
        orientation) when the orientations come a run at a time: see
        :meth:`_find_switch_off`.
        """
        hkl, hkl0, f_latt, counts = self._lattice_terms(ctx, geo, lattice)
        if switch is None:
            f_cell = self._f_cell(hkl, hkl0, counts)
        else:
            f_cell = self._f_cell_in_run(hkl, hkl0, *switch, ctx.orient.lattice_m.shape[0])
        self._observe("steps", hkl=hkl, hkl0=hkl0, f_latt=f_latt, f_cell=f_cell, counts=counts)
        amplitude = f_cell * f_latt
        term = torch.where(counts, amplitude * amplitude, 0.0)
        return term, counts

    def _lattice_terms(self, ctx: Context, geo: dict, lattice: torch.Tensor) -> tuple:
        """hkl, nearest hkl (P, T, Q, S, R', 3), F_latt and counted (P, T, Q, S, R')."""
        hkl = torch.einsum("ptqsx,rvx->ptqsrv", geo["scattering"], lattice)
        hkl0 = torch.ceil(hkl - 0.5)
        orient = ctx.orient
        f_latt = lattice_factor(hkl, hkl0, self.crystal.shape, orient.n_cells,
                                orient.reciprocal_invA, self.crystal.fudge)
        counts = ~geo["cut"][..., None]
        if self.sampling.water_size_m == 0:
            counts = counts & (f_latt != 0)
        else:
            counts = counts.expand_as(f_latt)
        return hkl, hkl0, f_latt, counts

    def _find_switch_off(self, ctx: Context, geo: dict, size: int) -> int | None:
        """Loop-order index of the first counted step whose interpolation leaves the grid.

        nanoBragg switches interpolation off there for the rest of the image. When the
        orientations come a run at a time, every run is looked at first (hkl and F_latt
        only) so that the runs can then be taken in any order; the step's hkl is kept for
        the warning. None: interpolation stays on.
        """
        lattice = ctx.orient.lattice_m
        n = lattice.shape[0]
        found = None
        for first in range(0, n, size):
            hkl, hkl0, _, counts = self._lattice_terms(ctx, geo, lattice[first:first + size])
            bad = self.sf.interpolation_out_of_range(hkl) & counts
            if not bool(bad.any()):
                continue
            order = self._loop_order(bad.shape, first, n, bad.device)
            at = int(torch.argmin(torch.where(bad, order, order.max() + 1)))
            index = int(order.reshape(-1)[at])
            if found is None or index < found[0]:
                found = (index, hkl.reshape(-1, 3)[at], hkl0.reshape(-1, 3)[at])
        if found is None:
            return None
        self._switch_at = dict(hkl=found[1].tolist(), hkl0=[int(x) for x in found[2].tolist()])
        return found[0]

    @staticmethod
    def _loop_order(shape: tuple, first: int, n: int, device: torch.device) -> torch.Tensor:
        """Loop-order index of each step (P, T, Q, S, R') of the run starting at ``first``."""
        outer = torch.arange(math.prod(shape[:-1]), device=device).reshape(*shape[:-1], 1)
        return outer * n + first + torch.arange(shape[-1], device=device)

    def _f_cell_in_run(self, hkl: torch.Tensor, hkl0: torch.Tensor, switch: int | None,
                       first: int, n: int) -> torch.Tensor:
        """F_cell of one run: interpolated before loop-order index ``switch``, nearest after."""
        nearest = self.sf.nearest(hkl0)
        if switch is None:
            return self.sf.tricubic(hkl)
        before = self._loop_order(hkl.shape[:-1], first, n, hkl.device) < switch
        if not bool(before.any()):
            return nearest
        return torch.where(before, self.sf.tricubic(hkl), nearest)

    def _plain_sum(self, ctx: Context, geo: dict, size: int | None = None) -> torch.Tensor:
        """(P,) sum of F_cell^2 F_latt^2 over all steps, when nothing multiplies the running sum.

        Orientations are taken ``size`` at a time (all at once by default), last run first as
        the recurrence takes them, so that observers see runs in the same order on both
        paths. Steps with F_latt = 0 add 0 here, so only the -dmin cut needs a mask.
        """
        lattice = ctx.orient.lattice_m
        n = lattice.shape[0]
        size = size or n
        total = None
        firsts = range(0, n, size)
        for k, first in enumerate(reversed(firsts)):
            part = self._plain_run(ctx, geo, lattice[first:first + size])
            total = part if total is None else total + part
            self._tick(k + 1, len(firsts))
        return total

    def _plain_run(self, ctx: Context, geo: dict, lattice: torch.Tensor) -> torch.Tensor:
        """(P,) sum over the steps of one run of orientations ``lattice`` (R', 3, 3)."""
        if self.observer is not None:
            term, _ = self._terms(ctx, geo, lattice)
            return term.sum(dim=(1, 2, 3, 4))
        orient = ctx.orient
        padded, origin = ctx.padded_F
        lower = None if self.compute_dtype == torch.float64 else self.compute_dtype
        per_source = bragg_sum(geo["scattering"], lattice, orient.n_cells,
                               orient.reciprocal_invA, padded, origin, self.crystal.shape,
                               self.crystal.fudge, lower).to(torch.float64)  # (P, T, Q, S)
        if self.sampling.dmin_m > 0:
            per_source = per_source * (~geo["cut"])
        return per_source.sum(dim=(1, 2, 3))

    def _f_cell(self, hkl: torch.Tensor, hkl0: torch.Tensor,
                counts: torch.Tensor) -> torch.Tensor:
        nearest = self.sf.nearest(hkl0)
        if not self.interp.active:
            return nearest
        bad = self.sf.interpolation_out_of_range(hkl) & counts
        interpolated = self.sf.tricubic(hkl)
        flat_bad = bad.reshape(-1)
        if not bool(flat_bad.any()):
            return interpolated
        first = int(torch.argmax(flat_bad.to(torch.uint8)))
        order = torch.arange(flat_bad.numel(), device=hkl.device).reshape(bad.shape)
        self._switch_off(hkl, hkl0, first)
        return torch.where(order < first, interpolated, nearest)

    def _switch_off(self, hkl: torch.Tensor, hkl0: torch.Tensor, first: int) -> None:
        h = hkl.reshape(-1, 3)[first].tolist()
        h0 = [int(x) for x in hkl0.reshape(-1, 3)[first].tolist()]
        self.interp = InterpolationState(active=False,
                                         switched_off_at=dict(hkl=h, hkl0=h0))

    def _group_factors(self, geo: dict, flags: tuple[bool, bool, bool]) -> torch.Tensor:
        """(P, T, Q, S) factor applied to the running sum after each counted step."""
        thick, pol, omg = flags
        f = torch.ones_like(geo["polar"])
        if thick:
            f = f * geo["capture"][..., None]
        if pol:
            f = f * geo["polar"]
        if omg:
            f = f * geo["omega"][..., None]
        return f

    def _accumulate_recurrence(self, ctx: Context, geo: dict, size: int,
                               flags: tuple[bool, bool, bool],
                               start: torch.Tensor | None = None) -> torch.Tensor:
        """I_final of the recurrence I <- (I + term) f over all steps, in closed form.

        ``start`` (P,) is the running sum before these steps (default: the water background).

        Orientation chunks are visited last to first so that each step knows how many counted
        steps follow it in its (layer, sub-pixel, source) group.
        """
        f = self._group_factors(geo, flags)
        lattice = ctx.orient.lattice_m
        n = lattice.shape[0]
        in_runs = self.interp.active and size < n
        switch = self._find_switch_off(ctx, geo, size) if in_runs else None
        after = torch.zeros_like(f)  # counted steps after the current chunk, per group
        partial = torch.zeros_like(f)  # sum over steps of term x f^(counted steps from it on)
        firsts = range(0, n, size)
        for k, first_orientation in enumerate(reversed(firsts)):
            term, counts = self._terms(ctx, geo,
                                       lattice[first_orientation:first_orientation + size],
                                       (switch, first_orientation) if in_runs else None)
            c = counts.to(f.dtype)
            from_here = torch.flip(torch.cumsum(torch.flip(c, [-1]), -1), [-1]) + after[..., None]
            partial = partial + (term * torch.pow(f[..., None], from_here)).sum(-1)
            after = after + c.sum(-1)
            self._tick(k + 1, len(firsts))
        if switch is not None:
            self.interp = InterpolationState(active=False, switched_off_at=self._switch_at)
        group_total = torch.pow(f, after).reshape(f.shape[0], -1)  # (P, G) in loop order
        later = torch.flip(torch.cumprod(torch.flip(group_total, [-1]), -1), [-1])
        later = torch.cat((later[:, 1:], torch.ones_like(later[:, :1])), -1)
        first = ctx.i_bg if start is None else start
        return first * later[:, 0] * group_total[:, 0] + (partial.reshape(f.shape[0], -1)
                                                          * later).sum(-1)

    def _once_per_pixel(self, geo: dict, flags: tuple[bool, bool, bool]) -> dict:
        """(P,) omega, polarization and capture factors for the corrections not per step."""
        thick, pol, omg = flags
        one = torch.ones_like(geo["omega"][:, 0, 0])
        omega = one if omg else geo["omega"][:, 0, 0]
        polar = one if (pol or self.beam.nopolar) else self._first_polar(geo)
        capture = (one if thick or self.detector.config.thickness_m == 0.0
                   else geo["capture"][:, -1, 0])
        return dict(omega=omega, polar=polar, capture=capture)

    def _first_polar(self, geo: dict) -> torch.Tensor:
        """Polarization of the first (layer, sub-pixel, source) not cut by -dmin; 0 if none."""
        polar = geo["polar"].reshape(len(geo["polar"]), -1)
        ok = ~geo["cut"].reshape(len(polar), -1)
        first = torch.argmax(ok.to(torch.uint8), dim=1)
        value = polar.gather(1, first[:, None])[:, 0]
        return torch.where(ok.any(1), value, torch.zeros_like(value))

    def _omega_sum(self, geo: dict, flags: tuple[bool, bool, bool]) -> torch.Tensor:
        omega = geo["omega"]
        if flags[2]:
            return omega.sum()
        return (omega[:, 0, 0] * omega[0].numel()).sum()


def bragg_sum(scattering: torch.Tensor, lattice_m: torch.Tensor, n_cells: torch.Tensor,
              reciprocal_invA: torch.Tensor, padded_F: torch.Tensor, origin: torch.Tensor,
              shape: str, fudge: float,
              compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Sum over orientations of F_cell^2 F_latt^2 with nearest-index structure factors.

    Parameters
    ----------
    scattering:
        (..., 3) scattering vectors (1/m).
    lattice_m:
        (R, 3, 3) rows a, b, c (m) of every orientation.
    n_cells, reciprocal_invA, shape, fudge:
        Crystal size, unrotated reciprocal cell and spot shape (see
        :func:`torchbragg.physics.lattice_factor`).
    padded_F, origin:
        Structure factors padded with default_F and the index of their [0, 0, 0] element.
    compute_dtype:
        If given (float32), the Miller indices are found in the inputs' precision and
        everything after (offsets h - h0, lattice and structure factors, the sum) in this
        one. Either way the lattice factor works from the offsets h - h0.

    Returns
    -------
    (...) intensity sums (electrons^2 units, before scaling).
    """
    hkl = torch.einsum("...x,rvx->...rv", scattering, lattice_m)
    hkl0 = torch.ceil(hkl - 0.5)
    dhkl = None
    if compute_dtype is not None:
        dhkl, hkl0 = (hkl - hkl0).to(compute_dtype), hkl0.to(compute_dtype)
        n_cells, reciprocal_invA = n_cells.to(compute_dtype), reciprocal_invA.to(compute_dtype)
        padded_F, origin = padded_F.to(compute_dtype), origin.to(compute_dtype)
    f_latt = lattice_factor(hkl, hkl0, shape, n_cells, reciprocal_invA, fudge, dhkl)
    amplitude = f_latt * lookup_nearest(padded_F, origin, hkl0)
    return (amplitude * amplitude).sum(-1)


def interpolation_warning(state: InterpolationState) -> list[str]:
    """The two lines nanoBragg prints when interpolation leaves the HKL grid."""
    at = state.switched_off_at
    if at is None:
        return []
    h, k, l = (f"{x:g}" for x in at["hkl"])
    h0, k0, l0 = at["hkl0"]
    return [f"WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: "
            f"{h},{k},{l},{h0},{k0},{l0} ",
            "WARNING: further warnings will not be printed! "]


@dataclass(frozen=True)
class ChunkPlan:
    """How to split the work into chunks that fit the memory budget.

    Pixels per chunk; for a pixel too big for one chunk, runs of (layer, sub-pixel, source)
    groups; and if even one group is too big, runs of orientations.
    """

    pixels: int
    groups: int | None = None
    orientations: int | None = None


def plan_chunks(n_pixels: int, n_groups: int, n_orientations: int, bytes_per_eval: int,
                budget: int) -> ChunkPlan:
    """Split the image so that one chunk's evaluations fit in ``budget`` bytes.

    A pixel has ``n_groups`` (layer, sub-pixel, source) groups of ``n_orientations`` steps.
    """
    per_group = n_orientations * bytes_per_eval
    per_pixel = n_groups * per_group
    if per_pixel <= budget:
        return ChunkPlan(pixels=max(1, min(n_pixels, budget // per_pixel)))
    if per_group <= budget:
        return ChunkPlan(pixels=1, groups=budget // per_group)
    return ChunkPlan(pixels=1, groups=1, orientations=max(1, budget // bytes_per_eval))
