"""Merge sweep (beyond the paper, which does not publish its SLERP factors): try each factor of a grid.

Each candidate is merged into `candidates/c<i>/`, scored on fast proxies (proxies.py) and valued by the configured
objective, a weighted sum of named proxies that is maximised. Only the best candidate so far is kept on disk (a 7B
candidate is 15 GB); at the end it is renamed to the stage's `model/` and its card gains a section on the sweep.
`sweep.json` holds one row per candidate with every proxy score, the objective and its terms.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from definemed.artifacts import write_json, write_text
from definemed.merge.contract import MergeInputs
from definemed.merge.metrics import SweepMetrics, SweepRow
from definemed.merge.proxies import PROXY_FIELDS, ProxyScorer
from definemed.stage import StageContext

logger = logging.getLogger("definemed")

SWEEP_FILE = "sweep.json"
CANDIDATES = "candidates"


def objective_value(weights: dict[str, float], scores: dict[str, float | None]) -> tuple[float, dict[str, float]]:
    """sum(weight * score) over the named terms, and each term's contribution. A missing score is an error:
    silently dropping a term would change what is being maximised."""
    terms = {}
    for name, weight in weights.items():
        value = scores.get(name)
        if value is None:
            raise ValueError(f"merge.sweep.objective: proxy '{name}' has no score (no data for it in this run)")
        terms[name] = round(weight * float(value), 6)
    return round(sum(terms.values()), 6), terms


def run_sweep(inputs: MergeInputs, ctx: StageContext, paths: dict[str, Path], target: Path) -> SweepMetrics:
    """Merge, score and value every grid candidate; move the best to `target`. Returns the metrics' `sweep`."""
    from definemed.merge.stage import merge_model

    merge = inputs.merge
    sweep = merge.sweep  # type: ignore[union-attr]
    assert inputs.sweep is not None  # bound exactly when merge.sweep is set
    base_id = inputs.models[merge.base].id
    scorer = ProxyScorer(inputs.sweep, sweep.proxy, inputs.seed, ctx, ctx.stage_dir / "sweep")
    rows: list[SweepRow] = []
    best: SweepRow | None = None
    for i, t in enumerate(sweep.grid):
        t0 = time.perf_counter()
        candidate = merge.model_copy(update={"t": t, "sweep": None})
        folder = ctx.stage_dir / CANDIDATES / f"c{i}"
        merge_model(candidate, paths, base_id, inputs.seed, folder)
        scores = scorer.score(folder, f"c{i}")
        value, terms = objective_value(sweep.objective.maximize, scores)
        row = SweepRow(
            candidate=i, t=t, **scores, objective=value, terms=terms, seconds=round(time.perf_counter() - t0, 2)
        )
        rows.append(row)
        logger.info("[merge] sweep c%d t=%s: objective %.4f %s", i, t, value, terms)
        if best is None or value > best.objective:  # ties keep the earlier (listed first) candidate
            if best is not None:
                shutil.rmtree(ctx.stage_dir / CANDIDATES / f"c{best.candidate}")
            best = row
        else:
            shutil.rmtree(folder)
    assert best is not None  # the grid has at least two entries
    chosen = ctx.stage_dir / CANDIDATES / f"c{best.candidate}"
    shutil.rmtree(target, ignore_errors=True)
    chosen.rename(target)
    shutil.rmtree(ctx.stage_dir / CANDIDATES, ignore_errors=True)
    result = SweepMetrics(
        rows=rows,
        chosen=best,
        objective={"maximize": dict(sweep.objective.maximize)},
        proxy=sweep.proxy,
        dev_ids=scorer.dev_ids,
    )
    write_json(ctx.stage_dir / SWEEP_FILE, result.model_dump(mode="json"))
    card = target / "README.md"
    write_text(card, card.read_text(encoding="utf-8") + sweep_card_section(result))
    return result


def sweep_card_section(result: SweepMetrics) -> str:
    """Markdown for the model card: the candidates, their proxies and why this one was chosen."""
    terms = " + ".join(f"{w:g} * {n}" for n, w in result.objective.maximize.items())
    head = "| candidate | t | " + " | ".join(PROXY_FIELDS) + " | objective |"
    lines = [head, "|" + "---|" * (len(PROXY_FIELDS) + 3)]
    for row in result.rows:
        values = [getattr(row, f) for f in PROXY_FIELDS]
        cells = ["-" if v is None else f"{v:.4f}" for v in values]
        mark = " (chosen)" if row.candidate == result.chosen.candidate else ""
        lines.append(f"| c{row.candidate}{mark} | `{row.t}` | " + " | ".join(cells) + f" | {row.objective:.4f} |")
    return (
        f"\n## Merge sweep\n\nChosen among {len(result.rows)} candidates by maximising {terms} on fast "
        f"proxies (multiple-choice dev split of {len(result.dev_ids)} questions, held-out loss, language "
        "mixing of a few answers):\n\n" + "\n".join(lines) + "\n"
    )
