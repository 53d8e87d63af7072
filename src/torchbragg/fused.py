"""The fused form of the plain pixel sum, written to be compiled into one loop nest.

This is the same physics as :class:`torchbragg.render.Renderer` on its plain path (no
``-oversample_*`` recurrence, no interpolation, no observer), rearranged so that a compiler
(AOTInductor, see :mod:`torchbragg.aot`) can evaluate every step without materialising step
tensors: pixel geometry, Miller indices as explicit dot products, nearest structure factor,
lattice factor and the sum over orientations all sit in one expression of broadcast tensors
(pixel P, layer T, sub-pixel Q, source S, orientation R), reduced over R, then T, Q, S.

Everything that changes between images (detector placement, sources, orientations, structure
factors, sizes of every dimension) is a tensor input, so one compiled kernel serves every image
of a *variant*: spot shape, step precision and whether the detector is a point-pixel one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from torchbragg.geometry import dot, norm
from torchbragg.physics import (
    capture_fraction,
    lattice_factor,
    polarization_factor,
    sincg,
    solid_angle,
)

# Layout of the ``scalars`` input of :class:`PlainKernel` (float64).
SCALARS = ("pixel_size_m", "oversample", "close_distance_m", "kahn", "use_polar",
           "thickstep_m", "mu_per_m", "use_capture", "dmin_m", "i_bg", "scale")


@dataclass(frozen=True)
class Variant:
    """What a compiled kernel is specialised to (everything else is a tensor input).

    ``shape`` is the spot shape (square, round, gauss, tophat), ``fudge`` its width factor,
    ``step_dtype`` the precision of the per-step sum (the geometry and Miller indices are
    always float64) and ``point_pixel`` whether solid angle is 1/airpath^2.
    """

    shape: str
    fudge: float
    step_dtype: str
    point_pixel: bool

    def dtype(self) -> torch.dtype:
        """The step precision as a torch dtype."""
        return torch.float32 if self.step_dtype == "float32" else torch.float64

    def key(self) -> str:
        """A file-name-safe identifier."""
        return (f"{self.shape}-fudge{self.fudge!r}-{self.step_dtype}"
                f"{'-point' if self.point_pixel else ''}")


class PlainKernel(nn.Module):
    """(values, omega) of a chunk of pixels; see :func:`plain_pixel_values` for the inputs."""

    def __init__(self, variant: Variant):
        super().__init__()
        self.variant = variant

    def forward(self, fast, slow, sub_fs, layer_offsets_m, frame, incident, wavelengths_m,
                lattice_m, n_cells, reciprocal_invA, f_flat, f_grid, polar_vector,
                scalars) -> tuple[torch.Tensor, torch.Tensor]:
        """Run :func:`plain_pixel_values` for this kernel's variant."""
        return plain_pixel_values(fast, slow, sub_fs, layer_offsets_m, frame, incident,
                                  wavelengths_m, lattice_m, n_cells, reciprocal_invA, f_flat,
                                  f_grid, polar_vector, scalars, variant=self.variant)


