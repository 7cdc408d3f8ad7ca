"""Building blocks of every config section: strict models, safe names, `kind:` unions, model references.

Every model forbids unknown keys, so `treshold:` fails instead of silently keeping a default. Pluggable parts are
unions discriminated on `kind:`. A *closed* union (`kind_union`) lists its members in code; an *open* one
(`OpenKind`) is built from the registry, so a plugin that registers a judge, labeller, executor or merge method
with its config model extends the schema (`registry.register(..., config=Model)` rebuilds the models).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

# A config name that becomes a file or folder name (models, labellers): one plain path component, bounded.
SAFE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")


def check_safe_name(name: str) -> str:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ValueError(
            f"name {name!r} is not a safe name: use 1-64 letters, digits, '-', '_' or '.', not starting "
            "with '.' (it becomes a file name)"
        )
    return name


SafeName = Annotated[str, AfterValidator(check_safe_name)]


def _number_field(annotation: Any) -> bool:
    """True for int/float fields (alone, optional, or lists of them) that do not also accept a bool."""
    args = get_args(annotation) or (annotation,)
    if bool in args:
        return False
    return any(a in (int, float) or (get_origin(a) is list and _number_field(get_args(a)[0])) for a in args)


class Strict(BaseModel):
    # allow_inf_nan=False: `.inf` / `.nan` are never a sensible learning rate, weight or count.
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)
    # Every config model in definition order: `rebuild_models` rebuilds them when the registry grows.
    _all: ClassVar[list[type[Strict]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Strict._all.append(cls)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `true` as 1: `max_steps: true` would silently train one step.
        if isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v)):
            field = cls.model_fields.get(info.field_name or "")
            if field is not None and _number_field(field.annotation):
                raise ValueError(f"expected a number, got a boolean ({str(v).lower()})")
        return v


def kind_of(model: type[BaseModel]) -> str:
    """The `kind:` literal a union member answers to."""
    return get_args(model.model_fields["kind"].annotation)[0]


def kind_union(*members: type[BaseModel], default: str) -> Any:
    """A union discriminated on `kind:`, where a section that omits `kind` gets `default`."""

    def tag(value: Any) -> str:
        return value.get("kind", default) if isinstance(value, dict) else getattr(value, "kind", default)

    tagged = tuple(Annotated[m, Tag(kind_of(m))] for m in members)
    return Annotated[Union[tagged], Discriminator(tag)]  # noqa: UP007 - Union[] of a runtime tuple


class OpenKind:
    """Annotation marker: the `kind:` union of every config model registered for a registry family.

    `judge: Annotated[JudgeSettings, OpenKind("judge", default="reference")]`. The union is built when the model's
    schema is built, and again after `registry.register(..., config=...)` adds a member.
    """

    def __init__(self, family: str, default: str) -> None:
        self.family, self.default = family, default

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from definemed import registry

        members = registry.config_models(self.family)
        if not members:
            raise RuntimeError(f"no config model registered for the '{self.family}' family")
        return handler.generate_schema(kind_union(*members.values(), default=self.default))


class RegisteredName:
    """Annotation marker: a string that must name a registered component of `family` (checked at validation)."""

    def __init__(self, family: str) -> None:
        self.family = family

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        family = self.family

        def check(value: str) -> str:
            from definemed import registry

            known = registry.names(family)
            if value not in known:
                raise PydanticCustomError(
                    "unknown_kind",
                    "'{value}' is not a registered {family}; registered: {known}",
                    {"value": value, "family": family, "known": ", ".join(known)},
                )
            return value

        return core_schema.no_info_after_validator_function(check, core_schema.str_schema())


def open_union(family: str, *builtins: type[BaseModel], default: str) -> Any:
    """An open `kind:` union of a registry family: the built-in members are attached to the registry here, and a
    plugin's `register(family, name, obj, config=Model)` adds its own."""
    from definemed import registry

    for model in builtins:
        registry.attach_config(family, kind_of(model), model)
    return Annotated[Union[builtins], OpenKind(family, default=default)]  # noqa: UP007 - Union[] of a runtime tuple


class SectionError(ValueError):
    """A sub-section validated by hand inside a validator (a plugin classifier's parameters): keeps the inner
    errors so the config loader reports each one with its full key path and line."""

    def __init__(self, key: str, error: ValidationError) -> None:
        self.key, self.errors = key, error.errors()
        super().__init__("; ".join(f"{key}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in self.errors))


def rebuild_models() -> None:
    """Rebuild every config model (children first: definition order), so open unions see new registrations."""
    for model in Strict._all:
        model.model_rebuild(force=True)


def stable_hash(obj: Any) -> str:
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


# -------------------------------------------------------------------------------------- sections of the root
class RunConfig(Strict):
    name: str = "definemed"
    run_dir: Path = Path("runs/default")
    seed: int = 0

    @field_validator("run_dir", mode="before")
    @classmethod
    def _run_dir_not_blank(cls, v: Any) -> Any:
        # Path("") is the working directory: an unset shell variable must not turn the cwd into the run folder.
        if isinstance(v, str) and not v.strip():
            raise ValueError("run.run_dir is empty; give a folder for the run's outputs (e.g. runs/demo)")
        return v


class ModelSpec(Strict):
    """A model by hub id or local path. Bundled ids (see `definemed models`) resolve offline."""

    id: str
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


class PlanConfig(Strict):
    """Knobs that only feed `definemed plan`'s estimates; no stage reads them, so changing them reruns nothing."""

    mfu: float = Field(0.4, gt=0, le=1, description="assumed model FLOPs utilisation of CPT")
    gpu_peak_tflops: float = Field(989.0, gt=0, description="dense bf16 peak per GPU (H100 SXM)")
