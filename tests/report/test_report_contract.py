"""Renaming a field of an upstream stage's metrics model breaks the report test, loudly and by name.

A rename is simulated with a copy of the stage's `*Metrics` model (or of one of its parts) in which one field has a
new name; every other field, type and default is the same. Two things must then fail:
1. building the report test's valid metrics (the fixture constructs the models with keyword arguments): pydantic
   names the old field as not permitted;
2. if the producer and the fixture were both renamed but the report was not, the report: each section that reads
   the field fails with an AttributeError naming it (listed in `failed_sections`, a note in the report), where the
   old `.get(key, default)` printed a silent "n/a".
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError, create_model
from tests.report import corpus_fixtures, metrics_fixtures
from tests.report.metrics_fixtures import UPSTREAM, render_report, upstream_metrics

from definemed import stages
from definemed.report import plots

# (stage, path of the renamed field ('*' = every value of a map or list), sections that read it)
CASES = [
    ("corpus", "docs_kept", {"corpus"}),
    ("corpus", "classifier.f1", {"corpus"}),
    ("corpus", "labelling.sample_s", {"corpus"}),
    ("corpus", "real_test.families.*.cascade.routed_share", {"corpus"}),
    ("cpt", "heldout.*.loss_after", {"summary", "cpt"}),
    ("merge", "method", {"merge"}),
    ("merge", "sweep.rows.*.mixing_rate", {"merge"}),
    ("evaluate", "mcq.*.*.acc", {"summary", "evaluate"}),
    ("evaluate", "judge.n_judgments", {"evaluate"}),
    ("evaluate", "ratings.bradley_terry.*.upper", {"evaluate"}),
    ("analyze", "models.*.mixing_rate", {"summary", "analyze"}),
    ("analyze", "models.*.length_ratio_untruncated", {"analyze"}),  # optional (None by default) fails loudly too
]
NEW = "renamed_field"


def _models_in(annotation: Any) -> set[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation}
    return {m for arg in get_args(annotation) for m in _models_in(arg)}


def _swap(annotation: Any, old: type, new: type) -> Any:
    """The annotation with the model `old` replaced by `new` (inside unions, dicts and lists)."""
    if annotation is old:
        return new
    args = get_args(annotation)
    swapped = tuple(_swap(a, old, new) for a in args)
    if swapped == args:
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        return Union[swapped]  # noqa: UP007 - built from a tuple of members
    return get_origin(annotation)[swapped]


def renamed_model(model: type[BaseModel], path: list[str], new: str) -> tuple[type[BaseModel], type[BaseModel]]:
    """(copy of `model` with the field at `path` renamed to `new`, the original model that held that field)."""
    name, rest = path[0], path[1:]
    assert name in model.model_fields, f"{model.__name__} has no field '{name}'"
    fields: dict[str, Any] = {}
    holder = model
    for field, info in model.model_fields.items():
        annotation = info.annotation
        if field == name and rest:
            (sub,) = _models_in(annotation)
            renamed_sub, holder = renamed_model(sub, rest, new)
            annotation = _swap(annotation, sub, renamed_sub)
        key = new if field == name and not rest else field
        fields[key] = (annotation, ... if info.is_required() else info.default)
    return create_model(model.__name__, __config__=model.model_config, **fields), holder  # type: ignore[call-overload]


def renamed_data(data: Any, path: list[str], new: str) -> Any:
    """Metrics as a renamed producer would write them: the key at `path` under its new name."""
    name, rest = path[0], path[1:]
    if name == "*":
        for value in data.values() if isinstance(data, dict) else data:
            renamed_data(value, rest, new)
    elif not rest:
        data[new] = data.pop(name)
    elif data.get(name) is not None:
        renamed_data(data[name], rest, new)
    return data


def _fast_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about reading metrics: skip drawing (the other report tests check every plot)."""
    for name in ("bars", "intervals", "grouped_bars", "lines", "heatmap", "boxplot"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: b"png")


def test_fixture_builds_valid_metrics_of_every_upstream_stage() -> None:
    built = upstream_metrics()
    assert tuple(built) == UPSTREAM
    for stage, metrics in built.items():
        model = stages.get_stage(stage).metrics
        assert type(metrics) is model
        assert model.model_validate(metrics.model_dump(mode="json")) == metrics  # survives the manifest


@pytest.mark.parametrize(("stage", "path", "readers"), CASES, ids=[f"{s}.{p}" for s, p, _ in CASES])
def test_renamed_metrics_field_breaks_the_report_test(
    stage: str, path: str, readers: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = path.split(".")[-1]
    spec = stages.get_stage(stage)
    renamed, holder = renamed_model(spec.metrics, [p for p in path.split(".") if p != "*"], NEW)

    # 1. The fixture cannot build valid metrics any more: the old name is rejected, by name.
    renamed_holder, _ = renamed_model(holder, [old], NEW)
    with monkeypatch.context() as patch:
        for module in (metrics_fixtures, corpus_fixtures):
            if getattr(module, holder.__name__, None) is holder:
                patch.setattr(module, holder.__name__, renamed_holder)
        with pytest.raises(ValidationError, match=rf"(?s){old}.*Extra inputs are not permitted"):
            upstream_metrics()

    # Metrics written before the rename do not parse either (ctx.metrics validates the manifest).
    with pytest.raises(ValidationError, match=old):
        renamed.model_validate(upstream_metrics()[stage].model_dump(mode="json"))

    # 2. Producer and fixture renamed, the report not: every section that reads the field fails, naming it.
    produced = renamed.model_validate(
        renamed_data(upstream_metrics()[stage].model_dump(mode="json"), path.split("."), NEW)
    )
    monkeypatch.setitem(stages._BY_NAME, stage, dataclasses.replace(spec, metrics=renamed))
    _fast_plots(monkeypatch)
    metrics, ctx = render_report(tmp_path, {stage: produced})  # type: ignore[dict-item]
    failed = dict(f.split(": ", 1) for f in metrics.failed_sections)
    assert set(failed) == readers, metrics.failed_sections
    for error in failed.values():
        assert f"has no attribute '{old}'" in error, error
    assert "This section could not be built: AttributeError" in (ctx.stage_dir / "report.md").read_text()


def test_renaming_helper_keeps_every_other_field() -> None:
    """The simulated rename changes one name and nothing else, so the failures above come from the rename alone."""
    model = stages.get_stage("cpt").metrics
    renamed, holder = renamed_model(model, ["heldout", "loss_after"], NEW)
    assert holder.__name__ == "HeldoutMetrics"
    assert set(renamed.model_fields) == set(model.model_fields)
    inner = next(iter(_models_in(renamed.model_fields["heldout"].annotation)))
    assert set(inner.model_fields) == set(holder.model_fields) - {"loss_after"} | {NEW}
    data = renamed_data(upstream_metrics()["cpt"].model_dump(mode="json"), ["heldout", "*", "loss_after"], NEW)
    assert renamed.model_validate(data).heldout["medical"].renamed_field == 2.587  # type: ignore[attr-defined]
