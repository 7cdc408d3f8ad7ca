"""Win tables, Bradley-Terry MLE against an sklearn reference, bootstrap intervals, length-controlled win-rate."""

from __future__ import annotations

import time
from itertools import combinations

import numpy as np
import pytest

from definemed.evaluate.ratings import (
    Battle,
    bootstrap_bradley_terry,
    bradley_terry,
    length_controlled_winrate,
    win_table,
    winrate_fold_change,
)

STRENGTHS = {"klein": 0.0, "mittel": 0.5, "gross": 1.0, "riese": 1.6}  # log-odds units


def synthetic_battles(strengths: dict[str, float], n_prompts: int, seed: int, tie_prob: float = 0.2) -> list[dict]:
    """One battle per prompt per pair: a tie with `tie_prob`, otherwise a BT draw from the known strengths."""
    rng = np.random.default_rng(seed)
    battles = []
    for a, b in combinations(strengths, 2):
        p_a = 1 / (1 + np.exp(strengths[b] - strengths[a]))
        for k in range(n_prompts):
            tie, a_wins = rng.random() < tie_prob, rng.random() < p_a
            winner = "tie" if tie else "model_a" if a_wins else "model_b"
            battles.append(
                {"model_a": a, "model_b": b, "winner": winner, "prompt_id": f"p{k}", "len_a": 100, "len_b": 100}
            )
    return battles


def sklearn_reference(
    battles: list[dict], models: list[str], scale: float = 400, base: float = 10, init_rating: float = 1000
) -> dict[str, float]:
    """Arena-Hard-Auto's recipe: unpenalised LogisticRegression, no intercept, +1/-1 design, each tie as a
    win each way with weight 0.5. (C=inf is sklearn >= 1.8's spelling of penalty=None.)"""
    from sklearn.linear_model import LogisticRegression

    X, y, w = [], [], []
    for b in battles:
        row = np.zeros(len(models))
        row[models.index(b["model_a"])], row[models.index(b["model_b"])] = 1.0, -1.0
        targets = {"model_a": [(1, 1.0)], "model_b": [(0, 1.0)], "tie": [(1, 0.5), (0, 0.5)]}[b["winner"]]
        for target, weight in targets:
            X.append(row), y.append(target), w.append(weight)
    lr = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
    lr.fit(np.array(X), np.array(y), sample_weight=np.array(w))
    coef = lr.coef_[0] - lr.coef_[0].mean()
    return dict(zip(models, scale * coef / np.log(base) + init_rating, strict=True))


def test_win_table_counts_and_fold_change() -> None:
    battles = [
        Battle("qwen-cpt", "mistral-24b", "model_a", "p1"),
        {"model_a": "mistral-24b", "model_b": "qwen-cpt", "winner": "tie", "prompt_id": "p2"},
        {"model_a": "qwen-cpt", "model_b": "mistral-24b", "winner": "model_b", "prompt_id": "p3"},
        {"model_a": "qwen-cpt", "model_b": "mistral-24b", "winner": "model_b", "prompt_id": "p4"},
        {"model_a": "qwen", "model_b": "mistral-24b", "winner": "tie", "prompt_id": "p1"},
        {"model_a": "qwen", "model_b": "mistral-24b", "winner": "model_b", "prompt_id": "p2"},
        {"model_a": "qwen", "model_b": "mistral-24b", "winner": "model_b", "prompt_id": "p3"},
        {"model_a": "qwen", "model_b": "mistral-24b", "winner": "model_b", "prompt_id": "p4"},
    ]
    table = {(r["model"], r["opponent"]): r for r in win_table(battles)}
    assert len(table) == 4  # qwen and qwen-cpt never met
    cpt = table[("qwen-cpt", "mistral-24b")]
    assert (cpt["wins"], cpt["ties"], cpt["losses"], cpt["n"]) == (1, 1, 2, 4)
    assert cpt["win_rate"] == pytest.approx(1.5 / 4)
    assert table[("mistral-24b", "qwen-cpt")]["win_rate"] == pytest.approx(2.5 / 4)
    assert table[("qwen", "mistral-24b")]["win_rate"] == pytest.approx(0.5 / 4)
    rows = list(table.values())
    assert winrate_fold_change(rows, "qwen-cpt", "qwen", "mistral-24b") == pytest.approx(3.0)
    assert winrate_fold_change(rows, "qwen-cpt", "qwen", "llama") is None
    zero = [{**r, "win_rate": 0.0} if r["model"] == "qwen" else r for r in rows]
    assert winrate_fold_change(zero, "qwen-cpt", "qwen", "mistral-24b") is None


