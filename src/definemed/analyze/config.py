"""Config schema of the analyze stage."""

from __future__ import annotations

from pydantic import Field

from definemed.schema import Strict


class AnalyzeConfig(Strict):
    expected_language: str = "de"
    min_line_tokens: int = Field(5, ge=1)
    lid_threshold: float = Field(0.3, ge=0, le=1)
    reference_model: str | None = None
    # Word-level English inside German lines (German answers only): span evidence threshold, log10 odds.
    word_level: bool = True
    word_threshold: float = Field(1.0, gt=0)
