"""The merge stage's contract: the method's section and the models it reads; with a sweep, also what the sweep's
proxies read (CPT held-out settings, generation, multiple-choice tasks, prompts, the analyze settings)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from definemed.analyze.config import AnalyzeConfig
from definemed.evaluate.config import GenerationConfig, McqConfig
from definemed.merge.config import CPT_MODEL, MergeConfig, SlerpMergeConfig
from definemed.merge.metrics import MergeMetrics
from definemed.schema import ModelSpec
from definemed.stage import InputPath, Inputs, Stage
from definemed.train.config import CptConfig

if TYPE_CHECKING:
    from definemed.config import DefinemedConfig


class SweepInputs(Inputs):
    """What the sweep's proxies read besides the merge section."""

    cpt: CptConfig
    generation: GenerationConfig
    mcq: McqConfig
    prompts: Path | None
    analyze: AnalyzeConfig


class MergeInputs(Inputs):
    merge: MergeConfig
    models: dict[str, ModelSpec]  # every name the merge reads except 'cpt'
    seed: int
    sweep: SweepInputs | None = None


def bind(cfg: DefinemedConfig) -> MergeInputs:
    merge = cfg.merge
    models = {m: cfg.models[m] for m in merge.model_names() if m in cfg.models}
    sweep = None
    if getattr(merge, "sweep", None) is not None:
        ev = cfg.evaluate
        sweep = SweepInputs(cpt=cfg.cpt, generation=ev.generation, mcq=ev.mcq, prompts=ev.prompts,
                            analyze=cfg.analyze)
    return MergeInputs(merge=merge, models=models, seed=cfg.run.seed, sweep=sweep)


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
        raise ValueError(f"merge.sweep.proxy.mcq_task: '{sweep.proxy.mcq_task}' is not a local task of "
                         f"evaluate.mcq.tasks {local}")
    if sweep.proxy.prompts > 0 and cfg.evaluate.prompts is None:
        raise ValueError("merge.sweep.proxy.prompts: needs evaluate.prompts (or set prompts: 0)")


def paths(cfg: DefinemedConfig) -> list[InputPath]:
    from definemed.corpus.contract import benchmark_paths

    return benchmark_paths(cfg) if getattr(cfg.merge, "sweep", None) is not None else []


STAGE = Stage(name="merge", help="merge the CPT checkpoint back into the instruct model (mergekit)",
              upstream=("corpus", "cpt"),  # corpus: held-out documents for the merge sweep's loss proxy
              resumable=False, section="merge", config=MergeConfig,
              bind=bind, metrics=MergeMetrics, run="definemed.merge.stage:run", check=check, paths=paths)
