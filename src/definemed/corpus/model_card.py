"""A Hugging Face style model card (README.md with a YAML header) in every trained classifier folder.

What FineWeb-Edu's released classifier card carries: what it is, what it learned from, the threshold and how it
was chosen, its metrics on held-out labels and on real text nobody in the project wrote, how to run it, and where
it fails. Written by the corpus stage after the real-test audit, so the figures are the saved model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from definemed.artifacts import atomic_path

CARD = "README.md"


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def card_text(report: dict[str, Any], real: dict[str, Any] | None, training: dict[str, Any]) -> str:
    """The card of one classifier: `report` its report.json, `real` its real-test audit (or None), `training` a
    few facts about its data (labels source, documents, real/written share)."""
    kind = report["kind"]
    method = report.get("threshold_method", {})
    header: dict[str, Any] = {
        "language": ["de"],
        "license": "apache-2.0",
        "library_name": "definemed",
        "tags": ["text-classification", "medical", "german", "data-filtering", kind],
        "pipeline_tag": "text-classification",
        "model-index": [
            {
                "name": f"definemed-medical-{kind}",
                "results": [
                    {
                        "task": {"type": "text-classification", "name": "medical vs non-medical German text"},
                        "dataset": {"name": "held-out labels (corpus stage split)", "type": "definemed-heldout"},
                        "metrics": [{"type": m, "value": report.get(m)} for m in ("precision", "recall", "f1")],
                    },
                    *(
                        [
                            {
                                "task": {"type": "text-classification", "name": "medical vs non-medical German text"},
                                "dataset": {"name": "real held-out test set", "type": "definemed-real-test"},
                                "metrics": [{"type": m, "value": real.get(m)} for m in ("precision", "recall", "f1")],
                            }
                        ]
                        if real
                        else []
                    ),
                ],
            }
        ],
    }
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# German medical relevance classifier ({kind})",
        "",
        "Scores a German document with p(medical): the FineMed-de filter of DeFineMed (paper: XLM-R on "
        "Mixtral labels; here the family named above).",
        "",
        "## Training data",
        f"- {training.get('n_train')} training documents, labels from {training.get('labels')}; "
        f"{training.get('n_heldout')} held-out documents chose the threshold.",
        f"- {training.get('note', '')}",
        "",
        "## Threshold",
        f"- {report['threshold']:.6g}, chosen by `{method.get('by')}`"
        + (f" (value {method.get('value')})" if method.get("value") is not None else "")
        + f" on held-out labels: precision {_fmt(report.get('precision'))}, recall "
        f"{_fmt(report.get('recall'))}, F1 {_fmt(report.get('f1'))}; it keeps "
        f"{_fmt(report.get('retention', {}).get('docs'))} of the held-out documents.",
        "",
    ]
    if real:
        ci = real.get("intervals_95", {}).get("f1", [None, None])
        lines += [
            "## Metrics on real text",
            f"- {real['n']} real documents no training or threshold choice saw: precision "
            f"{_fmt(real['precision'])}, recall {_fmt(real['recall'])}, F1 {_fmt(real['f1'])} "
            f"(95 % bootstrap interval {_fmt(ci[0])}-{_fmt(ci[1])}).",
            f"- False-positive rate on technical text {_fmt(real.get('technical_false_positive_rate'))}; "
            f"recall on medical documents of at most {real.get('short_chars')} characters "
            f"{_fmt(real.get('short_medical_recall'))}.",
            "",
            "| genre | documents | recall | false-positive rate |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {g} | {r['n']} | {_fmt(r['recall'])} | {_fmt(r['false_positive_rate'])} |"
            for g, r in real.get("breakdown", {}).get("genre", {}).items()
        ]
        lines.append("")
    lines += [
        "## Use",
        "```",
        "definemed classify THIS_FOLDER docs.jsonl -o scores.jsonl   # id, score, medical",
        "definemed audit THIS_FOLDER gold.jsonl                      # P/R/F1 with 95 % intervals",
        "```",
        "",
        "## Intended use and limits",
        "- Intended: ranking and filtering German web text (FineWeb2 `deu_Latn`) for continual pre-training "
        "on medicine. Not for any decision about a person or a patient.",
        "- Trained on a small demo sample: the real clinical text it saw is de-identified letters (GraSCCo); "
        "lay patient language, forums and non-German text are not represented in its real test set.",
        "- The threshold was chosen for the held-out label distribution; on a corpus with another medical "
        "share (FineWeb2: about 2 %) precision at the same cut is lower: choose it again on a sample.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(
    folder: Path, report: dict[str, Any], real: dict[str, Any] | None, training: dict[str, Any]
) -> Path:
    with atomic_path(folder / CARD) as tmp:
        tmp.write_text(card_text(report, real, training), encoding="utf-8")
    return folder / CARD
