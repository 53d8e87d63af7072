"""The fused form of the plain pixel sum, written to be compiled into one loop nest.

This is the same physics as :class:`torchbragg.render.Renderer` on its plain path (no
``-oversample_*`` recurrence, no interpolation, no observer, flat detector), rearranged so
that a compiler (AOTInductor, see :mod:`torchbragg.aot`) can evaluate every step without
materialising step tensors: pixel geometry, Miller indices as explicit dot products,
nearest structure factor, lattice factor and the sum over orientations all sit in one
expression of broadcast tensors (pixel P, layer T, sub-pixel Q, source S, orientation R),
reduced over R, then T, Q, S.

Everything that changes between images (detector placement, sources, orientations, structure
factors, sizes of every dimension) is a tensor input, so one compiled kernel serves every image
of a :class:`Variant` (spot shape, step precision, and which once-per-pixel factors apply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from torchbragg.physics import (
    capture_fraction,
    kahn_factor,
    lattice_factor,
    polarization_axes,
    solid_angle,
)

# Layout of the ``scalars`` input of :class:`PlainKernel` (float64).
SCALARS = ("pixel_size_m", "oversample", "close_distance_m", "kahn", "thickstep_m", "mu_per_m",
           "dmin_m", "i_bg", "scale")


@dataclass(frozen=True)
class Variant:
    """What a compiled kernel is specialised to (everything else is a tensor input).

    ``shape`` is the spot shape (square, round, gauss, tophat), ``fudge`` its width factor,
    ``step_dtype`` the precision of the per-step sum (the geometry and Miller indices are
    always float64), ``point_pixel`` whether solid angle is 1/airpath^2, and whether the
    image is polarized (not ``-nopolar``), has an absorbing sensor (thickness > 0) and a
    resolution cut (``-dmin`` > 0). A ``single_sample`` kernel serves images with one sensor
    layer, sub-pixel and source (the common case), compiled with those sizes fixed so that
    its loops run over pixels alone.
    """

    shape: str
    fudge: float
    step_dtype: str
    point_pixel: bool = False
    polarized: bool = True
    absorbing: bool = False
    dmin: bool = False
    single_sample: bool = False

    def dtype(self) -> torch.dtype:
        """The step precision as a torch dtype."""
        return torch.float32 if self.step_dtype == "float32" else torch.float64

    def key(self) -> str:
        """A file-name-safe identifier."""
        flags = [name for name, on in (("point", self.point_pixel),
                                       ("nopolar", not self.polarized),
                                       ("thick", self.absorbing), ("dmin", self.dmin),
                                       ("single", self.single_sample)) if on]
        return "-".join([self.shape, f"fudge{self.fudge!r}", self.step_dtype] + flags)


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
        (3,) crystal size in cells (as :func:`kernel_n_cells` gives it) and (3, 3) unrotated
        reciprocal cell (1/Å).
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
    # Vectors are kept as three tensors of components, so that the compiled loops run
    # over pixels (vector lanes) rather than over x, y, z.
    diffracted, airpath = pixel_rays(fast, slow, sub_fs, layer_offsets_m, frame, s)
    scattering = [(d[..., None] - incident[:, c]) / wavelengths_m
                  for c, d in enumerate(diffracted)]  # 3 x (P, T, Q, S)
    per_source = orientation_sum(scattering, lattice_m, n_cells, reciprocal_invA, f_flat,
                                 f_grid, variant)  # (P, T, Q, S)
    cut = dmin_cut(scattering, s["dmin_m"]) if variant.dmin else None
    if cut is not None:
        per_source = torch.where(cut, 0.0, per_source)
    total = s["i_bg"] + per_source.sum(dim=(1, 2, 3))
    # solid angle, polarization and capture multiply the sum once per pixel, with the values
    # of the first sub-pixel, the first one not cut by -dmin, the last layer's first one
    omega0 = solid_angle(airpath[:, 0, 0], s["pixel_size_m"], s["close_distance_m"],
                         variant.point_pixel)
    factors = s["scale"] * omega0
    if variant.polarized:
        b_in, e_in = polarization_axes(polar_vector, incident)  # (S, 3) each
        if cut is None:  # the first sub-pixel and source
            first = [d[:, 0, 0] for d in diffracted]
            factors = factors * kahn_factor(s["kahn"], along(first, incident[0]),
                                            along(first, b_in[0]), along(first, e_in[0]))
        else:
            rays = [d[..., None] for d in diffracted]
            polar = kahn_factor(s["kahn"], along(rays, incident), along(rays, b_in),
                                along(rays, e_in))  # (P, T, Q, S)
            factors = factors * first_uncut(polar, cut)
    if variant.absorbing:
        last = torch.full_like(fast, layer_offsets_m.shape[0] - 1)
        normal = frame[2]
        parallax = along([d[:, -1, 0] for d in diffracted], normal)
        factors = factors * capture_fraction(last, s["thickstep_m"], s["mu_per_m"], parallax)
    return total * factors, omega0


def pixel_rays(fast: torch.Tensor, slow: torch.Tensor, sub_fs: torch.Tensor,
               layer_offsets_m: torch.Tensor, frame: torch.Tensor,
               s: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Unit vectors (3 x (P, T, Q)) from the sample to every sub-pixel centre, and distances.

    Positions as :meth:`~torchbragg.models.detector.Detector.sample_positions` places them.
    """
    sub = s["pixel_size_m"] / s["oversample"]
    f_det = sub * (fast[:, None, None] * s["oversample"] + sub_fs[:, 0]) + sub / 2.0
    s_det = sub * (slow[:, None, None] * s["oversample"] + sub_fs[:, 1]) + sub / 2.0
    depth = layer_offsets_m[None, :, None]
    pos = [f_det * frame[0, c] + s_det * frame[1, c] + depth * frame[2, c] + frame[3, c]
           for c in range(3)]
    airpath = torch.sqrt(pos[0] * pos[0] + pos[1] * pos[1] + pos[2] * pos[2])
    return [p / airpath for p in pos], airpath


