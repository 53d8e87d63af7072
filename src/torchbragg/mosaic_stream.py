"""Mosaic domains drawn when they are needed, for crystals with too many to hold.

The C program draws each domain's rotation from one random stream (three uniforms per
domain, see :func:`torchbragg.rng.mosaic_axis_angle`). :func:`mosaic_stream` runs that
stream once, as the C program does (so the generators' shared state ends where it would),
keeping only a checkpoint of the stream every ``every`` domains; :meth:`MosaicStream.draws`
then redraws any range of domains from the checkpoint before it. Memory is a few hundred
bytes per checkpoint instead of 104 bytes per domain.

The draws here are vectorised (numpy, and the C library's powf through a compiled kernel);
they agree with the scalar path bit for bit where numpy's sin and cos round as the C
library's do, and to the last bit otherwise. Crystals with few enough domains use the scalar
path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from torchbragg.rng import Ran1, SharedState, ran1_sequence
from torchbragg.rng_kernels import compiled

_RTD = 180.0 * 0.318309886183790671537767526745028724  # as rng.py builds it


@dataclass(frozen=True, eq=False)
class MosaicStream:
    """Domain rotations of a mosaic crystal, drawn a range at a time.

    ``count`` domains drawn at ``spread_rad`` (the mosaicity the draw uses; angles scale
    with it); ``checkpoints[k]`` is the stream (idum, shared table) before domain
    ``k * every``.
    """

    count: int
    spread_rad: float
    every: int
    checkpoints: tuple

    def draws(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Axes (n, 3) and angles (n,) of domains start .. stop-1 (domain 0 unrotated)."""
        if not 0 <= start <= stop <= self.count:
            raise IndexError(f"domains {start}..{stop} of {self.count}")
        first = start // self.every
        idum, table = self.checkpoints[first]
        shared = SharedState()
        shared.table[:] = table
        rng = Ran1(idum, shared)
        skip = start - first * self.every
        uniforms = ran1_sequence(rng, 3 * (skip + stop - start))[3 * skip:]
        axes, angles = _axis_angles(uniforms.reshape(-1, 3), self.spread_rad)
        if start == 0 and stop > 0:
            axes[0], angles[0] = 0.0, 0.0
        return axes, angles


def _axis_angles(u: np.ndarray, mosaicity_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """The C draw, vectorised: uniforms (n, 3) float32 -> unit axes (n, 3), angles (n,).

    Axis uniform on the sphere from r1, r2; angle mosaicity (1 - r3^2)^(1/3), with the
    mosaicity and the angle passing through C floats.
    """
    r = 2.0 * u.astype(np.float64) - 1.0
    r1, r2, r3 = r[:, 0], r[:, 1], r[:, 2]
    xyrad = np.sqrt(1.0 - r2 * r2)
    mosaicity = np.float64(np.float32(mosaicity_rad))
    cube_root = np.empty(len(r3), dtype=np.float32)
    compiled("_powf_fill")((1.0 - r3 * r3).astype(np.float32), np.float32(1.0 / 3.0),
                           cube_root)
    angles = (mosaicity * cube_root.astype(np.float64)).astype(np.float32).astype(np.float64)
    axes = np.stack((xyrad * np.sin(np.pi * r1), xyrad * np.cos(np.pi * r1), r2), -1)
    return axes, angles


def mosaic_stream(mosaic_spread_deg: float, n_domains: int, seed: int,
                  shared: SharedState | None = None, every: int = 4096) -> MosaicStream:
    """Run the mosaic stream through ``n_domains`` domains, keeping checkpoints.

    ``shared`` (the generators' static state) is advanced exactly as drawing every domain
    advances it.
    """
    rng = Ran1.from_seed(seed, shared)
    checkpoints = []
    for first in range(0, int(n_domains), every):
        checkpoints.append((rng.idum, rng.shared.table.copy()))
        ran1_sequence(rng, 3 * min(every, int(n_domains) - first))
    return MosaicStream(int(n_domains), float(mosaic_spread_deg) / _RTD, every,
                        tuple(checkpoints))
