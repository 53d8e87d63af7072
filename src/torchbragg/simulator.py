"""The one entry point: build the models from a config and render an image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchbragg.config import SimulationConfig
from torchbragg.models.beam import Beam
from torchbragg.models.crystal import Crystal
from torchbragg.models.detector import Detector
from torchbragg.models.structure_factors import StructureFactors
from torchbragg.render import (
    InterpolationState,
    Renderer,
    memory_budget_bytes,
    plan_chunks,
)


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
    phase reduced to h - h0; parameters and geometry stay float64. ``compile=True``
    runs the inner sum through ``torch.compile`` (faster for large images after a one-time
    compilation of tens of seconds).
    """

    def __init__(self, config: SimulationConfig, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu", compile: bool = False):
        super().__init__()
        self.config = config
        self.compile = compile
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
                        self.config.sampling, compile=self.compile,
                        compute_dtype=self.compute_dtype)

    def render(self, memory_budget_mb: float | None = None, progress=None,
               observer=None) -> RenderOutput:
        """Render the image in pixel chunks that fit the memory budget.

        ``progress(done, total)``, if given, is called after each chunk with the number of
        pixels rendered so far; ``observer(stage, tensors)`` sees each chunk's intermediate
        tensors (see :mod:`torchbragg.trace`).
        """
        renderer = self.renderer()
        renderer.observer = observer
        ctx = renderer.context()
        slow, fast = torch.nonzero(self.rendered, as_tuple=True)
        n_pix = slow.numel()
        plan = plan_chunks(n_pix, renderer.groups_per_pixel(ctx), ctx.orient.lattice_m.shape[0],
                           renderer.bytes_per_eval(),
                           memory_budget_bytes(memory_budget_mb, self.rendered.device.type))
        per_chunk = plan.pixels
        # One buffer for all chunks: many small long-lived chunk results would fragment the
        # heap and hold on to the freed working memory of every chunk.
        dtype = self.detector.pixel_size_m.dtype
        values = torch.zeros(n_pix, dtype=dtype, device=self.rendered.device)
        omega = ctx.i_bg * 0
        for start in range(0, n_pix, per_chunk):
            sl = slice(start, start + per_chunk)
            if plan.groups is None:
                out = renderer.render_pixels(ctx, fast[sl], slow[sl])
            else:
                out = renderer.render_pixel_split(ctx, fast[sl], slow[sl], plan.groups,
                                                  plan.orientations)
            values[sl] = out.values
            omega = omega + out.omega_sum
            if progress is not None:
                progress(min(start + per_chunk, n_pix), n_pix)
        image = torch.zeros(self.rendered.shape, dtype=dtype, device=self.rendered.device)
        image = image.index_put((slow, fast), values)
        return RenderOutput(image=image, rendered=self.rendered, omega_sum=omega,
                            interpolation=renderer.interp)

    def forward(self, memory_budget_mb: float | None = None) -> torch.Tensor:
        """(slow, fast) image in photons per pixel."""
        return self.render(memory_budget_mb).image


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
             device: str | torch.device = "cpu",
             memory_budget_mb: float | None = None) -> torch.Tensor:
    """Render ``config``: the (slow, fast) image in photons per pixel."""
    return Simulator(config, dtype, device)(memory_budget_mb)
