"""fastText settings for the medical classifier: held-out F1 on the demo labels against scoring cost.

For each setting: train on the demo's classifier split (the labelled documents that pass the demo filters,
held out by id hash, as the demo run splits them) with three seeds, report the held-out F1 of each, and time
scoring of the demo texts (x10) through `FastTextClassifier.predict_proba` (whitespace handling + one batched
multi-line predict), best of three passes, all settings in this one process. The default of
`corpus.classifier.fasttext` (config.FastTextParams) was chosen from this table.

Run: .venv/bin/python benchmarks/fasttext_settings.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name -> corpus.classifier.fasttext overrides of the default (float, dim 16, char 4-grams, bigrams)
    "default: float, dim 16, 4-grams": {},
    "quantised (quantize: true)": {"quantize": True},
    "dim 50": {"dim": 50},
    "dim 8": {"dim": 8},
    "3-5-grams": {"minn": 3, "maxn": 5},
    "words only (maxn: 0)": {"maxn": 0},
    "unigrams (word_ngrams: 1)": {"word_ngrams": 1},
    "old default: 3-5-grams, dim 50, quantised": {"minn": 3, "maxn": 5, "dim": 50, "quantize": True},
}


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import sys

    import numpy as np
    from sklearn.metrics import f1_score

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from corpus_throughput import demo_rows, survivors_split

    from definemed.config import load_config
    from definemed.corpus.fasttext_family import FastTextClassifier
    from definemed.corpus.pipelines import CorpusLayout

    cfg = load_config(ROOT / "configs" / "demo.yaml")
    rows = demo_rows()
    split = survivors_split(rows, cfg, CorpusLayout(ROOT / "runs" / "bench-fasttext"))
    texts = [r["text"] for r in rows if r["text"]] * 10
    print(
        f"train {len(split.train_x)} / held-out {len(split.test_x)} documents; scoring {len(texts)} texts "
        f"of {np.mean([len(t) for t in texts]):.0f} characters on average"
    )
    print(f"{'setting':44s} {'held-out F1 (seeds 0, 1, 2)':28s} {'us/doc':>7s} {'vs default':>10s}")
    base = None
    for name, update in SETTINGS.items():
        params = cfg.corpus.classifier.fasttext.model_copy(update=update)
        model_cfg = cfg.corpus.classifier.model_copy(update={"kind": "fasttext", "fasttext": params})
        f1s, model = [], None
        for seed in (0, 1, 2):
            model = FastTextClassifier.from_config(model_cfg, seed=seed).fit(split.train_x, split.train_y)
            f1s.append(f1_score(split.test_y, model.predict_proba(split.test_x) >= 0.5))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            model.predict_proba(texts)
            best = min(best, time.perf_counter() - t0)
        us = best / len(texts) * 1e6
        base = base or us
        print(f"{name:44s} {', '.join(f'{f:.3f}' for f in f1s):28s} {us:7.1f} {us / base:9.2f}x")


if __name__ == "__main__":
    main()
