"""Judge audit: order-swap consistency, position bias, tie share, length bias, agreement with humans."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from definemed.evaluate.audit import cohen_kappa, length_bias, position_consistency, tie_share


def verdict(prompt: str, order: str, winner: str, a: str = "qwen", b: str = "mistral") -> dict:
    return {"prompt_id": prompt, "model_a": a, "model_b": b, "order": order, "winner": winner}


def test_position_consistency_hand_example() -> None:
    records = [
        verdict("p1", "ab", "A"),
        verdict("p1", "ba", "B"),  # qwen both times: consistent
        verdict("p2", "ab", "A"),
        verdict("p2", "ba", "A"),  # first slot both times: first-biased
        verdict("p3", "ab", "tie"),
        verdict("p3", "ba", "tie"),  # tie twice: consistent
        verdict("p4", "ab", "B"),
        verdict("p4", "ba", "B"),  # second slot both times: second-biased
        verdict("p5", "ab", "invalid"),
        verdict("p5", "ba", "A"),  # excluded from consistency
        verdict("p6", "ab", "A"),  # only one order: incomplete
        # the pair listed both ways round, each record "ab": mistral shown first, then qwen; mistral both times
        verdict("p7", "ab", "A", a="mistral", b="qwen"),
        verdict("p7", "ab", "B", a="qwen", b="mistral"),
    ]
    r = position_consistency(records)
    assert (r["n_verdicts"], r["n_pairs"], r["n_compared"], r["n_incomplete"]) == (13, 7, 5, 1)
    assert r["consistency"] == pytest.approx(3 / 5)
    assert r["first_biased_share"] == pytest.approx(1 / 5)
    assert r["second_biased_share"] == pytest.approx(1 / 5)
    # decisive verdicts: A = p1, p2 x2, p5, p6, p7 = 6; B = p1, p4 x2, p7 = 4
    assert r["first_position_win_share"] == pytest.approx(6 / 10)
    assert r["invalid_share"] == pytest.approx(1 / 13)


def test_position_consistency_rejects_bad_records() -> None:
    with pytest.raises(ValueError, match="order"):
        position_consistency([verdict("p1", "xy", "A")])
    with pytest.raises(ValueError, match="two verdicts"):
        position_consistency([verdict("p1", "ab", "A"), verdict("p1", "ab", "B")])
    with pytest.raises(ValueError, match="two verdicts"):  # both records show qwen first
        position_consistency([verdict("p1", "ab", "A"), verdict("p1", "ba", "B", a="mistral", b="qwen")])


def battle(prompt: str, winner: str, len_a: int = 100, len_b: int = 100, a: str = "qwen", b: str = "mistral") -> dict:
    return {"prompt_id": prompt, "model_a": a, "model_b": b, "winner": winner, "len_a": len_a, "len_b": len_b}


def test_tie_share_and_length_bias_counts() -> None:
    battles = [
        battle("p1", "model_a", 200, 100),
        battle("p2", "model_b", 100, 300),
        battle("p3", "model_a", 100, 250),
        battle("p4", "tie", 300, 100),
        battle("p5", "model_a", 100, 100),
    ]
    assert tie_share(battles) == pytest.approx(1 / 5)
    r = length_bias(battles)
    assert r["n_decisive_unequal"] == 3  # p4 is a tie, p5 has equal lengths
    assert r["longer_wins_share"] == pytest.approx(2 / 3)


def test_length_coef_separates_length_from_strength() -> None:
    rng = np.random.default_rng(0)
    neutral, biased = [], []
    for k in range(600):
        pair = [("x", "y"), ("y", "z"), ("x", "z")][k % 3]
        # x is the strongest and also writes the longest answers; the neutral judge only sees strength.
        lengths = {"x": 400, "y": 250, "z": 100}
        la, lb = lengths[pair[0]] + int(rng.integers(-80, 80)), lengths[pair[1]] + int(rng.integers(-80, 80))
        strength = {"x": 1.0, "y": 0.5, "z": 0.0}
        logit = strength[pair[0]] - strength[pair[1]]
        for judge, extra in ((neutral, 0.0), (biased, 2.0 * np.tanh((la - lb) / 200))):
            win = rng.random() < 1 / (1 + np.exp(-(logit + extra)))
            judge.append(battle(f"p{k}", "model_a" if win else "model_b", la, lb, a=pair[0], b=pair[1]))
    assert abs(length_bias(neutral)["length_coef"]) < 0.6
    assert length_bias(biased)["length_coef"] > 1.0
    assert length_bias(neutral)["longer_wins_share"] > 0.55  # the raw share alone would blame length


def test_cohen_kappa_matches_sklearn_and_aligns_by_key() -> None:
    judge_winners = ["model_a", "model_b", "tie", "model_a", "model_a", "model_b", "tie", "model_b"]
    human_winners = ["model_a", "model_b", "model_a", "model_a", "tie", "model_b", "tie", "model_a"]
    judge = [battle(f"p{i}", w) for i, w in enumerate(judge_winners)]
    human = [battle(f"p{i}", w) for i, w in enumerate(human_winners)]
    expected = cohen_kappa_score(judge_winners, human_winners)
    r = cohen_kappa(judge, human)
    assert r["kappa"] == pytest.approx(expected)
    assert (r["n"], r["agreement"]) == (8, pytest.approx(5 / 8))

    # Humans listed in reverse, half with the pair swapped (winner label swapped with it), plus strays.
    swap = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    reordered = [
        battle(f"p{i}", swap[w], a="mistral", b="qwen") if i % 2 else battle(f"p{i}", w)
        for i, w in enumerate(human_winners)
    ][::-1]
    reordered.append(battle("p99", "tie"))
    r2 = cohen_kappa(judge + [battle("p42", "model_a")], reordered)
    assert r2["kappa"] == pytest.approx(expected)
    assert (r2["n"], r2["unmatched_judge"], r2["unmatched_human"]) == (8, 1, 1)


def test_cohen_kappa_errors() -> None:
    with pytest.raises(ValueError, match="share no"):
        cohen_kappa([battle("p1", "tie")], [battle("p2", "tie")])
    with pytest.raises(ValueError, match="twice"):
        cohen_kappa([battle("p1", "tie"), battle("p1", "model_a", a="mistral", b="qwen")], [battle("p1", "tie")])