def plain_pixel_values(fast: torch.Tensor, slow: torch.Tensor, sub_fs: torch.Tensor,
                       layer_offsets_m: torch.Tensor, frame: torch.Tensor,
                       incident: torch.Tensor, wavelengths_m: torch.Tensor,
                       lattice_m: torch.Tensor, n_cells: torch.Tensor,
                       reciprocal_invA: torch.Tensor, f_flat: torch.Tensor,
                       f_grid: torch.Tensor, polar_vector: torch.Tensor,
                       scalars: torch.Tensor, *,
                       variant: Variant) -> tuple[torch.Tensor, torch.Tensor]:
    """Photons in each pixel of a chunk, on nanoBragg's plain path.

    Parameters
    ----------
    fast, slow:
        (P,) pixel indices (float64).
    sub_fs:
        (Q, 2) sub-pixel indices (fast, slow) within a pixel, slow-major.
    layer_offsets_m:
        (T,) depth of each sensor layer along the detector normal; layer t is the t-th.
    frame:
        (4, 3) rotated fast, slow and normal axes and pix0 (metres).
    incident, wavelengths_m:
        (S, 3) unit vectors of the incident x-rays and (S,) their wavelengths.
    lattice_m:
        (9, R) components of a, b, c (metres) of every orientation.
    n_cells, reciprocal_invA:
        (3,) crystal size in cells and (3, 3) unrotated reciprocal cell (1/Å).
    f_flat, f_grid:
        Structure factors padded with default_F (see
        :meth:`~torchbragg.models.structure_factors.StructureFactors.padded`), flattened,
        in the variant's step precision, and (2, 3) the padded grid's index origin and sizes.
    polar_vector:
        (3,) polarization E vector.
    scalars:
        (len(SCALARS),) float64 values named by :data:`SCALARS`.

    Returns
    -------
    (P,) photons per pixel and (P,) solid angle of each pixel's first sub-pixel (sr).
    """
    s = dict(zip(SCALARS, scalars.unbind(0), strict=True))
    fdet, sdet, odet, pix0 = frame.unbind(0)
    layers = torch.arange(layer_offsets_m.shape[0], dtype=scalars.dtype,
                          device=scalars.device)[None, :, None]  # (1, T, 1)
    # sub-pixel centres (P, T, Q, 3), as Detector.sample_positions
    sub = s["pixel_size_m"] / s["oversample"]
    f_det = sub * (fast[:, None, None] * s["oversample"] + sub_fs[:, 0]) + sub / 2.0
    s_det = sub * (slow[:, None, None] * s["oversample"] + sub_fs[:, 1]) + sub / 2.0
    pos = (f_det[..., None] * fdet + s_det[..., None] * sdet
           + layer_offsets_m[None, :, None, None] * odet + pix0)
    airpath = norm(pos)
    diffracted = pos / airpath[..., None]
    omega = solid_angle(airpath, s["pixel_size_m"], s["close_distance_m"], variant.point_pixel)
    capture = capture_fraction(layers, s["thickstep_m"], s["mu_per_m"], dot(diffracted, odet))
    d = diffracted[..., None, :]  # (P, T, Q, 1, 3): a source dimension
    scattering = (d - incident) / wavelengths_m[:, None]  # (P, T, Q, S, 3)
    stol = 0.5 * norm(scattering)
    cut = (stol > 0) & (s["dmin_m"] > 0) & (
        s["dmin_m"] > 0.5 / torch.where(stol > 0, stol, torch.ones_like(stol)))
    polar = polarization_factor(s["kahn"], incident, d, polar_vector)  # (P, T, Q, S)
    per_source = orientation_sum(scattering, lattice_m, n_cells, reciprocal_invA, f_flat,
                                 f_grid, variant)
    total = s["i_bg"] + torch.where(cut, 0.0, per_source).sum(dim=(1, 2, 3))
    # solid angle, polarization and capture multiply the sum once per pixel
    omega0 = omega[:, 0, 0]
    polar0 = torch.where(s["use_polar"] > 0, first_uncut(polar, cut), 1.0)
    capture0 = torch.where(s["use_capture"] > 0, capture[:, -1, 0], 1.0)
    return s["scale"] * total * omega0 * polar0 * capture0, omega0


def first_uncut(polar: torch.Tensor, cut: torch.Tensor) -> torch.Tensor:
    """(P,) polarization of each pixel's first (layer, sub-pixel, source) not cut; 0 if none."""
    flat_polar = polar.reshape(polar.shape[0], -1)
    ok = ~cut.reshape(cut.shape[0], -1)
    first = torch.argmax(ok.to(torch.int32), dim=1)
    value = flat_polar.gather(1, first[:, None])[:, 0]
    return torch.where(ok.any(1), value, torch.zeros_like(value))


