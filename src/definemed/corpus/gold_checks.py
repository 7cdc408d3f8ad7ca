"""The corpus stage's checks against known labels: every classifier family against the audit's gold file and on
the real test set (`corpus.classifier.real_test`), model cards in every classifier folder, and what each filter
cost the medical class. Called by stage.py after the classifiers are trained; reads only their folders, the
reject folders and the gold/label files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from definemed.corpus.config import CorpusConfig
from definemed.corpus.pipelines import CorpusLayout
from definemed.corpus.training import HELDOUT_SCORES, REPORT


def versus_gold(
    corpus: CorpusConfig, layout: CorpusLayout, report: dict[str, Any], folder: Any = None
) -> dict[str, Any] | None:
    """A classifier (the main one, or the family in `folder`) against the audit's gold file on its held-out
    documents (untouched by the audit)."""
    labelling = corpus.labelling
    if labelling is None or labelling.audit is None:
        return None
    from definemed.corpus.labelling.corpus_step import heldout_vs_gold

    folder = layout.classifier if folder is None else folder
    return heldout_vs_gold(folder / HELDOUT_SCORES, labelling.audit.gold, report["threshold"])


def written_f1(corpus: CorpusConfig, folder: Path, threshold: float) -> float | None:
    """F1 against gold on the held-out documents the gold file marks `origin: written` (the demo's own text)."""
    from definemed.artifacts import read_jsonl
    from definemed.corpus.labelling.audit import load_gold
    from definemed.corpus.scores import binary_metrics

    labelling = corpus.labelling
    if labelling is None or labelling.audit is None or not (folder / HELDOUT_SCORES).is_file():
        return None
    gold = load_gold(labelling.audit.gold)
    rows = [r for r in read_jsonl(folder / HELDOUT_SCORES) if gold.get(r["id"], {}).get("origin") == "written"]
    if not rows:
        return None
    truth = [bool(gold[r["id"]]["medical"]) for r in rows]
    return binary_metrics(truth, [r["score"] >= threshold for r in rows])["f1"]


def model_cards(corpus: CorpusConfig, folders: dict[str, Path], real: dict[str, Any] | None) -> None:
    """A model card (README.md, Hugging Face format) in every trained classifier folder."""
    from definemed.artifacts import read_json
    from definemed.corpus.model_card import write_model_card

    labelling = corpus.labelling
    labels = (
        f"the labeller chosen by the audit in `corpus.labelling` ({[c.name for c in labelling.candidates]})"
        if labelling is not None
        else f"the file {corpus.labels.path}"
    )
    note = (
        f"Documents: the filter survivors of {corpus.input.paths} (their data card says what they are; the "
        "corpus stage's README.md says what the filters kept)."
    )
    for folder in folders.values():
        report = read_json(folder / REPORT)
        real_audit = read_json(folder / "real_test.json") if real is not None else None
        write_model_card(
            folder,
            report,
            real_audit,
            {"n_train": report.get("n_train"), "labels": labels, "n_heldout": report.get("n_heldout"), "note": note},
        )


def filter_costs_of(corpus: CorpusConfig, layout: CorpusLayout) -> dict[str, Any] | None:
    """Known medical documents (the audit's gold file, else the training labels) each step dropped."""
    from definemed.corpus.filter_costs import filter_costs, known_positives

    labelling, labels = corpus.labelling, corpus.labels
    if labelling is not None and labelling.audit is not None:
        source, positives = "gold", known_positives(labelling.audit.gold)
    elif labels is not None and Path(labels.path).is_file():
        source, positives = "labels", known_positives(labels.path, labels.id_key, labels.label_key)
    else:
        return None
    return filter_costs(layout.rejected, positives, source, corpus.language.languages)


def real_test_of(
    corpus: CorpusConfig, seed: int, layout: CorpusLayout, metrics: dict[str, Any]
) -> dict[str, Any] | None:
    """Every trained family against gold (held-out split) and on the real test set (`corpus.classifier.real_test`)
    at its saved threshold; the figures join the comparison rows."""
    from definemed.corpus.comparison import COMPARE_DIR
    from definemed.corpus.gold_audit import real_test_in_stage

    clf = corpus.classifier
    rows = metrics["classifier_comparison"] or []
    folders = {clf.kind: layout.classifier}
    folders |= {
        r["kind"]: layout.classifier / COMPARE_DIR / r["kind"]
        for r in rows
        if r.get("status") == "ok" and not r.get("main")
    }
    for row in rows:
        if row["kind"] in folders:
            gold = versus_gold(corpus, layout, {"threshold": row["threshold"]}, folders[row["kind"]])
            row["gold_f1"] = None if gold is None else gold["classifier"]["f1"]
            row["written_f1"] = written_f1(corpus, folders[row["kind"]], row["threshold"])
    result = real_test_in_stage(clf.real_test, layout.classifier, folders, seed) if clf.real_test is not None else None
    model_cards(corpus, folders, result)
    if result is None:
        return None
    for row in rows:
        row.update({k: v for k, v in result["families"].get(row["kind"], {}).items() if k.startswith("real_")})
        cascade = result["families"].get(row["kind"], {}).get("cascade")
        if cascade:
            row["real_routed_share"] = cascade["routed_share"]
            row["real_f1_gap_vs_stage2"] = cascade["f1_gap_vs_stage2"]
    metrics["classifier"]["real_test"] = result["families"].get(clf.kind)
    return result
