"""The pipeline: the list of `Stage` objects, in order. Names, order, dependencies, the root config's sections and
the CLI's per-stage commands all derive from this list."""

from __future__ import annotations

from definemed.analyze.contract import STAGE as ANALYZE
from definemed.corpus.contract import STAGE as CORPUS
from definemed.evaluate.contract import STAGE as EVALUATE
from definemed.merge.contract import STAGE as MERGE
from definemed.report.contract import STAGE as REPORT
from definemed.stage import Stage
from definemed.train.contract import STAGE as CPT

STAGES: tuple[Stage, ...] = (CORPUS, CPT, MERGE, EVALUATE, ANALYZE, REPORT)
NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
_BY_NAME = {s.name: s for s in STAGES}


def get_stage(name: str) -> Stage:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no stage named '{name}'; stages are {list(NAMES)}") from None


def upstream_closure(name: str) -> set[str]:
    """Every stage `name` reads, directly or through another stage."""
    found: set[str] = set()
    for dep in get_stage(name).upstream:
        found |= {dep} | upstream_closure(dep)
    return found


def downstream(name: str) -> set[str]:
    return {s.name for s in STAGES if name in upstream_closure(s.name)}


def _check_order() -> None:
    for i, stage in enumerate(STAGES):
        late = [d for d in stage.upstream if d not in NAMES[:i]]
        if late:
            raise RuntimeError(f"stage '{stage.name}' reads {late}, which do not come before it")


_check_order()
