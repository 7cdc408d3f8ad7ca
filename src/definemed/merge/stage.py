"""The `merge` stage: merge the CPT checkpoint back into its instruct model with mergekit (SLERP in the paper).

The instruct model is mergekit's base model (t=0) and donates the tokenizer. The output folder holds the merged
safetensors, the tokenizer, `merge_config.yaml` (the exact mergekit input) and our own `README.md` model card:
mergekit's card looks paths up on the hub and fails offline.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from definemed import registry
from definemed.artifacts import StageContext, StageResult, write_text
from definemed.config import DefinemedConfig
from definemed.merge.checks import check_compatible, local_model_dir, read_config
from definemed.merge.methods import layer_factors
from definemed.models import resolve

logger = logging.getLogger("definemed")

MODEL_DIR = "model"
CONFIG_FILE = "merge_config.yaml"


def run(cfg: DefinemedConfig, ctx: StageContext) -> StageResult:
    t0 = time.perf_counter()
    merge = cfg.merge
    spec = cfg.models[merge.base]
    base = local_model_dir(resolve(spec.id), spec.revision)
    other = ctx.input_path("cpt", "model").resolve()
    check_compatible(base, other)

    merge_dict = registry.get("merge_method", merge.kind)(merge, base, other)
    target = ctx.stage_dir / MODEL_DIR
    run_mergekit(merge_dict, target, card=model_card(merge_dict, spec.id, base, other, merge.t))
    seconds = round(time.perf_counter() - t0, 2)
    logger.info("[merge] %s of %s and %s in %.1f s", merge.kind, spec.id, other, seconds)
    return StageResult(outputs={"model": MODEL_DIR},
                       metrics={"method": merge.kind, "t": merge.t, "base": spec.id, "seconds": seconds})


def run_mergekit(merge_dict: dict[str, Any], target: Path, card: str) -> None:
    """Run mergekit into a temporary sibling folder and rename it into place once complete."""
    import torch
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    config_yaml = yaml.safe_dump(merge_dict, sort_keys=False)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    options = MergeOptions(
        device="cuda" if torch.cuda.is_available() else "cpu", copy_tokenizer=True, write_model_card=False,
        trust_remote_code=False, safe_serialization=True, quiet=True)
    run_merge(MergeConfiguration.model_validate(merge_dict), str(tmp), options=options, config_source=config_yaml)
    write_text(tmp / CONFIG_FILE, config_yaml)
    write_text(tmp / "README.md", card)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def model_card(merge_dict: dict[str, Any], base_id: str, base: Path, other: Path, t: float | list[float]) -> str:
    """A short model card: what was merged, how, and the factor each layer received."""
    import yaml

    layers = read_config(base).get("num_hidden_layers")
    factors = ""
    if isinstance(layers, int) and layers > 0:
        per_layer = ", ".join(f"{x:.3f}" for x in layer_factors(t, layers))
        factors = f"\nFactor per layer (0 = instruct, 1 = CPT), first to last: {per_layer}.\n"
    return f"""---
library_name: transformers
tags: [merge, mergekit, slerp, definemed]
base_model: {base_id}
---
# DeFineMed merged model

Layer-wise {merge_dict['merge_method'].upper()} of two checkpoints of the same network, made with
[mergekit](https://github.com/arcee-ai/mergekit) by the DeFineMed `merge` stage:

| role | model |
|---|---|
| base (t = 0), tokenizer donor | `{base_id}` (`{base}`) |
| other (t = 1) | continual pre-training checkpoint `{other}` |

Interpolation factor t: `{t}`. A list is spread evenly over the layers and interpolated in between;
embeddings, final norm and LM head take the first value.
{factors}
## mergekit configuration

```yaml
{yaml.safe_dump(merge_dict, sort_keys=False).rstrip()}
```
"""
