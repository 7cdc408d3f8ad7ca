"""The evaluate stage's statistics over judged battles: ratings (Bradley-Terry, length-controlled win-rate,
fold change) and the judge audit (position consistency, ties, length bias, agreement with human labels).

Inputs are the stage's own artifacts: `pairwise.outcomes` rows (one reconciled battle per prompt and model pair,
with answer lengths in generated tokens) and `judgments.jsonl` rows (one verdict per order). The arithmetic lives
in `ratings` and `audit`; this module chooses what to compute for a run and shapes it for the metrics dict.
Degenerate inputs (no valid battle, a model that never wins) give None plus a note instead of failing the stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from definemed.artifacts import read_jsonl
from definemed.evaluate import audit, ratings

logger = logging.getLogger("definemed")

# Used only when the exact Bradley-Terry MLE does not exist (some model never wins or ties): ratings stay finite
# but sit far apart; `bradley_terry_note` says so.
FALLBACK_RIDGE = 0.01


def valid_battles(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in outcomes if b["winner"] != "invalid"]


def bradley_terry(
    battles: list[dict[str, Any]], anchor: str | None, seed: int, rounds: int
) -> tuple[dict[str, dict[str, float]], str | None]:
    """{model: {score, lower, upper, separated_share}} (Elo scale, 95% percentile bootstrap) and a note."""
    rated = ratings.model_names(ratings.as_battles(battles))
    anchor = anchor if anchor in rated else None
    try:
        return ratings.bootstrap_bradley_terry(battles, n_rounds=rounds, seed=seed, anchor=anchor), None
    except ValueError as exc:
        note = f"{exc}; fitted with ridge {FALLBACK_RIDGE}"
        logger.warning("[evaluate] Bradley-Terry: %s", note)
        return ratings.bootstrap_bradley_terry(
            battles, n_rounds=rounds, seed=seed, anchor=anchor, ridge=FALLBACK_RIDGE
        ), note


def lc_winrates(battles: list[dict[str, Any]], models: list[str], baseline: str | None) -> dict[str, Any]:
    """Length-controlled win-rates: {model: {...}} against the baseline, or {"<model> vs <opponent>": {...}}
    for every pair when there is none. Each value: raw, lc, length_coef, n, separated, opponent."""
    pairs = (
        [(m, baseline) for m in models if m != baseline]
        if baseline
        else [(m, o) for i, m in enumerate(models) for o in models[i + 1 :]]
    )
    out: dict[str, Any] = {}
    for model, opponent in pairs:
        key = model if baseline else f"{model} vs {opponent}"
        try:
            out[key] = ratings.length_controlled_winrate(battles, model, opponent) | {"opponent": opponent}
        except ValueError:  # no valid battle between the two
            out[key] = None
    return out


def fold_changes(battles: list[dict[str, Any]], triples: list[tuple[str, str, str]]) -> dict[str, float | None]:
    """{"<x>/<y> vs <opponent>": win_rate(x vs opponent) / win_rate(y vs opponent)} (None where undefined)."""
    table = ratings.win_table(battles)
    return {f"{x}/{y} vs {opp}": ratings.winrate_fold_change(table, x, y, opp) for x, y, opp in triples}


def rating_metrics(
    outcomes: list[dict[str, Any]],
    models: list[str],
    baseline: str | None,
    seed: int,
    rounds: int,
    triples: list[tuple[str, str, str]],
) -> dict[str, Any]:
    battles = valid_battles(outcomes)
    if not battles:
        return {
            "n_battles": 0,
            "bradley_terry": None,
            "bradley_terry_note": "no valid battles",
            "lc_winrate": {},
            "fold_change": {f"{x}/{y} vs {o}": None for x, y, o in triples},
        }
    bt, note = bradley_terry(battles, baseline, seed, rounds)
    return {
        "n_battles": len(battles),
        "bootstrap_rounds": rounds,
        "anchor": baseline,
        "bradley_terry": bt,
        "bradley_terry_note": note,
        "lc_winrate": lc_winrates(battles, models, baseline),
        "fold_change": fold_changes(battles, triples),
    }


def load_human_labels(path: Path) -> list[dict[str, Any]]:
    """Human verdicts {prompt_id, model_a, model_b, winner}; winner is 'model_a' / 'model_b' / 'tie' or the
    winning model's name."""
    rows = []
    for row in read_jsonl(path):
        winner = row["winner"]
        if winner not in ("model_a", "model_b", "tie"):
            sides = {row["model_a"]: "model_a", row["model_b"]: "model_b"}
            if winner not in sides:
                raise ValueError(f"{path}: winner {winner!r} is neither side of {row['model_a']} vs {row['model_b']}")
            winner = sides[winner]
        rows.append({**row, "prompt_id": str(row["prompt_id"]), "winner": winner})
    return rows


def audit_metrics(
    judgments: list[dict[str, Any]], outcomes: list[dict[str, Any]], human_labels: Path | None
) -> dict[str, Any]:
    battles = valid_battles(outcomes)
    result: dict[str, Any] = {
        "position_consistency": audit.position_consistency(judgments),
        "tie_share": audit.tie_share(battles) if battles else None,
        "length_bias": audit.length_bias(battles) if battles else None,
        "kappa": None,
    }
    if human_labels is not None:
        try:
            result["kappa"] = audit.cohen_kappa(battles, load_human_labels(human_labels))
        except ValueError as exc:  # no overlap between the judged and the labelled comparisons
            logger.warning("[evaluate] kappa against %s: %s", human_labels, exc)
            result["kappa"] = {"kappa": None, "error": str(exc)}
    return result
