from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from definemed.config import DefinemedConfig
from definemed.train.data import build_heldout, is_heldout, iter_documents
from definemed.train.stage import _train_stream
from definemed.train.stream import CptStream, TextSource, mixture_choices
from tests.helpers import minimal_config_dict
from tests.train.corpus_fixture import corpus_context, write_shards


class DigitTokenizer:
    """Each character of a document becomes one token: medical docs are 'm'-digits (ids 10-19), general docs
    'g'-digits (ids 20-29), so every block tells which source it came from."""

    eos_token_id = 1

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, Any]:
        return {"input_ids": [[(10 if t[0] == "m" else 20) + int(c) for c in t[1:]] for t in texts]}


def _sources(tmp_path: Path) -> tuple[TextSource, TextSource]:
    med = write_shards(tmp_path / "med", [f"m{'0123456789'[i % 10 :] * 3}" for i in range(60)], "med", shards=3)
    gen = write_shards(tmp_path / "gen", [f"g{'9876543210'[i % 7 :] * 2}" for i in range(40)], "gen", shards=2)
    keep = lambda doc: not is_heldout(doc, 0.1)  # noqa: E731
    return TextSource("medical", [med], keep), TextSource("replay", [gen], keep)


def _take(stream: CptStream, n: int) -> list[list[int]]:
    return [b["input_ids"].tolist() for b in itertools.islice(iter(stream), n)]


def test_stream_is_deterministic_by_seed_and_endless(tmp_path: Path) -> None:
    med, gen = _sources(tmp_path)
    make = lambda seed: CptStream(med, DigitTokenizer(), 16, "position_ids", seed, gen, 0.25, 32)  # noqa: E731
    first = _take(make(0), 400)  # several passes over the 60 documents
    assert first == _take(make(0), 400)
    assert first != _take(make(1), 400)
    blocks, tokens, docs = make(0).count_domain_blocks()
    assert docs == sum(1 for d in iter_documents(tmp_path / "med") if not is_heldout(d, 0.1))
    assert blocks == tokens // 16 and len(first) == 400


def test_replay_ratio_is_met_over_many_blocks_and_matches_the_recount(tmp_path: Path) -> None:
    med, gen = _sources(tmp_path)
    stream = CptStream(med, DigitTokenizer(), 16, "eos", 3, gen, 0.25, 64)
    blocks = _take(stream, 4000)
    replayed = np.array([max(b) >= 20 for b in blocks])
    assert all(len({t >= 20 for t in b if t != 1}) == 1 for b in blocks)  # every block from one source
    assert abs(replayed.mean() - 0.25) < 0.025
    assert (replayed == mixture_choices(3, 0.25, 4000)).all()  # what the stage reports is what was drawn
    no_replay = _take(CptStream(med, DigitTokenizer(), 16, "eos", 3), 500)
    assert not any(max(b) >= 20 for b in no_replay)


def test_replay_never_reads_the_general_heldout_documents(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    data = minimal_config_dict(tmp_path)
    data["cpt"] = {
        "block_size": 16,
        "heldout_fraction": 0.3,
        "eval_max_blocks": 1000,
        "replay": {"ratio": 0.25, "sources": ["corpus:general"]},
    }
    cfg = DefinemedConfig.model_validate(data)
    general = [f"Allgemeiner Text Nummer {i} über Züge und Kuchen." for i in range(200)]
    ctx = corpus_context(cfg.run.run_dir, [f"Medizin {i}" for i in range(50)], general)
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    stream = _train_stream(cfg.cpt, cfg.run.seed, ctx, tok, "eos")
    gen_dir = ctx.input_path("corpus", "general")
    replay_ids = {d["id"] for d in stream.replay.documents(None)}
    heldout_ids = {d["id"] for d in iter_documents(gen_dir) if is_heldout(d, 0.3)}
    assert replay_ids and heldout_ids and not replay_ids & heldout_ids
    assert len(replay_ids) + len(heldout_ids) == 200
    heldout = build_heldout("general", gen_dir, cfg.cpt, tok, "eos")
    assert heldout.docs == len(heldout_ids)  # every held-out doc is evaluated (cap not reached)
