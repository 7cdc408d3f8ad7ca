"""Config schema of the merge stage: one model per method (an open family: `merge_method`), the sweep."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from definemed.schema import Strict, open_union

# -------------------------------------------------------------------------------------------------- merge
# A merge factor: one number, or anchors spread over the layers (mergekit gradient).
Factor = float | list[float]
# SLERP `t`: a factor, or one per tensor-name filter ({self_attn: .., mlp: .., default: ..}).
SlerpFactor = float | list[float] | dict[str, float | list[float]]
CPT_MODEL = "cpt"  # the name under which merge configs refer to the cpt stage's checkpoint


def check_slerp_factor(t: SlerpFactor) -> SlerpFactor:
    """Every value in [0, 1]; a per-module mapping needs a `default` for tensors no filter matches."""
    curves = list(t.values()) if isinstance(t, dict) else [t]
    if isinstance(t, dict) and "default" not in t:
        raise ValueError(f"a per-module factor needs a 'default' entry (filters given: {sorted(t)})")
    for curve in curves:
        values = curve if isinstance(curve, list) else [curve]
        if not values or any(not 0 <= x <= 1 for x in values):
            raise ValueError("every SLERP factor must lie in [0, 1]")
    return t


ProxyName = Literal["mcq_acc", "medical_loss", "general_loss", "mixing_rate"]


class SweepProxyConfig(Strict):
    """Fast proxies scored on every sweep candidate; 0 / null switches a proxy off."""

    mcq_task: str | None = Field(None, description="an evaluate.mcq task; a dev split of it is scored")
    mcq_limit: int = Field(40, ge=1, description="questions in the dev split (lowest id hashes)")
    heldout_blocks: int = Field(8, ge=0, description="held-out medical / general blocks for the loss")
    prompts: int = Field(4, ge=0, description="first N of evaluate.prompts answered for the mixing rate")
    max_new_tokens: int = Field(64, ge=1)


class SweepObjectiveConfig(Strict):
    """Weighted sum of named proxies, maximised: {mcq_acc: 1, mixing_rate: -0.5, medical_loss: -0.1}."""

    maximize: dict[ProxyName, float] = Field(min_length=1)


class MergeSweepConfig(Strict):
    """Merge once per grid value of `t`, score each candidate on the proxies, keep the objective's best."""

    grid: list[SlerpFactor] = Field(min_length=2)
    objective: SweepObjectiveConfig
    proxy: SweepProxyConfig = SweepProxyConfig()

    @field_validator("grid")
    @classmethod
    def _grid_factors(cls, v: list[SlerpFactor]) -> list[SlerpFactor]:
        for i, t in enumerate(v):
            try:
                check_slerp_factor(t)
            except ValueError as exc:
                raise ValueError(f"grid.{i}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _objective_terms_are_scored(self) -> MergeSweepConfig:
        off = {
            "mcq_acc": self.proxy.mcq_task is None,
            "mixing_rate": self.proxy.prompts == 0,
            "medical_loss": self.proxy.heldout_blocks == 0,
            "general_loss": self.proxy.heldout_blocks == 0,
        }
        unscored = [name for name in self.objective.maximize if off[name]]
        if unscored:
            raise ValueError(
                f"objective.maximize uses {unscored}, but sweep.proxy switches them off "
                "(set proxy.mcq_task / proxy.prompts / proxy.heldout_blocks)"
            )
        return self


class MergeMethodConfig(Strict):
    """What every merge method's config has (a plugin method's config subclasses it, adding `kind: Literal[...]`
    and its own parameters). `base`: the instruct model under `models:`: tokenizer and chat-template donor, the
    report's base. A method that reads more models than `base` and 'cpt' lists them in `model_names`."""

    base: str = "instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    out_shard_params: int = Field(
        50_000_000, ge=1_000_000, description="parameters per output shard; mergekit holds one shard in memory"
    )

    def model_names(self) -> list[str]:
        """Every name this merge reads (under `models:` or 'cpt')."""
        return [self.base, CPT_MODEL]


