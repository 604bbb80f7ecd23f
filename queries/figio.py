"""Where figures go: one rule for every ``plot`` command (the suffix picks PNG, SVG or PDF)."""

from __future__ import annotations

from pathlib import Path

from warehouse.errors import NoMatch

SUFFIXES = (".png", ".svg", ".pdf")


def figure_path(out: str | Path) -> Path:
    """Check the figure's suffix before any work is done, and make its folder."""
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise NoMatch(f"{out}: write a figure to a {', '.join(SUFFIXES)} file")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


DPI = 300  # raster figures for print; SVG and PDF are vector (rasterised scatter clouds use it)


def save_figure(fig, out: Path) -> Path:
    """Write ``fig`` (PNG at :data:`DPI`) and release it (pyplot keeps every open figure)."""
    import matplotlib.pyplot as plt

    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def log_if_wide(values, set_scale, ratio: float = 30.0) -> bool:
    """Make an axis logarithmic (``set_scale("log")``) only where its positive values span more
    than ``ratio``: a linear axis reads better whenever it can show the data."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() > ratio:
        set_scale("log")
        return True
    return False