def orientation_sum(scattering: torch.Tensor, lattice_m: torch.Tensor, n_cells: torch.Tensor,
                    reciprocal_invA: torch.Tensor, f_flat: torch.Tensor, f_grid: torch.Tensor,
                    variant: Variant) -> torch.Tensor:
    """(...) sum over orientations of F_cell^2 F_latt^2 for scattering vectors (..., 3).

    ``lattice_m`` is (9, R): components of a, b, c (metres) of every orientation. Miller
    indices are explicit dot products h = s . a, evaluated in float64 as nanoBragg does; each
    axis stays a separate tensor so the compiler keeps the whole step in registers. The rest
    runs in the variant's step precision, where float32 works from the offsets h - h0 (see
    :func:`torchbragg.physics.sincg_reduced`).
    """
    sx, sy, sz = (scattering[..., i, None] for i in range(3))  # (..., 1)
    hkl = [sx * lattice_m[3 * v] + sy * lattice_m[3 * v + 1] + sz * lattice_m[3 * v + 2]
           for v in range(3)]  # 3 x (..., R)
    hkl0 = [torch.ceil(h - 0.5) for h in hkl]
    whole = [h0.to(torch.int32) for h0 in hkl0]  # read once each: index and sign
    f_cell = nearest_f(whole, f_flat, f_grid)
    low = torch.float32 if variant.step_dtype == "float32" else None
    if variant.shape == "square":
        f_latt = square_factor(hkl, hkl0, whole, n_cells, low)
    else:
        if low is not None:
            n_cells, reciprocal_invA = n_cells.to(low), reciprocal_invA.to(low)
        dhkl = torch.stack([(h - h0) for h, h0 in zip(hkl, hkl0, strict=True)], -1)
        dhkl = dhkl if low is None else dhkl.to(low)
        f_latt = lattice_factor(None, None, variant.shape, n_cells, reciprocal_invA,
                                variant.fudge, dhkl)
    amplitude = f_cell * f_latt
    return (amplitude * amplitude).sum(-1).to(torch.float64)


def nearest_f(whole: list[torch.Tensor], f_flat: torch.Tensor,
              f_grid: torch.Tensor) -> torch.Tensor:
    """F at whole indices h0, k0, l0 (int32) from the flattened padded grid.

    Indices off the grid are clamped to its edge, which holds default_F. 32 bits suffice:
    Miller indices and padded grids are far smaller than 2^31.
    """
    origin, sizes = f_grid[0].to(torch.int32), f_grid[1].to(torch.int32)
    idx = [torch.minimum(torch.clamp(h0 - origin[v], min=0), sizes[v] - 1)
           for v, h0 in enumerate(whole)]
    return f_flat[(idx[0] * sizes[1] + idx[1]) * sizes[2] + idx[2]]


def square_factor(hkl: list[torch.Tensor], hkl0: list[torch.Tensor], whole: list[torch.Tensor],
                  n_cells: torch.Tensor, low: torch.dtype | None) -> torch.Tensor:
    """Parallelepiped F_latt, axis by axis (axes with one cell or fewer contribute 1).

    In float64 this is nanoBragg's sincg(pi h, N). In float32 it is
    :func:`~torchbragg.physics.sincg_reduced` without its gradient bookkeeping: the phase of
    the offset h - h0 in single precision, the sign (-1)^(h0 (N - 1)) from the parity of the
    whole index ``whole``.
    """
    f_latt = None
    for v in range(3):
        n = n_cells[v]
        if low is None:
            factor = sincg(math.pi * hkl[v], n)
        else:
            factor = sincg(math.pi * (hkl[v] - hkl0[v]).to(low), n.to(low))
            odd = (torch.bitwise_and(whole[v], 1) != 0) & (torch.remainder(n - 1, 2) != 0)
            factor = torch.where(odd, -factor, factor)
        factor = torch.where(n > 1, factor, 1.0)
        f_latt = factor if f_latt is None else f_latt * factor
    return f_latt