def test_battle_validation() -> None:
    with pytest.raises(ValueError, match="winner"):
        win_table([{"model_a": "x", "model_b": "y", "winner": "A"}])
    with pytest.raises(ValueError, match="itself"):
        win_table([{"model_a": "x", "model_b": "x", "winner": "tie"}])
    with pytest.raises(ValueError, match="no battles"):
        bradley_terry([])


def test_bradley_terry_matches_sklearn_mle_and_recovers_order() -> None:
    battles = synthetic_battles(STRENGTHS, n_prompts=150, seed=1)
    ours = bradley_terry(battles)
    models = list(ours)
    reference = sklearn_reference(battles, models)
    for m in models:
        assert ours[m] == pytest.approx(reference[m], abs=1e-3)
    assert sorted(ours, key=ours.get) == list(STRENGTHS)  # weakest to strongest
    assert np.mean(list(ours.values())) == pytest.approx(1000.0)


def test_bradley_terry_anchor_scale_and_base() -> None:
    battles = synthetic_battles(STRENGTHS, n_prompts=60, seed=2)
    free = bradley_terry(battles)
    anchored = bradley_terry(battles, anchor="mittel")
    assert anchored["mittel"] == 1000.0
    for m in free:  # anchoring is a pure shift
        assert anchored[m] - anchored["klein"] == pytest.approx(free[m] - free["klein"], abs=1e-9)
    natural = bradley_terry(battles, scale=1.0, base=np.e, init_rating=0.0)
    assert free["riese"] - free["klein"] == pytest.approx(
        400 / np.log(10) * (natural["riese"] - natural["klein"]), rel=1e-9
    )
    with pytest.raises(ValueError, match="anchor"):
        bradley_terry(battles, anchor="gpt-4")


def test_bradley_terry_two_models_closed_form() -> None:
    # 3 wins, 2 ties, 1 loss: score 4 of 6, so P = 2/3 and the rating gap is 400 * log10(2).
    outcomes = ["model_a"] * 3 + ["tie"] * 2 + ["model_b"]
    battles = [{"model_a": "x", "model_b": "y", "winner": w, "prompt_id": str(i)} for i, w in enumerate(outcomes)]
    r = bradley_terry(battles, anchor="y")
    assert r["x"] - r["y"] == pytest.approx(400 * np.log10(2), abs=1e-9)


def test_bradley_terry_refuses_infinite_mle() -> None:
    battles = synthetic_battles({"x": 0.0, "y": 0.3}, n_prompts=20, seed=3)
    battles += [{"model_a": "loser", "model_b": "x", "winner": "model_b"}] * 5
    with pytest.raises(ValueError, match="no finite Bradley-Terry MLE"):
        bradley_terry(battles)
    ridged = bradley_terry(battles, ridge=1e-2)
    assert ridged["loser"] < min(ridged["x"], ridged["y"]) - 300


def three_models_48_prompts(seed: int = 0) -> list[dict]:
    return synthetic_battles({"qwen": 0.0, "qwen-cpt": 0.4, "mistral-24b": 0.8}, n_prompts=48, seed=seed)


