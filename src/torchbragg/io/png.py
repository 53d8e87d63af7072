"""A PNG preview of one diffraction image: log colour scale, colour bar, resolution rings.

Drawn as :mod:`torchbragg.plot` draws its comparison panels (same colour map, logarithmic
scale, block maxima for big detectors, axes in pixel numbers with pixel (0, 0) at the top
left); matplotlib is optional and imported only here, without pyplot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from torchbragg.io.image_geometry import ImageGeometry
from torchbragg.plot import (
    IMAGE_LABEL,
    MISSING_MATPLOTLIB,
    PANEL_FILL,
    _block_max,
    _finite,
    _log_limits,
    _matplotlib,
    save_png,
)

__all__ = ["MISSING_MATPLOTLIB", "preview_size_px", "write_png"]

PREVIEW_WIDTH_IN = 6.4  # width of the image panel, colour bar excluded
COLOURBAR_IN = 1.6  # room for the colour bar and its label
TITLE_IN = 1.0  # room for the title and the axis labels
RING_COLOUR = "white"
BEAM_COLOUR = "red"


def _panel_inches(shape: tuple[int, int]) -> tuple[float, float]:
    """Nominal (width, height) in inches of the image panel for a ``(slow, fast)`` image."""
    slow, fast = shape
    return PREVIEW_WIDTH_IN, min(max(PREVIEW_WIDTH_IN * slow / fast, 2.0), 2 * PREVIEW_WIDTH_IN)


def _figure_inches(shape: tuple[int, int]) -> tuple[float, float]:
    """Figure (width, height) in inches."""
    width, height = _panel_inches(shape)
    return width + COLOURBAR_IN, height + TITLE_IN


def preview_size_px(shape: tuple[int, int], dpi: int = 100) -> tuple[int, int]:
    """Size ``(width, height)`` in pixels of the PNG :func:`write_png` draws.

    Parameters
    ----------
    shape : tuple of (int, int)
        Image shape ``(slow, fast)``.
    dpi : int
        Dots per inch.

    Returns
    -------
    tuple of (int, int)
        About 800 x 740 at 100 dpi for a square detector, whatever its pixel count.
    """
    width, height = _figure_inches(shape)
    return int(round(width * dpi)), int(round(height * dpi))


def _figsize(shape: tuple[int, int], dpi: int) -> tuple[float, float]:
    """Figure size in inches that Agg renders as exactly :func:`preview_size_px` pixels.

    A quarter pixel more, so that neither truncation nor rounding loses a pixel.
    """
    width, height = preview_size_px(shape, dpi)
    return (width + 0.25) / dpi, (height + 0.25) / dpi


def _reduction_factor(shape: tuple[int, int], max_pixels: int, dpi: int) -> int:
    """Smallest block size k that shows at most ``max_pixels`` per side and one pixel per dot."""
    slow, fast = shape
    width, height = _panel_inches(shape)
    per_dot = max(fast / width, slow / height) / (PANEL_FILL * dpi)
    return max(1, math.ceil(max(shape) / max_pixels), math.ceil(per_dot))


def _checked_rings(rings_A: Sequence[float] | None,
                   geometry: ImageGeometry | None) -> list[float]:
    """Ring spacings as floats, or ValueError when they are unusable."""
    if not rings_A:
        return []
    if geometry is None:
        raise ValueError("resolution rings need the geometry (wavelength, detector position)")
    rings = [float(d) for d in rings_A]
    if not all(d > 0 and math.isfinite(d) for d in rings):
        raise ValueError(f"ring d-spacings must be positive numbers of Å, not {rings_A!r}")
    return rings


def _draw_rings(ax, geometry: ImageGeometry, rings: list[float], rows: int, cols: int,
                factor: int) -> list[float]:
    """Draw the rings that fall on the detector; return their d-spacings (Å)."""
    # block centres in pixel numbers (pixel i centred on i), and in corner coordinates
    x = np.arange(cols) * factor + (factor - 1) / 2.0
    y = np.arange(rows) * factor + (factor - 1) / 2.0
    angles = geometry.two_theta_rad(x[None, :] + 0.5, y[:, None] + 0.5)
    low, high = float(angles.min()), float(angles.max())
    shown = {}
    for d in rings:
        angle = geometry.two_theta_of_d_rad(d)
        if low < angle < high:
            shown[angle] = d
    if not shown:
        return []
    levels = sorted(shown)
    contours = ax.contour(x, y, angles, levels=levels, colors=RING_COLOUR, linewidths=0.8,
                          alpha=0.8)
    ax.clabel(contours, fmt={a: f"{shown[a]:g} Å" for a in levels}, fontsize=8)
    return sorted(shown.values(), reverse=True)


def _draw_beam_centre(ax, geometry: ImageGeometry) -> None:
    """Mark the direct beam with a cross when it falls on the detector."""
    beam = geometry.direct_beam()
    if beam is None:
        return
    fast, slow = beam[0] - 0.5, beam[1] - 0.5  # corner coordinates to pixel numbers
    if -0.5 <= fast <= geometry.fpixels - 0.5 and -0.5 <= slow <= geometry.spixels - 0.5:
        ax.plot([fast], [slow], marker="+", markersize=10, color=BEAM_COLOUR, linestyle="")


def _title(shape: tuple[int, int], factor: int, rings: list[float], missing: int,
           title: str | None) -> str:
    """Title: the caller's, the size, the reduction and the rings drawn."""
    slow, fast = shape
    words = [title] if title else []
    size = f"{fast} x {slow} pixels (fast x slow)"
    if factor > 1:
        size += f", shown as {factor}x{factor} block maxima"
    words.append(size)
    if rings:
        words.append("rings at d = " + ", ".join(f"{d:g}" for d in rings) + " Å")
    if missing:
        words.append(f"({missing} ring{'s' if missing > 1 else ''} off the detector)")
    return "\n".join(words)


