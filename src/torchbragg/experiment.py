"""An experiment built from keywords (or a nanoBragg command line), rendered and refined.

>>> import torchbragg as tb
>>> exp = tb.Experiment(detector=tb.detector(pixels=64, distance_mm=100),
...                     crystal=tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=5),
...                     beam=tb.beam(wavelength_A=6.2),
...                     structure_factors=tb.structure_factors(default_F=100))
>>> image = exp.render()              # (slow, fast) photons per pixel

Parameters are named and in user units (see :mod:`torchbragg.parameters`):
``exp.get("detector.distance_mm")``, ``exp.set(...)``, and ``exp.render(values)`` with
tensors that require gradients for refinement.
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch.func import functional_call

from torchbragg.cli.options import CState
from torchbragg.cli.parse import UsageError, parse_args
from torchbragg.errors import SetupError
from torchbragg.parameters import SPECS, ParameterSpec, lookup, target_of
from torchbragg.parts import Part
from torchbragg.precedence import Plan, apply_smv_headers, resolve
from torchbragg.simulator import RenderOutput, Simulator


class ExperimentError(ValueError):
    """An experiment that cannot be set up as described (one line says why)."""


class Experiment:
    """Detector, crystal, beam and structure factors, as nanoBragg would set them up.

    Parameters
    ----------
    detector, crystal, beam, structure_factors, sampling:
        Parts from :func:`torchbragg.detector` etc.; left out, nanoBragg's defaults. A crystal
        needs a cell or a matrix, and structure factors or ``default_F``.
    dtype:
        Precision of the per-step sum (float64, or float32 for speed); geometry and
        parameters stay float64.
    device:
        Where to render.
    kernel:
        ``"auto"``, ``"fused"`` or ``"reference"`` (see :class:`torchbragg.Simulator`).

    Nothing is read or written but the files the parts name (no Fdump.bin cache).
    """

    def __init__(self, detector: Part | None = None, crystal: Part | None = None,
                 beam: Part | None = None, structure_factors: Part | None = None,
                 sampling: Part | None = None, *, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu", kernel: str = "auto"):
        parts = [p for p in (detector, crystal, beam, structure_factors, sampling)
                 if p is not None]
        for part, kind in zip((detector, crystal, beam, structure_factors, sampling),
                              ("detector", "crystal", "beam", "structure_factors", "sampling"),
                              strict=True):
            if part is not None and (not isinstance(part, Part) or part.kind != kind):
                raise ExperimentError(f"{kind}= takes torchbragg.{kind}(...)")
        args = [a for p in parts for a in p.args]
        state = _scan(args)
        for p in parts:
            for key, value in p.state.items():
                setattr(state, key, value)
        state.dump_path = None
        self._setup(state, dtype, device, kernel)

    @classmethod
    def from_args(cls, args: str | Sequence[str], *, use_dump: bool = False,
                  dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                  kernel: str = "auto") -> Experiment:
        """The experiment a nanoBragg command line describes (output options are ignored).

        ``use_dump``: read and write the structure-factor cache (``Fdump.bin`` or ``-dump``)
        as the C program does; by default no file but those named is touched.
        """
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        state = _scan(argv)
        if not use_dump:
            state.dump_path = None
        exp = cls.__new__(cls)
        exp._setup(state, dtype, device, kernel)
        return exp

    @classmethod
    def from_state(cls, state: CState, *, dtype: torch.dtype = torch.float64,
                   device: str | torch.device = "cpu", kernel: str = "auto",
                   say=None) -> Experiment:
        """The experiment of a scanned command line, exactly as the command line runs it.

        The C program's dump-file behaviour is included; errors propagate as raised.
        """
        exp = cls.__new__(cls)
        exp.plan = resolve(state)
        exp.simulator = Simulator(exp.plan.config, dtype, device, kernel, say)
        return exp

    def _setup(self, state: CState, dtype, device, kernel) -> None:
        missing = usage_reason_api(state)
        if missing:
            raise ExperimentError(f"incomplete experiment: {missing}")
        try:
            self.plan: Plan = resolve(state)
        except SetupError as err:
            raise ExperimentError(str(err)) from None
        for line in self.plan.warnings:
            warnings.warn(line, stacklevel=3)
        self.simulator = Simulator(self.plan.config, dtype, device, kernel)

    # -- what it is ------------------------------------------------------------------------

    @property
    def config(self):
        """The resolved :class:`torchbragg.config.SimulationConfig`."""
        return self.plan.config

    @property
    def messages(self) -> list[str]:
        """What the C program would have printed while setting up."""
        return list(self.plan.lines())

    @property
    def device(self) -> torch.device:
        """Where the experiment renders."""
        return self.simulator.rendered.device

    @property
    def shape(self) -> tuple[int, int]:
        """(slow, fast) pixels of the image."""
        return tuple(self.simulator.rendered.shape)

    def to(self, device: str | torch.device | None = None,
           dtype: torch.dtype | None = None) -> Experiment:
        """Move to ``device`` and/or set the per-step precision; returns self."""
        if device is not None:
            self.simulator.to(device)
        if dtype is not None:
            if dtype not in (torch.float32, torch.float64):
                raise ExperimentError(f"dtype must be float32 or float64, got {dtype}")
            self.simulator.compute_dtype = dtype
        return self

    # -- parameters ------------------------------------------------------------------------

    def parameter_names(self) -> list[str]:
        """Names of the parameters that can move in this experiment."""
        return [n for n, s in SPECS.items() if s.why_not(self.simulator) is None]

    def spec(self, name: str) -> ParameterSpec:
        """The spec of a parameter that applies here; ExperimentError otherwise."""
        try:
            spec = lookup(name)
        except KeyError as err:
            raise ExperimentError(err.args[0]) from None
        why = spec.why_not(self.simulator)
        if why is not None:
            raise ExperimentError(f"{name} cannot be refined here: {why}")
        return spec

    def _target(self, spec: ParameterSpec) -> tuple[str, torch.Tensor, slice | None]:
        path, index = target_of(spec, self.simulator)
        module, attr = path.split(".")
        return path, getattr(getattr(self.simulator, module), attr), index

    def get(self, name: str) -> torch.Tensor:
        """Current value of a parameter in user units (float64, detached)."""
        spec = self.spec(name)
        _, tensor, index = self._target(spec)
        si = tensor.detach() if index is None else tensor.detach()[index]
        return spec.user(si, self.simulator).clone()

    def set(self, name: str, value) -> None:
        """Set a parameter (user units) for all later renders."""
        spec = self.spec(name)
        _, tensor, index = self._target(spec)
        with torch.no_grad():
            si = spec.si(torch.as_tensor(value, dtype=tensor.dtype, device=tensor.device),
                         self.simulator)
            target = tensor if index is None else tensor[index]
            if si.shape != target.shape and si.numel() != target.numel():
                raise ExperimentError(f"{name} takes {tuple(target.shape)} values, got "
                                      f"{tuple(si.shape)}")
            target.copy_(si.reshape(target.shape))

    def substitutions(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Model parameters (SI, by ``module.attribute``) for user values by name."""
        pieces: dict[str, tuple[torch.Tensor, list]] = {}
        for name, value in values.items():
            spec = self.spec(name)
            path, tensor, index = self._target(spec)
            value = torch.as_tensor(value, dtype=tensor.dtype, device=tensor.device)
            si = spec.si(value, self.simulator)
            base, parts = pieces.setdefault(path, (tensor.detach(), []))
            full = base[index] if index is not None else base
            if si.numel() != full.numel():
                raise ExperimentError(f"{name} takes {tuple(full.shape)} values, got "
                                      f"{tuple(value.shape)}")
            parts.append((index, si.reshape(full.shape)))
        out = {}
        for path, (base, parts) in pieces.items():
            out[path] = _assemble(base, parts)
        return out

    # -- rendering -------------------------------------------------------------------------

    def render(self, values: Mapping[str, torch.Tensor] | None = None,
               pixels: torch.Tensor | None = None,
               memory_budget_mb: float | None = None) -> torch.Tensor:
        """(slow, fast) image in photons per pixel.

        ``values`` overrides parameters by name (user units); those that require gradients
        carry them into the image. ``pixels`` (slow, fast) bool renders only those pixels
        (the others are 0).
        """
        kwargs = dict(memory_budget_mb=memory_budget_mb, pixels=pixels)
        if not values:
            return self.simulator(**kwargs)
        return functional_call(self.simulator, self.substitutions(values), (), kwargs,
                               strict=False)

    def render_output(self, memory_budget_mb: float | None = None) -> RenderOutput:
        """The image with what nanoBragg reports about it (solid angle sum, ...)."""
        return self.simulator.render(memory_budget_mb)

    def save(self, path: str | os.PathLike, image: torch.Tensor | None = None,
             format: str | None = None, **options) -> str:
        """Write ``image`` (default: a fresh render) to ``path``; returns the format.

        The format follows the extension (``.bin`` float32, ``.img`` SMV, ``.pgm``, ``.cbf``,
        ``.nxs``/``.h5`` NeXus, ``.png``) or ``format``; ``options`` are ``scale``, ``adc``
        and ``rings_A`` of :func:`torchbragg.save.save_image`, with this experiment's
        geometry in the headers.
        """
        from torchbragg.save import save_image

        if image is None:
            with torch.no_grad():
                image = self.render()
        return save_image(path, image, self, format, **options)


