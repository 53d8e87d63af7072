"""A PNG figure comparing two diffraction images: both images and their difference.

Images are numpy arrays of shape ``(slow, fast)`` in photons per pixel, displayed as detectors
usually are: pixel (0, 0) at the top left, the slow index growing downwards. matplotlib is an
optional dependency, imported only when a figure is drawn; pyplot is never imported, so the
caller's matplotlib state (backend, open figures) is left alone.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np

from torchbragg.io.images import write_atomic

__all__ = ["comparison_png"]

MISSING_MATPLOTLIB = "the PNG needs matplotlib: pip install 'torchbragg[plot]'"
IMAGE_LABEL = "photons / pixel"
DIFFERENCE_LABEL = "image - reference (photons)"
PANEL_WIDTH_IN = 4.0  # width of one image panel, colour bar excluded
PANEL_FILL = 0.85  # the share of a panel's nominal size its image gets, at least, after layout


def comparison_png(reference: np.ndarray, image: np.ndarray, path: str | os.PathLike,
                   titles: tuple[str, str] = ("reference", "image"), dpi: int = 150,
                   max_pixels: int = 1024) -> None:
    """Write a PNG with three panels: ``reference``, ``image`` and ``image - reference``.

    The two images share one logarithmic colour scale, from a small positive floor (the 1st
    percentile of the positive pixels shown, or 1e-6 of the brightest, whichever is larger;
    fainter pixels are drawn at the floor) to the brightest pixel of either. The difference
    uses a diverging colour map on a symmetric logarithmic scale, linear near zero. Non-finite
    pixels are shown as 0. The file is written whole or not at all.

    Parameters
    ----------
    reference, image : numpy.ndarray
        2-D arrays of the same shape ``(slow, fast)``, photons per pixel.
    path : str or os.PathLike
        Destination PNG, replaced atomically.
    titles : tuple of (str, str), optional
        Titles of the first two panels.
    dpi : int, optional
        Resolution of the PNG in dots per inch.
    max_pixels : int, optional
        Largest number of pixels shown along either side. Larger images are reduced by
        ``k x k`` block maxima (the pixel of largest magnitude, sign kept, for the difference),
        so that Bragg spots survive, and the figure's title says so. Images are reduced
        likewise to no more pixels than a panel has dots at ``dpi`` (about 500 at 150 dpi),
        so that the PNG renderer does not thin them out again.

    Raises
    ------
    ValueError
        If the inputs are not 2-D arrays of one shape, ``titles`` is not a pair, or
        ``dpi``/``max_pixels`` is not positive.
    ImportError
        If matplotlib is not installed.
    """
    ref, img = _checked_pair(reference, image)
    if len(titles) != 2:
        raise ValueError(f"titles must be two strings (reference, image), not {titles!r}")
    if dpi <= 0 or max_pixels <= 0:
        raise ValueError(f"dpi and max_pixels must be positive, not {dpi} and {max_pixels}")
    mpl = _matplotlib()
    factor = _reduction_factor(ref.shape, max_pixels, dpi)
    bad = (int(np.count_nonzero(~np.isfinite(ref))), int(np.count_nonzero(~np.isfinite(img))))
    ref, img = _finite(ref), _finite(img)
    shown = (_block_max(ref, factor), _block_max(img, factor), _block_signed_max(img - ref, factor))
    figure = _figure(mpl, shown, ref.shape, factor, titles, bad)
    save_png(mpl, figure, path, dpi)


def save_png(mpl: dict, figure, path: str | os.PathLike, dpi: int) -> None:
    """Render ``figure`` to PNG in memory, then write it whole (atomically) to ``path``."""
    try:
        buffer = io.BytesIO()
        mpl["FigureCanvasAgg"](figure)
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        figure.clear()
    write_atomic(path, [buffer.getvalue()])


def _checked_pair(reference, image) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 arrays, or ValueError unless they are 2-D and of one shape."""
    ref = np.asarray(reference, dtype=np.float64)
    img = np.asarray(image, dtype=np.float64)
    for name, array in (("reference", ref), ("image", img)):
        if array.ndim != 2 or array.size == 0:
            raise ValueError(f"{name} must be a non-empty 2-D array (slow, fast), "
                             f"not shape {array.shape}")
    if ref.shape != img.shape:
        raise ValueError(f"reference and image differ in shape: {ref.shape} vs {img.shape}")
    return ref, img


