"""torchbragg: nanoBragg in PyTorch.

``simulate(config)`` renders a :class:`~torchbragg.config.SimulationConfig`; ``Simulator``
is the same as an ``nn.Module`` whose parameters can be refined.
"""

from torchbragg.simulator import Simulator, simulate

__all__ = ["Simulator", "simulate"]
