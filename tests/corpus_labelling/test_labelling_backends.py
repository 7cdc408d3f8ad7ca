"""The local transformers scoring labeller, the file labeller and document sampling."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from definemed.corpus.labelling.file_backend import FileLabeller
from definemed.corpus.labelling.hf_backend import HfLabeller, word_variants
from definemed.corpus.labelling.runner import build_labeller, label_documents
from definemed.corpus.labelling.sampling import sample_documents
from definemed.corpus.labelling.schema import Document
from definemed.corpus.labelling.settings import FileLabellerSettings, HfLabellerSettings, LabellingSettings


@pytest.fixture(scope="module")
def docs(german_texts: dict[str, list[str]]) -> list[Document]:
    texts = german_texts["medical"][:2] + german_texts["general"][:2]
    return [Document(id=f"d{i}", text=t) for i, t in enumerate(texts)]


def reference_p_medical(labeller: HfLabeller, text: str) -> float:
    """P(medical) from unpadded, unbatched forward passes of every full answer sequence."""
    import torch

    prompt = labeller._prompt_ids(text)
    model, tok = labeller._model, labeller._tokenizer

    def word_logprob(word: str) -> float:
        ids = tok(word, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([prompt + ids])).logits[0].float(), -1)
        return sum(logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(ids))

    def mass(word: str) -> float:
        return sum(math.exp(word_logprob(w)) for w in word_variants(word))

    pos, neg = mass(labeller.settings.positive), mass(labeller.settings.negative)
    return pos / (pos + neg)


@pytest.mark.parametrize("words", [("ja", "nein"), ("B", "F")])  # multi-token and single-token answers
def test_hf_labeller_gives_probabilities_that_match_an_unbatched_reference(
    tiny_llama_dir: Path, docs: list[Document], words: tuple[str, str]
) -> None:
    settings = HfLabellerSettings(model=str(tiny_llama_dir), batch_size=3, positive=words[0], negative=words[1])
    labeller = HfLabeller(settings)
    results = labeller.label_many(docs)
    assert [r.doc_id for r in results] == [d.id for d in docs]
    probs = [r.labels.p_medical for r in results]
    assert all(0 <= p <= 1 for p in probs) and len(set(probs)) == len(docs)  # documents are told apart
    for r, p in zip(results, probs, strict=True):
        assert r.status == "ok" and r.labels.medical == (p >= 0.5)
        assert r.labels.edu_score is None and r.labels.subdomain is None and r.prompt_tokens > 50
    for doc, p in zip(docs[1:3], probs[1:3], strict=True):  # left padding and batching change nothing
        assert p == pytest.approx(reference_p_medical(labeller, doc.text), abs=1e-4)


def test_hf_labeller_through_the_runner_is_cached(
    tiny_llama_dir: Path, docs: list[Document], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = LabellingSettings.model_validate({"labeller": {"kind": "hf", "model": str(tiny_llama_dir), "batch_size": 2}})
    first = label_documents(docs, build_labeller(cfg.labeller), tmp_path)
    second_labeller = build_labeller(cfg.labeller)
    monkeypatch.setattr(second_labeller, "_load", lambda: pytest.fail("a cached run must not load the model"))
    second = label_documents(docs, second_labeller, tmp_path)
    assert second.counts["cached"] == len(docs)
    assert [r.labels for r in second.results] == [r.labels for r in first.results]
    assert set(json.loads(first.results[0].raw)["logprob"]) == {"ja", "nein"}


def test_file_labeller_counts_malformed_lines_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = [Document(id=f"d{i}", text="irrelevant") for i in range(6)]
    path = tmp_path / "labels.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": "d0", "medical": True, "subdomain": "clinical", "edu_score": 4}),
                json.dumps({"id": "d1", "medical": False}),
                '{"id": "d2", "medical": tru',
                json.dumps({"id": "d3", "medical": "yes"}),
                json.dumps({"medical": True}),
                json.dumps({"id": "d4", "medical": True, "subdomain": "astrology"}),
            ]
        )
        + "\n"
    )
    labeller = FileLabeller(FileLabellerSettings(path=path))
    with caplog.at_level(logging.WARNING, logger="definemed"):
        results = {r.doc_id: r for r in labeller.label_many(docs)}
    assert [m.split(": ")[0] for m in labeller.malformed] == [f"{path}:{n}" for n in (3, 4, 5, 6)]
    assert f"4 malformed label line(s) skipped: {path}:3" in caplog.text
    assert results["d0"].labels.subdomain == "clinical" and results["d1"].labels.medical is False
    assert [results[f"d{i}"].status for i in range(2, 6)] == ["missing"] * 4


def test_sample_documents_is_reproducible_and_reads_jsonl_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jsonl").write_text(
        "".join(json.dumps({"id": f"j{i}", "text": f"Text {i}"}) + "\n" for i in range(50))
        + '{"id": "empty", "text": ""}\nnot json\n'
    )
    pq.write_table(
        pa.Table.from_pylist([{"id": f"p{i}", "text": f"Parkett {i}", "url": "u"} for i in range(50)]),
        tmp_path / "b.parquet",
    )
    first = sample_documents([tmp_path], n=10, seed=3)
    assert first == sample_documents([tmp_path], n=10, seed=3)
    assert first != sample_documents([tmp_path], n=10, seed=4)
    assert len({d.id for d in first}) == 10 and not {"empty"} & {d.id for d in first}
    everything = sample_documents([tmp_path / "a.jsonl", tmp_path / "b.parquet"], n=1000)
    assert len(everything) == 100 and everything[0].id == "j0" and everything[-1].id == "p49"
    # uniform: over many seeds every document is drawn about n/N = 10 % of the time
    draws = [d.id for seed in range(300) for d in sample_documents([tmp_path / "a.jsonl"], n=5, seed=seed)]
    assert 0.05 < draws.count("j0") / 300 < 0.17 and 0.05 < draws.count("j49") / 300 < 0.17