def along(components: list[torch.Tensor], axis: torch.Tensor) -> torch.Tensor:
    """Dot product of a vector given as three component tensors with ``axis`` (..., 3)."""
    return (components[0] * axis[..., 0] + components[1] * axis[..., 1]
            + components[2] * axis[..., 2])


def dmin_cut(scattering: list[torch.Tensor], dmin_m: torch.Tensor) -> torch.Tensor:
    """(...) True where scattering vectors (3 x (...)) reach finer than ``dmin_m``.

    The resolution is d = 1 / (2 stol); cut steps neither add nor set the polarization.
    """
    stol = 0.5 * torch.sqrt(sum(c * c for c in scattering))
    return (stol > 0) & (dmin_m > 0.5 / torch.where(stol > 0, stol, torch.ones_like(stol)))


def first_uncut(polar: torch.Tensor, cut: torch.Tensor) -> torch.Tensor:
    """(P,) polarization of each pixel's first (layer, sub-pixel, source) not cut; 0 if none."""
    flat_polar = polar.reshape(polar.shape[0], -1)
    ok = ~cut.reshape(cut.shape[0], -1)
    first = torch.argmax(ok.to(torch.int32), dim=1)
    value = flat_polar.gather(1, first[:, None])[:, 0]
    return torch.where(ok.any(1), value, torch.zeros_like(value))


