"""Physical objects as torch.nn.Modules holding refinable parameters (SI units)."""
