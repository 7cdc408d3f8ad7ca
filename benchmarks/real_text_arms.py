"""Which training data and features make the light classifiers learn topic: F1 on the demo's real test set.

    PYTHONPATH=src python benchmarks/real_text_arms.py [--arms all written_only no_real_medical] \
        [--families fasttext fasttext:content_words=false tfidf_logreg tfidf_logreg:content_words=false]

Trains each family on the demo shards' German non-boilerplate documents (labels: demo/precomputed_labels.jsonl,
what the demo's labelling step selects; split by id hash as the stage splits), chooses the best-F1 threshold on
the held-out part, and scores demo/real_test.jsonl (real documents no training saw) at it:
  all              every training document (the demo as shipped)
  written_only     only the documents written for the project (the demo before issue 14)
  no_real_medical  written documents plus real non-medical ones: no real clinical text in training
No quality filters run (the stage's survivors differ by a few documents). Accuracy figures only; no timings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = {
    "all": lambda g: True,
    "written_only": lambda g: g["origin"] == "written",
    "no_real_medical": lambda g: not (g["origin"] == "real" and g["medical"]),
}


def main() -> None:
    import pyarrow.parquet as pq

    from definemed.corpus.classifier_config import ClassifierConfig
    from definemed.corpus.classifiers import build_classifier
    from definemed.corpus.gold_audit import audit_scores, read_gold
    from definemed.corpus.thresholds import threshold_for_best_f1
    from definemed.corpus.training import is_heldout

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument(
        "--families",
        nargs="+",
        default=["fasttext", "fasttext:content_words=false", "tfidf_logreg", "tfidf_logreg:content_words=false"],
    )
    args = parser.parse_args()
    read = lambda p: [json.loads(line) for line in (ROOT / p).read_text(encoding="utf-8").splitlines()]  # noqa: E731
    gold = {r["id"]: r for r in read("demo/gold_labels.jsonl")}
    labels = {r["id"]: r["medical"] for r in read("demo/precomputed_labels.jsonl")}
    docs = [
        r
        for f in sorted((ROOT / "demo/fineweb2-deu").glob("*.parquet"))
        for r in pq.read_table(f, columns=["id", "text"]).to_pylist()
        if gold[r["id"]]["lang"] == "de" and gold[r["id"]]["subdomain"] != "boilerplate"
    ]
    real = read_gold(ROOT / "demo/real_test.jsonl")
    print(
        "arm              family                            threshold  real F1 [95% CI]        P      R      "
        "FPR tech  R short"
    )
    for arm in args.arms:
        pool = [d for d in docs if ARMS[arm](gold[d["id"]])]
        train = [d for d in pool if not is_heldout(d["id"], 0.3, 0)]
        held = [d for d in pool if is_heldout(d["id"], 0.3, 0)]
        for spec in args.families:
            kind, *opts = spec.split(":")
            section = {"fasttext": "fasttext", "tfidf_logreg": "tfidf"}[kind]
            params = {o.split("=")[0]: json.loads(o.split("=")[1]) for o in opts}
            cfg = ClassifierConfig.model_validate({"kind": kind, section: params})
            model = build_classifier(cfg).fit([d["text"] for d in train], [labels[d["id"]] for d in train])
            threshold = threshold_for_best_f1(
                model.predict_proba([d["text"] for d in held]), [labels[d["id"]] for d in held]
            )
            a = audit_scores(real, model.predict_proba(real.texts), threshold, rounds=1000)
            lo, hi = a["intervals_95"]["f1"]
            print(
                f"{arm:<16} {spec:<33} {threshold:9.3f}  {a['f1']:.3f} [{lo:.3f}, {hi:.3f}]  {a['precision']:.3f}  "
                f"{a['recall']:.3f}  {a['technical_false_positive_rate']:.3f}     {a['short_medical_recall']:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
