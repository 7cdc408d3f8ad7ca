"""The family comparison of the corpus stage (`corpus.classifier.compare`).

Each listed family is trained and scored on the main classifier's split (same labels, same held-out ids) in
`classifier/compare/<kind>/`; the main classifier is always the first row and is not trained twice. Families in
`not_compared` get a row that says why they did not run; a listed family that fails gets a row with its error
(the corpus itself does not depend on the comparison, so the stage goes on). An interrupted stage reuses the
reports it finished (same config, seed and labels).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from definemed.artifacts import file_sha256, read_json
from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.config import FileLabels
from definemed.corpus.training import REPORT, compare_families, load_split, summary_row

logger = logging.getLogger("definemed")
COMPARE_DIR = "compare"


def compare_in_stage(
    clf: ClassifierConfig,
    survivors: Path,
    labels: FileLabels,
    seed: int,
    main_report: dict[str, Any],
    classifier_dir: Path,
) -> dict[str, Any] | None:
    """Rows (one per family) and PR curves of the comparison; None when nothing is to be compared."""
    if not clf.compare and not clf.not_compared:
        return None
    out_root = classifier_dir / COMPARE_DIR
    labels_sha256 = file_sha256(labels.path)
    todo = [kind for kind in clf.compare if kind != clf.kind]
    split = load_split(survivors, labels, clf.holdout_fraction, seed) if todo else None
    rows = [{**summary_row(main_report), "status": "ok", "main": True, "note": "main classifier"}]
    curves = {clf.kind: _curve(main_report)}
    for kind in todo:
        try:
            row = compare_families(split, clf, [kind], out_root, seed, labels_sha256)[0]
        except Exception as exc:  # noqa: BLE001 - one family's failure is a row of the table, not a lost corpus
            logger.warning("[corpus] comparison: %s failed: %s: %s", kind, type(exc).__name__, exc)
            rows.append({"kind": kind, "status": "failed", "main": False, "note": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        rows.append({**row, "status": "ok", "main": False, "note": ""})
        curves[kind] = _curve(read_json(out_root / kind / REPORT))
    rows += [
        {"kind": kind, "status": "not run", "main": False, "note": reason} for kind, reason in clf.not_compared.items()
    ]
    return {
        "rows": rows,
        "curves": curves,
        "heldout_docs": main_report.get("n_heldout"),
        "folder": f"{classifier_dir.name}/{COMPARE_DIR}",
    }


def _curve(report: dict[str, Any]) -> dict[str, Any]:
    return {**report["pr_curve"], "average_precision": report["average_precision"]}