def write_png(path: str | os.PathLike, image: np.ndarray,
              geometry: ImageGeometry | None = None,
              rings_A: Sequence[float] | None = None, title: str | None = None,
              dpi: int = 100, max_pixels: int = 1024) -> None:
    """Write a PNG preview of an image, atomically.

    The image is drawn on a logarithmic colour scale (from the 1st percentile of the positive
    pixels, or 1e-6 of the brightest, up to the brightest; fainter pixels at the floor) with a
    colour bar. Detectors larger than the panel are reduced to ``k x k`` block maxima, so that
    Bragg spots survive. With a geometry the direct beam is marked by a red cross, and
    ``rings_A`` draws resolution rings (contours of the scattering angle of each d-spacing,
    right for tilted detectors too); rings beyond the detector or the wavelength's reach are
    left out and counted in the title. Non-finite pixels are shown as 0.

    Parameters
    ----------
    path : str or os.PathLike
        Destination PNG, replaced atomically.
    image : numpy.ndarray, shape (slow, fast)
        Pixel values (photons or counts).
    geometry : ImageGeometry, optional
        Needed for rings and the beam mark; its shape must be the image's.
    rings_A : sequence of float, optional
        d-spacings in Å.
    title : str, optional
        First line of the title (e.g. the file name).
    dpi : int
        Dots per inch; the PNG is :func:`preview_size_px` pixels.
    max_pixels : int
        Largest number of image pixels shown along either side.

    Raises
    ------
    ValueError
        For a bad image, ring list, ``dpi`` or ``max_pixels``, or rings without a geometry.
    ImportError
        If matplotlib is not installed (the message says what to install).
    OSError
        If the file cannot be written (``cannot write <path>: <reason>``).
    """
    pixels = np.asarray(image, dtype=np.float64)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"image must be a non-empty 2-D array (slow, fast), not shape "
                         f"{pixels.shape}")
    if geometry is not None:
        geometry.check_image(pixels)
    if dpi <= 0 or max_pixels <= 0:
        raise ValueError(f"dpi and max_pixels must be positive, not {dpi} and {max_pixels}")
    rings = _checked_rings(rings_A, geometry)
    mpl = _matplotlib()
    figure = _preview_figure(mpl, pixels, geometry, rings, title, dpi, max_pixels)
    save_png(mpl, figure, path, dpi)


def _preview_figure(mpl: dict, pixels: np.ndarray, geometry: ImageGeometry | None,
                    rings: list[float], title: str | None, dpi: int, max_pixels: int):
    """The one-panel Figure (not yet drawn)."""
    shape = pixels.shape
    factor = _reduction_factor(shape, max_pixels, dpi)
    shown = _block_max(_finite(pixels), factor)
    vmin, vmax = _log_limits(shown, shown)
    figure = mpl["Figure"](figsize=_figsize(shape, dpi), layout="constrained")
    ax = figure.subplots()
    rows, cols = shown.shape
    extent = (-0.5, cols * factor - 0.5, rows * factor - 0.5, -0.5)
    artist = ax.imshow(np.clip(shown, vmin, None), norm=mpl["LogNorm"](vmin=vmin, vmax=vmax,
                       clip=True), cmap="viridis", origin="upper", extent=extent,
                       interpolation="nearest")
    drawn = []
    if geometry is not None:
        drawn = _draw_rings(ax, geometry, rings, rows, cols, factor) if rings else []
        _draw_beam_centre(ax, geometry)
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    ax.set_xlabel("fast pixel")
    ax.set_ylabel("slow pixel")
    ax.set_title(_title(shape, factor, drawn, len(set(rings)) - len(drawn), title), fontsize=10)
    colorbar = figure.colorbar(artist, ax=ax, extend="min")
    colorbar.set_label(IMAGE_LABEL)
    return figure
