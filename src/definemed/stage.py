"""The stage contract: what a stage declares, what it may read, what it returns (ADR 0007).

A stage package declares one `Stage`: its name, the stages it reads, whether an interrupted attempt resumes, its
config section type, `bind(root) -> Inputs` (a frozen object holding everything the stage may read), its
`Metrics` model and `run(inputs, ctx) -> StageResult`. The runner keys a stage on exactly its bound inputs, the
fingerprints of the files they name and the run ids of the upstream executions, so a setting the stage reads
can never be missing from its key, and one it does not read can never rerun it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from definemed.artifacts import file_sha256

M = TypeVar("M", bound="Metrics")

# Files under this size are fingerprinted by content; larger ones (checkpoints, corpora) by size and mtime.
DIGEST_MAX_BYTES = 64 << 20


class Inputs(BaseModel):
    """Everything a stage may read, bound from the root config. Frozen: a stage cannot change its own key."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def fingerprints(self) -> dict[str, Any]:
        """Content fingerprints of the local files these inputs name: every `Path` value and every model given as a
        local folder, walked recursively.
        Stages with inputs that are not `Path` values (corpus shards named as strings) extend this."""
        found: dict[str, Any] = {}
        _walk_paths(self, found)
        return found


class Metrics(BaseModel):
    """A stage's metrics: stored in its manifest, read back as attributes (`ctx.metrics("corpus").docs_kept`).
    Unknown keys are errors, so a renamed field breaks its readers' tests instead of showing a silent 'n/a'. Nested
    blocks of a stage's metrics subclass it too."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


@dataclass
class StageResult(Generic[M]):
    """What a stage returns: output paths (relative to its folder) and its metrics."""

    outputs: dict[str, str] = field(default_factory=dict)
    metrics: M | dict[str, Any] = field(default_factory=dict)


@dataclass
class StageContext:
    """Where a stage works and what it may read besides its inputs: its folder, the finished upstream stages."""

    run_dir: Path
    stage: str
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_name: str = "definemed"

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / self.stage

    def input_dir(self, stage: str) -> Path:
        """Folder of a finished upstream stage; error if it is not declared or not finished."""
        if stage not in self.upstream:
            raise RuntimeError(f"stage '{self.stage}' reads '{stage}', which is not one of its finished inputs")
        return self.run_dir / stage

    def input_path(self, stage: str, output: str) -> Path:
        outputs = self.upstream[stage].get("outputs", {}) if stage in self.upstream else {}
        if output not in outputs:
            raise RuntimeError(f"stage '{stage}' has no output named '{output}' (has: {sorted(outputs)})")
        return self.input_dir(stage) / outputs[output]

    def outputs(self, stage: str) -> dict[str, str]:
        self.input_dir(stage)
        return dict(self.upstream[stage].get("outputs", {}))

    def metrics(self, stage: str) -> Any:
        """The typed metrics of a finished upstream stage."""
        from definemed.stages import get_stage

        self.input_dir(stage)
        return get_stage(stage).metrics.model_validate(self.upstream[stage].get("metrics", {}))


@dataclass(frozen=True)
class InputPath:
    """A local input a stage reads, checked before any stage runs: config field, path, 'file' | 'dir' | 'any'."""

    field: str
    path: Path
    kind: str = "any"


@dataclass(frozen=True)
class Stage:
    """One pipeline stage. `run` is an import string ("pkg.module:function") so the CLI never imports torch."""

    name: str
    help: str
    upstream: tuple[str, ...]
    resumable: bool
    section: str  # the root config's key of this stage's section
    config: type[BaseModel]
    bind: Callable[[Any], Inputs]
    metrics: type[Metrics]
    run: str
    # Cross-section checks on the root config (names that must exist elsewhere); raise ValueError.
    check: Callable[[Any], None] | None = None
    # Local inputs that must exist before the stage runs.
    paths: Callable[[Any], list[InputPath]] | None = None
    # Its section of the report: an import string of `builder(report_inputs, ctx) -> Section`, in stage order.
    report_section: str | None = None

    def load_report_section(self) -> Callable[[Any, StageContext], Any] | None:
        from definemed import registry

        return None if self.report_section is None else registry.load_object(self.report_section)

    def load_run(self) -> Callable[[Any, StageContext], StageResult]:
        from definemed import registry

        if self.name in registry.names("stage"):  # a test or plugin replaced this stage's work
            return registry.get("stage", self.name)
        return registry.load_object(self.run)


# ------------------------------------------------------------------------------------------- fingerprints
def file_fingerprint(path: Path) -> str | list[int] | None:
    """sha256 of a small file, (size, mtime) of a large one, None if it does not exist."""
    if not path.is_file():
        return None
    st = path.stat()
    return file_sha256(path) if st.st_size <= DIGEST_MAX_BYTES else [st.st_size, st.st_mtime_ns]


def tree_fingerprints(path: Path) -> dict[str, Any] | str | list[int] | None:
    """Fingerprint of a file, or of every file under a folder (sorted)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return {str(f.relative_to(path)): file_fingerprint(f) for f in sorted(path.rglob("*")) if f.is_file()}
    return file_fingerprint(path)


def listing(paths: list[str], glob: str) -> dict[str, list[int]]:
    """Cheap fingerprint of local input shards (size, mtime): hashing terabytes of parquet is not an option."""
    out: dict[str, list[int]] = {}
    for p in paths:
        if "://" in p:
            continue
        root = Path(p).expanduser()
        files = sorted(root.glob(glob)) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                st = f.stat()
                out[str(f)] = [st.st_size, st.st_mtime_ns]
    return out


def _walk_paths(obj: Any, found: dict[str, Any]) -> None:
    from definemed.schema import ModelSpec

    if isinstance(obj, ModelSpec) and "://" not in obj.id and Path(obj.id).expanduser().is_dir():
        # A model given as a local folder: retraining it in place must rerun the stages that read it.
        _walk_paths(Path(obj.id).expanduser(), found)
        return
    if isinstance(obj, Path):
        key = str(obj)
        if key not in found:
            found[key] = tree_fingerprints(obj)
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            _walk_paths(getattr(obj, name), found)
    elif isinstance(obj, dict):
        for value in obj.values():
            _walk_paths(value, found)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _walk_paths(value, found)
