"""PNG plots for the dataset card: tokens per document and subdomains of the kept corpus, and the held-out PR
curves of the compared classifier families (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from definemed.artifacts import atomic_path
from definemed.corpus.stats import BINS_PER_OCTAVE
from definemed.plotting import render_png

LENGTHS, SUBDOMAINS, PR_CURVES = "token_lengths.png", "subdomains.png", "pr_curves.png"


def _save(draw: Callable[[Any], None], path: Path, size: tuple[float, float] = (6.4, 3.6)) -> Path:
    png = render_png(draw, size)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return path


def length_histogram(hist: dict[str, int], tokenizer: str, path: Path) -> Path:
    """Documents per log-scale token-length bin (bin k spans 2^(k/4) to 2^((k+1)/4) tokens)."""
    bins = sorted((int(k), n) for k, n in hist.items())
    lefts = [2 ** (k / BINS_PER_OCTAVE) for k, _ in bins]
    widths = [2 ** ((k + 1) / BINS_PER_OCTAVE) - left for (k, _), left in zip(bins, lefts, strict=True)]

    def draw(ax: Any) -> None:
        ax.bar(lefts, [n for _, n in bins], width=widths, align="edge", color="#2b6cb0", edgecolor="white")
        ax.set_xscale("log")
        ax.set_xlabel(f"tokens per document ({tokenizer})")
        ax.set_ylabel("documents")
        ax.set_title(f"Length distribution of the kept corpus ({sum(n for _, n in bins)} documents)")

    return _save(draw, path)


def subdomain_bars(subdomains: dict[str, int], path: Path) -> Path:
    """Kept documents per subdomain, for the documents the labels file assigns one."""
    ordered = sorted(subdomains.items(), key=lambda kv: (-kv[1], kv[0]))

    def draw(ax: Any) -> None:
        names, values = [k for k, _ in ordered], [v for _, v in ordered]
        ax.barh(names[::-1], values[::-1], color="#2f855a")
        ax.set_xlabel("kept documents with this subdomain label")
        ax.set_title(f"Subdomains of the kept corpus ({sum(values)} labelled documents)")

    return _save(draw, path, size=(6.4, 0.8 + 0.3 * max(len(ordered), 3)))


def pr_curves(curves: dict[str, dict[str, Any]], path: Path) -> Path:
    """Precision against recall on the held-out split, one line per classifier family (AP in the legend)."""

    def draw(ax: Any) -> None:
        for kind, curve in curves.items():
            ap = curve.get("average_precision")
            ax.plot(curve["recall"], curve["precision"], label=kind if ap is None else f"{kind} (AP {ap:.3f})")
        ax.set_xlabel("recall (medical)")
        ax.set_ylabel("precision (medical)")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title("Classifier families on the held-out labels")
        ax.legend(fontsize=8, loc="lower left")

    return _save(draw, path, size=(6.4, 4.4))


def write_plots(
    kept_profile: dict[str, Any], tokenizer: str, folder: Path, curves: dict[str, dict[str, Any]] | None = None
) -> dict[str, str]:
    """The plots there is data for, as {name: path relative to the stage folder}."""
    plots = {}
    if kept_profile["length_hist"]:
        plots["token_lengths"] = length_histogram(kept_profile["length_hist"], tokenizer, folder / LENGTHS)
    if kept_profile["subdomains"]:
        plots["subdomains"] = subdomain_bars(kept_profile["subdomains"], folder / SUBDOMAINS)
    if curves:
        plots["pr_curves"] = pr_curves(curves, folder / PR_CURVES)
    return {name: f"{folder.name}/{path.name}" for name, path in plots.items()}
