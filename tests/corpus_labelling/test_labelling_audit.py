"""Audit of labels against gold: exact metrics on a hand example, bootstrap intervals, labeller choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from definemed.corpus.labelling.audit import audit_labels, load_gold, select_labeller
from definemed.corpus.scores import binary_scores

REPO = Path(__file__).resolve().parents[2]
# gold:      T T T T F F F F F F      -> tp 3 (g0-g2), fn 1 (g3), fp 2 (g4, g5), tn 4
GOLD = [True, True, True, True, False, False, False, False, False, False]
PRED = [True, True, True, False, True, True, False, False, False, False]
GOLD_SUB = [
    "clinical",
    "nursing",
    "research",
    "non_german",
    "general",
    "veterinary",
    "wellness_marketing",
    "fitness",
    "general",
    "boilerplate",
]
PRED_SUB = [
    "clinical",
    "clinical",
    "research",
    None,
    "public_health",
    "nursing",
    "wellness_marketing",
    "none",
    "none",
    "none",
]


def write_gold(path: Path, repeat: int = 1) -> Path:
    """The hand example, `repeat` times over (ids g0, g1, ...): same point metrics, narrower intervals."""
    path.write_text(
        "".join(
            json.dumps({"id": f"g{i}", "medical": GOLD[i % 10], "subdomain": GOLD_SUB[i % 10]}) + "\n"
            for i in range(10 * repeat)
        )
    )
    return path


@pytest.fixture
def gold_file(tmp_path: Path) -> Path:
    return write_gold(tmp_path / "gold.jsonl")


@pytest.fixture
def big_gold_file(tmp_path: Path) -> Path:
    return write_gold(tmp_path / "gold_x20.jsonl", repeat=20)


def predictions(pred: list[bool] = PRED, repeat: int = 1) -> dict[str, dict]:
    return {f"g{i}": {"medical": pred[i % 10], "subdomain": PRED_SUB[i % 10]} for i in range(10 * repeat)}


def test_exact_metrics_confusion_and_disagreements(gold_file: Path) -> None:
    texts = {f"g{i}": f"Text   number\n{i} " + "x" * 300 for i in range(10)}
    report = audit_labels(predictions(), gold_file, texts, name="mixtral", snippet_chars=40)
    m = {k: v["value"] for k, v in report["metrics"].items()}
    assert m == pytest.approx({"precision": 3 / 5, "recall": 3 / 4, "f1": 2 / 3, "accuracy": 7 / 10})
    assert report["confusion"] == {"tp": 3, "fp": 2, "fn": 1, "tn": 4}
    assert [(d["id"], d["gold"], d["predicted"]) for d in report["disagreements"]] == [
        ("g3", True, False),
        ("g4", False, True),
        ("g5", False, True),
    ]
    assert report["disagreements"][0]["snippet"] == ("Text number 3 " + "x" * 300)[:40]
    # subdomain: g3 (medical non_german) is skipped, g3's prediction is None anyway; off-schema non-medical
    # gold (general, fitness, boilerplate) must be 'none': correct are g0, g2, g6, g7, g8, g9
    assert report["subdomain"] == {"accuracy": 6 / 9, "n": 9, "skipped": 1}
    json.dumps(report)  # plain JSON


def test_bootstrap_interval_contains_the_point_estimate_and_is_reproducible(
    gold_file: Path, big_gold_file: Path
) -> None:
    small = audit_labels(predictions(), gold_file, resamples=1000, seed=1)
    big = audit_labels(predictions(repeat=20), big_gold_file, resamples=1000, seed=1)
    assert {k: v["value"] for k, v in big["metrics"].items()} == {k: v["value"] for k, v in small["metrics"].items()}
    for name, metric in big["metrics"].items():
        assert metric["ci_low"] < metric["value"] < metric["ci_high"], name
        width = metric["ci_high"] - metric["ci_low"]
        assert 0.05 < width < 0.5 * (small["metrics"][name]["ci_high"] - small["metrics"][name]["ci_low"]), name
    assert big == audit_labels(predictions(repeat=20), big_gold_file, resamples=1000, seed=1)
    assert big["metrics"] != audit_labels(predictions(repeat=20), big_gold_file, resamples=1000, seed=2)["metrics"]


def test_binary_scores_agree_with_scikit_learn_also_per_bootstrap_row() -> None:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    gold, pred = rng.random(500) < 0.4, rng.random(500) < 0.5
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average="binary")
    ours = binary_scores(gold, pred)
    assert [ours["precision"], ours["recall"], ours["f1"], ours["accuracy"]] == pytest.approx(
        [p, r, f, accuracy_score(gold, pred)]
    )
    none = binary_scores(np.zeros(4, bool), np.zeros(4, bool))
    assert (none["precision"], none["f1"], none["accuracy"]) == (0, 0, 1)
    # bootstrap resamples (one row each) are scored in one call; each row equals scoring that row alone
    idx = rng.integers(0, 500, size=(50, 500))
    rows = binary_scores(gold[idx], pred[idx])
    for i in (0, 17, 49):
        alone = binary_scores(gold[idx[i]], pred[idx[i]])
        assert [rows[k][i] for k in alone] == [alone[k] for k in alone]
    assert binary_scores(gold[None], pred[None])["f1"].tolist() == [ours["f1"]]  # a single row


def test_select_labeller_prefers_the_better_f1_and_says_whether_it_is_clear(
    gold_file: Path, big_gold_file: Path
) -> None:
    perfect = audit_labels(predictions(GOLD, repeat=20), big_gold_file, name="perfect")
    assert perfect["metrics"]["f1"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    worse = audit_labels(predictions(repeat=20), big_gold_file, name="worse")
    choice = select_labeller({"worse": worse, "perfect": perfect})
    assert choice["best"] == "perfect" and [r["labeller"] for r in choice["ranking"]] == ["perfect", "worse"]
    assert choice["clearly_better"] is True and "do not overlap" in choice["reason"]
    perfect = audit_labels(predictions(GOLD), gold_file, name="perfect")
    partial = audit_labels({k: v for k, v in predictions(GOLD).items() if k != "g9"}, gold_file, name="partial")
    close = select_labeller({"partial": partial, "perfect": perfect})
    assert close["best"] == "perfect"  # equal F1 and accuracy: full coverage wins
    assert close["clearly_better"] is False and "may be noise" in close["reason"]
    assert partial["coverage"]["missing_ids"] == ["g9"] and partial["n"] == 9
    with pytest.raises(ValueError, match="metric must be one of"):
        select_labeller({"a": perfect}, metric="auc")


def test_demo_gold_file_loads_and_audits_against_itself() -> None:
    gold_path = REPO / "demo" / "gold_labels.jsonl"
    gold = load_gold(gold_path)
    report = audit_labels({i: {"medical": r["medical"]} for i, r in gold.items()}, gold_path, resamples=50)
    assert report["n"] == len(gold) == 1044 and report["confusion"]["fp"] == report["confusion"]["fn"] == 0
    assert report["subdomain"] is None  # predictions carry no subdomain
