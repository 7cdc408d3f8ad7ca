"""analyze stage: failure modes of the generated answers (language mixing, verbosity, repetition, truncation).

Line-level language confusion follows the Language Confusion Benchmark (Marchisio et al. 2024): lines with at
least `min_line_tokens` whitespace tokens are identified by fastText; a line counts as foreign when its top
language is not the expected one with probability above `lid_threshold`. An answer passes when no kept line is
foreign. Lower-confidence lines are counted as undetermined, not as foreign.

Word-level mixing (beyond the benchmark, which switches it off for Latin-script languages) looks for English
spans inside the lines that are not foreign, so an all-English line is counted once, at line level.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from definemed.analyze.config import AnalyzeConfig
from definemed.analyze.contract import AnalyzeInputs
from definemed.analyze.intrusion import EnglishIntrusionDetector
from definemed.analyze.langid import identify, split_lines
from definemed.analyze.metrics import AnalyzeMetrics, ModelFailureModes
from definemed.artifacts import read_jsonl, write_json, write_jsonl
from definemed.stage import StageContext, StageResult

logger = logging.getLogger("definemed")
EXAMPLES_PER_MODE = 3


def repetition_share(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same answer (0 = none, ->1 = looping)."""
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1 - len(set(grams)) / len(grams)


def analyze_answers(rows: list[dict[str, Any]], cfg: AnalyzeConfig) -> list[dict[str, Any]]:
    """Per-answer measurements; language ID runs once, batched over every kept line of every answer."""
    per_answer_lines = [split_lines(r.get("answer") or "", cfg.min_line_tokens) for r in rows]
    flat = [line for lines in per_answer_lines for line, _ in lines]
    langs = iter(identify(flat))
    foreign_per_answer = []
    for lines in per_answer_lines:
        foreign = []
        for line, _ in lines:
            lang, score = next(langs)
            if lang != cfg.expected_language and score > cfg.lid_threshold:
                foreign.append({"line": line, "lang": lang, "score": round(score, 3)})
        foreign_per_answer.append(foreign)
    words = _word_level(rows, foreign_per_answer, cfg)
    out = []
    for row, lines, foreign, word in zip(rows, per_answer_lines, foreign_per_answer, words, strict=True):
        answer = row.get("answer") or ""
        out.append(
            {
                "prompt_id": row.get("prompt_id"),
                "model": row.get("model"),
                "words": len(answer.split()),
                "tokens": row.get("n_tokens"),
                "reference_words": len((row.get("reference") or "").split()),
                "empty": not answer.strip(),
                "hit_limit": bool(row.get("hit_limit")),
                "lines_checked": len(lines),
                "foreign_lines": foreign,
                "foreign_line_share": len(foreign) / len(lines) if lines else 0.0,
                "line_pass": not foreign,
                "repetition": round(repetition_share(answer), 4),
                **word,
            }
        )
    return out


def _word_level(
    rows: list[dict[str, Any]], foreign: list[list[dict[str, Any]]], cfg: AnalyzeConfig
) -> list[dict[str, Any]]:
    """English spans inside the answer's non-foreign lines, and the share of their words in English spans."""
    if not cfg.word_level or cfg.expected_language != "de":
        return [{} for _ in rows]
    texts = []
    for row, bad in zip(rows, foreign, strict=True):
        skip = {f["line"] for f in bad}
        texts.append("\n".join(ln for ln in (row.get("answer") or "").splitlines() if ln.strip() not in skip))
    detector = EnglishIntrusionDetector(threshold=cfg.word_threshold)
    out = []
    for text, spans in zip(texts, detector.detect_many(texts), strict=True):
        n_words = len(text.split())
        span_words = sum(len(s.text.split()) for s in spans)
        out.append(
            {
                "english_spans": [s.text for s in spans],
                "english_word_share": round(span_words / n_words, 4) if n_words else 0.0,
            }
        )
    return out


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summarize(per_answer: list[dict[str, Any]], reference_model: str | None) -> dict[str, Any]:
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in per_answer:
        by_model[row["model"]].append(row)
    summary: dict[str, Any] = {}
    for model, rows in by_model.items():
        words = [r["words"] for r in rows]
        whole = [r["words"] for r in rows if not r["hit_limit"]]  # cut answers measure max_new_tokens, not the model
        ref_words = [r["reference_words"] for r in rows if r["reference_words"]]
        summary[model] = {
            "n": len(rows),
            "line_pass_rate": _mean([float(r["line_pass"]) for r in rows]),
            "mixing_rate": _mean([float(not r["line_pass"]) for r in rows]),
            "foreign_line_share": _mean([r["foreign_line_share"] for r in rows]),
            "words_mean": _mean(words),
            "words_median": statistics.median(words) if words else None,
            "n_untruncated": len(whole),
            "words_mean_untruncated": _mean(whole),
            "tokens_mean": _mean([r["tokens"] for r in rows if r["tokens"] is not None]),
            "truncation_rate": _mean([float(r["hit_limit"]) for r in rows]),
            "empty_rate": _mean([float(r["empty"]) for r in rows]),
            "repetition_mean": _mean([r["repetition"] for r in rows]),
            "word_mixing_rate": _mean([float(bool(r["english_spans"])) for r in rows if "english_spans" in r]),
            "english_word_share": _mean([r["english_word_share"] for r in rows if "english_word_share" in r]),
            "length_ratio_to_reference_answers": (
                round(statistics.fmean(words) / statistics.fmean(ref_words), 4) if words and ref_words else None
            ),
        }
    if reference_model in summary and summary[reference_model]["words_mean"]:
        base = summary[reference_model]["words_mean"]
        for stats in summary.values():
            stats["length_ratio_to_reference_model"] = round(stats["words_mean"] / base, 4)
        # verbosity proper: untruncated answers only (an answer cut at max_new_tokens says nothing about it)
        base_whole = summary[reference_model]["words_mean_untruncated"]
        for stats in summary.values():
            stats["length_ratio_untruncated"] = (
                round(stats["words_mean_untruncated"] / base_whole, 4)
                if base_whole and stats["words_mean_untruncated"]
                else None
            )
    return summary


