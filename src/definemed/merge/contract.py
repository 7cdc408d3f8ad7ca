"""The merge stage's contract: the method's section and the models it reads; with a sweep, also the settings the
sweep's proxies read (CPT held-out split, the proxy's multiple-choice task, prompts, the analyze language rule)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from definemed.evaluate.config import HfGenerationConfig, McqConfig
from definemed.merge.config import CPT_MODEL, MergeConfig
from definemed.merge.metrics import MergeMetrics
from definemed.schema import ModelSpec
from definemed.stage import InputPath, Inputs, Stage
from definemed.train.config import PackingConfig

if TYPE_CHECKING:
    from definemed.config import DefinemedConfig


class SweepInputs(Inputs):
    """Exactly the settings of other sections that the sweep's proxies read, so changing any other evaluate or
    analyze setting does not rerun a sweep (a CPT setting reruns merge anyway, through the cpt stage's run id)."""

    # loss proxy: the cpt stage's held-out split of the corpus, packed as the cpt stage packs it
    block_size: int
    heldout_fraction: float
    packing: PackingConfig
    # accuracy proxy: evaluate.mcq with only the proxy's task (None: no accuracy proxy)
    mcq: McqConfig | None
    # mixing proxy: evaluate.prompts (None: proxy.prompts is 0), answered with the system prompt of the hf
    # generator, and the analyze stage's line-level language rule
    prompts: Path | None
    system_prompt: str | None
    expected_language: str
    min_line_tokens: int
    lid_threshold: float


class MergeInputs(Inputs):
    merge: MergeConfig
    models: dict[str, ModelSpec]  # every name the merge reads except 'cpt'
    seed: int  # a method's random seed when its `seed` is null (dare_ties); the sweep's generation and lm-eval
    sweep: SweepInputs | None = None  # set exactly when merge.sweep is


def bind(cfg: DefinemedConfig) -> MergeInputs:
    merge = cfg.merge
    models = {m: cfg.models[m] for m in merge.model_names() if m in cfg.models}
    sweep = getattr(merge, "sweep", None)
    return MergeInputs(
        merge=merge, models=models, seed=cfg.run.seed, sweep=None if sweep is None else bind_sweep(cfg, sweep.proxy)
    )


def bind_sweep(cfg: DefinemedConfig, proxy: Any) -> SweepInputs:
    ev, an, cpt = cfg.evaluate, cfg.analyze, cfg.cpt
    mcq = None
    if proxy.mcq_task is not None:
        tasks = [t for t in ev.mcq.tasks if t.name == proxy.mcq_task]
        mcq = ev.mcq.model_copy(update={"tasks": tasks, "limit": None})  # the dev split is the limit
    generation = ev.generation
    return SweepInputs(
        block_size=cpt.block_size,
        heldout_fraction=cpt.heldout_fraction,
        packing=cpt.packing,
        mcq=mcq,
        prompts=ev.prompts if proxy.prompts > 0 else None,
        system_prompt=generation.system_prompt if isinstance(generation, HfGenerationConfig) else None,
        expected_language=an.expected_language,
        min_line_tokens=an.min_line_tokens,
        lid_threshold=an.lid_threshold,
    )


def check(cfg: DefinemedConfig) -> None:
    """Merge names resolve (under `models:` or 'cpt'); a sweep's proxies point at configured evaluation data."""
    known = set(cfg.models)
    for name in cfg.merge.model_names():
        if name != CPT_MODEL and name not in known:
            raise ValueError(f"merge: model '{name}' is neither under models: {sorted(known)} nor '{CPT_MODEL}'")
    if cfg.merge.base == CPT_MODEL:
        raise ValueError("merge.base: must name the instruct model under models:, not 'cpt'")
    sweep = getattr(cfg.merge, "sweep", None)
    if sweep is None:
        return
    local = [t.name for t in cfg.evaluate.mcq.tasks if getattr(t, "kind", "local") == "local"]
    if sweep.proxy.mcq_task is not None and sweep.proxy.mcq_task not in local:
        raise ValueError(
            f"merge.sweep.proxy.mcq_task: '{sweep.proxy.mcq_task}' is not a local task of evaluate.mcq.tasks {local}"
        )
    if sweep.proxy.prompts > 0 and cfg.evaluate.prompts is None:
        raise ValueError("merge.sweep.proxy.prompts: needs evaluate.prompts (or set prompts: 0)")


def paths(cfg: DefinemedConfig) -> list[InputPath]:
    """A sweep's evaluation data: the proxy's multiple-choice task and the prompts."""
    sweep = getattr(cfg.merge, "sweep", None)
    if sweep is None:
        return []
    ev, proxy = cfg.evaluate, sweep.proxy
    out = [
        InputPath(f"evaluate.mcq.tasks.{i}.path", task.path)
        for i, task in enumerate(ev.mcq.tasks)
        if task.name == proxy.mcq_task and task.path is not None
    ]
    if proxy.prompts > 0 and ev.prompts is not None:
        out.append(InputPath("evaluate.prompts", ev.prompts))
    return out


STAGE = Stage(
    name="merge",
    help="merge the CPT checkpoint back into the instruct model (mergekit)",
    upstream=("corpus", "cpt"),  # corpus: held-out documents for the merge sweep's loss proxy
    resumable=False,
    section="merge",
    config=MergeConfig,
    bind=bind,
    metrics=MergeMetrics,
    run="definemed.merge.stage:run",
    report_section="definemed.report.sections.merge:section",
    check=check,
    paths=paths,
)
