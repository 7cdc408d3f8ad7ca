"""Config sections of LLM labelling (corpus step 2 of the paper: label a sample medical / non-medical).

The models are defined in `definemed.config` (the corpus section holds them as `corpus.labelling`) and
re-exported here for code that only labels. Each labeller backend is one model with a `kind:` literal (a
discriminated union); everything forbids unknown keys. The API key is never part of a config: only the name of
the environment variable that holds it.
"""

from __future__ import annotations

from definemed.config import (
    AuditMetric,
    AuditSettings,
    FileLabellerSettings,
    HfLabellerSettings,
    LabellerSettings,
    LabellingSettings,
    OpenAILabellerSettings,
    SampleSettings,
)

__all__ = ["AuditMetric", "AuditSettings", "FileLabellerSettings", "HfLabellerSettings", "LabellerSettings",
           "LabellingSettings", "OpenAILabellerSettings", "SampleSettings"]
