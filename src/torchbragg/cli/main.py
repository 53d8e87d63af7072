"""``torchbragg``: nanoBragg's command line, rendered with PyTorch."""

from __future__ import annotations

import os
import sys

import torch

from torchbragg.cli.outputs import write_outputs
from torchbragg.cli.parse import UsageError, parse_args
from torchbragg.cli.report import noise_lines, solid_angle_line, summary_lines
from torchbragg.cli.usage import usage_text
from torchbragg.io.errors import InputFileError
from torchbragg.precedence import SetupError, apply_smv_headers, resolve, usage_needed
from torchbragg.render import interpolation_warning
from torchbragg.rng import default_noise_seed
from torchbragg.simulator import Simulator

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _say(line: str) -> None:
    print(line, flush=False)


def run(argv: list[str]) -> int:
    """Run one simulation; raise UsageError, SetupError or InputFileError on bad input."""
    parsed = parse_args(argv, read_headers=apply_smv_headers)
    st, ext = parsed.state, parsed.extensions
    for line in parsed.warnings:
        _say(line)
    if usage_needed(st):
        if st.hkl_path is None and st.default_F == 0.0:
            _say("ERROR: no hkl file and no dump file to read.")
        _say(usage_text())
        return 9
    dtype = DTYPES.get(ext.get("dtype", "float64"))
    if dtype is None:
        raise UsageError(f"--dtype must be float64 or float32, got {ext['dtype']}")
    plan = resolve(st)
    for line in plan.messages:
        _say(line)
    config = plan.config
    for line in summary_lines(plan, _hkl_count(plan)):
        _say(line)
    if st.calculate_noise:
        if st.seed is None:
            st.seed = default_noise_seed()
        for line in noise_lines(st.seed, config.sampling.water_size_m):
            _say(line)
    sim = Simulator(config, dtype=dtype, device=ext.get("device", "cpu"))
    budget = float(ext["memory_budget_mb"]) if "memory_budget_mb" in ext else None
    with torch.no_grad():
        out = sim.render(budget)
    for line in interpolation_warning(out.interpolation):
        _say(line)
    _say("")
    _say(solid_angle_line(float(out.omega_sum), config.steps))
    image = out.image.detach().to("cpu", torch.float64).numpy()
    write_outputs(image, config, st, plan.info["frame"], plan.info["rng_shared"], _say)
    return 0


def _hkl_count(plan) -> int:
    sf = plan.config.structure_factors
    return plan.info.get("n_hkl_read", 0 if sf.grid is None else int(sf.grid.size))


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit status; bad input gives one line on stderr."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except (UsageError, SetupError, InputFileError) as err:
        print(f"torchbragg: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        name = f" {err.filename}" if getattr(err, "filename", None) else ""
        print(f"torchbragg: error:{name}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("torchbragg: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """Console-script wrapper."""
    code = main()
    sys.stdout.flush()
    os.sys.exit(code)
