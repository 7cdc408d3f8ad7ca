"""The `merge` stage: merge the CPT checkpoint back into its instruct model with mergekit (SLERP in the paper).

`merge.base` (the instruct model) donates the tokenizer, chat template and generation config whatever mergekit's
own base model is (task arithmetic uses the pre-instruct base there). Every input is checked against it before
anything is written. The output folder holds the merged safetensors, the tokenizer, `merge_config.yaml` (the
exact mergekit input) and our own `README.md` model card (card.py). With `merge.sweep` set, sweep.py merges one
candidate per grid value and keeps the best by the configured objective.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from definemed import registry
from definemed.artifacts import read_json, write_json, write_text
from definemed.merge.card import model_card
from definemed.merge.checks import check_compatible, local_model_dir, read_config
from definemed.merge.config import CPT_MODEL
from definemed.merge.contract import MergeInputs
from definemed.merge.methods import method_parameters
from definemed.merge.metrics import MergeMetrics
from definemed.models import resolve
from definemed.stage import StageContext, StageResult

logger = logging.getLogger("definemed")

MODEL_DIR = "model"
CONFIG_FILE = "merge_config.yaml"


def run(inputs: MergeInputs, ctx: StageContext) -> StageResult[MergeMetrics]:
    t0 = time.perf_counter()
    merge = inputs.merge
    paths = input_paths(inputs, ctx)
    for name, path in paths.items():
        if name != merge.base:
            check_compatible(paths[merge.base], path)

    outputs: dict[str, str] = {"model": MODEL_DIR}
    base_id = inputs.models[merge.base].id
    sweep = None
    if inputs.sweep is None:
        merge_model(merge, paths, base_id, inputs.seed, ctx.stage_dir / MODEL_DIR)
        t = merge.t if merge.kind == "slerp" else None
    else:
        from definemed.merge.sweep import SWEEP_FILE, run_sweep

        sweep = run_sweep(inputs, ctx, paths, ctx.stage_dir / MODEL_DIR)
        outputs["sweep"] = SWEEP_FILE
        t = sweep.chosen.t
    seconds = round(time.perf_counter() - t0, 2)
    logger.info("[merge] %s of %s in %.1f s", merge.kind, ", ".join(paths), seconds)
    params = method_parameters(merge) | ({"t": t} if merge.kind == "slerp" else {})
    # The report plots `t` as a curve: a per-module mapping reports its default curve there, in full under
    # `parameters`.
    plotted = t.get("default") if isinstance(t, dict) else t
    metrics = MergeMetrics(
        method=merge.kind,
        base=base_id,
        t=plotted,
        seconds=seconds,
        parameters=params,
        inputs={k: str(v) for k, v in paths.items()},
        sweep=sweep,
    )
    return StageResult(outputs=outputs, metrics=metrics)


def input_paths(inputs: MergeInputs, ctx: StageContext) -> dict[str, Path]:
    """Every model the merge names, as a local folder: `models:` entries resolved, 'cpt' the cpt stage output."""
    paths: dict[str, Path] = {}
    for name in inputs.merge.model_names():
        if name == CPT_MODEL:
            paths[name] = ctx.input_path("cpt", "model").resolve()
        else:
            spec = inputs.models[name]
            paths[name] = local_model_dir(resolve(spec.id), spec.revision)
    return paths


def merge_model(merge: Any, paths: dict[str, Path], base_id: str, run_seed: int, target: Path, notes: str = "") -> None:
    """Build the mergekit config for `merge` (the `merge_method` registry entry of its kind), run it into
    `target` and write tokenizer, config and card. A method whose config declares `seed` (DARE's random drop)
    merges with that seed, or `run_seed` when it is null."""
    merge_dict = registry.get("merge_method", merge.kind)(merge, paths)
    donor = paths[merge.base]
    layers = read_config(donor).get("num_hidden_layers")
    card = model_card(merge, merge_dict, base_id, paths, layers, notes)
    seed = None
    if "seed" in type(merge).model_fields:
        seed = merge.seed if merge.seed is not None else run_seed
    run_mergekit(merge_dict, target, card, donor, seed=seed, shard_params=merge.out_shard_params)


BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2, "float16": 2}


def mergekit_options(seed: int | None = None, shard_bytes: int = 200_000_000) -> Any:
    """Merge options for a memory-bounded merge.

    mergekit keeps only the output shard being written in memory; `out_shard_size` bounds that buffer. Despite its
    help text ("number of parameters") mergekit compares it with tensor bytes, so it is given in bytes here.
    `lazy_unpickle` reads pickled `.bin` inputs tensor by tensor. Its own model card and tokenizer copy are off:
    we write both (the card offline, the tokenizer from the donor).
    """
    import torch
    from mergekit.merge import MergeOptions

    return MergeOptions(
        device="cuda" if torch.cuda.is_available() else "cpu",
        copy_tokenizer=False,
        write_model_card=False,
        trust_remote_code=False,
        safe_serialization=True,
        quiet=True,
        lazy_unpickle=True,
        out_shard_size=shard_bytes,
        random_seed=seed,
    )


def run_mergekit(
    merge_dict: dict[str, Any],
    target: Path,
    card: str,
    donor: Path,
    seed: int | None = None,
    shard_params: int = 50_000_000,
) -> None:
    """Run mergekit into a temporary sibling folder and rename it into place once complete.

    Inputs are read through `memory.ReleasingTensorLoader`: an input tensor's file pages leave the process with
    the tensor instead of staying mapped until the merge ends, and the temporaries of the largest tensors are
    given back as soon as they are freed (docs/merging.md, Memory).
    """
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge

    from definemed.merge.memory import release_loaders, use_releasing_loaders

    config_yaml = yaml.safe_dump(merge_dict, sort_keys=False)
    dtype = merge_dict.get("out_dtype") or merge_dict.get("dtype") or "float32"
    options = mergekit_options(seed, shard_params * BYTES_PER_PARAM.get(dtype, 4))
    config = MergeConfiguration.model_validate(merge_dict)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        use_releasing_loaders(config, options)
        run_merge(config, str(tmp), options=options, config_source=config_yaml)
    finally:
        # mergekit's loader cache is process-wide: a sweep's next merge must not find these loaders.
        release_loaders()
    copy_tokenizer(donor, tmp)
    write_text(tmp / CONFIG_FILE, config_yaml)
    write_text(tmp / "README.md", card)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def copy_tokenizer(donor: Path, target: Path) -> None:
    """The donor's tokenizer (with chat template) and generation config; its special token ids in config.json,
    which mergekit copied from its base model (a pre-instruct base ends text with a different token)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(donor).save_pretrained(target)
    if (donor / "generation_config.json").exists():
        shutil.copy2(donor / "generation_config.json", target / "generation_config.json")
    donor_cfg, config = read_config(donor), read_json(target / "config.json")
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if key in donor_cfg:
            config[key] = donor_cfg[key]
    write_json(target / "config.json", config)
