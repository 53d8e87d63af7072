"""torchbragg: nanoBragg in PyTorch.

``simulate(config)`` renders a :class:`~torchbragg.config.SimulationConfig`; ``Simulator``
is the same as an ``nn.Module`` whose parameters can be refined. Both are imported on first
use, so that the command line can answer ``--help`` without loading torch.
"""

__all__ = ["Simulator", "simulate"]


def __getattr__(name: str):
    if name in __all__:
        from torchbragg import simulator

        return getattr(simulator, name)
    raise AttributeError(f"module 'torchbragg' has no attribute {name!r}")
