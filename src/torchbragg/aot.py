"""Kernels compiled ahead of time with AOTInductor, cached on disk, loaded in milliseconds.

``torch.compile`` would recompile, or at least re-trace, in every process, and importing its
machinery alone takes longer than a small image. Instead the fused kernel
(:mod:`torchbragg.fused`) is exported once per variant and device with every size dynamic,
compiled by AOTInductor (vectorised C++ with OpenMP on CPU, Triton on CUDA) into a ``.pt2``
package, and later processes load that package through PyTorch's C++ loader without importing
the compiler at all.

Packages live in ``$TORCHBRAGG_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchbragg/kernels``, else
``~/.cache/torchbragg/kernels``. The file name holds a hash of the kernel's source, the torch
version and the CPU's vector ISA (or the GPU's compute capability), so a changed kernel or a
different machine builds its own. A build that fails (no C++ compiler, an old torch) leaves a
``.failed`` note beside where the package would be, so later runs do not retry; deleting the
cache folder retries.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from torchbragg import fused, geometry, physics


def inductor_options(variant: fused.Variant) -> dict:
    """Compiler options for a variant (measured fastest, see docs/performance.md).

    A float32 step with orientations in the vector lanes reads each Miller index several
    times (index, offset, sign); by default the compiler would store such reused values to
    memory, step by step. Letting it recompute them keeps the whole step in registers.
    Every other variant is fastest with the defaults.
    """
    if variant.step_dtype == "float32" and not variant.single_sample:
        return {"realize_reads_threshold": 64, "realize_opcount_threshold": 1000,
                "realize_acc_reads_threshold": 64}
    return {}


class KernelUnavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here (the message says why)."""


def cache_dir() -> Path:
    """Folder holding compiled kernel packages."""
    if os.environ.get("TORCHBRAGG_CACHE_DIR"):
        return Path(os.environ["TORCHBRAGG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "torchbragg" / "kernels"


def _machine_tag(device: torch.device) -> str:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda-sm{major}{minor}"
    return f"cpu-{torch.backends.cpu.get_cpu_capability()}"


def package_path(variant: fused.Variant, device: torch.device) -> Path:
    """Where the package for ``variant`` on ``device`` lives (whether or not it exists)."""
    digest = hashlib.sha256()
    for module in (fused, physics, geometry, sys.modules[__name__]):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(torch.__version__.encode())
    tag = _machine_tag(device)
    digest.update(tag.encode())
    return cache_dir() / f"plain-{variant.key()}-{tag}-{digest.hexdigest()[:16]}.pt2"


class CompiledKernel:
    """A loaded package: call it with the kernel's input tensors, get its output tensors."""

    def __init__(self, path: Path, device: torch.device):
        index = device.index if device.index is not None else -1
        try:
            self._runner = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1,
                                                                 index)
            self._boxed = True
        except (AttributeError, TypeError):  # another torch's loader signature
            from torch._inductor import aoti_load_package

            self._runner = aoti_load_package(str(path))
            self._boxed = False

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the kernel (inputs must match the exported kinds, device and dtypes)."""
        if self._boxed:
            return tuple(self._runner.boxed_run(list(inputs)))
        return tuple(self._runner(*inputs))


_LOADED: dict[Path, CompiledKernel] = {}


def plain_kernel(variant: fused.Variant, device: torch.device, build: bool = True,
                 say=None) -> CompiledKernel | None:
    """The compiled plain kernel for ``variant`` on ``device``.

    Loads the cached package; if there is none, builds it when ``build`` (telling
    ``say(line)`` first, since it takes tens of seconds) and returns None otherwise.
    Raises :class:`KernelUnavailable` when the build fails, now or in an earlier run.
    """
    path = package_path(variant, device)
    if path in _LOADED:
        return _LOADED[path]
    failed = path.with_suffix(".failed")
    if failed.exists():
        raise KernelUnavailable(failed.read_text().strip())
    if not path.exists():
        if not build:
            return None
        if say is not None:
            say(f"torchbragg: compiling the fused kernel ({variant.key()}, {device.type}); "
                f"once per machine, cached in {path.parent}")
        try:
            _build(variant, device, path)
        except Exception as err:  # noqa: BLE001 - any compiler failure means: not here
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
            _note_failure(failed, reason)
            raise KernelUnavailable(reason) from None
    kernel = CompiledKernel(path, device)
    _LOADED[path] = kernel
    return kernel


def _note_failure(failed: Path, reason: str) -> None:
    try:
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(reason + "\n")
    except OSError:
        pass


def _build(variant: fused.Variant, device: torch.device, path: Path) -> None:
    """Export, compile and package the plain kernel; the file appears whole or not at all."""
    from torch._inductor import aoti_compile_and_package
    from torch.export import export

    module = fused.PlainKernel(variant)
    with warnings.catch_warnings():  # the exporter's own deprecation notices
        warnings.simplefilter("ignore")
        program = export(module, fused.example_inputs(variant, device),
                         dynamic_shapes=fused.dynamic_shapes(variant))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(suffix=".pt2", dir=path.parent)
    os.close(handle)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aoti_compile_and_package(program, package_path=scratch,
                                     inductor_configs=inductor_options(variant))
        os.replace(scratch, path)
        _remove_stale(path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def _remove_stale(path: Path) -> None:
    """Delete packages of the same variant and machine built from other kernel sources."""
    stem = path.stem.rsplit("-", 1)[0]
    for old in path.parent.glob(stem + "-*.pt2"):
        if old != path and old.stem.rsplit("-", 1)[0] == stem:
            with contextlib.suppress(OSError):
                old.unlink()


def stderr_line(line: str) -> None:
    """Print one line on stderr (stdout stays the C program's)."""
    print(line, file=sys.stderr, flush=True)
