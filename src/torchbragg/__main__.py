"""``python -m torchbragg``: the nanoBragg-compatible command line."""

from torchbragg.cli.entry import torchbragg

torchbragg()
