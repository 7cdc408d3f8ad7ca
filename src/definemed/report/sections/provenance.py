"""Configuration and provenance: every upstream stage's run, the package versions, and the configuration each
stage ran with.

The configuration shown is what each stage's key hashes (`inputs_bound` in its manifest, and the report's own
inputs), not the root config: the report does not see the root config, and a setting no stage reads (a plan-only
knob) must not rerun it, so a printed root config could be stale. Bound inputs never are.
"""

from __future__ import annotations

import yaml

from definemed.report.contract import ReportInputs
from definemed.report.document import Example, Section, Table
from definemed.stage import StageContext


def section(inputs: ReportInputs, ctx: StageContext) -> Section:
    rows = [
        [
            stage,
            man["run_id"][:8],
            man.get("finished_at"),
            man.get("duration_s"),
            (man.get("git_revision") or "n/a")[:12],
            man["inputs_hash"][:12],
        ]
        for stage, man in ctx.upstream.items()
    ]
    versions = next(iter(ctx.upstream.values()), {}).get("versions", {})
    bound = {stage: man["inputs_bound"] for stage, man in ctx.upstream.items()}
    bound[ctx.stage] = inputs.model_dump(mode="json")
    config_text = yaml.safe_dump(bound, sort_keys=False, allow_unicode=True)
    return Section(
        "Configuration and provenance",
        "provenance",
        [
            Table(["stage", "run", "finished", "seconds", "git", "inputs hash"], rows),
            Table(["package", "version"], [[k, v] for k, v in versions.items()]),
            Example("resolved configuration: the inputs each stage was keyed on", config_text),
        ],
    )
