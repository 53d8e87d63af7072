"""torchbragg: nanoBragg in PyTorch."""
