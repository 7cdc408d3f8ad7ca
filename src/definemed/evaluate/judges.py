"""Pairwise judges: given a prompt, a reference and answers A and B, say which is better.

Every judge has `judge_batch(items) -> list[Verdict]` and is built as `Judge(config, workdir)`; the stage
looks it up in the registry by `evaluate.judge.kind`, so tests and plugins can register their own.

- `ReferenceJudge` (offline default): the answer with the higher chrF (sacrebleu) against the reference wins. It
  is a weak, deterministic proxy: it rewards wording close to one reference and cannot see correctness,
  safety or fluency. Good for smoke runs and pipeline tests, not for conclusions.
- `OpenAIJudge`: an LLM behind any OpenAI-compatible endpoint, with the German rubric in
  `assets/prompts/judge_pairwise_de.md`, a strict verdict parser, async requests, retries and a verdict cache.
- `HfJudge` (`hf_judge.py`): a local transformers model with the same rubric, verdict log-probabilities or greedy
  generation; registered as "hf".
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from definemed.evaluate.config import ReferenceJudgeConfig
from definemed.evaluate.openai_judge import OpenAIJudge
from definemed.evaluate.verdicts import JudgeItem, PairwiseJudge, Verdict, Winner, parse_verdict

__all__ = ["JudgeItem", "OpenAIJudge", "PairwiseJudge", "ReferenceJudge", "Verdict", "chrf", "parse_verdict"]


# ----------------------------------------------------------------------------------------- chrF judge
@cache
def _chrf_metric(max_n: int, beta: float) -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(char_order=max_n, word_order=0, beta=beta)


def chrf(hypothesis: str, reference: str, max_n: int = 6, beta: float = 2.0) -> float:
    """sacrebleu's sentence chrF (Popović 2015: character n-grams up to `max_n`, whitespace ignored, no word
    n-grams, recall weighted `beta` times) scaled to [0, 1]."""
    return _chrf_metric(max_n, beta).sentence_score(hypothesis, [reference]).score / 100


class ReferenceJudge:
    """Offline proxy judge: higher chrF against the reference wins; a difference within `tie_margin` ties.

    Deterministic and position-blind, so both orders always agree. It measures surface overlap with one
    reference answer, nothing more: use it to exercise the pipeline, and an LLM judge for findings.
    """

    kind = "reference"
    model = "chrF"
    note = "weak proxy judge: chrF overlap with the reference answer, not a judgment of quality"

    def __init__(self, config: ReferenceJudgeConfig | None = None, workdir: Path | None = None) -> None:
        self.config = config or ReferenceJudgeConfig()

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        verdicts = []
        for item in items:
            if not item.reference:
                raise ValueError("the reference judge needs a 'reference' answer for every prompt")
            a, b = chrf(item.answer_a, item.reference), chrf(item.answer_b, item.reference)
            winner: Winner = "tie" if abs(a - b) <= self.config.tie_margin else ("A" if a > b else "B")
            verdicts.append(Verdict(winner=winner, raw=f"chrF A={a:.4f} B={b:.4f}"))
        return verdicts
