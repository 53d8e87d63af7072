"""Render and write what a parsed nonBragg command line asks for (imports torch).

The order of the printed lines and written files is the C program's: set-up block, progress
meter (or ``-printout`` lines), solid angle, ``-img`` statistics, float image, statistics,
SMV image, PGM, noise image.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import torch

from torchbragg.background import (
    AmorphousImage,
    last_samples,
    render_amorphous,
    roi_pixels,
)
from torchbragg.cli import simulate as nanobragg_run
from torchbragg.cli.nonbragg import _say, _say_all, check_outputs_writable
from torchbragg.cli.nonbragg_options import RTD, NBState
from torchbragg.cli.nonbragg_plan import BANNER, NBPlan, build_plan, describe_paths, g
from torchbragg.cli.parse import UsageError
from torchbragg.config import R_E_SQR_M2
from torchbragg.errors import one_line
from torchbragg.io.images import (
    format_c_g,
    int_image,
    pgm_image,
    write_atomic,
    write_float_image,
)
from torchbragg.io.pgm import write_pgm
from torchbragg.io.smv import write_smv
from torchbragg.rng import default_noise_seed, noise_image


def device_settings(ext: dict) -> tuple[torch.device, int | None]:
    """``--device`` and ``--chunk-elements``, checked."""
    device = nanobragg_run.checked_device(ext.get("device", "cpu"))
    chunk = ext.get("chunk_elements")
    if chunk is not None:
        try:
            chunk = int(chunk)
        except ValueError:
            chunk = 0
        if chunk <= 0:
            raise UsageError(f"--chunk-elements must be a positive integer, got "
                             f"'{ext['chunk_elements']}'")
    return device, chunk


def progress_lines(start: int, stop: int, total: int) -> list[str]:
    """nonBragg's progress meter for pixel counters ``start`` .. ``stop - 1``.

    A line every 5 % of ``total`` (the ROI's (width + 1) x (height + 1)), and every 1 % in
    the first and last tenth; found from the multiples, not pixel by pixel.
    """
    if total // 100 <= 0:
        return []
    every5, every1 = total // 20, total // 100

    def multiples(step: int) -> range:
        return range(-(-start // step) * step, stop, step)

    chosen = set(multiples(every5))
    chosen.update(n for n in multiples(every1) if 10 * n < total or 10 * n > 9 * total)
    return [f"{n * 100 // total}% done" for n in sorted(chosen)]


def _progress(plan: NBPlan):
    st = plan.state
    if not st.progress or st.printout:
        return None
    xmin, xmax, ymin, ymax = plan.roi
    total = (xmax - xmin + 1) * (ymax - ymin + 1)
    done = [0]

    def report(pixels: int) -> None:
        _say_all(progress_lines(done[0], pixels, total))
        sys.stdout.flush()
        done[0] = pixels

    return report


def render(plan: NBPlan, chunk: int | None) -> AmorphousImage:
    """The background image (photons, float64, on the plan's device)."""
    st = plan.state
    with torch.no_grad():
        return render_amorphous(plan.sampler, plan.sources, plan.curve, plan.scale,
                                kahn=st.polarization, polar_vector=_polar(st),
                                nopolar=st.nopolar, roi=plan.roi, chunk_elements=chunk,
                                progress=_progress(plan))


def _polar(st: NBState) -> list[float]:
    v = st.polar_vector
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return [x / n for x in v]


def _last(plan: NBPlan):
    """Per rendered pixel: the last step's quantities (for -Fmap, -printout, -img)."""
    st = plan.state
    device = plan.placement.pix0.device
    fast, slow = roi_pixels(plan.sampler, plan.roi, device)
    with torch.no_grad():
        last = last_samples(plan.sampler, plan.sources, plan.curve, fast, slow,
                            kahn=st.polarization, polar_vector=_polar(st), nopolar=st.nopolar)
    return fast.cpu().numpy(), slow.cpu().numpy(), last


def printout_lines(plan: NBPlan, image32: np.ndarray, fast, slow, last) -> list[str]:
    """``-printout``: six lines per selected pixel, as the C program prints them.

    The C program prints an ``F`` it never sets (0) and ``I``, the last source's weight.
    """
    st = plan.state
    pf, ps = st.printout_pixel if st.printout_pixel is not None else (-1, -1)
    chosen = np.arange(len(fast)) if pf < 0 else np.flatnonzero((fast == pf) & (slow == ps))
    weight = float(plan.sources.weight[-1])
    pos = last.position.cpu().numpy()
    stol, polar, omega = (t.cpu().numpy() for t in (last.stol, last.polar, last.omega))
    lines = []
    for k in chosen.tolist():
        x, y, z = pos[k].tolist()
        twotheta = math.atan2(math.sqrt(y * y + z * z), x)
        test = math.sin(twotheta / 2.0) / (st.lambda0 * 1e10)
        lines += [f"{int(fast[k]):4d} {int(slow[k]):4d} : stol = {g(stol[k])} or {g(test)}",
                  f" F={g(0.0)}    I = {g(weight)}",
                  f"I/steps {weight / plan.steps:15.10g}",
                  f"polar   {float(polar[k]):15.10g}",
                  f"omega   {float(omega[k]):15.10g}",
                  f"pixel   {float(image32[slow[k], fast[k]]):15.10g}"]
    return lines


def solid_angle_line(omega_sum: float) -> str:
    """nonBragg's total solid angle: the sum over sub-pixels, not divided by their number."""
    return (f"solid angle subtended by detector = {g(omega_sum)} steradian ( "
            f"{g(100 * omega_sum / 4 / math.pi)}% sphere)")


# --------------------------------------------------------------------------------------------
# -img: F versus sin(theta)/lambda from an image.
# --------------------------------------------------------------------------------------------


def _c_ushort(value: float) -> int:
    """C's (unsigned short) of a double on x86-64: via a 32-bit int, low 16 bits."""
    if not (-2147483649.0 < value < 2147483648.0):
        return 0
    return int(value) & 0xFFFF


def _float32_mean_rmsd(values: np.ndarray) -> tuple[float, float]:
    """nonBragg's fmean_with_rejection without rejection: float32 running sums, in order."""
    n = np.float32(len(values))
    total = np.add.accumulate(values, dtype=np.float32)[-1]
    avg = np.float32(total / n)
    dev = np.abs(values - avg).astype(np.float32)
    sumd = np.add.accumulate(dev * dev, dtype=np.float32)[-1]
    return float(avg), float(np.float32(math.sqrt(float(np.float32(sumd / n)))))


def stolout(plan: NBPlan, fast, slow, last) -> tuple[list[str], list[str], int]:
    """``-img`` analysis: (lines of the -stolout file, lines printed, last bin's count).

    Each rendered pixel of the image becomes a structure factor, sign x sqrt(|I - adc| /
    gain / polar / omega / fluence / r_e^2 / molecules x steps) with the pixel's last step's
    polarization and solid angle, and falls in the bin of the table point nearest its last
    sin(theta)/lambda; pixels with a ``-ignore`` value are left out. Bins with more than 100
    pixels give a line ``stol mean rmsd median mad n`` (median and MAD: 0).
    """
    st = plan.state
    img = plan.img[slow, fast]
    ignore = {_c_ushort(v) for v in st.ignore_values}
    valid = ~np.isin(img, np.array(sorted(ignore), dtype=np.float32)) if ignore \
        else np.ones(len(img), dtype=bool)
    deviate = ((img.astype(np.float64) - st.adc_offset) / st.quantum_gain).astype(np.float32)
    sign = np.where(deviate < 0, -1.0, 1.0)
    polar, omega, stol = (t.cpu().numpy() for t in (last.polar, last.omega, last.stol))
    with np.errstate(all="ignore"):
        quotient = (np.abs(deviate).astype(np.float64) / polar / omega / plan.fluence
                    / R_E_SQR_M2 / plan.molecules * plan.steps)
        pixel_F = (sign * np.sqrt(quotient)).astype(np.float32)
    x = plan.curve.x.cpu().numpy()
    bins = last.interval.cpu().numpy().astype(np.int64)
    bins = bins + (stol > (x[bins] + x[bins + 1]) / 2.0)
    bins = np.where(valid, bins, 0)
    order = np.argsort(bins, kind="stable")
    edges = np.searchsorted(bins[order], np.arange(len(x) + 1))
    out, said = [], []
    for b in range(2, len(x) - 2):
        values = pixel_F[order[edges[b]:edges[b + 1]]]
        avg, rmsd = _float32_mean_rmsd(values) if len(values) else (0.0, 0.0)
        if len(values) > 100:
            out.append(f"{g(x[b] / st.stol_mult)} {g(avg)} {g(rmsd)}   {g(0.0)} {g(0.0)}  "
                       f"{len(values)}")
        else:
            said.append(f"WARNING: not enough pixels in bin= {b} n={len(values)} stol= "
                        f"{g(x[b] / st.stol_mult)} median= {g(0.0)} avg_arej= {g(avg)}")
    said.append(f"wrote {st.stolout_path} as {len(out)} lines of text")
    return out, said, len(values)


# --------------------------------------------------------------------------------------------
# Outputs.
# --------------------------------------------------------------------------------------------


def smv_header(plan: NBPlan) -> str:
    r"""nonBragg's SMV header, up to ``}\f`` (write_smv pads it to 512 bytes)."""
    st, p = plan.state, plan.placement
    pixel = st.pixel_size
    keys = [("HEADER_BYTES", "512"), ("DIM", "2"), ("BYTE_ORDER", "little_endian"),
            ("TYPE", "unsigned_short"), ("SIZE1", str(st.fpixels)), ("SIZE2", str(st.spixels)),
            ("PIXEL_SIZE", g(pixel * 1000.0)), ("DISTANCE", g(float(p.distance) * 1000.0)),
            ("WAVELENGTH", g(st.lambda0 * 1e10)),
            ("BEAM_CENTER_X", g(float(p.xbeam) * 1000.0)),
            ("BEAM_CENTER_Y", g((st.detsize_y - float(p.ybeam)) * 1000)),
            ("ORGX", g(float(p.xclose) / pixel)), ("ORGY", g(float(p.yclose) / pixel)),
            ("CLOSE_DISTANCE", g(float(p.close_distance) * 1000.0)),
            ("PHI", g(st.phi0 * RTD)), ("OSC_START", g(st.phi0 * RTD)),
            ("OSC_RANGE", g(plan.osc * RTD)), ("TWOTHETA", g(st.detector_twotheta * RTD)),
            ("DETECTOR_SN", "000"), ("BEAMLINE", "fake")]
    return "{\n" + "".join(f"{k}={v};\n" for k, v in keys) + "}\f"


@dataclass(frozen=True)
class CStatistics:
    """The statistics nonBragg prints after rendering (see :func:`c_statistics`)."""

    max_I: float
    max_pixel: tuple[int, int] | None  # (slow, fast)
    mean: float
    rms: float
    rmsd: float


def _roi_index(shape: tuple[int, int], roi: list[int]) -> np.ndarray | slice:
    """Flat indices (raster order) of the pixels inside the inclusive ``roi``."""
    spixels, fpixels = shape
    xmin, xmax, ymin, ymax = roi
    fast = np.arange(max(xmin, 0), max(xmin, min(xmax, fpixels - 1) + 1))
    slow = np.arange(max(ymin, 0), max(ymin, min(ymax, spixels - 1) + 1))
    if len(fast) == fpixels and len(slow) == spixels:
        return slice(0, spixels * fpixels)
    return (slow[:, None] * fpixels + fast[None, :]).reshape(-1)


def _running_sum(values: np.ndarray) -> float:
    """A double sum from the first value to the last, as a C loop adds.

    (torch's cumulative sum runs sequentially on the CPU, and fast.)
    """
    if len(values) == 0:
        return 0.0
    return float(torch.from_numpy(np.ascontiguousarray(values, np.float64)).cumsum(0)[-1])


def c_statistics(image32: np.ndarray, roi: list[int], count: int | None = None
                 ) -> CStatistics:
    """max_I, mean, rms and rmsd exactly as nonBragg computes them.

    Sums run over the ROI pixels in raster order, in double (each square in float). The
    mean divides by ``count``: the number of pixels, except after ``-img``, where the C
    program's counter has been reused for the last sin(theta)/lambda bin's pixel count. The
    rms deviation from that mean is off by one pixel: the C loop advances its index before
    reading, so it reads each pixel's successor in memory (the last one's being a 0 past the
    image).
    """
    flat = np.concatenate([np.asarray(image32, np.float32).reshape(-1), np.zeros(1, np.float32)])
    index = _roi_index(image32.shape, roi)
    values = flat[:-1][index]
    n = len(values) if count is None else count
    max_I, max_pixel = 0.0, None
    if len(values):
        best = int(np.argmax(values))  # the first of equal maxima, as C's strict >
        if values[best] > 0:
            where = best if isinstance(index, slice) else int(index[best])
            max_I, max_pixel = float(values[best]), divmod(where, image32.shape[1])
    mean = _running_sum(values) / max(n, 1)
    rms = math.sqrt(_running_sum(values * values) / (max(n, 2) - 1))
    successors = flat[1:][index] if isinstance(index, slice) else flat[index + 1]
    test = successors.astype(np.float64) - mean
    rmsd = math.sqrt(_running_sum(test * test) / (max(len(values), 2) - 1))
    return CStatistics(max_I=max_I, max_pixel=max_pixel, mean=mean, rms=rms, rmsd=rmsd)


def max_position(plan: NBPlan, pixel: tuple[int, int] | None) -> tuple[float, float]:
    """Where nonBragg reports the maximum: the last sub-pixel's centre of that pixel (m)."""
    if pixel is None:
        return 0.0, 0.0
    n = plan.sampler.oversample
    sub = plan.state.pixel_size / n
    slow, fast = pixel
    return (sub * (fast * n + n - 1) + sub / 2.0, sub * (slow * n + n - 1) + sub / 2.0)


def check_finite(image: np.ndarray) -> None:
    """Refuse an image with NaN or infinite pixels; warn where float32 overflows."""
    nanobragg_run.check_finite(image, "nonBragg", "the -stol table", "")


def write_outputs(plan: NBPlan, image: np.ndarray, count: int | None = None) -> None:
    """Statistics, float, SMV, PGM and noise images, with the C program's lines.

    ``count``: the pixel count the mean divides by, when not the ROI's (see c_statistics).
    """
    st, roi = plan.state, plan.roi
    notes: list[str] = []
    image32 = image.astype(np.float32)
    stats = c_statistics(image32, roi, count)
    rmsd = stats.rmsd
    _say(f"writing {st.float_path} as {image32.size} 4-byte floats")
    write_float_image(st.float_path, image32, notes)
    _say("max_I = {}  at {} {}".format(g(stats.max_I),
                                        *map(g, max_position(plan, stats.max_pixel))))
    _say(f"mean= {g(stats.mean)} rms= {g(stats.rms)} rmsd= {g(rmsd)}")
    ints = int_image(image32, st.intfile_scale, st.adc_offset, roi, stats.max_I)
    _say(f"intfile_scale = {g(ints.scale)}")
    header = smv_header(plan)
    _say(f"writing {st.int_path} as 2-byte integers")
    write_smv(st.int_path, ints.pixels, header)
    pgm = pgm_image(image32, st.pgm_scale, rmsd, ints.scale, roi)
    _say(f"pgm_scale = {format_c_g(pgm.scale)}")
    _say(f"writing {st.pgm_path} as 1-byte integers")
    write_pgm(st.pgm_path, pgm.pixels, pgm.scale)
    notes += [n.replace("nanoBragg", "nonBragg") for n in ints.warnings(st.int_path)
              + pgm.warnings(st.pgm_path)]
    if st.calculate_noise:
        noisy = noise_image(image32, st.seed, st.adc_offset, roi)
        _say(f"{noisy.photons:.0f} photons on noise image ({noisy.overloads} overloads)")
        _say(f"writing {st.noise_path} as 2-byte integers")
        write_smv(st.noise_path, noisy.image, header)
    for line in notes:
        print(one_line(f"WARNING: {line}"), file=sys.stderr)


def simulate(st: NBState, ext: dict, messages: list[str]) -> int:
    """Plan, render and write one run; raise on bad input (see :func:`nonbragg.main`)."""
    device, chunk = device_settings(ext)
    check_outputs_writable(describe_paths(st))
    plan = build_plan(st, device)
    for line in plan.warnings:
        print(one_line(f"WARNING: {line}"), file=sys.stderr)
    if st.calculate_noise and st.seed is None:
        st.seed = default_noise_seed()
    _say_all(messages + [BANNER] + plan.lines)
    if st.calculate_noise:
        _say_all(["", "  noise image paramters:", f"  seed: {-st.seed}"])
    out = render(plan, chunk)
    image = out.image.detach().to("cpu", torch.float64).numpy()
    needs_last = st.Fmap or st.printout or plan.img is not None
    fast, slow, last = _last(plan) if needs_last else (None, None, None)
    if st.Fmap:
        image = image.copy()
        image[slow, fast] = last.F.cpu().numpy()
    if st.printout:
        _say_all(printout_lines(plan, image.astype(np.float32), fast, slow, last))
    _say("")
    _say(solid_angle_line(float(out.omega_sum)))
    check_finite(image)
    count = None
    if plan.img is not None:
        table, said, count = stolout(plan, fast, slow, last)
        write_atomic(st.stolout_path, ["".join(f"{line}\n" for line in table).encode()])
        _say_all(said)
    write_outputs(plan, image, count)
    return 0


__all__ = ["device_settings", "max_position", "printout_lines", "progress_lines", "render",
           "c_statistics", "simulate", "smv_header", "solid_angle_line", "stolout"]
