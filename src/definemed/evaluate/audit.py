"""Audit of an LLM judge: does it keep its verdict when the answers swap places, does it like ties or long
answers, and does it agree with human labels? Pure functions over verdict records (see `ratings.Battle`).

Position checks follow MT-Bench (Zheng et al. 2023, "consistency", "biased toward first/second position")
and FairEval (Wang et al. 2023); the length check mirrors AlpacaEval 2's length term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from definemed.evaluate.ratings import OUTCOME_SCORE, Battle, as_battles, fit_logistic, model_names

_ORDERS = ("ab", "ba")
_SLOTS = ("A", "B", "tie", "invalid")


def _slot_outcome(record: Mapping[str, Any]) -> tuple[tuple[str, str, str], str, str]:
    """(pair key, model shown first, outcome as a model name / 'tie' / 'invalid') for one verdict.
    Keyed on who was shown first, not on the order label, so records listing the pair either way line up."""
    order, slot = record["order"], record["winner"]
    if order not in _ORDERS or slot not in _SLOTS:
        raise ValueError(f"order must be one of {_ORDERS} and winner one of {_SLOTS}, got {order!r}/{slot!r}")
    first, second = (record["model_a"], record["model_b"]) if order == "ab" else (record["model_b"], record["model_a"])
    outcome = first if slot == "A" else second if slot == "B" else slot
    pair = sorted((record["model_a"], record["model_b"]))
    return (str(record["prompt_id"]), pair[0], pair[1]), first, outcome


def position_consistency(ordered_verdicts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Order-swap audit over raw per-order verdicts ({prompt_id, model_a, model_b, order, winner}).

    `order` "ab" shows model_a first; `winner` names a slot ("A" = the answer shown first). Returns
    - consistency: share of pairs judged validly in both orders that pick the same model (or tie twice);
    - first_biased_share / second_biased_share: share of those pairs where both orders chose slot A / slot B
      (MT-Bench's "biased toward first/second position");
    - first_position_win_share: slot-A wins among all decisive verdicts (0.5 = no position bias);
    - invalid_share: invalid verdicts among all verdicts; n_incomplete: pairs seen in only one order.
    """
    records = list(ordered_verdicts)
    outcomes: dict[tuple[str, str, str], dict[str, str]] = {}
    slots: dict[tuple[str, str, str], dict[str, str]] = {}
    for rec in records:
        key, first, outcome = _slot_outcome(rec)
        if first in outcomes.setdefault(key, {}):
            raise ValueError(f"comparison {key} has two verdicts with {first!r} shown first")
        outcomes[key][first], slots.setdefault(key, {})[first] = outcome, rec["winner"]
    complete = [k for k, v in outcomes.items() if len(v) == 2]
    valid = [k for k in complete if "invalid" not in outcomes[k].values()]
    consistent = sum(len(set(outcomes[k].values())) == 1 for k in valid)
    first_biased = sum(set(slots[k].values()) == {"A"} for k in valid)
    second_biased = sum(set(slots[k].values()) == {"B"} for k in valid)
    verdicts = np.array([r["winner"] for r in records])
    n_a, n_b = int((verdicts == "A").sum()), int((verdicts == "B").sum())
    return {
        "n_verdicts": len(records),
        "n_pairs": len(outcomes),
        "n_compared": len(valid),
        "n_incomplete": len(outcomes) - len(complete),
        "consistency": _share(consistent, len(valid)),
        "first_biased_share": _share(first_biased, len(valid)),
        "second_biased_share": _share(second_biased, len(valid)),
        "first_position_win_share": _share(n_a, n_a + n_b),
        "invalid_share": _share(int((verdicts == "invalid").sum()), len(records)),
    }


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def tie_share(battles: Iterable[Battle | Mapping[str, Any]]) -> float:
    """Share of reconciled battles that are ties (high values: an indecisive judge or unstable orders)."""
    return float(np.mean([b.winner == "tie" for b in as_battles(battles)]))


def length_bias(battles: Iterable[Battle | Mapping[str, Any]]) -> dict[str, Any]:
    """How much the judge favours longer answers.

    - longer_wins_share: among decisive battles with unequal lengths, share won by the longer answer;
    - length_coef: phi in logit P(a beats b) = beta_a - beta_b + phi * tanh(d / std(d)), d = len_a - len_b,
      ties as y = 0.5. Model strengths (Bradley-Terry terms) are fitted jointly, so a model that is both
      better and longer does not count as length bias; 0 when all lengths are equal.
    """
    battles = as_battles(battles)
    d = np.array([b.len_a - b.len_b for b in battles], float)
    y = np.array([OUTCOME_SCORE[b.winner] for b in battles])
    decisive = (y != 0.5) & (d != 0)
    longer_won = (d[decisive] > 0) == (y[decisive] == 1.0)
    models = model_names(battles)
    X = np.zeros((len(battles), len(models) + 1))
    rows = np.arange(len(battles))
    X[rows, [models.index(b.model_a) for b in battles]] = 1.0
    X[rows, [models.index(b.model_b) for b in battles]] = -1.0
    X[:, -1] = np.tanh(d / d.std()) if d.std() > 0 else 0.0
    penalty = np.zeros((len(models) + 1,) * 2)
    penalty[:-1, :-1] = 1.0  # pins sum(beta) = 0 only; the likelihood is blind to that direction
    coef, _ = fit_logistic(X, y, np.ones((1, len(y))), penalty=penalty)
    return {
        "longer_wins_share": _share(int(longer_won.sum()), int(decisive.sum())),
        "n_decisive_unequal": int(decisive.sum()),
        "length_coef": float(coef[0, -1]),
    }


def _canonical_labels(records: Iterable[Mapping[str, Any]], who: str) -> dict[tuple[str, str, str], str]:
    """{(prompt_id, first model, second model) sorted: 'model_a' | 'model_b' | 'tie'} in the sorted orientation,
    so a record that lists the pair the other way round still lines up."""
    out: dict[tuple[str, str, str], str] = {}
    for b in map(Battle.coerce, records):
        lo, hi = sorted((b.model_a, b.model_b))
        key = (b.prompt_id, lo, hi)
        if key in out:
            raise ValueError(f"{who} labels list {key} twice")
        winner = {"model_a": b.model_a, "model_b": b.model_b}.get(b.winner, "tie")
        out[key] = "tie" if winner == "tie" else "model_a" if winner == lo else "model_b"
    return out


def cohen_kappa(judge_labels: Iterable[Mapping[str, Any]], human_labels: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Cohen's kappa between judge and human over {model_a, model_b, tie}, aligned on (prompt_id, model pair).

    Records are battle dicts; the pair may be listed in either orientation and in any list order. Returns
    kappa, raw agreement, n aligned, and how many records of each side found no partner.
    """
    from sklearn.metrics import cohen_kappa_score

    judge, human = _canonical_labels(judge_labels, "judge"), _canonical_labels(human_labels, "human")
    keys = sorted(judge.keys() & human.keys())
    if not keys:
        raise ValueError("judge and human labels share no (prompt_id, model pair)")
    j, h = [judge[k] for k in keys], [human[k] for k in keys]
    return {
        "kappa": float(cohen_kappa_score(j, h, labels=["model_a", "model_b", "tie"])),
        "agreement": float(np.mean(np.array(j) == np.array(h))),
        "n": len(keys),
        "unmatched_judge": len(judge) - len(keys),
        "unmatched_human": len(human) - len(keys),
    }
