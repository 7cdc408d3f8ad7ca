"""Metrics of the evaluate stage (manifest.json `metrics`), read as attributes downstream.

Sections that a configuration switches off are None: `mcq` without `evaluate.mcq.tasks`, `generation` without
`evaluate.prompts`, `pairwise` / `judge` / `ratings` / `judge_audit` with fewer than two models. The full
per-pair table and every battle are in `pairwise.json`, every verdict in `judgments.jsonl`.
"""

from __future__ import annotations

from definemed.llm.stats import EndpointStats
from definemed.stage import Metrics


# ------------------------------------------------------------------------------------- multiple choice
class Accuracy(Metrics):
    """Accuracy over `n` questions (of one subject, or of one member task of a group)."""

    acc: float
    n: int


class McqTaskMetrics(Metrics):
    """One task (or group) for one model: lm-eval's aggregate and the per-subject table from the samples."""

    acc: float
    acc_stderr: float | None = None
    acc_norm: float | None = None
    n: int
    num_fewshot: int | None = None
    per_subject: dict[str, Accuracy] = {}
    pred_letters: dict[str, int] = {}  # how often each letter was picked: all "A" means the model ignores the task
    subtasks: dict[str, Accuracy] | None = None  # a group's member tasks


class McqSplit(Metrics):
    """A task whose merge-sweep dev questions were left out (the merge factor was chosen on them)."""

    questions: int
    excluded_dev: int
    evaluated: int
    reason: str


# ------------------------------------------------------------------------------------------ generation
class GenerationStats(Metrics):
    """Answers of one model. Verbosity is `mean_tokens_untruncated`: cut answers measure max_new_tokens."""

    n: int
    mean_tokens: float
    hit_limit: int  # answers cut at max_new_tokens
    hit_limit_rate: float
    n_untruncated: int
    mean_tokens_untruncated: float | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    endpoint: EndpointStats | None = None  # HTTP generators only


# ------------------------------------------------------------------------------------- pairwise judging
class PairRecord(Metrics):
    """One ordered pair (model vs opponent) over every prompt, both answer orders reconciled."""

    model: str
    opponent: str
    wins: int
    ties: int
    losses: int
    invalid: int
    win_rate: float | None  # (wins + ties / 2) / decided; None when every comparison was invalid


class PairwiseMetrics(Metrics):
    pairs: list[PairRecord]
    vs_baseline: dict[str, float | None]  # {model: win-rate against the baseline}; {} without a baseline
    baseline: str | None
    order_consistency: float | None  # share of valid comparisons where both orders agree


class JudgeMetrics(Metrics):
    kind: str
    model: str | None
    note: str | None
    n_judgments: int  # judge calls (both orders)
    cached: int
    invalid: int  # comparisons (pair x prompt) invalid after reconciling the two orders
    invalid_verdicts: int  # judge calls without a valid verdict
    errors: int  # of those, failed requests (time-outs, 5xx after retries), not unparseable replies
    invalid_by_cause: dict[str, int]
    requests: int
    prompt_tokens: int
    completion_tokens: int
    endpoint: EndpointStats | None = None  # HTTP judges only


# ------------------------------------------------------------------------------------------ statistics
class BradleyTerryScore(Metrics):
    """Elo-scale score with its 95 % percentile bootstrap interval."""

    score: float
    lower: float
    upper: float
    separated_share: float  # bootstrap rounds without a finite MLE (fitted with a tiny ridge)


class LcWinrate(Metrics):
    """AlpacaEval-2-style length-controlled win-rate of a model against `opponent`."""

    raw: float
    lc: float
    length_coef: float
    n: int
    separated: bool
    opponent: str


class RatingMetrics(Metrics):
    n_battles: int
    bootstrap_rounds: int | None = None  # None when there was no valid battle
    anchor: str | None = None
    bradley_terry: dict[str, BradleyTerryScore] | None
    bradley_terry_note: str | None
    # {model: ...} against the baseline, or {"<model> vs <opponent>": ...} for every pair without one;
    # None where the two never met in a valid battle
    lc_winrate: dict[str, LcWinrate | None]
    fold_change: dict[str, float | None]  # {"<x>/<y> vs <opponent>": ratio of win-rates}


class PositionConsistency(Metrics):
    n_verdicts: int
    n_pairs: int
    n_compared: int
    n_incomplete: int
    consistency: float | None
    first_biased_share: float | None
    second_biased_share: float | None
    first_position_win_share: float | None
    invalid_share: float | None


class LengthBias(Metrics):
    longer_wins_share: float | None
    n_decisive_unequal: int
    length_coef: float


class Kappa(Metrics):
    """Cohen's kappa against `evaluate.human_labels`; with `error` (and kappa None) when nothing lined up."""

    kappa: float | None
    agreement: float | None = None
    n: int | None = None
    unmatched_judge: int | None = None
    unmatched_human: int | None = None
    error: str | None = None


class JudgeAudit(Metrics):
    position_consistency: PositionConsistency
    tie_share: float | None
    length_bias: LengthBias | None
    kappa: Kappa | None


# ------------------------------------------------------------------------------------------ the stage
class EvaluateSeconds(Metrics):
    mcq: dict[str, float] | None = None  # per model
    generation: dict[str, float] | None = None  # per model (0 for answers kept from an interrupted attempt)
    judging: float | None = None


class Resumed(Metrics):
    """Models whose outputs an interrupted attempt had finished (read, not recomputed)."""

    mcq: list[str] = []
    generation: list[str] = []


class EvaluateMetrics(Metrics):
    models: dict[str, str]  # evaluated name -> checkpoint folder or hub id
    seconds: EvaluateSeconds
    resumed: Resumed
    mcq: dict[str, dict[str, McqTaskMetrics]] | None = None  # model -> task -> metrics
    mcq_split: dict[str, McqSplit] | None = None
    generation: dict[str, GenerationStats] | None = None
    pairwise: PairwiseMetrics | None = None
    judge: JudgeMetrics | None = None
    ratings: RatingMetrics | None = None
    judge_audit: JudgeAudit | None = None


__all__ = [
    "Accuracy",
    "BradleyTerryScore",
    "EndpointStats",
    "EvaluateMetrics",
    "EvaluateSeconds",
    "GenerationStats",
    "JudgeAudit",
    "JudgeMetrics",
    "Kappa",
    "LcWinrate",
    "LengthBias",
    "McqSplit",
    "McqTaskMetrics",
    "PairRecord",
    "PairwiseMetrics",
    "PositionConsistency",
    "RatingMetrics",
    "Resumed",
]
