"""File formats: SMV, PGM, HKL, Fdump, MOSFLM matrices, source lists, float images."""
