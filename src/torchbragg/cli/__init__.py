"""The nanoBragg-compatible command line."""