def example_inputs(variant: Variant,
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """Inputs of the right kinds to trace the kernel with.

    Every dimension is at least 2 (so none is specialised away) and the sizes are those of a
    real chunk: the compiler sizes its threading and vector loops from these hints.
    """
    f64 = dict(dtype=torch.float64, device=device)
    pixels, orientations = 8192, 32
    frame = torch.tensor([[0, 0, 1], [0, -1, 0], [1, 0, 0], [0.1, 0.01, -0.01]], **f64)
    lattice = torch.eye(3, **f64).reshape(9, 1).repeat(1, orientations) * 5e-9
    scalars = torch.tensor([1e-4, 2, 0.1, 0.0, 1, 0.0, 0.0, 0, 0.0, 0.0, 1.0], **f64)
    index = torch.arange(pixels, **f64)
    return (index % 64, index // 64, torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]], **f64),
            torch.zeros(2, **f64), frame, torch.tensor([[1.0, 0, 0], [1.0, 0.001, 0]], **f64),
            torch.full((2,), 1e-10, **f64), lattice, torch.full((3,), 5.0, **f64),
            torch.eye(3, **f64) / 50, torch.ones(27, dtype=variant.dtype(), device=device),
            torch.tensor([[-1.0, -1, -1], [3, 3, 3]], **f64),
            torch.tensor([0.0, 0, 1], **f64), scalars)


def dynamic_shapes() -> tuple:
    """Which input dimensions vary between calls (all the sizes), for torch.export."""
    from torch.export import Dim

    p, q, t, s, r, m = (Dim(name, min=1) for name in ("pixels", "subpixels", "layers",
                                                      "sources", "orientations", "grid"))
    return ({0: p}, {0: p}, {0: q}, {0: t}, None, {0: s}, {0: s}, {1: r}, None, None,
            {0: m}, None, None, None)


def inputs_from(renderer, ctx, fast: torch.Tensor, slow: torch.Tensor) -> tuple:
    """The kernel inputs for pixels ``fast``, ``slow`` (P,) of a renderer's image."""
    det, beam, sf = renderer.detector, renderer.beam, renderer.sf
    cfg, sampling = det.config, renderer.sampling
    o = sampling.oversample
    f64 = dict(dtype=torch.float64, device=fast.device)
    idx = torch.arange(o, **f64)
    sub_fs = torch.stack((idx[None, :].expand(o, o).reshape(-1),
                          idx[:, None].expand(o, o).reshape(-1)), -1)
    frame = torch.stack((ctx.frame.fdet, ctx.frame.sdet, ctx.frame.odet, ctx.frame.pix0))
    padded, origin = sf.padded()
    f_grid = torch.stack((origin, torch.tensor(padded.shape, **f64)))
    values = dict(pixel_size_m=det.pixel_size_m, oversample=o,
                  close_distance_m=ctx.frame.close_distance, kahn=beam.polarization,
                  use_polar=0.0 if beam.nopolar else 1.0, thickstep_m=cfg.thickstep_m,
                  mu_per_m=cfg.mu_per_m, use_capture=0.0 if cfg.thickness_m == 0.0 else 1.0,
                  dmin_m=sampling.dmin_m, i_bg=ctx.i_bg, scale=ctx.scale)
    scalars = torch.stack([torch.as_tensor(values[name], **f64).reshape(()) for name in SCALARS])
    orient = ctx.orient
    lattice = orient.lattice_m.reshape(-1, 9).T.contiguous()
    f_flat = padded.reshape(-1).to(renderer.compute_dtype)
    return (fast.to(torch.float64), slow.to(torch.float64), sub_fs, ctx.layer_offsets, frame,
            ctx.incident, ctx.wavelengths, lattice, orient.n_cells, orient.reciprocal_invA,
            f_flat, f_grid, beam.polar_vector, scalars)


def variant_of(renderer) -> Variant:
    """The compiled-kernel variant a renderer needs."""
    return Variant(shape=renderer.crystal.shape, fudge=float(renderer.crystal.fudge),
                   step_dtype="float32" if renderer.compute_dtype == torch.float32
                   else "float64", point_pixel=bool(renderer.detector.config.point_pixel))

