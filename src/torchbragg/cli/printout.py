"""``-printout``: nanoBragg's per-pixel report of the last step's values, via an observer."""

from __future__ import annotations

import math

import numpy as np

from torchbragg.io.images import format_c_g as _g


class PrintoutObserver:
    """Collects nanoBragg's ``-printout`` lines for the selected pixels of each chunk.

    ``pixel`` is (fast, slow) to report one pixel, or None for every pixel, as in the C
    program. Values are those of the last layer, sub-pixel, source and orientation.
    """

    def __init__(self, pixel: list[int] | None, wavelength_m: float, steps: int,
                 flags: tuple[bool, bool, bool], nopolar: bool):
        self.pixel = pixel
        self.wavelength_m = wavelength_m
        self.steps = steps
        self.flags = flags
        self.nopolar = nopolar
        self.lines: list[str] = []
        self._geo: dict = {}
        self._steps: dict | None = None
        self.lattice_m: np.ndarray | None = None

    def __call__(self, stage: str, tensors: dict) -> None:
        """Receive one stage of a chunk from the renderer."""
        if stage == "geometry":
            self._geo = {k: v.detach().cpu().numpy() for k, v in tensors.items()}
            self._steps = None
        elif stage == "steps" and self._steps is None:
            # orientation chunks arrive last first, so the first call holds the last step
            self._steps = {k: v[:, -1, -1, -1, -1].detach().cpu().numpy()
                           for k, v in tensors.items()}
        elif stage == "pixel":
            self._emit({k: v.detach().cpu().numpy() for k, v in tensors.items()})

    def _emit(self, px: dict) -> None:
        g, st = self._geo, self._steps
        for i, (f, s) in enumerate(zip(g["fast"], g["slow"], strict=True)):
            if self.pixel is not None and [int(f), int(s)] != list(self.pixel):
                continue
            self.lines.extend(self._pixel_lines(i, int(f), int(s), g, st, px))

    def _last(self, i: int, g: dict, px: dict) -> tuple[float, float, float]:
        thick, pol, omg = self.flags
        polar = float(g["polar"][i, -1, -1, -1]) if pol else float(px["polar"][i])
        omega = float(g["omega"][i, -1, -1]) if omg else float(px["omega"][i])
        capture = float(g["capture"][i, -1, -1]) if thick else float(px["capture"][i])
        return polar, omega, capture

    def _pixel_lines(self, i: int, f: int, s: int, g: dict, st: dict, px: dict) -> list[str]:
        pos = g["position"][i, -1, -1]
        stol = 0.5 * float(np.linalg.norm(g["scattering"][i, -1, -1, -1]))
        twotheta = math.atan2(math.hypot(pos[1], pos[2]), pos[0])
        test = math.sin(twotheta / 2.0) / (self.wavelength_m * 1e10)
        h, h0 = st["hkl"][i], st["hkl0"][i]
        polar, omega, capture = self._last(i, g, px)
        total = float(px["intensity"][i])
        lines = [f"{f:4d} {s:4d} : stol = {_g(stol)} or {_g(test)}",
                 "at " + " ".join(_g(x) for x in pos),
                 "hkl= {:f} {:f} {:f}  hkl0= {:d} {:d} {:d}".format(*h, *(int(x) for x in h0)),
                 f" F_cell={_g(st['f_cell'][i])}  F_latt={_g(st['f_latt'][i])}   I = "
                 f"{_g(total)}",
                 f"I/steps {total / self.steps:15.10g}", f"polar   {polar:15.10g}",
                 f"omega   {omega:15.10g}", f"capfrac {capture:15.10g}",
                 f"pixel   {float(np.float32(px['values'][i])):15.10g}"]
        if self.lattice_m is not None:
            lines += ["real-space cell vectors (Angstrom):",
                      "     {:<10s}  {:<10s}  {:<10s}".format("a", "b", "c")]
            last = self.lattice_m[-1] * 1e10
            lines += [f"{ax}: " + " ".join(f"{x:11.8f}" for x in last[:, j])
                      for j, ax in enumerate("XYZ")]
        return lines
