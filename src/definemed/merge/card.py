"""Our own model card for a merged checkpoint: what was merged, how, with which factors, and from where.

mergekit's own card looks model paths up on the hub and fails offline after the weights are written, so the stage
switches it off and writes this one instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from definemed.merge.methods import method_parameters, module_factors

ROLE = {
    "slerp": "t = 0 is the instruct model, t = 1 the CPT checkpoint",
    "linear": "weighted average of the models",
    "task_arithmetic": "base model + weighted task vectors (model - base model)",
    "ties": "base model + trimmed, sign-elected task vectors",
    "dare_ties": "base model + randomly dropped, rescaled, sign-elected task vectors",
}


def _inputs_table(base_id: str, paths: Mapping[str, str | Path], merge_dict: dict[str, Any], base: str) -> str:
    mergekit_base = merge_dict.get("base_model")
    rows = []
    for name, path in paths.items():
        roles = []
        if name == base:
            roles.append("tokenizer and chat-template donor")
        if mergekit_base and str(Path(path).resolve()) == mergekit_base:
            roles.append("mergekit base model")
        label = (
            f"`{base_id}`" if name == base else ("continual pre-training checkpoint" if name == "cpt" else f"`{name}`")
        )
        rows.append(f"| {name} | {label} (`{path}`) | {', '.join(roles) or 'merged'} |")
    return "| name | model | role |\n|---|---|---|\n" + "\n".join(rows)


def _factor_table(t: Any, num_layers: int | None) -> str:
    if not isinstance(num_layers, int) or num_layers <= 0:
        return ""
    lines = ["| filter | factor per layer, first to last |", "|---|---|"]
    for name, values in module_factors(t, num_layers).items():
        lines.append(f"| {name} | {', '.join(f'{x:.3f}' for x in values)} |")
    return (
        "\nFactor per layer (0 = instruct, 1 = CPT). A filter applies to tensors whose name contains it "
        "(first match wins); embeddings, final norm and LM head take each curve's first value.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def model_card(
    merge_cfg: Any,
    merge_dict: dict[str, Any],
    base_id: str,
    paths: Mapping[str, str | Path],
    num_layers: int | None,
    notes: str = "",
) -> str:
    """Markdown card with YAML front matter; `notes` (e.g. the sweep that chose this candidate) goes last."""
    import yaml

    method = merge_dict["merge_method"]
    params = yaml.safe_dump(method_parameters(merge_cfg), sort_keys=False).rstrip()
    factors = _factor_table(merge_cfg.t, num_layers) if method == "slerp" else ""
    return f"""---
library_name: transformers
tags: [merge, mergekit, {method}, definemed]
base_model: {base_id}
---
# DeFineMed merged model

{method.upper()} merge ({ROLE.get(method, method)}) made with [mergekit](https://github.com/arcee-ai/mergekit)
by the DeFineMed `merge` stage. The tokenizer and chat template are those of `{base_id}`.

{_inputs_table(base_id, paths, merge_dict, merge_cfg.base)}

## Parameters

```yaml
{params}
dtype: {merge_cfg.dtype}
```
{factors}
## mergekit configuration

```yaml
{yaml.safe_dump(merge_dict, sort_keys=False).rstrip()}
```
{notes}"""
