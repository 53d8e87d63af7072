"""The one entry point: build the models from a config and render an image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchbragg import aot, fused
from torchbragg.config import KERNELS, SimulationConfig
from torchbragg.models.beam import Beam
from torchbragg.models.crystal import LAZY_ORIENTATIONS, Crystal
from torchbragg.models.detector import Detector
from torchbragg.models.structure_factors import StructureFactors
from torchbragg.render import (
    LAZY_RUN,
    ChunkPlan,
    InterpolationState,
    Renderer,
    memory_budget_bytes,
    plan_chunks,
)

# With kernel="auto", an image of at least this many pixel-steps builds the fused kernel when
# it is not cached yet (a one-time compilation of 15 s to 2 min); a cached kernel is always used.
AUTO_BUILD_PIXEL_STEPS = 20_000_000
# Working memory of the fused kernel per (pixel, layer, sub-pixel, source): the geometry it
# keeps in memory; the steps themselves stay in registers.
FUSED_BYTES_PER_GROUP = 512
# More (layer, sub-pixel, source) groups per pixel than this render on the reference path,
# which generates them chunk by chunk.
MAX_FUSED_GROUPS = 1 << 16


@dataclass
class RenderOutput:
    """An image and the side results nanoBragg reports.

    Attributes
    ----------
    image:
        (slow, fast) photons per pixel; pixels outside the ROI or masked are 0.
    rendered:
        (slow, fast) bool, the pixels that were computed.
    omega_sum:
        Sum of pixel solid angles over all sub-pixels and layers (sr), for the report.
    interpolation:
        Where tricubic interpolation switched itself off, if it did.
    """

    image: torch.Tensor
    rendered: torch.Tensor
    omega_sum: torch.Tensor
    interpolation: InterpolationState


class Simulator(nn.Module):
    """Detector, crystal, beam and structure factors, rendered as nanoBragg renders them.

    Parameters of the sub-modules can be switched to ``requires_grad`` for refinement;
    ``forward()`` returns the (slow, fast) image in photons per pixel. ``dtype=float32``
    computes the per-step sum (the bulk of the work) in single precision, with the lattice
    phase reduced to h - h0; parameters and geometry stay float64.

    ``kernel`` chooses how pixels are computed: ``"reference"`` is the readable, vectorised
    PyTorch path (:mod:`torchbragg.render`), which autograd differentiates; ``"fused"`` is
    the compiled kernel (:mod:`torchbragg.fused`, built once per machine and cached, see
    :mod:`torchbragg.aot`), which covers the plain path (no ``-oversample_*`` recurrence, no
    interpolation, flat detector) without gradients; ``"auto"`` takes the fused kernel on the
    CPU when it covers the image, no parameter requires a gradient, and the kernel is cached
    or the image is large enough to pay for building it (on CUDA the kernel has not yet been
    run against the reference path, so there it is used only when asked for). ``say(line)``
    receives the one-line notes about building or falling back (default: stderr).
    """

    def __init__(self, config: SimulationConfig, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu", kernel: str = "auto", say=None):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        self.config = config
        self.kernel = kernel
        self.say = aot.stderr_line if say is None else say
        self.compute_dtype = dtype
        # parameters and geometry are float64; ``dtype`` sets the per-step sum's precision
        f64 = torch.float64
        self.detector = Detector(config.detector, f64)
        self.crystal = Crystal(config.crystal, f64)
        self.beam = Beam(config.beam, f64)
        self.structure_factors = StructureFactors(config.structure_factors, f64)
        mask = rendered_pixels(config)
        self.register_buffer("rendered", mask)
        self.to(device)

    def renderer(self) -> Renderer:
        """A renderer over this simulator's models (one per image: it holds run state)."""
        return Renderer(self.detector, self.crystal, self.beam, self.structure_factors,
                        self.config.sampling, compute_dtype=self.compute_dtype)

    def render(self, memory_budget_mb: float | None = None, progress=None,
               observer=None, pixels: torch.Tensor | None = None) -> RenderOutput:
        """Render the image in pixel chunks that fit the memory budget.

        ``progress(done, total)``, if given, is called with 0 when rendering starts, then
        after each chunk with the number of pixels rendered so far (within a chunk, after
        each run of orientations or sources, with a fractional count);
        ``observer(stage, tensors)`` sees each chunk's intermediate tensors (see
        :mod:`torchbragg.trace`). ``pixels`` (slow, fast) bool limits the
        rendered pixels further (the others are 0).
        """
        renderer = self.renderer()
        renderer.observer = observer
        ctx = renderer.context()
        rendered = self.rendered
        if pixels is not None:
            if tuple(pixels.shape) != tuple(rendered.shape):
                raise ValueError(f"pixels must have the image's shape {tuple(rendered.shape)}, "
                                 f"got {tuple(pixels.shape)}")
            rendered = rendered & pixels.to(device=rendered.device, dtype=torch.bool)
        slow, fast = torch.nonzero(rendered, as_tuple=True)
        n_pix = slow.numel()
        budget = memory_budget_bytes(memory_budget_mb, self.rendered.device.type)
        compiled = self.fused_kernel(renderer, n_pix * ctx.steps * len(ctx.layers))
        # One buffer for all chunks: many small long-lived chunk results would fragment the
        # heap and hold on to the freed working memory of every chunk.
        dtype = self.detector.pixel_size_m.dtype
        values = torch.zeros(n_pix, dtype=dtype, device=self.rendered.device)
        if progress is not None:
            progress(0, n_pix)  # rendering starts now (after any kernel build)
        if compiled is not None and ctx.orient.lazy:
            omega = self._fused_runs(compiled, renderer, ctx, fast, slow, budget, values,
                                     progress)
            return self._output(values, slow, fast, rendered, omega, renderer)
        if compiled is not None:
            per_chunk, render_chunk = self._fused_chunks(compiled, renderer, ctx, fast, slow,
                                                         budget)
        else:
            per_chunk, render_chunk = self._reference_chunks(renderer, ctx, fast, slow, budget)
        omega = ctx.i_bg * 0
        for start in range(0, n_pix, per_chunk):
            sl = slice(start, start + per_chunk)
            if progress is not None:
                renderer.tick = _within(progress, start, min(start + per_chunk, n_pix), n_pix)
            values[sl], chunk_omega = render_chunk(sl)
            omega = omega + chunk_omega
            if progress is not None:
                progress(min(start + per_chunk, n_pix), n_pix)
        return self._output(values, slow, fast, rendered, omega, renderer)

    def _output(self, values: torch.Tensor, slow: torch.Tensor, fast: torch.Tensor,
                rendered: torch.Tensor, omega, renderer: Renderer) -> RenderOutput:
        image = torch.zeros(self.rendered.shape, dtype=values.dtype,
                            device=self.rendered.device)
        image = image.index_put((slow, fast), values)
        return RenderOutput(image=image, rendered=rendered, omega_sum=omega,
                            interpolation=renderer.interp)

    def _fused_runs(self, compiled: aot.CompiledKernel, renderer: Renderer, ctx,
                    fast: torch.Tensor, slow: torch.Tensor, budget: int,
                    values: torch.Tensor, progress) -> torch.Tensor:
        """Add the image of orientations made a run at a time into ``values``; omega sum.

        Nothing multiplies the running sum here (the kernel's plain variant), so the image
        is the sum of each run's image, the water background counted in the first run only.
        Each run of orientations is made once, for every pixel chunk.
        """
        n_pix, n_orient = len(fast), ctx.orient.lattice_m.shape[0]
        groups = renderer.groups_per_pixel(ctx)
        per_chunk = max(1, budget // (groups * FUSED_BYTES_PER_GROUP))
        samples = len(ctx.layers) * renderer.sampling.oversample ** 2
        omega = ctx.i_bg * 0
        for first in range(0, n_orient, LAZY_ORIENTATIONS):
            run = ctx.orient.lattice_m[first:first + LAZY_ORIENTATIONS]
            shared = fused.image_inputs(renderer, ctx, run, background=first == 0)
            for start in range(0, n_pix, per_chunk):
                sl = slice(start, start + per_chunk)
                run_values, omega0 = compiled(*fused.chunk_inputs(shared, fast[sl], slow[sl]))
                values[sl] += run_values
                if first == 0:  # one solid angle per pixel and sample, not per run
                    omega = omega + omega0.sum() * samples
            if progress is not None:
                progress(n_pix * min(first + LAZY_ORIENTATIONS, n_orient) // n_orient, n_pix)
        return omega

    def _reference_chunks(self, renderer: Renderer, ctx, fast: torch.Tensor,
                          slow: torch.Tensor, budget: int):
        """Pixels per chunk, and chunk -> (values, omega sum) on the reference path."""
        n_orient = ctx.orient.lattice_m.shape[0]
        run = None
        if ctx.orient.lazy:
            # each run of orientations is computed once per chunk: plan chunks of many
            # pixels for one run, not one pixel for all orientations
            run = LAZY_RUN
            n_orient = min(n_orient, run)
        plan = plan_chunks(len(fast), renderer.groups_per_pixel(ctx), n_orient,
                           renderer.bytes_per_eval(), budget)
        if self.beam.source_grid is not None and plan.groups is None:
            # sources made a run at a time: a pixel's groups are never taken all at once
            per_group = n_orient * renderer.bytes_per_eval()
            plan = ChunkPlan(pixels=1, groups=min(renderer.groups_per_pixel(ctx),
                                                  max(1, budget // per_group)))

        def render_chunk(sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
            if plan.groups is None:
                out = renderer.render_pixels(ctx, fast[sl], slow[sl], run)
            else:
                out = renderer.render_pixel_split(ctx, fast[sl], slow[sl], plan.groups,
                                                  plan.orientations or run)
            return out.values, out.omega_sum

        return plan.pixels, render_chunk

    def _fused_chunks(self, compiled: aot.CompiledKernel, renderer: Renderer, ctx,
                      fast: torch.Tensor, slow: torch.Tensor, budget: int):
        """Pixels per chunk, and chunk -> (values, omega sum) with the compiled kernel."""
        groups = renderer.groups_per_pixel(ctx)
        shared = fused.image_inputs(renderer, ctx)
        # one solid angle per pixel, counted for every layer and sub-pixel (nanoBragg)
        samples = len(ctx.layers) * renderer.sampling.oversample ** 2

        def render_chunk(sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
            values, omega0 = compiled(*fused.chunk_inputs(shared, fast[sl], slow[sl]))
            return values, omega0.sum() * samples

        return max(1, budget // (groups * FUSED_BYTES_PER_GROUP)), render_chunk

    def fused_kernel(self, renderer: Renderer, pixel_steps: int) -> aot.CompiledKernel | None:
        """The compiled kernel to render with, or None for the reference path."""
        if self.kernel == "reference":
            return None
        why_not = self._fused_gap(renderer)
        if why_not is not None:
            if self.kernel == "fused" and not self._needs_grad():
                self.say(f"torchbragg: the fused kernel does not cover {why_not}; "
                         "rendering with the reference path")
            return None
        if self.kernel == "auto" and self.rendered.device.type != "cpu":
            return None  # the CUDA build has not been checked against the reference yet
        build = self.kernel == "fused" or pixel_steps >= AUTO_BUILD_PIXEL_STEPS
        try:
            return aot.plain_kernel(fused.variant_of(renderer), self.rendered.device,
                                    build=build, say=self.say)
        except aot.KernelUnavailable as err:
            self.say(f"torchbragg: no compiled kernel here ({err}); rendering with the "
                     "reference path")
            return None

    def _fused_gap(self, renderer: Renderer) -> str | None:
        """What keeps this image off the fused kernel (None: nothing)."""
        if self._needs_grad():
            return "gradients"
        if renderer.observer is not None:
            return "traces and -printout"
        if self.detector.config.curved:
            return "-curved_det"
        if renderer.interp.active:
            return "interpolation"
        if not renderer.plain():
            return "-oversample_thick/_polar/_omega"
        if self.beam.source_grid is not None:  # it takes its inputs whole
            return "sources made when needed (too many to list)"
        groups = (self.detector.config.thicksteps * renderer.sampling.oversample ** 2
                  * self.beam.source_count)
        if groups > MAX_FUSED_GROUPS:  # its per-group tables are built whole
            return f"more than {MAX_FUSED_GROUPS} (layer, sub-pixel, source) groups per pixel"
        return None

    def _needs_grad(self) -> bool:
        return torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())

    def forward(self, memory_budget_mb: float | None = None,
                pixels: torch.Tensor | None = None) -> torch.Tensor:
        """(slow, fast) image in photons per pixel (only ``pixels``, if given)."""
        return self.render(memory_budget_mb, pixels=pixels).image


def _within(progress, start: int, stop: int, total: int):
    """A renderer tick reporting progress inside the chunk of pixels start .. stop - 1.

    The count of pixels done is fractional (never 0: ``progress(0, total)`` marks the start).
    """
    def tick(fraction: float) -> None:
        progress(start + fraction * (stop - start), total)
    return tick


def rendered_pixels(config: SimulationConfig) -> torch.Tensor:
    """(slow, fast) bool: inside the inclusive ROI and not zero in the mask."""
    det = config.detector
    xmin, xmax, ymin, ymax = det.roi
    f = torch.arange(det.fpixels)
    s = torch.arange(det.spixels)
    inside = ((s[:, None] >= ymin) & (s[:, None] <= ymax)
              & (f[None, :] >= xmin) & (f[None, :] <= xmax))
    if config.mask is not None:
        inside = inside & torch.as_tensor(config.mask, dtype=torch.bool)
    return inside


def simulate(config: SimulationConfig, dtype: torch.dtype = torch.float64,
             device: str | torch.device = "cpu", memory_budget_mb: float | None = None,
             kernel: str = "auto") -> torch.Tensor:
    """Render ``config``: the (slow, fast) image in photons per pixel."""
    return Simulator(config, dtype, device, kernel)(memory_budget_mb)
