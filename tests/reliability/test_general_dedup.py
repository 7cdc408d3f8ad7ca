"""The general output CPT replays (and holds out for the general loss) is deduplicated: no exact or near copy of
a general document survives, so a held-out document's copy is never trained on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from definemed.corpus.contract import bind
from definemed.corpus.stage import run
from definemed.stage import StageContext
from definemed.train.data import is_heldout
from tests.corpus.conftest import corpus_inputs, fineweb2_row, make_config, write_parquet  # noqa: F401 - fixtures


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(f, "rt")]


def test_general_output_has_no_copies_on_both_sides_of_the_heldout_split(
    corpus_inputs: dict,  # noqa: F811
    make_config: Any,  # noqa: F811
    german_texts: dict,
) -> None:
    page = "\n".join(german_texts["general"])  # a general page, copied under 8 other ids (exact and near)
    copies = {
        f"<urn:uuid:gcopy-{i}>": page if i % 2 else page.replace("Weinfest", "Weinfest mit Musik") for i in range(8)
    }
    write_parquet([fineweb2_row(k, v) for k, v in copies.items()], corpus_inputs["shards"] / "004_00000.parquet")
    with corpus_inputs["labels"].open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": k, "medical": False}) + "\n" for k in copies)
    cfg = make_config(corpus_inputs, dedup={"num_buckets": 14})
    ctx = StageContext(run_dir=cfg.run.run_dir, stage="corpus")
    ctx.stage_dir.mkdir(parents=True)
    result = run(bind(cfg), ctx)

    assert result.outputs["general"] == "general"
    general = _docs(ctx.stage_dir / result.outputs["general"])
    texts = [d["text"] for d in general]
    assert len(texts) == len(set(texts))  # no exact copies
    survivors = [d["id"] for d in general if d["id"] in copies]
    assert len(survivors) == 1  # one page of the 8 copies is kept
    removed = _docs(ctx.stage_dir / "general_duplicates")
    assert {d["id"] for d in removed} == set(copies) - set(survivors)
    assert all(d["metadata"]["filter_reason"] == "minhash_duplicate" for d in removed)
    # the copies' ids would fall on both sides of the held-out split (so without dedup a held-out page is trained)
    assert len({is_heldout({"id": k}, 0.3) for k in copies}) == 2
    m = result.metrics.general_dedup
    assert (m.docs_in, m.duplicates_removed) == (len(general) + len(removed), len(removed))
    # the classifier's own drop folder (what the report counts) is unchanged: still every general document
    assert len(_docs(ctx.stage_dir / "rejected" / "not_medical")) == m.docs_in