def orientation_sum(scattering: list[torch.Tensor], lattice_m: torch.Tensor, n_cells: torch.Tensor,
                    reciprocal_invA: torch.Tensor, f_flat: torch.Tensor, f_grid: torch.Tensor,
                    variant: Variant) -> torch.Tensor:
    """(...) sum over orientations of F_cell^2 F_latt^2 for scattering vectors (3 x (...)).

    ``lattice_m`` is (9, R): components of a, b, c (metres) of every orientation. Miller
    indices are explicit dot products h = s . a, evaluated in float64 as nanoBragg does; each
    axis stays a separate tensor so the compiler keeps the whole step in registers. The rest
    runs in the variant's step precision and works from the offsets h - h0 (see
    :func:`torchbragg.physics.sincg_reduced`).
    """
    # Orientations go last (vector lanes run over orientations, as many as a pixel has
    # sub-pixels x sources x orientations) or, for single-sample kernels, first (lanes run
    # over pixels: better when there are fewer orientations than lanes).
    if variant.single_sample:
        sx, sy, sz = (component[None] for component in scattering)  # (1, ...)
        axes = lattice_m.reshape((9, -1) + (1,) * scattering[0].dim())  # (9, R, 1, ...)
    else:
        sx, sy, sz = (component[..., None] for component in scattering)  # (..., 1)
        axes = lattice_m
    hkl = [sx * axes[3 * v] + sy * axes[3 * v + 1] + sz * axes[3 * v + 2]
           for v in range(3)]  # 3 x (..., R) or 3 x (R, ...)
    hkl0 = [torch.ceil(h - 0.5) for h in hkl]
    f_cell = nearest_f([h0.to(torch.int32) for h0 in hkl0], f_flat, f_grid)
    low = torch.float32 if variant.step_dtype == "float32" else None
    if variant.shape == "square":
        f_latt = square_factor(hkl, hkl0, n_cells, variant.dtype())
    else:
        if low is not None:
            n_cells, reciprocal_invA = n_cells.to(low), reciprocal_invA.to(low)
        dhkl = torch.stack([(h - h0) for h, h0 in zip(hkl, hkl0, strict=True)], -1)
        dhkl = dhkl if low is None else dhkl.to(low)
        f_latt = lattice_factor(None, None, variant.shape, n_cells, reciprocal_invA,
                                variant.fudge, dhkl)
    amplitude = f_cell * f_latt
    return (amplitude * amplitude).sum(0 if variant.single_sample else -1).to(torch.float64)


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


def square_factor(hkl: list[torch.Tensor], hkl0: list[torch.Tensor], n_cells: torch.Tensor,
                  dtype: torch.dtype) -> torch.Tensor:
    """Parallelepiped |F_latt| from the three axes (3 x (...) each), in precision ``dtype``.

    The reference path's :func:`~torchbragg.physics.lattice_factor_square`, rearranged for
    speed, and equal to it up to sign and rounding (the kernel only squares it):

    * the phase is that of the offset h - h0; the sign (-1)^(h0 (N - 1)) is left out;
    * ``n_cells`` arrives with N < 1 replaced by 1 (see :func:`kernel_n_cells`), whose
      factor sin(x)/sin(x) is exactly 1: no gate in the loop;
    * the quotient itself, not the series, is taken near x = 0 (only x = 0 is guarded): its
      value is as accurate there, and the kernel has no gradient (each further select in
      the loop splits the compiled loop nest, doubling the time);
    * the product of the three quotients is one quotient of products (a division costs
      several multiplications; the rounding differs by a few units in the last place).
    """
    numerator = denominator = None
    for v in range(3):
        n = n_cells[v].to(dtype)
        x = math.pi * (hkl[v] - hkl0[v]).to(dtype)
        zero = x == 0
        top = torch.where(zero, n, torch.sin(n * x))
        bottom = torch.where(zero, 1.0, torch.sin(x))
        numerator = top if numerator is None else numerator * top
        denominator = bottom if denominator is None else denominator * bottom
    return numerator / denominator


def example_inputs(variant: Variant,
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """Inputs of the right kinds to trace the kernel with.

    Every dynamic dimension is at least 2 (so none is specialised away) and the sizes are
    those of a real chunk: the compiler sizes its threading and vector loops from these
    hints. A ``single_sample`` variant has one layer, sub-pixel and source, fixed.
    """
    f64 = dict(dtype=torch.float64, device=device)
    pixels, orientations = 8192, 32
    n = 1 if variant.single_sample else 2  # layers, sources; sub-pixels n^2
    frame = torch.tensor([[0, 0, 1], [0, -1, 0], [1, 0, 0], [0.1, 0.01, -0.01]], **f64)
    lattice = torch.eye(3, **f64).reshape(9, 1).repeat(1, orientations) * 5e-9
    scalars = torch.tensor([1e-4, 2, 0.1, 0.0, 1e-5, 1e4, 1e-10, 0.0, 1.0], **f64)
    index = torch.arange(pixels, **f64)
    sub_fs = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]], **f64)[:n * n]
    incident = torch.tensor([[1.0, 0, 0], [1.0, 0.001, 0]], **f64)[:n]
    return (index % 64, index // 64, sub_fs, torch.zeros(n, **f64), frame, incident,
            torch.full((n,), 1e-10, **f64), lattice, torch.full((3,), 5.0, **f64),
            torch.eye(3, **f64) / 50, torch.ones(27, dtype=variant.dtype(), device=device),
            torch.tensor([[-1.0, -1, -1], [3, 3, 3]], **f64),
            torch.tensor([0.0, 0, 1], **f64), scalars)


