"""How two diffraction images differ: the numbers behind ``torchbragg-compare``.

All functions take numpy arrays of shape (slow, fast) and need neither torch nor the
renderer. ``reference`` is the image trusted (the C program's), ``image`` the one tested.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from torchbragg.io.errors import InputFileError
from torchbragg.io.smv import read_smv

# a pixel "differs" beyond this relative difference (the fraction reported)
DIFFERS = 1e-6


def relative_difference(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """|image - reference| / (|reference| + 1e-6 max|reference|), per pixel (parity.py's).

    The floor of one millionth of the brightest pixel keeps empty pixels from dominating.
    """
    ref, img = reference.astype(np.float64), image.astype(np.float64)
    scale = float(np.abs(ref).max()) or 1.0
    return np.abs(img - ref) / (np.abs(ref) + 1e-6 * scale)


def local_maxima(image: np.ndarray, count: int) -> np.ndarray:
    """(n, 2) slow, fast positions of the ``count`` brightest strict 3x3 local maxima."""
    img = image.astype(np.float64)
    padded = np.pad(img, 1, mode="constant", constant_values=-np.inf)
    neighbours = np.stack([padded[1 + ds:1 + ds + img.shape[0], 1 + df:1 + df + img.shape[1]]
                           for ds in (-1, 0, 1) for df in (-1, 0, 1) if ds or df])
    peak = (img > neighbours.max(0)) & (img > 0)
    slow, fast = np.nonzero(peak)
    order = np.argsort(-img[slow, fast], kind="stable")[:count]
    return np.stack((slow[order], fast[order]), -1)


def register_peaks(reference: np.ndarray, image: np.ndarray, count: int = 50,
                   radius_px: float = 2.0) -> dict:
    """Match the brightest peaks of ``reference`` to those of ``image`` within ``radius_px``.

    Returns the fraction of the reference's peaks with a partner, and the mean offset
    (slow, fast, pixels) of the matched pairs (image minus reference).
    """
    a, b = local_maxima(reference, count), local_maxima(image, count)
    if len(a) == 0:
        return dict(peaks=0, matched_fraction=float("nan"), mean_offset_px=[0.0, 0.0])
    if len(b) == 0:
        return dict(peaks=len(a), matched_fraction=0.0, mean_offset_px=[0.0, 0.0])
    dist = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    nearest = dist.argmin(1)
    ok = dist[np.arange(len(a)), nearest] <= radius_px
    offsets = (b[nearest[ok]] - a[ok]).astype(np.float64)
    mean = offsets.mean(0).tolist() if len(offsets) else [0.0, 0.0]
    return dict(peaks=len(a), matched_fraction=float(ok.mean()), mean_offset_px=mean)


@dataclass
class ImageComparison:
    """The metrics of one comparison (see :func:`compare_images`)."""

    shape: tuple
    max_rel: float
    corr: float
    sum_ratio: float
    frac_rel_gt_1e6: float
    worst_pixel: tuple  # slow, fast
    worst_values: tuple  # reference, image
    peaks: dict

    def as_dict(self) -> dict:
        """Plain types, for JSON."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def lines(self) -> list[str]:
        """A short human-readable report."""
        s, f = self.worst_pixel
        p = self.peaks
        return [f"image {self.shape[1]} x {self.shape[0]} (fast x slow)",
                f"max_rel {self.max_rel:.3e} at pixel (slow {s}, fast {f}): reference "
                f"{self.worst_values[0]:.7g}, image {self.worst_values[1]:.7g}",
                f"correlation {self.corr:.9f}   sum ratio {self.sum_ratio:.7f}   pixels "
                f"beyond 1e-6: {100 * self.frac_rel_gt_1e6:.3f} %",
                f"peaks: {p['peaks']} brightest of the reference, "
                f"{100 * p['matched_fraction']:.1f} % matched, mean offset "
                f"(slow, fast) {p['mean_offset_px'][0]:+.3f} {p['mean_offset_px'][1]:+.3f} px"]


def compare_images(reference: np.ndarray, image: np.ndarray, peaks: int = 50,
                   radius_px: float = 2.0) -> ImageComparison:
    """Every metric of ``image`` against ``reference`` (same (slow, fast) shape)."""
    if reference.shape != image.shape:
        raise ValueError(f"images differ in shape: {reference.shape} and {image.shape}")
    if not (np.isfinite(reference).all() and np.isfinite(image).all()):
        raise ValueError("an image holds pixels that are not finite")
    rel = relative_difference(reference, image)
    ref, img = reference.astype(np.float64), image.astype(np.float64)
    worst = np.unravel_index(int(rel.argmax()), rel.shape)
    if ref.std() > 0 and img.std() > 0:
        corr = float(np.corrcoef(ref.ravel(), img.ravel())[0, 1])
    else:
        corr = float(np.array_equal(ref, img))
    total = ref.sum()
    return ImageComparison(
        shape=tuple(ref.shape), max_rel=float(rel.max()), corr=corr,
        sum_ratio=float(img.sum() / total) if total else float("nan"),
        frac_rel_gt_1e6=float((rel > DIFFERS).mean()),
        worst_pixel=(int(worst[0]), int(worst[1])),
        worst_values=(float(ref[worst]), float(img[worst])),
        peaks=register_peaks(ref, img, peaks, radius_px))


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """A (slow, fast) float64 image from an SMV file, or raw float32 with ``size`` (fast, slow).

    Without ``size`` a raw file must be square.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as err:
        raise InputFileError(path, f"cannot read: {err.strerror}") from None
    if head.startswith(b"{\nHEADER_BYTES="):  # SMV; raw float32 may start with '{' too
        return read_smv(path).pixels.astype(np.float64)
    data = np.fromfile(path, dtype="<f4")
    if size is None:
        side = int(round(len(data) ** 0.5))
        if side * side != len(data):
            raise InputFileError(path, f"{len(data)} float32 pixels is not a square image; "
                                 "give --size FAST SLOW")
        size = (side, side)
    fast, slow = size
    if fast * slow != len(data):
        raise InputFileError(path, f"{len(data)} float32 pixels, but --size gives "
                             f"{fast} x {slow} = {fast * slow}")
    return data.reshape(slow, fast).astype(np.float64)
