"""Valid, demo-like metrics of the five upstream stages, built from their typed models, and the artifacts the
report reads beside them.

Every builder constructs its stage's `*Metrics` model with keyword arguments, so a field renamed in a model fails
here (pydantic names the unknown and the missing field) before the report is even built, and the report reads the
manifests these objects dump through `ctx.metrics(stage)`, exactly as in a real run. Values are shaped like the
demo's (configs/demo.yaml: three models, one multiple-choice task, a reference judge, a two-candidate sweep).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

from tests.helpers import minimal_config_dict
from tests.report.corpus_fixtures import corpus_metrics

from definemed.analyze.metrics import AnalyzeMetrics, ModelFailureModes
from definemed.artifacts import write_json, write_jsonl
from definemed.config import DefinemedConfig
from definemed.evaluate.metrics import (
    Accuracy,
    BradleyTerryScore,
    EvaluateMetrics,
    EvaluateSeconds,
    GenerationStats,
    JudgeAudit,
    JudgeMetrics,
    LcWinrate,
    LengthBias,
    McqSplit,
    McqTaskMetrics,
    PairRecord,
    PairwiseMetrics,
    PositionConsistency,
    RatingMetrics,
    Resumed,
)
from definemed.merge.config import SweepProxyConfig
from definemed.merge.metrics import MergeMetrics, SweepMetrics, SweepObjective, SweepRow
from definemed.report.contract import ReportInputs, bind
from definemed.report.metrics import ReportMetrics
from definemed.report.stage import run
from definemed.stage import Metrics, StageContext
from definemed.stages import get_stage
from definemed.train.metrics import CptMetrics, HeldoutMetrics

MODELS = ("instruct", "cpt", "merged")
BASELINE = "instruct"
TASK = "demo_medmcq_de"
UPSTREAM = ("corpus", "cpt", "merge", "evaluate", "analyze")
M = TypeVar("M", bound=Metrics)


def changed(metrics: M, **fields: Any) -> M:
    """A copy with some fields replaced, validated again (`model_copy(update=...)` would not validate)."""
    return type(metrics).model_validate({**metrics.model_dump(), **fields})


# ------------------------------------------------------------------------------------------------- cpt
def _heldout(before: float, after: float, blocks: int, docs: int) -> HeldoutMetrics:
    return HeldoutMetrics(
        loss_before=before,
        loss_after=after,
        ppl_before=round(math.exp(before), 3),
        ppl_after=round(math.exp(after), 3),
        blocks=blocks,
        tokens=blocks * 255,
        docs=docs,
    )


def cpt_metrics() -> CptMetrics:
    return CptMetrics(
        heldout={"medical": _heldout(2.914, 2.587, 12, 41), "general": _heldout(3.052, 3.118, 12, 17)},
        steps=24,
        tokens_per_step=1024,
        train_tokens=24576,
        train_blocks=96,
        final_train_loss=2.713,
        domain_blocks_per_pass=70,
        train_docs=236,
        domain_tokens_per_pass=17920,
        epochs_trained=1.029,
        replay_ratio=0.25,
        replay_blocks=24,
        replay_share=0.25,
        packing_efficiency=1.0,
        packing_mode="position_ids",
        attn_implementation="sdpa",
        init_from="",
        model_source="/models/SmolLM2-135M-Instruct",
        seconds=95.31,
    )


def cpt_log() -> list[dict[str, Any]]:
    """metrics.jsonl of the cpt stage: training loss every 2 steps, held-out loss every 12."""
    rows: list[dict[str, Any]] = [
        {"step": s, "loss": round(3.1 - 0.016 * s, 4), "learning_rate": 2e-4} for s in range(2, 25, 2)
    ]
    rows.append({"step": 12, "eval_medical_loss": 2.70, "eval_general_loss": 3.09})
    return rows


# ----------------------------------------------------------------------------------------------- merge
CHOSEN_T = [0.2, 0.5, 0.5, 0.5, 0.2]
PER_MODULE_T = {"self_attn": [0.0, 0.5, 0.3, 0.7, 1.0], "mlp": [1.0, 0.5, 0.7, 0.3, 0.0], "default": 0.5}
OBJECTIVE = {"mcq_acc": 1.0, "mixing_rate": -0.5, "medical_loss": -0.1}


def _sweep_row(candidate: int, t: Any, acc: float, med: float, gen: float, mixing: float) -> SweepRow:
    terms = {"mcq_acc": acc, "mixing_rate": -0.5 * mixing, "medical_loss": -0.1 * med}
    return SweepRow(
        candidate=candidate,
        t=t,
        mcq_acc=acc,
        medical_loss=med,
        medical_ppl=round(math.exp(med), 3),
        general_loss=gen,
        general_ppl=round(math.exp(gen), 3),
        mixing_rate=mixing,
        objective=round(sum(terms.values()), 4),
        terms=terms,
        seconds=21.4,
    )


def merge_metrics() -> MergeMetrics:
    rows = [_sweep_row(0, CHOSEN_T, 0.325, 2.688, 3.071, 0.25), _sweep_row(1, PER_MODULE_T, 0.3, 2.702, 3.08, 0.5)]
    sweep = SweepMetrics(
        rows=rows,
        chosen=rows[0],
        objective=SweepObjective(maximize=OBJECTIVE),
        proxy=SweepProxyConfig(mcq_task=TASK, mcq_limit=40, heldout_blocks=8, prompts=4, max_new_tokens=64),
        dev_ids=[f"medmcq-{i:03d}" for i in range(40)],
    )
    return MergeMetrics(
        method="slerp",
        base="HuggingFaceTB/SmolLM2-135M-Instruct",
        t=CHOSEN_T,
        seconds=4.27,
        parameters={"t": CHOSEN_T},
        sweep=sweep,
        inputs={"instruct": "/models/SmolLM2-135M-Instruct", "cpt": "runs/demo/cpt/model"},
    )


# -------------------------------------------------------------------------------------------- evaluate
ACCURACY = {"instruct": 0.3, "cpt": 0.2875, "merged": 0.325}
WINS = {("cpt", "instruct"): (9, 4, 11), ("merged", "instruct"): (12, 5, 7), ("merged", "cpt"): (13, 3, 8)}


def _mcq(model: str) -> McqTaskMetrics:
    acc = ACCURACY[model]
    subjects = {
        "anatomie": Accuracy(acc=round(acc + 0.05, 4), n=20),
        "pharmakologie": Accuracy(acc=acc - 0.05, n=20),
        "innere_medizin": Accuracy(acc=acc, n=40),
    }
    return McqTaskMetrics(
        acc=acc,
        acc_stderr=round(math.sqrt(acc * (1 - acc) / 80), 4),
        acc_norm=None,
        n=80,
        num_fewshot=0,
        per_subject=subjects,
        pred_letters={"A": 30, "B": 22, "C": 16, "D": 12},
    )


def _pairs() -> list[PairRecord]:
    out = []
    for a in MODELS:
        for b in MODELS:
            if a == b:
                continue
            wins, ties, losses = WINS[(a, b)] if (a, b) in WINS else WINS[(b, a)][::-1]
            out.append(
                PairRecord(
                    model=a,
                    opponent=b,
                    wins=wins,
                    ties=ties,
                    losses=losses,
                    invalid=0,
                    win_rate=round((wins + ties / 2) / (wins + ties + losses), 4),
                )
            )
    return out


def _ratings() -> RatingMetrics:
    bt = {
        "instruct": BradleyTerryScore(score=1000.0, lower=1000.0, upper=1000.0, separated_share=0.0),
        "cpt": BradleyTerryScore(score=968.2, lower=911.5, upper=1024.9, separated_share=0.0),
        "merged": BradleyTerryScore(score=1051.7, lower=996.3, upper=1110.4, separated_share=0.0),
    }
    lc = {
        "cpt": LcWinrate(raw=0.4583, lc=0.4412, length_coef=0.18, n=24, separated=False, opponent=BASELINE),
        "merged": LcWinrate(raw=0.6042, lc=0.5871, length_coef=0.21, n=24, separated=False, opponent=BASELINE),
    }
    return RatingMetrics(
        n_battles=144,
        bootstrap_rounds=1000,
        anchor=BASELINE,
        bradley_terry=bt,
        bradley_terry_note=None,
        lc_winrate=lc,
        fold_change={"merged/cpt vs instruct": 1.3183},
    )


def _judge_audit() -> JudgeAudit:
    pos = PositionConsistency(
        n_verdicts=144,
        n_pairs=72,
        n_compared=72,
        n_incomplete=0,
        consistency=0.7917,
        first_biased_share=0.125,
        second_biased_share=0.0833,
        first_position_win_share=0.5347,
        invalid_share=0.0,
    )
    return JudgeAudit(
        position_consistency=pos,
        tie_share=0.1667,
        length_bias=LengthBias(longer_wins_share=0.6154, n_decisive_unequal=52, length_coef=0.2731),
        kappa=None,
    )


def _generation(tokens: float, cut: int) -> GenerationStats:
    return GenerationStats(
        n=24,
        mean_tokens=tokens,
        hit_limit=cut,
        hit_limit_rate=round(cut / 24, 4),
        n_untruncated=24 - cut,
        mean_tokens_untruncated=tokens - 9.5,
        requests=24,
        prompt_tokens=24 * 61,
        completion_tokens=round(24 * tokens),
    )


def judge_metrics(**fields: Any) -> JudgeMetrics:
    values: dict[str, Any] = dict(
        kind="reference",
        model=None,
        note="offline proxy: answer overlap with the reference",
        n_judgments=144,
        cached=0,
        invalid=0,
        invalid_verdicts=0,
        errors=0,
        invalid_by_cause={},
        requests=0,
        prompt_tokens=0,
        completion_tokens=0,
    )
    return JudgeMetrics(**(values | fields))


def evaluate_metrics() -> EvaluateMetrics:
    pairs = _pairs()
    vs = {p.model: p.win_rate for p in pairs if p.opponent == BASELINE}
    return EvaluateMetrics(
        models={
            "instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "cpt": "runs/demo/cpt/model",
            "merged": "runs/demo/merge/model",
        },
        seconds=EvaluateSeconds(mcq={m: 11.2 for m in MODELS}, generation={m: 38.5 for m in MODELS}, judging=0.8),
        resumed=Resumed(),
        mcq={m: {TASK: _mcq(m)} for m in MODELS},
        mcq_split={TASK: McqSplit(questions=120, excluded_dev=40, evaluated=80, reason="merge sweep dev split")},
        generation={"instruct": _generation(96.4, 8), "cpt": _generation(104.1, 11), "merged": _generation(99.0, 9)},
        pairwise=PairwiseMetrics(pairs=pairs, vs_baseline=vs, baseline=BASELINE, order_consistency=0.7917),
        judge=judge_metrics(),
        ratings=_ratings(),
        judge_audit=_judge_audit(),
    )


# --------------------------------------------------------------------------------------------- analyze
def _failure_modes(
    mixing: float, word_mixing: float, words: float, untruncated: float, cut: float
) -> ModelFailureModes:
    return ModelFailureModes(
        n=24,
        line_pass_rate=1 - mixing,
        mixing_rate=mixing,
        foreign_line_share=mixing / 3,
        words_mean=words,
        words_median=words - 2,
        n_untruncated=round(24 * (1 - cut)),
        words_mean_untruncated=untruncated,
        tokens_mean=words * 1.9,
        truncation_rate=cut,
        empty_rate=0.0,
        repetition_mean=0.0412,
        word_mixing_rate=word_mixing,
        english_word_share=word_mixing / 10,
        length_ratio_to_reference_answers=1.42,
        length_ratio_to_reference_model=round(words / 51.25, 4),
        length_ratio_untruncated=round(untruncated / 44.5, 4),
    )


def analyze_metrics() -> AnalyzeMetrics:
    models = {
        "instruct": _failure_modes(0.0833, 0.125, 51.25, 44.5, 0.3333),
        "cpt": _failure_modes(0.2083, 0.1667, 55.0, 47.75, 0.4583),
        "merged": _failure_modes(0.125, 0.0833, 52.5, 45.0, 0.375),
    }
    return AnalyzeMetrics(models=models, n_answers=72, expected_language="de", min_line_tokens=4, lid_threshold=0.5)


def per_answer() -> list[dict[str, Any]]:
    return [
        {"model": m, "prompt_id": f"p{i:02d}", "words": 30 + 3 * i + 2 * j}
        for j, m in enumerate(MODELS)
        for i in range(24)
    ]


EXAMPLES = {
    "language_mixing": {
        "merged": [
            {
                "prompt_id": "p07",
                "score": 0.5,
                "answer": "Bei Fieber viel trinken.\nThis is an English sentence.",
                "foreign_lines": [{"line": "This is an English sentence.", "lang": "en", "score": 0.94}],
                "english_spans": [],
            }
        ]
    },
    "word_mixing": {
        "cpt": [
            {
                "prompt_id": "p11",
                "score": 0.08,
                "answer": "Die Dosis ist weight-based und gering.",
                "foreign_lines": [],
                "english_spans": ["weight-based"],
            }
        ]
    },
}


# ------------------------------------------------------------------------------------- the report's run
def upstream_metrics() -> dict[str, Metrics]:
    return {
        "corpus": corpus_metrics(),
        "cpt": cpt_metrics(),
        "merge": merge_metrics(),
        "evaluate": evaluate_metrics(),
        "analyze": analyze_metrics(),
    }


def write_upstream(cfg: DefinemedConfig, metrics: dict[str, Metrics] | None = None) -> dict[str, dict[str, Any]]:
    """Manifests of the five upstream stages (inputs bound from `cfg`, metrics dumped from the typed models, as
    the runner stores them) and the artifacts the report reads beside them."""
    run_dir = cfg.run.run_dir
    metrics = {**upstream_metrics(), **(metrics or {})}
    write_jsonl(run_dir / "cpt" / "metrics.jsonl", cpt_log())
    pairwise = metrics["evaluate"].model_dump(mode="json").get("pairwise") or {"pairs": []}
    write_json(run_dir / "evaluate" / "pairwise.json", {"pairs": pairwise["pairs"], "baseline": BASELINE})
    write_jsonl(run_dir / "analyze" / "per_answer.jsonl", per_answer())
    write_json(run_dir / "analyze" / "examples.json", EXAMPLES)
    outputs = {
        "corpus": {"medical": "medical", "general": "general", "card": "README.md", "stats": "stats.json"},
        "cpt": {"model": "model", "log": "metrics.jsonl"},
        "merge": {"model": "model", "sweep": "sweep.json"},
        "evaluate": {"mcq": "mcq", "answers": "answers", "judgments": "judgments.jsonl", "pairwise": "pairwise.json"},
        "analyze": {"per_answer": "per_answer.jsonl", "examples": "examples.json"},
    }
    curve = {"precision": [0.52, 0.81, 0.93, 1.0], "recall": [1.0, 0.95, 0.91, 0.2], "average_precision": 0.975}
    write_json(run_dir / "corpus" / "stats.json", {"comparison_curves": {"fasttext": curve, "cascade": curve}})
    return {
        stage: {
            "stage": stage,
            "run_id": f"{i:x}" * 32,
            "key": f"key-{stage}",
            "inputs_hash": f"{i}" * 64,
            "inputs_bound": get_stage(stage).bind(cfg).model_dump(mode="json"),
            "outputs": outputs[stage],
            "metrics": metrics[stage].model_dump(mode="json"),
            "versions": {"definemed": "0.1.0", "torch": "2.5.1"},
            "git_revision": None,
            "finished_at": "2025-01-01T00:00:00+00:00",
            "duration_s": 1.5,
        }
        for i, stage in enumerate(UPSTREAM, start=1)
    }


def root_config(tmp_path: Path, **sections: Any) -> DefinemedConfig:
    """A valid root config with the demo's three models and 'instruct' as the baseline; `sections` replace some."""
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"models": list(MODELS), "baseline": BASELINE}
    return DefinemedConfig.model_validate(data | sections)


def report_inputs(tmp_path: Path, **sections: Any) -> ReportInputs:
    return bind(root_config(tmp_path, **sections))


def report_context(tmp_path: Path, metrics: dict[str, Metrics] | None = None, **sections: Any) -> StageContext:
    cfg = root_config(tmp_path, **sections)
    ctx = StageContext(run_dir=cfg.run.run_dir, stage="report", upstream=write_upstream(cfg, metrics))
    ctx.stage_dir.mkdir(parents=True)
    return ctx


def render_report(
    tmp_path: Path, metrics: dict[str, Metrics] | None = None, **sections: Any
) -> tuple[ReportMetrics, StageContext]:
    """Run the report stage over the fixture's upstream stages (some replaced by `metrics`); `sections` replace
    sections of the root config the stages are bound from."""
    ctx = report_context(tmp_path, metrics, **sections)
    result = run(report_inputs(tmp_path, **sections), ctx)
    assert isinstance(result.metrics, ReportMetrics)
    return result.metrics, ctx
