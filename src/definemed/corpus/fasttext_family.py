"""The fastText family of the medical classifier (supervised fastText on content words, float or quantised).

Training runs in a fresh subprocess (`fasttext_train.py`): the fastText wheel's trainer reads uninitialised memory,
so the same data and seed gave different weights depending on the process's history (docs/STATUS.md, gotchas).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from definemed.artifacts import atomic_path, write_json
from definemed.corpus.classifiers import META, check_kind, check_training_data, content_words, function_words

if TYPE_CHECKING:
    from definemed.corpus.classifier_config import ClassifierConfig

logger = logging.getLogger("definemed")

# ------------------------------------------------------------------------------------------------- fastText
# fastText splits words on ' ', \t, \r, \v, \f and ends the example at \n; these are the other characters
# Python calls whitespace (no-break and thin spaces, line separators). Replacing only them costs a fifth of a
# `\s+` substitution per document (7 vs 41 us on the demo texts), the largest part of scoring after fastText.
_NOT_FASTTEXT_SPACE = re.compile(r"[\n\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
LABEL_MEDICAL, LABEL_OTHER = "__label__medical", "__label__other"


def _fasttext_line(text: str, drop: frozenset[str] | None = None) -> str:
    """One example on one line, split into words where Python splits them; lower-casing pools sentence-initial
    forms. `drop`: function words to leave out (`content_words`). Training and scoring use this same function."""
    line = _NOT_FASTTEXT_SPACE.sub(" ", text).lower()
    return line if drop is None else content_words(line, drop)


def _train_quantized(
    fasttext: Any, train_file: str, params: dict[str, Any], cutoff: int | None, attempts: int = 3
) -> tuple[Any, float]:
    """Train and quantise; on fastText's "Encountered NaN" (a divergence it reports in training or, when the
    weights already hold NaNs, in quantize) retry with half the learning rate. Returns the model and the lr used."""
    lr = params["lr"]
    for attempt in range(1, attempts + 1):
        try:
            model = fasttext.train_supervised(train_file, thread=1, verbose=0, **{**params, "lr": lr})
            if cutoff is not None:
                model.quantize(input=train_file, cutoff=cutoff, retrain=False, qnorm=True)
            elif np.isnan(model.get_output_matrix()).any():
                raise RuntimeError("Encountered NaN in the trained weights")
            return model, lr
        except RuntimeError as exc:
            if "NaN" not in str(exc) or attempt == attempts:
                raise
            logging.getLogger("definemed").warning(
                "fastText: %s at lr %g; retrying with lr %g (%d/%d)", exc, lr, lr / 2, attempt, attempts
            )
            lr /= 2
    raise AssertionError("unreachable")


def _train_in_subprocess(train_file: Path, params: dict[str, Any], cutoff: int | None, model_file: Path) -> float:
    """Train (and quantise) in a fresh Python process; returns the learning rate that trained the saved model.

    The fastText wheel's training reads memory it did not initialise: in a process that had allocated and freed
    other things (a labelling model, earlier tests) the same data and seed gave different weights, sometimes NaN
    losses. A fresh process starts from the same state every time, so a run is reproducible; it costs ~0.3 s.
    """
    import subprocess
    import sys

    job = {"train_file": str(train_file), "params": params, "cutoff": cutoff, "model_file": str(model_file)}
    proc = subprocess.run(
        [sys.executable, "-m", "definemed.corpus.fasttext_train", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not model_file.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"fastText training failed (exit {proc.returncode}): {tail}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["lr"])


class FastTextClassifier:
    """fastText supervised classifier: word bigrams plus character 4-grams (German compounds), 16 dimensions.

    The default is a float model (.bin, ~14 MB with 200k buckets): product quantisation (`quantize: true`, .ftz,
    under 1 MB) makes every scored document 1.5-2.5x slower, because each looked-up row is decoded from its
    codebooks, and scoring 428M documents is the expensive side. A quantised model is quantised right after
    training, so predictions before `save` equal those after `load`. One training thread: fastText is only
    deterministic single-threaded, and training on a few hundred thousand labelled documents still takes seconds.
    """

    kind = "fasttext"
    MODEL = "model.ftz"
    FLOAT_MODEL = "model.bin"

    def __init__(
        self,
        dim: int = 16,
        epoch: int = 50,
        lr: float = 1.0,
        word_ngrams: int = 2,
        bucket: int = 200_000,
        cutoff: int = 10_000,
        seed: int = 0,
        minn: int = 4,
        maxn: int = 4,
        quantize: bool = False,
        content_words: bool = False,
    ) -> None:
        self.params = {
            "dim": dim,
            "epoch": epoch,
            "lr": lr,
            "wordNgrams": word_ngrams,
            "bucket": bucket,
            "minCount": 1,
            "minn": minn if maxn else 0,
            "maxn": maxn,
            "seed": seed,
        }
        self.content_words = content_words
        # Rows kept by quantisation (the highest-norm words and n-gram buckets): size and quantise time scale with it.
        # None: a float model (.bin), larger but faster to score.
        self.cutoff = cutoff if quantize else None
        self._model: Any = None

    @property
    def model_file(self) -> str:
        return self.MODEL if self.cutoff is not None else self.FLOAT_MODEL

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> FastTextClassifier:
        p = cfg.params(cls.kind)
        return cls(
            dim=p.dim,
            epoch=p.epoch,
            lr=p.lr,
            word_ngrams=p.word_ngrams,
            bucket=p.bucket,
            cutoff=p.cutoff,
            seed=seed,
            minn=p.minn,
            maxn=p.maxn,
            quantize=p.quantize,
            content_words=p.content_words,
        )

    @property
    def _drop(self) -> frozenset[str] | None:
        return function_words() if self.content_words else None

    def fit(self, texts: list[str], labels: list[bool]) -> FastTextClassifier:
        import fasttext

        check_training_data(texts, labels)
        with tempfile.TemporaryDirectory(prefix="definemed-fasttext-") as tmp:
            train_file = Path(tmp) / "train.txt"
            drop = self._drop
            train_file.write_text(
                "".join(
                    f"{LABEL_MEDICAL if y else LABEL_OTHER} {_fasttext_line(t, drop)}\n"
                    for t, y in zip(texts, labels, strict=True)
                ),
                encoding="utf-8",
            )
            model_file = Path(tmp) / self.model_file
            lr = _train_in_subprocess(train_file, self.params, self.cutoff, model_file)
            self._model = fasttext.load_model(str(model_file))
        self.params["lr"] = lr  # saved in the metadata: the rate that actually trained this model
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("FastTextClassifier: fit() or load() first")
        # One call for the whole batch through the low-level multi-line predict (the high-level wrapper breaks on
        # numpy 2). k=2: both labels, so p(medical) is there even when it is the smaller one.
        drop = self._drop
        labels, probs = self._model.f.multilinePredict(
            [_fasttext_line(t, drop) + "\n" for t in texts], 2, 0.0, "replace"
        )
        scores = np.fromiter(
            (
                next((float(p) for lab, p in zip(labs, ps, strict=True) if lab == LABEL_MEDICAL), 0.0)
                for labs, ps in zip(labels, probs, strict=True)
            ),
            dtype=np.float64,
            count=len(texts),
        )
        return np.clip(scores, 0.0, 1.0)

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / self.model_file) as tmp:
            self._model.save_model(str(tmp))
        write_json(
            model_dir / META,
            {"kind": self.kind, "params": self.params, "cutoff": self.cutoff, "content_words": self.content_words},
        )
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> FastTextClassifier:
        import fasttext

        model_dir = Path(model_dir)
        meta = check_kind(model_dir, cls.kind)
        self = cls(
            cutoff=meta["cutoff"] or 0,
            quantize=meta["cutoff"] is not None,
            content_words=meta.get("content_words", False),
        )
        self.params = meta["params"]
        self._model = fasttext.load_model(str(model_dir / self.model_file))
        return self
