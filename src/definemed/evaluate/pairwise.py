"""Pairwise comparison bookkeeping: which comparisons to ask, how two orders become one outcome, win-rates.

Every unordered pair of models is judged on every prompt in both orders (each model once in slot A),
because LLM judges favour a position. The two verdicts are reconciled: agreement -> that model wins;
disagreement (including win vs tie) -> tie; an invalid verdict in either order -> the comparison is invalid,
counted and reported, never dropped silently. Win-rate = (wins + 0.5 ties) / (wins + ties + losses); invalid
comparisons are excluded from it.
Bradley-Terry scores and length control come later; `outcomes` in pairwise.json has what they need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

from definemed.evaluate.verdicts import JudgeItem, Verdict, Winner

TIE, INVALID = "tie", "invalid"


@dataclass(frozen=True)
class Comparison:
    """One judge call: `model_a` is shown first. `order` 0 shows the pair's first model first, 1 the other."""

    prompt_id: str
    category: str
    pair: tuple[str, str]
    order: int

    @property
    def model_a(self) -> str:
        return self.pair[self.order]

    @property
    def model_b(self) -> str:
        return self.pair[1 - self.order]


def build_comparisons(
    prompts: list[dict[str, Any]], answers: dict[str, dict[str, str]], models: list[str]
) -> tuple[list[Comparison], list[JudgeItem]]:
    """Both orders of every model pair on every prompt. `answers[model][prompt_id]` is the answer text."""
    comparisons, items = [], []
    for pair in combinations(models, 2):
        for p in prompts:
            for order in (0, 1):
                comp = Comparison(prompt_id=p["id"], category=p.get("category", ""), pair=pair, order=order)
                comparisons.append(comp)
                items.append(
                    JudgeItem(
                        prompt=p["prompt"],
                        reference=p.get("reference"),
                        answer_a=answers[comp.model_a][p["id"]],
                        answer_b=answers[comp.model_b][p["id"]],
                    )
                )
    return comparisons, items


def slot_to_model(comp: Comparison, winner: Winner) -> str:
    """Translate a slot verdict ('A'/'B') into the winning model's name; 'tie' and 'invalid' pass through."""
    if winner == "A":
        return comp.model_a
    if winner == "B":
        return comp.model_b
    return winner


def reconcile(first: str, second: str) -> str:
    """One outcome from the two orders' outcomes (model names, 'tie' or 'invalid')."""
    if INVALID in (first, second):
        return INVALID
    return first if first == second else TIE


def battle_winner(outcome: str, pair: tuple[str, str]) -> str:
    """The outcome in `ratings.Battle` terms: 'model_a' / 'model_b' (the pair's first / second model),
    'tie' or 'invalid'."""
    return {pair[0]: "model_a", pair[1]: "model_b"}.get(outcome, outcome)


def outcomes(
    comparisons: list[Comparison], verdicts: list[Verdict], lengths: dict[str, dict[str, int]] | None = None
) -> list[dict[str, Any]]:
    """One row per (pair, prompt): both orders' outcomes, the reconciled `outcome` (model, 'tie', 'invalid'),
    and the same as a `ratings.Battle`: model_a, model_b, winner, len_a/len_b (from `lengths`)."""
    by_key: dict[tuple[tuple[str, str], str], dict[int, str]] = {}
    meta: dict[tuple[tuple[str, str], str], Comparison] = {}
    for comp, verdict in zip(comparisons, verdicts, strict=True):
        key = (comp.pair, comp.prompt_id)
        by_key.setdefault(key, {})[comp.order] = slot_to_model(comp, verdict.winner)
        meta.setdefault(key, comp)
    rows = []
    for key, orders in by_key.items():
        if set(orders) != {0, 1}:
            raise ValueError(f"comparison {key} was not judged in both orders")
        comp, (a, b) = meta[key], key[0]
        outcome = reconcile(orders[0], orders[1])
        rows.append(
            {
                "prompt_id": comp.prompt_id,
                "category": comp.category,
                "models": [a, b],
                "order_outcomes": [orders[0], orders[1]],
                "outcome": outcome,
                "model_a": a,
                "model_b": b,
                "winner": battle_winner(outcome, (a, b)),
                "len_a": (lengths or {}).get(a, {}).get(comp.prompt_id, 0),
                "len_b": (lengths or {}).get(b, {}).get(comp.prompt_id, 0),
            }
        )
    return rows


@dataclass
class PairStats:
    model: str
    opponent: str
    wins: int = 0
    ties: int = 0
    losses: int = 0
    invalid: int = 0

    @property
    def win_rate(self) -> float | None:
        decided = self.wins + self.ties + self.losses
        return (self.wins + 0.5 * self.ties) / decided if decided else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "win_rate": self.win_rate}


def win_table(rows: list[dict[str, Any]], models: list[str]) -> list[PairStats]:
    """Stats for every ordered pair (model vs opponent), in config order."""
    stats = {(m, o): PairStats(m, o) for m in models for o in models if m != o}
    for row in rows:
        a, b = row["models"]
        for model, opponent in ((a, b), (b, a)):
            s = stats[(model, opponent)]
            if row["outcome"] == INVALID:
                s.invalid += 1
            elif row["outcome"] == TIE:
                s.ties += 1
            elif row["outcome"] == model:
                s.wins += 1
            else:
                s.losses += 1
    return list(stats.values())


def summarize(rows: list[dict[str, Any]], models: list[str], baseline: str | None) -> dict[str, Any]:
    """pairwise.json content: per ordered pair stats, win-rates against the baseline, order consistency."""
    table = win_table(rows, models)
    vs_baseline = {s.model: s.win_rate for s in table if s.opponent == baseline} if baseline else {}
    valid = [r for r in rows if r["outcome"] != INVALID]
    agree = sum(r["order_outcomes"][0] == r["order_outcomes"][1] for r in valid)
    return {
        "pairs": [s.to_dict() for s in table],
        "baseline": baseline,
        "vs_baseline": vs_baseline,
        "n_comparisons": len(rows),
        "invalid": len(rows) - len(valid),
        # Share of valid comparisons where both orders agree: low values mean position bias or noise.
        "order_consistency": agree / len(valid) if valid else None,
        "outcomes": rows,
    }
