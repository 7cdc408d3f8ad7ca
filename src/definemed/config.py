"""The root config: it only composes the stages' sections (each defined in its stage package) and loads YAML.

Loading reads the file with line numbers (`yamlio`), applies command-line overrides, validates, and turns a
pydantic error into one message per field that names the key path and its line. Cross-section checks (a name
under `models:` that a stage refers to) and the local input paths come from each `Stage` (`definemed.stages`).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError, model_validator

from definemed.analyze.config import AnalyzeConfig
from definemed.corpus.config import CorpusConfig
from definemed.evaluate.config import EvaluateConfig
from definemed.merge.config import MergeConfig, SlerpMergeConfig
from definemed.report.config import ReportConfig
from definemed.schema import ModelSpec, OpenKind, PlanConfig, RunConfig, SafeName, SectionError, Strict, kind_of
from definemed.stage import InputPath
from definemed.train.config import CptConfig
from definemed.yamlio import ConfigError, Lines, apply_overrides, load_yaml_file

# Root keys that are not a stage's section.
COMMON_SECTIONS = ("run", "models", "plan")


class DefinemedConfig(Strict):
    run: RunConfig = RunConfig()
    models: dict[SafeName, ModelSpec]
    plan: PlanConfig = PlanConfig()
    corpus: CorpusConfig
    cpt: CptConfig = CptConfig()
    merge: MergeConfig = SlerpMergeConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    analyze: AnalyzeConfig = AnalyzeConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _cross_section_checks(self) -> DefinemedConfig:
        from definemed.stages import STAGES

        for stage in STAGES:
            if stage.check is not None:
                stage.check(self)
        return self


# ------------------------------------------------------------------------------------------- error messages
def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(bare type, Annotated metadata) of an annotation."""
    metadata: list[Any] = []
    while get_origin(annotation) is typing.Annotated:
        annotation, *extra = get_args(annotation)
        metadata += extra
    return annotation, metadata


def _union_members(annotation: Any, metadata: list[Any]) -> dict[str, Any] | None:
    """tag -> member type when the annotation is a `kind:` union (open or closed), else None."""
    from definemed import registry

    for meta in metadata:
        if isinstance(meta, OpenKind):
            return registry.config_models(meta.family)
    if get_origin(annotation) in (Union, types.UnionType):
        members = {}
        for arg in get_args(annotation):
            bare, meta = _unwrap(arg)
            tags = [m.tag for m in meta if isinstance(m, Tag)]
            if tags:
                members[tags[0]] = bare
            elif isinstance(bare, type) and issubclass(bare, BaseModel) and "kind" in bare.model_fields:
                members[kind_of(bare)] = bare
            members[getattr(bare, "__name__", str(bare))] = bare
        return members
    return None


def _step(annotation: Any, part: Any) -> tuple[Any, bool]:
    """Follow one element of a pydantic error location: (next annotation, whether the element was a union tag)."""
    bare, metadata = _unwrap(annotation)
    members = _union_members(bare, metadata)
    if members is not None:
        if str(part) in members:
            return members[str(part)], True
        # An Optional[...] or a union without a tag in the location: step into the member that has this key.
        for member in (a for a in get_args(bare) if a is not type(None)):
            found, _ = _step(member, part)
            if found is not None:
                return found, False
        return None, False
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        field = bare.model_fields.get(str(part))
        if field is None:
            return None, False
        return (typing.Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation), False
    if get_origin(bare) in (list, tuple) and isinstance(part, int):
        args = get_args(bare)
        return (args[0] if args else None), False
    if get_origin(bare) is dict:
        return get_args(bare)[1], False
    return None, False


