"""Metrics of the analyze stage (manifest.json `metrics`), read as attributes downstream.

Per-answer measurements are in `per_answer.jsonl`, the worst answers per failure mode in `examples.json`.
"""

from __future__ import annotations

from definemed.stage import Metrics


class ModelFailureModes(Metrics):
    """One model's answers. Rates are shares of answers; None where nothing could be measured."""

    n: int
    line_pass_rate: float | None  # answers without a foreign line
    mixing_rate: float | None  # answers with at least one line in another language (line-level)
    foreign_line_share: float | None
    words_mean: float | None
    words_median: float | None
    n_untruncated: int
    words_mean_untruncated: float | None  # verbosity proper: answers cut at max_new_tokens measure the budget
    tokens_mean: float | None
    truncation_rate: float | None
    empty_rate: float | None
    repetition_mean: float | None  # share of repeated word 4-grams
    word_mixing_rate: float | None  # answers with English spans inside German lines (None: word level off)
    english_word_share: float | None
    length_ratio_to_reference_answers: float | None
    # against analyze.reference_model, only when it is set and among the answers
    length_ratio_to_reference_model: float | None = None
    length_ratio_untruncated: float | None = None


class AnalyzeMetrics(Metrics):
    models: dict[str, ModelFailureModes]
    n_answers: int
    expected_language: str
    min_line_tokens: int
    lid_threshold: float
