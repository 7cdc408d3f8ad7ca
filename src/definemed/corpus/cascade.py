"""Two-stage classifier: a cheap stage 1 (fastText or TF-IDF) at high recall gates an expensive stage 2.

Only documents that stage 1 scores at or above its threshold reach stage 2; at FineWeb2 scale, where about 2 % of
documents are medical, that is a small share, and the expensive model's cost shrinks with it.

Stage-1 threshold: the largest one whose recall on out-of-fold stage-1 scores of the training split reaches
`target_recall` (k-fold, so the threshold is not chosen on documents stage 1 was trained on); stage 1 is then
refitted on the whole training split. Stage 2 is trained on the whole training split too, so "stage 2 alone" and
"cascade" differ only in the gate.

Score of a stage-1 reject: 0.0. A reject is final: no threshold on the cascade score can keep a document stage 2
never saw. (Scaling the stage-1 score below the stage-2 range would keep an order among rejects, but it would mix
two models' score scales in one ranking, and a precision or quantile rule could then cut into the rejects.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from definemed import registry
from definemed.artifacts import write_json
from definemed.corpus.classifiers import (
    META,
    MedicalClassifier,
    build_classifier,
    check_kind,
    check_training_data,
)
from definemed.corpus.thresholds import threshold_for_recall

if TYPE_CHECKING:
    from definemed.corpus.classifier_config import ClassifierConfig

REJECT_SCORE = 0.0


def stage_config(cfg: ClassifierConfig, kind: str) -> ClassifierConfig:
    """The classifier section as seen by one stage: same sections, that stage's kind (so a stage of any
    registered family, plugins included, is built from its own parameter section, `cfg.params(kind)`)."""
    return cfg.model_copy(update={"kind": kind})


class CascadeClassifier:
    """`predict_proba` = stage-2 score for stage-1 survivors, REJECT_SCORE for the rest; counts both stages' work."""

    kind = "cascade"

    def __init__(
        self,
        stage1: MedicalClassifier,
        stage2: MedicalClassifier,
        target_recall: float = 0.98,
        folds: int = 3,
        new_stage1: Callable[[], MedicalClassifier] | None = None,
        seed: int = 0,
    ) -> None:
        self.stage1, self.stage2 = stage1, stage2
        self.target_recall, self.folds, self.seed = target_recall, folds, seed
        self._new_stage1 = new_stage1 or (lambda: type(stage1)())
        self.stage1_threshold: float | None = None
        self.fit_info: dict[str, Any] = {}
        self.counts = {"docs": 0, "stage2_docs": 0, "stage1_s": 0.0, "stage2_s": 0.0}

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> CascadeClassifier:
        c = cfg.params(cls.kind)
        s1_cfg, s2_cfg = stage_config(cfg, c.stage1), stage_config(cfg, c.stage2)
        sub = (lambda name: workdir / name) if workdir is not None else (lambda name: None)
        return cls(
            build_classifier(s1_cfg, sub("stage1"), seed),
            build_classifier(s2_cfg, sub("stage2"), seed),
            c.target_recall,
            c.folds,
            new_stage1=lambda: build_classifier(s1_cfg, None, seed),
            seed=seed,
        )

    @property
    def use_cache(self) -> bool:
        return getattr(self.stage2, "use_cache", False)

    @use_cache.setter
    def use_cache(self, value: bool) -> None:
        for stage in (self.stage1, self.stage2):
            if hasattr(stage, "use_cache"):
                stage.use_cache = value

    def save_cache(self) -> None:
        for stage in (self.stage1, self.stage2):
            if hasattr(stage, "save_cache"):
                stage.save_cache()

    def out_of_fold_scores(self, texts: list[str], labels: list[bool]) -> np.ndarray:
        """Stage-1 scores of each training document from a model that did not see it."""
        fold = np.random.default_rng(self.seed).permutation(len(texts)) % self.folds
        y = np.asarray(labels, dtype=bool)
        scores = np.empty(len(texts), dtype=np.float64)
        for k in range(self.folds):
            train, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            model = self._new_stage1().fit([texts[i] for i in train], y[train].tolist())
            scores[held] = model.predict_proba([texts[i] for i in held])
        return scores

    def fit(self, texts: list[str], labels: list[bool]) -> CascadeClassifier:
        check_training_data(texts, labels)
        oof = self.out_of_fold_scores(texts, labels)
        self.stage1_threshold = threshold_for_recall(oof, labels, self.target_recall)
        y, passed = np.asarray(labels, dtype=bool), oof >= self.stage1_threshold
        self.fit_info = {
            "oof_recall": round(float(passed[y].mean()), 4),
            "oof_pass_share": round(float(passed.mean()), 4),
        }
        self.stage1.fit(texts, labels)
        self.stage2.fit(texts, labels)
        return self

    def route(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(stage-1 scores, pass mask) of `texts`."""
        if self.stage1_threshold is None:
            raise RuntimeError("CascadeClassifier: fit() or load() first")
        t0 = time.perf_counter()
        s1 = np.asarray(self.stage1.predict_proba(texts), dtype=np.float64)
        self.counts["stage1_s"] += time.perf_counter() - t0
        return s1, s1 >= self.stage1_threshold

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        _, passed = self.route(texts)
        scores = np.full(len(texts), REJECT_SCORE, dtype=np.float64)
        survivors = np.flatnonzero(passed)
        if survivors.size:
            t0 = time.perf_counter()
            scores[survivors] = self.stage2.predict_proba([texts[i] for i in survivors])
            self.counts["stage2_s"] += time.perf_counter() - t0
        self.counts["docs"] += len(texts)
        self.counts["stage2_docs"] += int(survivors.size)
        return scores

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        self.stage1.save(model_dir / "stage1")
        self.stage2.save(model_dir / "stage2")
        write_json(
            model_dir / META,
            {
                "kind": self.kind,
                "stage1_kind": self.stage1.kind,
                "stage2_kind": self.stage2.kind,
                "stage1_threshold": self.stage1_threshold,
                "target_recall": self.target_recall,
                "folds": self.folds,
                "seed": self.seed,
                "fit_info": self.fit_info,
            },
        )
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> CascadeClassifier:
        model_dir = Path(model_dir)
        meta = check_kind(model_dir, cls.kind)
        stage1 = registry.get("classifier", meta["stage1_kind"]).load(model_dir / "stage1")
        stage2 = registry.get("classifier", meta["stage2_kind"]).load(model_dir / "stage2")
        self = cls(stage1, stage2, meta["target_recall"], meta["folds"], seed=meta["seed"])
        self.stage1_threshold, self.fit_info = meta["stage1_threshold"], meta["fit_info"]
        return self

    def heldout_report(
        self, texts: list[str], labels: list[bool], scores: np.ndarray, threshold: float, spec: Any
    ) -> dict[str, Any]:
        """Gate statistics, measured per-document costs and F1 of the cascade vs stage 2 alone on held-out data.

        `scores`/`threshold`: the cascade's held-out scores and chosen cut; stage 2 alone gets its own cut by the
        same rule (`spec`). Cost saved = 1 - (c1 + share * c2) / c2, with c1, c2 measured without caches.
        """
        from definemed.corpus.scores import binary_metrics
        from definemed.corpus.thresholds import select_threshold
        from definemed.corpus.training import seconds_per_doc

        y = np.asarray(labels, dtype=bool)
        _, passed = self.route(texts)
        alone = np.asarray(self.stage2.predict_proba(texts))
        alone_threshold, _ = select_threshold(alone, y, spec)
        c1, c2 = seconds_per_doc(self.stage1, texts), seconds_per_doc(self.stage2, texts)
        share = float(passed.mean())
        cascade_m = binary_metrics(y.tolist(), (np.asarray(scores) >= threshold).tolist())
        alone_m = binary_metrics(y.tolist(), (alone >= alone_threshold).tolist())
        return {
            "stage1_kind": self.stage1.kind,
            "stage2_kind": self.stage2.kind,
            "stage1_threshold": round(float(self.stage1_threshold), 6),
            "target_recall": self.target_recall,
            "stage1_recall": round(float(passed[y].mean()) if y.any() else 0.0, 4),
            "stage1_false_positive_rate": round(float(passed[~y].mean()) if (~y).any() else 0.0, 4),
            "pass_share": round(share, 4),
            "fit": self.fit_info,
            "stage1_s_per_doc": c1,
            "stage2_s_per_doc": c2,
            "cascade_s_per_doc": c1 + share * c2,
            "cost_saved": round(1 - (c1 + share * c2) / c2, 4) if c2 > 0 else 0.0,
            "cascade": {k: cascade_m[k] for k in ("precision", "recall", "f1")},
            "stage2_alone": {
                "threshold": round(alone_threshold, 6),
                **{k: alone_m[k] for k in ("precision", "recall", "f1")},
            },
        }