def key_path(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> tuple[str, ...]:
    """The YAML key path of a pydantic error location: union tags (a judge's `openai`, a model named `local`
    stays) are told apart by walking the schema, not by a list of known tag names."""
    annotation: Any = root or DefinemedConfig
    out = []
    for part in loc:
        annotation, is_tag = _step(annotation, part) if annotation is not None else (None, False)
        if not is_tag:
            out.append(str(part))
    return tuple(out)


def format_validation_error(
    exc: ValidationError, source: str, lines: Lines, origins: dict[tuple[str, ...], str] | None = None
) -> str:
    errors = []
    for err in exc.errors():
        nested = err.get("ctx", {}).get("error")
        if isinstance(nested, SectionError):  # a hand-validated sub-section: its errors, each at its own path
            errors += [{**inner, "loc": (*err["loc"], nested.key, *inner["loc"])} for inner in nested.errors]
        else:
            errors.append(err)
    parts = [f"{source}: invalid configuration ({len(errors)} error(s))"]
    for err in errors:
        path = key_path(tuple(err["loc"]))
        field = ".".join(path) or "<root>"
        line = next((n for cut in range(len(path), 0, -1) if (n := lines.get(path[:cut]))), None)
        where = f" (line {line})" if line else ""
        override = next((item for cut in range(len(path), 0, -1) if (item := (origins or {}).get(path[:cut]))), None)
        if override is not None:
            where = f" (from the command line: '{override}')"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            msg = (
                f"unknown kind '{ctx.get('tag')}'; known kinds: {ctx.get('expected_tags')} (a plugin's kind needs "
                "its module in DEFINEMED_PLUGINS)"
            )
        parts.append(f"  {field}{where}: {msg}")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------- loading
def resolve_paths(cfg: DefinemedConfig, base: Path) -> DefinemedConfig:
    """Make relative file paths absolute against `base` (the working directory by convention)."""
    return DefinemedConfig.model_validate(_absolutize(cfg.model_dump(), base))


def _absolutize(obj: Any, base: Path) -> Any:
    if isinstance(obj, dict):
        return {k: _absolutize(v, base) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_absolutize(v, base) for v in obj]
    if isinstance(obj, Path) and not obj.is_absolute():
        return (base / obj).resolve()
    return obj


def validate_config(
    data: Any, source: str = "config", lines: Lines | None = None, origins: dict[tuple[str, ...], str] | None = None
) -> DefinemedConfig:
    """Validate a parsed config mapping; errors name field and line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections")
    try:
        return DefinemedConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, lines or {}, origins)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> DefinemedConfig:
    """Load, override and validate a config file. Relative paths resolve against the working directory."""
    data, lines = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    origins: dict[tuple[str, ...], str] = {}
    data = apply_overrides(data, list(overrides or []), origins)
    return resolve_paths(validate_config(data, str(path), lines, origins), Path.cwd())


# ------------------------------------------------------------------------------------------- input paths
def input_paths(cfg: DefinemedConfig) -> list[tuple[str, InputPath]]:
    """Every local input the config names, with the stage that reads it (from each stage's `paths`)."""
    from definemed.stages import STAGES

    return [(stage.name, p) for stage in STAGES if stage.paths is not None for p in stage.paths(cfg)]


def check_paths(cfg: DefinemedConfig, source: str | Path = "config", stages: set[str] | None = None) -> None:
    """Fail before any work when a local input the config names is missing (only those `stages` read)."""
    problems, seen = [], set()
    for stage, item in input_paths(cfg):
        if (stages is not None and stage not in stages) or item.field in seen:
            continue
        seen.add(item.field)
        path = Path(item.path).expanduser()
        if not path.exists():
            problems.append(f"  {item.field}: {path} does not exist")
        elif item.kind == "file" and not path.is_file():
            problems.append(f"  {item.field}: {path} is not a file")
        elif item.kind == "dir" and not path.is_dir():
            problems.append(f"  {item.field}: {path} is not a folder")
    if problems:
        raise ConfigError(
            f"{source}: {len(problems)} input path(s) missing (fix the config or create them)\n" + "\n".join(problems)
        )