def dynamic_shapes(variant: Variant) -> tuple:
    """Which input dimensions vary between calls (all the sizes), for torch.export.

    A ``single_sample`` variant has one layer, sub-pixel and source: those stay fixed.
    """
    from torch.export import Dim

    p, q, t, s, r, m = (Dim(name, min=1) for name in ("pixels", "subpixels", "layers",
                                                      "sources", "orientations", "grid"))
    if variant.single_sample:
        q = t = s = None
    def dims(dim):
        return None if dim is None else {0: dim}

    return ({0: p}, {0: p}, dims(q), dims(t), None, dims(s), dims(s), {1: r}, None, None,
            {0: m}, None, None, None)


def image_inputs(renderer, ctx, lattice_m: torch.Tensor | None = None,
                 background: bool = True) -> tuple:
    """The kernel inputs shared by every chunk of a renderer's image (all but the pixels).

    ``lattice_m`` (R, 3, 3): render only these orientations (default: all of the context's);
    ``background`` False leaves out the water background, for all runs of orientations but
    one when an image is rendered a run at a time.
    """
    det, beam, sf = renderer.detector, renderer.beam, renderer.sf
    sampling = renderer.sampling
    o = sampling.oversample
    f64 = dict(dtype=torch.float64, device=ctx.layers.device)
    idx = torch.arange(o, **f64)
    sub_fs = torch.stack((idx[None, :].expand(o, o).reshape(-1),
                          idx[:, None].expand(o, o).reshape(-1)), -1)
    frame = torch.stack((ctx.frame.fdet, ctx.frame.sdet, ctx.frame.odet, ctx.frame.pix0))
    padded, origin = ctx.padded_F
    f_grid = torch.stack((origin, torch.tensor(padded.shape, **f64)))
    values = dict(pixel_size_m=det.pixel_size_m, oversample=o,
                  close_distance_m=ctx.frame.close_distance, kahn=beam.polarization,
                  thickstep_m=ctx.thickstep_m, mu_per_m=ctx.mu_per_m, dmin_m=sampling.dmin_m,
                  i_bg=ctx.i_bg if background else 0.0, scale=ctx.scale)
    scalars = torch.stack([torch.as_tensor(values[name], **f64).reshape(()) for name in SCALARS])
    orient = ctx.orient
    lattice_m = orient.lattice_m if lattice_m is None else lattice_m
    lattice = lattice_m.reshape(-1, 9).T.contiguous()
    f_flat = sf.padded_flat(renderer.compute_dtype)
    return (sub_fs, ctx.layer_offsets, frame, ctx.incident, ctx.wavelengths, lattice,
            kernel_n_cells(orient.n_cells, renderer.crystal.shape), orient.reciprocal_invA,
            f_flat, f_grid, beam.polar_vector, scalars)


def kernel_n_cells(n_cells: torch.Tensor, shape: str) -> torch.Tensor:
    """(3,) N as the kernel takes it: for square spots, N < 1 (a factor of 1) becomes 1.

    sin(x)/sin(x) = 1 exactly, so this is nanoBragg's skipping of axes with N <= 1 without a
    branch in the kernel's loop (a select on N there costs more than the whole factor).
    """
    if shape != "square":
        return n_cells
    return torch.where(n_cells < 1, torch.ones_like(n_cells), n_cells)


def chunk_inputs(shared: tuple, fast: torch.Tensor, slow: torch.Tensor) -> tuple:
    """The kernel inputs for pixels ``fast``, ``slow`` (P,), given :func:`image_inputs`."""
    return (fast.to(torch.float64), slow.to(torch.float64)) + shared


def variant_of(renderer) -> Variant:
    """The compiled-kernel variant a renderer needs."""
    det = renderer.detector.config
    return Variant(shape=renderer.crystal.shape, fudge=float(renderer.crystal.fudge),
                   step_dtype="float32" if renderer.compute_dtype == torch.float32
                   else "float64", point_pixel=bool(det.point_pixel),
                   polarized=not renderer.beam.nopolar, absorbing=det.thickness_m != 0.0,
                   dmin=renderer.sampling.dmin_m > 0,
                   single_sample=(det.thicksteps == 1 and renderer.sampling.oversample == 1
                                  and renderer.beam.source_count == 1))