def _assemble(base: torch.Tensor, parts: list) -> torch.Tensor:
    """``base`` with slices replaced (differentiably) by the given tensors."""
    out = base.clone()
    for index, t in parts:
        if index is None:
            out = t.clone()
        else:
            out[index] = t
    return out


def _scan(argv: list[str]) -> CState:
    """The scanned state of nanoBragg options; the scan's warnings become Python warnings."""
    try:
        parsed = parse_args(argv, read_headers=apply_smv_headers)
    except UsageError as err:
        raise ExperimentError(str(err)) from None
    for line in parsed.warnings:
        warnings.warn(line, stacklevel=3)
    return parsed.state


def usage_reason_api(state: CState) -> str:
    """What an experiment lacks (structure factors, a cell), '' when complete."""
    missing = []
    dump = state.dump_path
    has_dump = dump is not None and os.path.exists(dump)
    if (state.hkl_table is None and state.hkl_path is None and not has_dump
            and state.default_F == 0.0):
        missing.append("no structure factors (structure_factors(F=...), "
                       "structure_factors(hkl_file=...) or structure_factors(default_F=...))")
    if state.mat_path is None and state.cell[0] == 0.0:
        missing.append("no unit cell (crystal(cell=...) or crystal(mosflm_matrix=...))")
    return " and ".join(missing)