def test_bootstrap_contains_score_is_deterministic_and_fast() -> None:
    battles = three_models_48_prompts()
    start = time.perf_counter()
    result = bootstrap_bradley_terry(battles, n_rounds=1000, seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"bootstrap took {elapsed:.2f} s"
    point = bradley_terry(battles)
    for m, r in result.items():
        assert r["score"] == pytest.approx(point[m])
        assert r["lower"] < r["score"] < r["upper"]
        assert r["separated_share"] == 0.0
    assert bootstrap_bradley_terry(battles, n_rounds=1000, seed=0) == result
    assert bootstrap_bradley_terry(battles, n_rounds=1000, seed=1) != result


def test_bootstrap_widens_with_fewer_battles_and_respects_anchor() -> None:
    battles = three_models_48_prompts()
    few = [b for b in battles if int(b["prompt_id"][1:]) < 12]
    wide, narrow = bootstrap_bradley_terry(few, n_rounds=500), bootstrap_bradley_terry(battles, n_rounds=500)
    for m in narrow:
        assert wide[m]["upper"] - wide[m]["lower"] > 1.3 * (narrow[m]["upper"] - narrow[m]["lower"])
    anchored = bootstrap_bradley_terry(battles, n_rounds=200, anchor="mistral-24b")
    assert anchored["mistral-24b"]["lower"] == anchored["mistral-24b"]["upper"] == 1000.0
    assert anchored["qwen"]["score"] == pytest.approx(bradley_terry(battles, anchor="mistral-24b")["qwen"])
    assert anchored["qwen"]["lower"] < anchored["qwen"]["score"] < anchored["qwen"]["upper"] < 1000.0


def test_bootstrap_survives_resamples_without_finite_mle() -> None:
    battles = synthetic_battles({"x": 0.0, "y": 0.3}, n_prompts=30, seed=4)
    battles += [{"model_a": "rare", "model_b": "x", "winner": "model_b"}] * 11
    battles += [{"model_a": "rare", "model_b": "x", "winner": "model_a"}]
    result = bootstrap_bradley_terry(battles, n_rounds=300, seed=0)
    rare = result["rare"]
    assert 0.1 < rare["separated_share"] < 0.9  # the lone win is missing from about (1 - 1/n)^n of rounds
    assert np.isfinite(rare["lower"]) and rare["lower"] < rare["score"] - 500  # effectively unbounded below


def length_biased_battles(share_longer: float, seed: int = 0, n: int = 400) -> list[dict]:
    """A judge that prefers longer answers (P(model wins) 0.75 when longer, 0.35 when shorter), with the
    model the longer one in `share_longer` of prompts; some ties."""
    rng = np.random.default_rng(seed)
    battles = []
    for k in range(n):
        longer = rng.random() < share_longer
        length_m, length_b = (300 + int(rng.integers(0, 100)), 150) if longer else (150, 300)
        u, p_win = rng.random(), 0.75 if longer else 0.35
        winner = "tie" if u < 0.1 else "model_a" if rng.random() < p_win else "model_b"
        if k % 2:  # half the battles list the baseline first: orientation must not matter
            battles.append(
                {
                    "model_a": "base",
                    "model_b": "cpt",
                    "len_a": length_b,
                    "len_b": length_m,
                    "winner": {"model_a": "model_b", "model_b": "model_a"}.get(winner, "tie"),
                    "prompt_id": f"p{k}",
                }
            )
        else:
            battles.append(
                {
                    "model_a": "cpt",
                    "model_b": "base",
                    "len_a": length_m,
                    "len_b": length_b,
                    "winner": winner,
                    "prompt_id": f"p{k}",
                }
            )
    return battles


def test_lc_equals_raw_for_equal_lengths() -> None:
    battles = [{**b, "len_a": 200, "len_b": 200} for b in length_biased_battles(0.7)]
    result = length_controlled_winrate(battles, "cpt", "base")
    raw = next(r["win_rate"] for r in win_table(battles) if r["model"] == "cpt")
    assert result["raw"] == pytest.approx(raw, abs=1e-12)
    assert result["lc"] == pytest.approx(result["raw"], abs=1e-6)
    assert result["length_coef"] == 0.0 and not result["separated"]


def test_lc_removes_length_advantage_in_both_directions() -> None:
    verbose = length_controlled_winrate(length_biased_battles(0.8), "cpt", "base")
    terse = length_controlled_winrate(length_biased_battles(0.2), "cpt", "base")
    assert verbose["length_coef"] > 0.5 and terse["length_coef"] > 0.5
    assert verbose["lc"] < verbose["raw"] - 0.05
    assert terse["lc"] > terse["raw"] + 0.05
    # Same judge, same quality: once length is controlled the two verbosity regimes nearly agree.
    assert abs(verbose["lc"] - terse["lc"]) < abs(verbose["raw"] - terse["raw"]) / 2


def test_lc_flags_separation_and_ridge_fixes_it() -> None:
    battles = [
        {**b, "winner": "model_a" if b["len_a"] > b["len_b"] else "model_b"} for b in length_biased_battles(0.6, n=100)
    ]
    assert length_controlled_winrate(battles, "cpt", "base")["separated"]
    ridged = length_controlled_winrate(battles, "cpt", "base", length_ridge=1.0)
    assert not ridged["separated"] and 0.0 < ridged["lc"] < 1.0
    with pytest.raises(ValueError, match="no battles between"):
        length_controlled_winrate(battles, "cpt", "gpt-4")
