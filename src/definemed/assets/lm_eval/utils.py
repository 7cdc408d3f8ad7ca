"""Subject filters for the German MMLU tasks (lm-eval `process_docs: !function utils.<name>`).

Global-MMLU and MMMLU keep all subjects in one dataset config; each task keeps its own subject's rows.
"""

from __future__ import annotations

from functools import partial
from typing import Any

SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "nutrition",
    "professional_medicine",
    "virology",
)


def _normalise(name: Any) -> str:
    """MMMLU subject cells sometimes carry CSV file names ('virology_test.csv_DE-DE.csv')."""
    text = str(name)
    for marker in ("_test.csv", "_test-"):
        text = text.split(marker)[0]
    return text


def keep_subject(dataset: Any, subject: str, column: str = "subject") -> Any:
    """The rows of a `datasets.Dataset` whose `column` names `subject`."""
    return dataset.filter(lambda row: _normalise(row[column]) == subject)


for _subject in SUBJECTS:
    globals()[f"global_mmlu_{_subject}"] = partial(keep_subject, subject=_subject, column="subject")
    globals()[f"mmmlu_{_subject}"] = partial(keep_subject, subject=_subject, column="Subject")
