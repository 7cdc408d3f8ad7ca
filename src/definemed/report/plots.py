"""Plots as PNG bytes (matplotlib, Agg backend, no display)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from definemed.plotting import render_png


def _figure(draw: Callable[[Any], None], size: tuple[float, float] = (6.4, 3.6)) -> bytes:
    return render_png(draw, size)


def bars(
    labels: list[str],
    values: list[float],
    title: str,
    ylabel: str,
    errors: list[float] | None = None,
    color: str = "#2b6cb0",
) -> bytes:
    def draw(ax: Any) -> None:
        ax.bar(labels, values, yerr=errors, color=color, capsize=4)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
        ax.tick_params(axis="x", labelrotation=20)

    return _figure(draw)


def intervals(labels: list[str], values: list[float], errors: list[list[float]], title: str, ylabel: str) -> bytes:
    """Points with asymmetric error bars (errors = [below, above])."""

    def draw(ax: Any) -> None:
        ax.errorbar(labels, values, yerr=errors, fmt="o", capsize=5, color="#2b6cb0")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)

    return _figure(draw)


def grouped_bars(groups: list[str], series: dict[str, list[float]], title: str, ylabel: str) -> bytes:
    def draw(ax: Any) -> None:
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, values, width=width, label=name)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)

    return _figure(draw)


def lines(series: dict[str, tuple[list[float], list[float]]], title: str, xlabel: str, ylabel: str) -> bytes:
    def draw(ax: Any) -> None:
        for name, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="." if len(xs) < 40 else None, label=name)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(fontsize=8)

    return _figure(draw)


def heatmap(labels: list[str], matrix: list[list[float | None]], title: str) -> bytes:
    def draw(ax: Any) -> None:
        import numpy as np

        data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
        im = ax.imshow(data, vmin=0, vmax=1, cmap="RdBu")
        ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("opponent")
        ax.set_ylabel("model")
        for i in range(len(labels)):
            for j in range(len(labels)):
                if not np.isnan(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_title(title)
        ax.figure.colorbar(im, ax=ax)

    return _figure(draw, size=(5.6, 4.4))


def boxplot(series: dict[str, list[float]], title: str, ylabel: str) -> bytes:
    def draw(ax: Any) -> None:
        names = list(series)
        ax.boxplot([series[n] or [0] for n in names], tick_labels=names)
        ax.set_title(title)
        ax.set_ylabel(ylabel)

    return _figure(draw)