def _matplotlib() -> dict:
    """The matplotlib classes used, or ImportError with the install hint."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import LogNorm, Normalize, SymLogNorm
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    return {"FigureCanvasAgg": FigureCanvasAgg, "Figure": Figure, "LogNorm": LogNorm,
            "Normalize": Normalize, "SymLogNorm": SymLogNorm}


def _finite(array: np.ndarray) -> np.ndarray:
    """The array with NaN and infinities replaced by 0."""
    return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)


def _panel_inches(shape: tuple[int, int]) -> tuple[float, float]:
    """Nominal (width, height) in inches of one image panel."""
    slow, fast = shape
    return PANEL_WIDTH_IN, min(max(PANEL_WIDTH_IN * slow / fast, 1.5), 2 * PANEL_WIDTH_IN)


def _reduction_factor(shape: tuple[int, int], max_pixels: int, dpi: int) -> int:
    """Smallest block size k showing at most ``max_pixels`` per side and per panel dot.

    More pixels than the panel has dots would be thinned out again by the PNG renderer.
    """
    slow, fast = shape
    width, height = _panel_inches(shape)
    per_dot = max(fast / width, slow / height) / (PANEL_FILL * dpi)
    return max(1, math.ceil(max(shape) / max_pixels), math.ceil(per_dot))


def _blocks(array: np.ndarray, factor: int, fill: float) -> np.ndarray:
    """``(slow/k, fast/k, k*k)`` view of k x k blocks, edges padded with ``fill``."""
    slow, fast = array.shape
    rows, cols = -(-slow // factor), -(-fast // factor)
    padded = np.pad(array, ((0, rows * factor - slow), (0, cols * factor - fast)),
                    constant_values=fill)
    blocks = padded.reshape(rows, factor, cols, factor).transpose(0, 2, 1, 3)
    return blocks.reshape(rows, cols, factor * factor)


def _block_max(array: np.ndarray, factor: int) -> np.ndarray:
    """Largest value in each k x k block (the array itself when k is 1)."""
    if factor == 1:
        return array
    return _blocks(array, factor, -np.inf).max(axis=-1)


def _block_signed_max(array: np.ndarray, factor: int) -> np.ndarray:
    """Value of largest magnitude in each k x k block, sign kept."""
    if factor == 1:
        return array
    blocks = _blocks(array, factor, 0.0)
    pick = np.abs(blocks).argmax(axis=-1)[..., None]
    return np.take_along_axis(blocks, pick, axis=-1)[..., 0]


def _log_limits(ref: np.ndarray, img: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax) of the shared logarithmic scale; both positive, vmin < vmax."""
    vmax = float(max(ref.max(), img.max()))
    if vmax <= 0:
        return 1e-6, 1.0  # nothing positive: any scale will do
    positive = np.concatenate((ref[ref > 0], img[img > 0]))
    vmin = max(float(np.percentile(positive, 1)), vmax * 1e-6)
    if vmin >= vmax:  # every positive pixel alike
        vmin = vmax / 10
    return vmin, vmax


def _difference_norm(mpl: dict, diff: np.ndarray, brightest: float):
    """Symmetric log norm for the difference, or a linear one of ±1 when it is all zero."""
    limit = float(np.abs(diff).max())
    if limit == 0:
        return mpl["Normalize"](vmin=-1.0, vmax=1.0)
    linthresh = min(limit, max(limit * 1e-3, abs(brightest) * 1e-6))
    # a power of ten puts the ticks at ±linthresh, not inside it ("or": underflow near 5e-324)
    linthresh = 10.0 ** math.floor(math.log10(linthresh)) or linthresh
    return mpl["SymLogNorm"](linthresh=linthresh, linscale=1.0, vmin=-limit, vmax=limit, base=10)


def _figure(mpl: dict, shown: tuple, shape: tuple[int, int], factor: int,
            titles: tuple[str, str], bad: tuple[int, int]):
    """The three-panel Figure (not yet drawn)."""
    ref, img, diff = shown
    height = _panel_inches(shape)[1]
    suptitle = _suptitle(shape, factor)
    size = (3 * (PANEL_WIDTH_IN + 1.4), height + (1.3 if suptitle else 1.0))
    figure = mpl["Figure"](figsize=size, layout="constrained")
    axes = figure.subplots(1, 3)
    vmin, vmax = _log_limits(ref, img)
    log = mpl["LogNorm"](vmin=vmin, vmax=vmax, clip=True)
    for ax, data, title, count in zip(axes[:2], (ref, img), titles, bad, strict=True):
        shown_data = np.clip(data, vmin, None)
        _panel(figure, ax, shown_data, log, "viridis", shape, factor,
               _title(title, count), IMAGE_LABEL, extend="min")
    identical = not np.any(diff)
    diff_title = "image - reference" + (": identical" if identical else "")
    _panel(figure, axes[2], diff, _difference_norm(mpl, diff, vmax), "RdBu_r", shape, factor,
           diff_title, DIFFERENCE_LABEL, extend="neither")
    if suptitle:
        figure.suptitle(suptitle)
    return figure


def _panel(figure, ax, data: np.ndarray, norm, cmap: str, shape: tuple[int, int], factor: int,
           title: str, label: str, extend: str) -> None:
    """Draw one image panel with its colour bar, axes in full-resolution pixel numbers."""
    slow, fast = shape
    rows, cols = data.shape
    extent = (-0.5, cols * factor - 0.5, rows * factor - 0.5, -0.5)
    # nearest is lossless here: the reduction leaves at least one dot per pixel shown
    artist = ax.imshow(data, norm=norm, cmap=cmap, origin="upper", extent=extent,
                       interpolation="nearest")
    ax.set_xlim(-0.5, fast - 0.5)
    ax.set_ylim(slow - 0.5, -0.5)
    ax.set_xlabel("fast pixel")
    ax.set_ylabel("slow pixel")
    ax.set_title(title)
    colorbar = figure.colorbar(artist, ax=ax, extend=extend)
    colorbar.set_label(label)


def _title(title: str, non_finite: int) -> str:
    """Panel title, noting any non-finite pixels drawn as 0."""
    if non_finite == 0:
        return title
    return f"{title}\n({non_finite} non-finite pixel{'s' if non_finite > 1 else ''} shown as 0)"


def _suptitle(shape: tuple[int, int], factor: int) -> str:
    """Figure title stating the display reduction, or '' when the pixels are shown as they are."""
    if factor == 1:
        return ""
    slow, fast = shape
    return (f"{fast} x {slow} pixels (fast x slow) shown as {factor}x{factor} block maxima "
            f"(difference: value of largest |value| per block)")
