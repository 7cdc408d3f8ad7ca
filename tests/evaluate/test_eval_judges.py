"""Reference (chrF) judge, the strict verdict parser, order reconciliation and win-rate arithmetic."""

from __future__ import annotations

import pytest

from definemed.evaluate import pairwise
from definemed.evaluate.config import ReferenceJudgeConfig
from definemed.evaluate.judges import JudgeItem, ReferenceJudge, Verdict, chrf, parse_verdict

REFERENCE = (
    "Metformin ist das Mittel der ersten Wahl bei Diabetes mellitus Typ 2, sofern keine Kontraindikation besteht."
)
UNRELATED = "Der Zug nach München hatte heute Morgen wegen einer Weichenstörung Verspätung."


def test_chrf_bounds() -> None:
    assert chrf(REFERENCE, REFERENCE) == pytest.approx(1.0)
    assert chrf("", REFERENCE) == 0.0
    assert 0.0 < chrf(UNRELATED, REFERENCE) < 0.5


def _popovic_chrf(hyp: str, ref: str, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF recomputed from its definition (the hand-written version the reference judge used before sacrebleu):
    precision and recall averaged over the orders where both sides have n-grams, then F-beta."""
    from collections import Counter

    def grams(text: str, n: int) -> Counter[str]:
        chars = "".join(text.split())
        return Counter(chars[i : i + n] for i in range(len(chars) - n + 1))

    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        h, r = grams(hyp, n), grams(ref, n)
        if h and r:
            overlap = sum((h & r).values())
            precisions.append(overlap / sum(h.values()))
            recalls.append(overlap / sum(r.values()))
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0


@pytest.mark.parametrize(
    "hyp",
    [
        "Metformin gilt bei Typ-2-Diabetes als erste Wahl.",
        UNRELATED,
        "Met",
        "x y z",
        REFERENCE.upper(),
        REFERENCE[:40] + " und sonst nichts.",
    ],
)
def test_chrf_is_the_definition_the_verdicts_were_built_on(hyp: str) -> None:
    # sacrebleu's defaults (char order 6, no word n-grams, beta 2, effective-order averaging) must keep the
    # reference judge's verdicts where they were; an eps-smoothed or chrF++ default would move them.
    assert chrf(hyp, REFERENCE) == pytest.approx(_popovic_chrf(hyp, REFERENCE), abs=1e-12)
    assert chrf(hyp, REFERENCE, max_n=3, beta=1.0) == pytest.approx(_popovic_chrf(hyp, REFERENCE, 3, 1.0), abs=1e-12)


def test_reference_judge_prefers_reference_in_both_orders_and_ties_equal() -> None:
    judge = ReferenceJudge(ReferenceJudgeConfig(tie_margin=0.01))
    items = [
        JudgeItem("Frage", REFERENCE, REFERENCE, UNRELATED),
        JudgeItem("Frage", REFERENCE, UNRELATED, REFERENCE),
        JudgeItem("Frage", REFERENCE, UNRELATED, UNRELATED),
    ]
    assert [v.winner for v in judge.judge_batch(items)] == ["A", "B", "tie"]


def test_reference_judge_needs_references() -> None:
    with pytest.raises(ValueError, match="reference"):
        ReferenceJudge().judge_batch([JudgeItem("Frage", None, "a", "b")])


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        ("Begründung ...\nUrteil: [[A]]", "A"),
        ("B ist genauer.\n\n**Urteil: [[B]]**\n", "B"),
        ("gleich gut\n[[C]]", "tie"),
        ("[[A]]\nUrteil: [[B]]", "B"),  # only the final line counts
        ("Urteil: [[D]]", "invalid"),
        ("Urteil: [[A]] oder [[B]]", "invalid"),
        ("Urteil: [[A]]\nIch hoffe, das hilft.", "invalid"),
        ("A ist besser", "invalid"),
        ("", "invalid"),
        (None, "invalid"),
    ],
)
def test_parse_verdict_is_strict(text: str | None, winner: str) -> None:
    assert parse_verdict(text) == winner


def test_reconcile_orders() -> None:
    assert pairwise.reconcile("m1", "m1") == "m1"
    assert pairwise.reconcile("tie", "tie") == "tie"
    assert pairwise.reconcile("m1", "m2") == "tie"  # position bias: the judge picked slot A both times
    assert pairwise.reconcile("m1", "tie") == "tie"
    assert pairwise.reconcile("m1", "invalid") == "invalid"
    assert pairwise.reconcile("invalid", "tie") == "invalid"


def _judged(slots: list[tuple[str, str]]) -> list[dict]:
    """Outcomes for pair (x, y) on one prompt per entry: (verdict with x first, verdict with y first)."""
    prompts = [{"id": f"p{i}", "prompt": "?", "reference": "r"} for i in range(len(slots))]
    answers = {m: {p["id"]: m for p in prompts} for m in ("x", "y")}
    comps, items = pairwise.build_comparisons(prompts, answers, ["x", "y"])
    assert [(c.model_a, c.order) for c in comps[:2]] == [("x", 0), ("y", 1)]
    assert items[0].answer_a == "x" and items[1].answer_a == "y"
    flat = [Verdict(winner=w) for pair in slots for w in pair]  # type: ignore[arg-type]
    return pairwise.outcomes(comps, flat)


def test_win_rate_arithmetic() -> None:
    rows = _judged(
        [
            ("A", "B"),  # x wins both orders -> x
            ("A", "B"),  # x
            ("B", "A"),  # y wins both orders -> y
            ("A", "A"),  # each order picks slot A -> tie
            ("tie", "tie"),  # tie
            ("A", "invalid"),
        ]
    )  # invalid, counted separately
    assert [r["outcome"] for r in rows] == ["x", "x", "y", "tie", "tie", "invalid"]
    assert [r["winner"] for r in rows] == ["model_a", "model_a", "model_b", "tie", "tie", "invalid"]
    summary = pairwise.summarize(rows, ["x", "y"], baseline="y")
    x_vs_y = next(p for p in summary["pairs"] if p["model"] == "x")
    y_vs_x = next(p for p in summary["pairs"] if p["model"] == "y")
    assert (x_vs_y["wins"], x_vs_y["ties"], x_vs_y["losses"], x_vs_y["invalid"]) == (2, 2, 1, 1)
    assert x_vs_y["win_rate"] == pytest.approx((2 + 0.5 * 2) / 5)
    assert y_vs_x["win_rate"] == pytest.approx((1 + 0.5 * 2) / 5)
    assert summary["vs_baseline"] == {"x": pytest.approx(0.6)}
    assert summary["invalid"] == 1 and summary["n_comparisons"] == 6
    assert summary["order_consistency"] == pytest.approx(4 / 5)


def test_all_invalid_has_no_win_rate() -> None:
    summary = pairwise.summarize(_judged([("invalid", "invalid")]), ["x", "y"], baseline=None)
    assert summary["pairs"][0]["win_rate"] is None and summary["vs_baseline"] == {}
