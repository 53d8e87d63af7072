"""Test options: ``--torch-device`` renders the golden cases on another device (e.g. cuda)."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption("--torch-device", default="cpu",
                     help="device the golden-case renders run on (cpu, cuda, cuda:N)")


def pytest_configure(config):
    import golden_cases

    device = config.getoption("--torch-device")
    golden_cases.EXTRA_ARGS[:] = [] if device == "cpu" else ["--device", device]