class SlerpMergeConfig(MergeMethodConfig):
    """Layer-wise SLERP as in the paper. `t` is the weight of the CPT model (0 = instruct, 1 = CPT): a number,
    a list of anchors interpolated across the layers (mergekit gradient), or a mapping of tensor-name filters
    to such factors ({self_attn: [...], mlp: [...], default: ...}; first matching filter wins)."""

    kind: Literal["slerp"] = "slerp"
    t: SlerpFactor = 0.5
    sweep: MergeSweepConfig | None = None

    @field_validator("t")
    @classmethod
    def _t_in_unit_interval(cls, v: SlerpFactor) -> SlerpFactor:
        return check_slerp_factor(v)


class WeightedModel(Strict):
    model: str = Field(description="a name under `models:`, or 'cpt' for the cpt stage's checkpoint")
    weight: float = 1.0


class SparseModel(WeightedModel):
    density: float | None = Field(
        None, gt=0, le=1, description="share of delta entries kept (default: the method's `density`)"
    )


def _unique_with_cpt(models: list[WeightedModel]) -> list[WeightedModel]:
    names = [m.model for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    if CPT_MODEL not in names:
        raise ValueError(f"must include '{CPT_MODEL}' (the continual pre-training checkpoint), got {names}")
    return models


class LinearMergeConfig(MergeMethodConfig):
    """Weighted average of checkpoints (normalised by the sum of weights unless `normalize: false`)."""

    kind: Literal["linear"] = "linear"
    models: list[WeightedModel] = Field(
        default_factory=lambda: [
            WeightedModel(model="instruct", weight=0.5),
            WeightedModel(model=CPT_MODEL, weight=0.5),
        ],
        min_length=2,
    )
    normalize: bool = True

    @field_validator("models")
    @classmethod
    def _models_unique(cls, v: list[WeightedModel]) -> list[WeightedModel]:
        return _unique_with_cpt(v)

    def model_names(self) -> list[str]:
        return list(dict.fromkeys([self.base, *(m.model for m in self.models)]))


class TaskArithmeticMergeConfig(MergeMethodConfig):
    """base_model + sum(weight * (model - base_model)). The chat-vector form CPT + (instruct - base): models
    cpt and instruct at weight 1 with `base_model` the pre-instruct base (null: `base`)."""

    kind: Literal["task_arithmetic"] = "task_arithmetic"
    base_model: str | None = None
    models: list[WeightedModel] = Field(
        default_factory=lambda: [
            WeightedModel(model=CPT_MODEL, weight=1.0),
            WeightedModel(model="instruct", weight=1.0),
        ],
        min_length=1,
    )
    normalize: bool = False
    scale: float = Field(1.0, description="mergekit `lambda`: multiplies the summed task vectors")

    @field_validator("models")
    @classmethod
    def _models_unique(cls, v: list[WeightedModel]) -> list[WeightedModel]:
        return _unique_with_cpt(v)

    def model_names(self) -> list[str]:
        return list(dict.fromkeys([self.base, self.base_model or self.base, *(m.model for m in self.models)]))


class TiesMergeConfig(TaskArithmeticMergeConfig):
    """TIES: trim each task vector to its largest-magnitude `density` share, elect signs, average agreeing."""

    kind: Literal["ties"] = "ties"  # type: ignore[assignment]
    models: list[SparseModel] = Field(
        default_factory=lambda: [  # type: ignore[assignment]
            SparseModel(model=CPT_MODEL, weight=1.0),
            SparseModel(model="instruct", weight=1.0),
        ],
        min_length=1,
    )
    density: float = Field(0.5, gt=0, le=1)
    normalize: bool = True


class DareTiesMergeConfig(TiesMergeConfig):
    """DARE-TIES: drop delta entries at random (keep `density`), rescale survivors by 1/density, TIES signs.
    `seed` (null: run.seed) makes the random drop reproducible."""

    kind: Literal["dare_ties"] = "dare_ties"  # type: ignore[assignment]
    normalize: bool = False
    rescale: bool = True
    seed: int | None = None


MergeConfig = open_union(
    "merge_method",
    SlerpMergeConfig,
    LinearMergeConfig,
    TaskArithmeticMergeConfig,
    TiesMergeConfig,
    DareTiesMergeConfig,
    default="slerp",
)
