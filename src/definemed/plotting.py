"""Render one matplotlib figure to PNG bytes (Agg backend): the one place that touches matplotlib's state."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any


def render_png(draw: Callable[[Any], None], size: tuple[float, float] = (6.4, 3.6)) -> bytes:
    """Call `draw(ax)` on a fresh figure and return it as PNG bytes; the figure is always closed."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display on cluster nodes; never pick an interactive backend
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=110)
    try:
        draw(ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)
