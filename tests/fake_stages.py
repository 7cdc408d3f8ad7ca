"""Fake stages for runner tests: registered over the real ones (in-process, or via DEFINEMED_PLUGINS)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from definemed import registry
from definemed.stage import Metrics, StageContext, StageResult
from definemed.stages import NAMES as STAGES

CALLS: list[str] = []


class FakeMetrics(Metrics):
    n: int
    max_steps: int | None = None


def make_stage(name: str):
    def run(inputs, ctx: StageContext) -> StageResult:
        CALLS.append(name)
        out = ctx.stage_dir / "items.txt"
        done = out.read_text().splitlines() if out.exists() else []
        with out.open("a") as fh:  # appends: a resumed attempt must not duplicate lines
            for i in range(len(done), 5):
                fh.write(f"{name}-{i}\n")
                fh.flush()
                if os.environ.get("FAKE_CRASH_AT") == f"{name}-{i}":
                    raise RuntimeError(f"simulated crash in {name} at item {i}")
                if os.environ.get("FAKE_SLEEP_AT") == f"{name}-{i}":
                    time.sleep(60)
        for up in ctx.upstream:
            assert (Path(ctx.input_dir(up)) / "items.txt").exists()
        return StageResult(
            outputs={"items": "items.txt"},
            metrics=FakeMetrics(n=5, max_steps=getattr(getattr(inputs, "cpt", None), "max_steps", None)),
        )

    return run


def install() -> None:
    for stage in STAGES:
        registry.register("stage", stage, make_stage(stage), "fake")


if os.environ.get("DEFINEMED_PLUGINS", "").endswith("tests.fake_stages"):
    install()
