"""Config schema of the evaluate stage: multiple-choice tasks, generation backends, judges."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from definemed.schema import Strict, kind_union, open_union

# Names the evaluate stage may use besides those in `models:`; they refer to stage outputs.
STAGE_MODELS = {"cpt": "cpt", "merged": "merge"}


# ----------------------------------------------------------------------------------------------- evaluate
_TASK_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class LocalMcqTaskConfig(Strict):
    """A multiple-choice task from local JSONL (id, subject, question, choices, answer): a file or a folder."""

    kind: Literal["local"] = "local"
    name: str = Field(pattern=_TASK_NAME, max_length=64, description="lm-eval task name and file stem")
    path: Path
    num_fewshot: int = Field(0, ge=0)


class LmEvalMcqTaskConfig(Strict):
    """A task or group known to lm-eval's TaskManager: the shipped German medical benchmarks under
    `definemed/assets/lm_eval/` (hub datasets), YAML dropped into `evaluate.mcq.include_path`, or (with
    `include_defaults`) lm-eval's own tasks. `data_files` replaces the hub dataset of a single task with
    local JSON/JSONL files in the same columns (offline copies, or the German MedQA export)."""

    kind: Literal["lm_eval"]
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)
    num_fewshot: int | None = Field(None, ge=0, description="None: the task YAML's own setting")
    data_files: Path | None = None

    @property
    def path(self) -> Path | None:
        """Local data of this task, if any (what decontamination and the stage key fingerprint)."""
        return self.data_files


McqTaskConfig = kind_union(LocalMcqTaskConfig, LmEvalMcqTaskConfig, default="local")


class McqConfig(Strict):
    tasks: list[McqTaskConfig] = []
    batch_size: int = Field(8, ge=1)
    limit: int | None = Field(None, ge=1, description="questions per task (smoke runs only)")
    include_path: Path | None = Field(None, description="folder of extra lm-eval task YAML (+ data) to add")
    include_defaults: bool = Field(False, description="also index lm-eval's built-in tasks (slow start-up)")
    apply_chat_template: bool = Field(False, description="wrap each question in the model's chat template")
    fewshot_as_multiturn: bool = Field(False, description="few-shot examples as chat turns (needs apply_chat_template)")
    system_instruction: str | None = None

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, v: list[Any]) -> list[Any]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        return v

    @model_validator(mode="after")
    def _multiturn_needs_chat(self) -> McqConfig:
        if self.fewshot_as_multiturn and not self.apply_chat_template:
            raise ValueError("evaluate.mcq.fewshot_as_multiturn needs evaluate.mcq.apply_chat_template: true")
        return self


class DecodingConfig(Strict):
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0, description="0: greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1)
    system_prompt: str | None = None


class HfGenerationConfig(DecodingConfig):
    kind: Literal["hf"] = "hf"
    batch_size: int = Field(8, ge=1)
    repetition_penalty: float = Field(1.0, gt=0)


class OpenAIGenerationConfig(DecodingConfig):
    """Answers from any OpenAI-compatible chat endpoint; `model` is the served name of each evaluated model:
    `{name}` is replaced by the evaluate.models name (one server per model, or one serving several)."""

    kind: Literal["openai"]
    model: str = "{name}"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1, description="most requests in flight (adaptive, starting at 1)")
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry waits this long, then doubles (with jitter)")
    timeout_s: float = Field(30, gt=0, description="fixed part of a request's time-out")
    timeout_per_token_s: float = Field(0.25, ge=0, description="added to the time-out per max_new_tokens")
    seed: bool = Field(True, description="send the run seed (servers that support it sample reproducibly)")


class VllmGenerationConfig(DecodingConfig):
    """Offline batched generation with vLLM on a GPU (`pip install 'definemed[vllm]'`)."""

    kind: Literal["vllm"]
    repetition_penalty: float = Field(1.0, gt=0)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, ge=1)


GenerationConfig = open_union(
    "generator", HfGenerationConfig, OpenAIGenerationConfig, VllmGenerationConfig, default="hf"
)


class ReferenceJudgeConfig(Strict):
    """Offline judge: the answer closer to the reference answer (character n-gram F-score) wins."""

    kind: Literal["reference"] = "reference"
    tie_margin: float = Field(0.01, ge=0)


class OpenAIJudgeConfig(Strict):
    """Any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, hosted). The key is read from the
    environment variable named by `api_key_env`, never from the config file."""

    kind: Literal["openai"]
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=1)
    method: Literal["generate", "logprob"] = Field(
        "generate",
        description="generate: reasoning then 'Urteil: [[A]]', parsed strictly; logprob: the "
        "probabilities of A / B / C (tie) as the one output token",
    )
    tie_margin: float = Field(0.0, ge=0, description="logprob: |P(A) - P(B)| below this is a tie too")
    concurrency: int = Field(8, ge=1, description="most requests in flight (adaptive, starting at 1)")
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry waits this long, then doubles (with jitter)")
    timeout_s: float = Field(30, gt=0, description="fixed part of a request's time-out")
    timeout_per_token_s: float = Field(0.25, ge=0, description="added to the time-out per requested token")
    parse_retries: int = Field(
        1,
        ge=0,
        description="ask again when a reply holds no valid verdict (only when "
        "temperature > 0: at 0 the same request gives the same reply)",
    )
    max_invalid_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="the stage fails when more comparisons than "
        "this share are invalid (failed requests or unparseable replies)",
    )
    template: str = "judge_pairwise_de.md"


class HfJudgeConfig(Strict):
    """A local transformers model as judge, same template: `logprob` compares the log-probabilities of the
    verdicts [[A]] / [[B]] / [[C]] after the prompt; `generate` decodes greedily and parses strictly."""

    kind: Literal["hf"]
    model: str
    method: Literal["logprob", "generate"] = "logprob"
    batch_size: int = Field(4, ge=1)
    max_new_tokens: int = Field(256, ge=1, description="generate only")
    tie_margin: float = Field(0.0, ge=0, description="logprob: |logp(A) - logp(B)| below this is a tie too")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    template: str = "judge_pairwise_de.md"


JudgeConfig = open_union("judge", ReferenceJudgeConfig, OpenAIJudgeConfig, HfJudgeConfig, default="reference")


class EvaluateConfig(Strict):
    models: list[str] = ["instruct", "cpt", "merged"]
    baseline: str | None = None
    mcq: McqConfig = McqConfig()
    prompts: Path | None = None
    prompt_limit: int | None = Field(None, ge=1)
    generation: GenerationConfig = HfGenerationConfig()
    judge: JudgeConfig = ReferenceJudgeConfig()
    bootstrap_rounds: int = Field(1000, ge=10, le=100_000, description="Bradley-Terry bootstrap resamples")
    fold_change: list[tuple[str, str, str]] = Field(
        [], description="[model_x, model_y, opponent]: win-rate of x over that of y, both against opponent"
    )
    human_labels: Path | None = Field(None, description="JSONL {prompt_id, model_a, model_b, winner} for kappa")

    @model_validator(mode="after")
    def _fold_change_models(self) -> EvaluateConfig:
        for i, triple in enumerate(self.fold_change):
            unknown = [m for m in triple if m not in self.models]
            if unknown:
                raise ValueError(f"evaluate.fold_change.{i}: {unknown} not in evaluate.models {self.models}")
        return self
