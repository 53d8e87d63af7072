"""Fitting an experiment's parameters to measured pixels.

Losses (:func:`poisson_nll`, :func:`least_squares`) compare a rendered image with an
observed one over a pixel mask; :func:`near_spots` picks the pixels around predicted spots;
:func:`refine` runs L-BFGS over named parameters and :func:`standard_errors` gives their
uncertainties from the Hessian of the loss.

The optimiser works in dimensionless steps: parameter = start + x * step, with each
parameter's typical step (see :mod:`torchbragg.parameters`), so that millimetres, degrees,
Å and photons per m^2 are on one footing. Bounds are enforced by clamping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from torchbragg.experiment import Experiment, ExperimentError


def poisson_nll(model: torch.Tensor, observed: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Poisson negative log-likelihood sum(model - observed log model), up to a constant.

    ``model`` and ``observed`` are (slow, fast) photons; ``mask`` (bool) selects pixels.
    A pixel whose model is 0 costs nothing when nothing was observed there.
    """
    model, observed = _select(model, observed, mask)
    safe = torch.where(model > 0, model, torch.ones_like(model))
    log_term = torch.where(observed > 0, observed * torch.log(safe), torch.zeros_like(model))
    return (model - log_term).sum()


def least_squares(model: torch.Tensor, observed: torch.Tensor,
                  mask: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """Half the (weighted) sum of squared residuals over the masked pixels."""
    if weights is not None:
        weights = weights.to(model) if mask is None else weights.to(model)[mask]
    model, observed = _select(model, observed, mask)
    r2 = (model - observed) ** 2
    return 0.5 * (r2 if weights is None else r2 * weights).sum()


LOSSES: dict[str, Callable] = {"poisson": poisson_nll, "least_squares": least_squares}


def _select(model, observed, mask):
    observed = torch.as_tensor(observed).to(model)
    if observed.shape != model.shape:
        raise ValueError(f"observed image is {tuple(observed.shape)}, model is "
                         f"{tuple(model.shape)}")
    if mask is None:
        return model, observed
    mask = torch.as_tensor(mask, device=model.device).bool()
    return model[mask], observed[mask]


def near_spots(image: torch.Tensor, fraction: float = 0.01, radius_px: int = 3) -> torch.Tensor:
    """(slow, fast) bool: pixels within ``radius_px`` of a pixel above ``fraction`` x max.

    Use it on a predicted image to keep the pixels where spots are (or may move to).
    """
    image = image.detach()
    hot = (image > fraction * image.max()).to(torch.float32)[None, None]
    size = 2 * int(radius_px) + 1
    grown = torch.nn.functional.max_pool2d(hot, size, stride=1, padding=int(radius_px))
    return grown[0, 0] > 0


@dataclass
class RefinementResult:
    """What :func:`refine` found.

    Values, starts and standard errors are in each parameter's user units (tensors of the
    parameter's shape); ``covariance`` is over the flattened parameters in that order.
    """

    names: list[str]
    start: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]
    loss: float
    start_loss: float
    iterations: int
    evaluations: int
    converged: bool
    standard_errors: dict[str, torch.Tensor] = field(default_factory=dict)
    covariance: torch.Tensor | None = None

    def table(self, truth: Mapping[str, torch.Tensor] | None = None) -> str:
        """One line per parameter component: (true,) start, refined, standard error."""
        head = f"{'parameter':34s}" + (f"{'true':>14s}" if truth else "") + \
            f"{'start':>14s}{'refined':>14s}{'std err':>12s}"
        lines = [head]
        for name in self.names:
            start = self.start[name].reshape(-1)
            value = self.values[name].reshape(-1)
            err = self.standard_errors.get(name, torch.full_like(value, math.nan)).reshape(-1)
            true = None if truth is None else torch.as_tensor(truth[name]).reshape(-1)
            for i in range(value.numel()):
                label = name if value.numel() == 1 else f"{name}[{i}]"
                line = f"{label:34s}"
                line += f"{float(true[i]):14.6g}" if true is not None else ""
                line += f"{float(start[i]):14.6g}{float(value[i]):14.6g}{float(err[i]):12.3g}"
                lines.append(line)
        return "\n".join(lines)


