"""--stale-phi0: the released nanoBragg's phi = 0 step (reuses the previous rotated cell)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import torchbragg as tb
from torchbragg.models.crystal import stale_order
from torchbragg.simulator import Simulator


@pytest.mark.parametrize(("phi", "order"), [
    ([0.0, 1.0, 2.0], [2, 1, 2]),
    ([0.5, 1.0], [0, 1]),
    ([-1.0, 0.0, 1.0], [0, 0, 2]),
    ([0.0, 0.0, 2.0], [2, 2, 2]),
    ([0.0, 0.0], [0, 0]),
])
def test_which_step_each_phi_step_uses(phi, order):
    assert stale_order(phi) == order


def test_stale_image_is_the_steps_it_reuses():
    exp = tb.Experiment.from_args("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -N 5 "
                                  "-distance 100 -detpixels 16 -osc 3 -phisteps 3 "
                                  "-misset 3 4 5", kernel="reference")
    cfg = exp.config

    def image(**crystal) -> torch.Tensor:
        config = dataclasses.replace(cfg, crystal=dataclasses.replace(cfg.crystal, **crystal))
        return Simulator(config, kernel="reference")()

    stale = image(stale_phi0=True)
    one, two = (image(phi0_rad=math.radians(x), phisteps=1) for x in (1.0, 2.0))
    # steps at 0, 1, 2 degrees: the first reuses the 2-degree cell; each single-step image
    # is normalised by one step, the three-step image by three
    expected = (two + one + two) / 3
    assert torch.allclose(stale, expected, rtol=1e-12, atol=0)
    assert not torch.allclose(stale, exp.render(), rtol=1e-3, atol=0)