def pick_examples(per_answer: list[dict[str, Any]], answers: dict[tuple[str, str], str]) -> dict[str, Any]:
    """The worst few answers per failure mode and model, with the offending lines, for the report."""
    modes = {
        "language_mixing": (lambda r: r["foreign_line_share"], lambda r: not r["line_pass"]),
        "word_mixing": (lambda r: r.get("english_word_share", 0.0), lambda r: bool(r.get("english_spans"))),
        "verbosity": (lambda r: r["words"], lambda r: r["words"] > 0),
        "repetition": (lambda r: r["repetition"], lambda r: r["repetition"] >= 0.2),
        "truncation": (lambda r: r["words"], lambda r: r["hit_limit"]),
    }
    examples: dict[str, Any] = {}
    for mode, (score, applies) in modes.items():
        for model in sorted({r["model"] for r in per_answer}):
            hits = sorted((r for r in per_answer if r["model"] == model and applies(r)), key=score, reverse=True)
            if hits:
                examples.setdefault(mode, {})[model] = [
                    {
                        "prompt_id": r["prompt_id"],
                        "score": score(r),
                        "foreign_lines": r["foreign_lines"],
                        "english_spans": r.get("english_spans", []),
                        "answer": answers.get((r["model"], r["prompt_id"]), ""),
                    }
                    for r in hits[:EXAMPLES_PER_MODE]
                ]
    return examples


def run(inputs: AnalyzeInputs, ctx: StageContext) -> StageResult[AnalyzeMetrics]:
    cfg = inputs.analyze
    answers_dir = ctx.input_path("evaluate", "answers")
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(answers_dir).glob("*.jsonl")):
        rows.extend(read_jsonl(path))
    if not rows:
        logger.warning("[analyze] no answers found in %s", answers_dir)
    per_answer = analyze_answers(rows, cfg)
    summary = summarize(per_answer, cfg.reference_model)
    texts = {(r.get("model"), r.get("prompt_id")): r.get("answer") or "" for r in rows}
    write_jsonl(ctx.stage_dir / "per_answer.jsonl", per_answer)
    write_json(ctx.stage_dir / "examples.json", pick_examples(per_answer, texts))
    for model, s in summary.items():
        logger.info(
            "[analyze] %-10s mixing %.2f  words %.0f  truncated %.2f  repetition %.3f",
            model,
            s["mixing_rate"] or 0,
            s["words_mean"] or 0,
            s["truncation_rate"] or 0,
            s["repetition_mean"] or 0,
        )
    metrics = AnalyzeMetrics(
        models={m: ModelFailureModes.model_validate(s) for m, s in summary.items()},
        n_answers=len(per_answer),
        expected_language=cfg.expected_language,
        min_line_tokens=cfg.min_line_tokens,
        lid_threshold=cfg.lid_threshold,
    )
    return StageResult(outputs={"per_answer": "per_answer.jsonl", "examples": "examples.json"}, metrics=metrics)