class _Problem:
    """Parameters in dimensionless steps from their starts, and the loss as a function of x.

    Several experiments (images) share the parameters; their losses add.
    """

    def __init__(self, exps, names: Sequence[str], observed, loss, pixels, bounds):
        if not names:
            raise ExperimentError("nothing to refine: give parameter names")
        self.exps = list(exps) if isinstance(exps, (list, tuple)) else [exps]
        observed = list(observed) if isinstance(observed, (list, tuple)) else [observed]
        pixels = list(pixels) if isinstance(pixels, (list, tuple)) else [pixels] * len(
            self.exps)
        if not len(observed) == len(pixels) == len(self.exps):
            raise ExperimentError(f"{len(self.exps)} experiments but {len(observed)} images "
                                  f"and {len(pixels)} pixel masks")
        exp = self.exps[0]
        self.names = list(names)
        self.specs = [exp.spec(n) for n in self.names]
        for other in self.exps[1:]:
            for n in self.names:
                other.spec(n)
        self.start = {n: exp.get(n) for n in self.names}
        self.step = {n: s.typical_step(self.start[n]) for n, s in zip(self.names, self.specs,
                                                                       strict=True)}
        bounds = dict(bounds or {})
        self.bounds = {n: bounds.get(n, s.bounds) for n, s in zip(self.names, self.specs,
                                                                   strict=True)}
        self.sizes = [self.start[n].numel() for n in self.names]
        self.observed = [torch.as_tensor(o, dtype=torch.float64, device=e.device)
                         for o, e in zip(observed, self.exps, strict=True)]
        self.loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
        self.pixels = pixels
        self.evaluations = 0
        self.device = exp.device

    def values(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name, part in zip(self.names, torch.split(x, self.sizes), strict=True):
            start, step = self.start[name], self.step[name]
            value = start + part.reshape(start.shape) * step
            lo, hi = self.bounds[name]
            out[name] = torch.clamp(value, min=lo, max=hi)
        return out

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        values = self.values(x)
        total = 0.0
        for exp, observed, pixels in zip(self.exps, self.observed, self.pixels, strict=True):
            total = total + self.loss_fn(exp.render(values, pixels=pixels), observed, pixels)
        return total

    def residual_variance(self, x: torch.Tensor, n_params: int) -> torch.Tensor:
        """Mean squared residual per degree of freedom (for least-squares errors)."""
        with torch.no_grad():
            values = self.values(x)
            total, n = 0.0, 0
            for exp, observed, pixels in zip(self.exps, self.observed, self.pixels,
                                             strict=True):
                image = exp.render(values, pixels=pixels)
                total = total + 2 * least_squares(image, observed, pixels)
                n += image.numel() if pixels is None else int(pixels.sum())
            return total / max(n - n_params, 1)


def refine(exp: Experiment | Sequence[Experiment], observed, names: Sequence[str], *,
           loss: str | Callable = "poisson", pixels=None,
           bounds: Mapping[str, tuple[float, float]] | None = None, max_iter: int = 200,
           tolerance: float = 1e-9, errors: bool = True, rounds: int = 3) -> RefinementResult:
    """Fit the named parameters of ``exp`` to ``observed`` (slow, fast) photons.

    ``exp`` may be a list of experiments (images) sharing the parameters, with a list of
    observed images (and of pixel masks).

    Parameters
    ----------
    loss:
        ``"poisson"`` (negative log-likelihood), ``"least_squares"`` or a callable
        ``(model, observed, mask) -> scalar``.
    pixels:
        (slow, fast) bool: the pixels that count (and the only ones rendered).
    bounds:
        {name: (low, high)} in user units, replacing the defaults.
    max_iter, tolerance, rounds:
        L-BFGS iterations per round, its tolerance on changes, and how many rounds (each
        restarts the curvature memory from the current point). With at most
        ``NEWTON_MAX_PARAMETERS`` parameters, damped Newton steps on the exact Hessian
        follow, and ``converged`` means the predicted decrease of the loss fell below
        ``NEWTON_DECREMENT``; otherwise that the last L-BFGS round did not move.
    errors:
        Also compute standard errors from the Hessian at the optimum.

    The refined values are set on ``exp``.
    """
    problem = _Problem(exp, names, observed, loss, pixels, bounds)
    x = torch.zeros(sum(problem.sizes), dtype=torch.float64, device=problem.device)
    with torch.no_grad():
        start_loss = float(problem.loss(x))
    x, iterations, still = _lbfgs(problem, x, max_iter, tolerance, rounds)
    converged = still
    if x.numel() <= NEWTON_MAX_PARAMETERS:
        x, steps, decrement = _newton(problem, x)
        iterations += steps
        converged = decrement < NEWTON_DECREMENT
    values = {n: v.detach() for n, v in problem.values(x.detach()).items()}
    for one in problem.exps:
        for name, value in values.items():
            one.set(name, value)
    result = RefinementResult(names=problem.names, start=problem.start, values=values,
                              loss=float(problem.loss(x.detach())), start_loss=start_loss,
                              iterations=iterations, evaluations=problem.evaluations,
                              converged=converged)
    if errors:
        result.covariance, result.standard_errors = standard_errors(
            exp, observed, problem.names, loss=loss, pixels=pixels)
    return result


# With this few parameters the refinement ends with damped Newton steps on the exact Hessian,
# and has converged when the predicted decrease of the loss is below NEWTON_DECREMENT.
NEWTON_MAX_PARAMETERS = 40
NEWTON_DECREMENT = 1e-6


def _lbfgs(problem: _Problem, x: torch.Tensor, max_iter: int, tolerance: float,
           rounds: int) -> tuple[torch.Tensor, int, bool]:
    """L-BFGS rounds from ``x``; the end point, iterations, and whether the last round stood."""
    x = x.clone().requires_grad_(True)
    iterations = 0
    for _ in range(rounds):
        before = x.detach().clone()
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=max_iter, tolerance_grad=1e-12,
                                tolerance_change=tolerance, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure(opt=opt):
            opt.zero_grad()
            value = problem.loss(x)
            value.backward()
            return value

        opt.step(closure)
        iterations += opt.state[opt._params[0]].get("n_iter", 0)
        if float((x.detach() - before).abs().max()) < 1e-6:
            return x.detach(), iterations, True
    return x.detach(), iterations, False


def _derivatives(loss: Callable, x: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, gradient and Hessian at ``x`` from one forward pass (double backpropagation)."""
    xg = x.detach().clone().requires_grad_(True)
    value = loss(xg)
    (grad,) = torch.autograd.grad(value, xg, create_graph=True)
    rows = []
    for g in grad:
        row = (torch.autograd.grad(g, xg, retain_graph=True, allow_unused=True)[0]
               if g.requires_grad else None)
        rows.append(torch.zeros_like(x) if row is None else row)
    return value.detach(), grad.detach(), torch.stack(rows)


def _newton(problem: _Problem, x: torch.Tensor,
            max_steps: int = 20) -> tuple[torch.Tensor, int, float]:
    """Damped Newton (Levenberg-Marquardt on the exact Hessian) from ``x``.

    Returns the end point, the steps taken and the last predicted decrease of the loss.
    """
    damping = 1e-4
    predicted = math.inf
    for step_count in range(max_steps):
        value, grad, hessian = _derivatives(problem.loss, x)
        scale = torch.diagonal(hessian).abs().clamp_min(1e-12)
        while True:
            system = hessian + damping * torch.diag(scale)
            step = -torch.linalg.lstsq(system, grad[:, None]).solution[:, 0]
            predicted = float(-(grad @ step + 0.5 * step @ hessian @ step))
            with torch.no_grad():
                trial = problem.loss(x + step)
            if float(trial) <= float(value):
                x = x + step
                damping = max(damping / 10, 1e-9)
                break
            damping *= 10
            if damping > 1e8:
                return x, step_count, predicted
        if predicted < NEWTON_DECREMENT:
            return x, step_count + 1, predicted
    return x, max_steps, predicted


def standard_errors(exp: Experiment | Sequence[Experiment], observed, names: Sequence[str], *,
                    loss: str | Callable = "poisson", pixels=None
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Covariance (flattened, user units) and standard errors of parameters at their values.

    The covariance is the inverse Hessian of the loss (for the Poisson likelihood, the
    observed information), taken by double backpropagation through the renderer. With
    least squares it is scaled by the residual variance.
    """
    problem = _Problem(exp, names, observed, loss, pixels, None)
    x = torch.zeros(sum(problem.sizes), dtype=torch.float64, device=problem.device)
    _, _, hessian = _derivatives(problem.loss, x)
    steps = torch.cat([problem.step[n].reshape(-1) for n in problem.names])
    cov = torch.linalg.pinv(hessian, hermitian=True)
    if loss == "least_squares":
        cov = cov * problem.residual_variance(x, len(steps))
    cov = cov * steps[:, None] * steps[None, :]
    errs = torch.sqrt(torch.clamp(torch.diagonal(cov), min=0))
    return cov, {n: e.reshape(problem.start[n].shape)
                 for n, e in zip(problem.names, torch.split(errs, problem.sizes), strict=True)}
