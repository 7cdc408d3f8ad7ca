"""The corpus stage's contract: what it reads (`CorpusInputs`), its metrics, its place in the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from definemed.corpus.config import CorpusConfig
from definemed.corpus.metrics import CorpusMetrics
from definemed.schema import ModelSpec
from definemed.stage import InputPath, Inputs, Stage, listing, tree_fingerprints

if TYPE_CHECKING:
    from definemed.config import DefinemedConfig


class BenchmarkTask(Inputs):
    """A multiple-choice task as decontamination reads it: its name and local data (None: a hub task, which cannot
    be checked). Its other settings (few-shot count, ...) change no corpus document, so they are not bound."""

    name: str
    path: Path | None = None


class BenchmarkRefs(Inputs):
    """The evaluation data the corpus is decontaminated against (evaluate.mcq.tasks, evaluate.prompts)."""

    tasks: tuple[BenchmarkTask, ...] = ()
    prompts: Path | None = None

    @classmethod
    def of(cls, evaluate: Any) -> BenchmarkRefs:
        """The references of an `evaluate` section (a local task's `path`, an lm-eval task's `data_files`)."""
        return cls(
            tasks=tuple(BenchmarkTask(name=t.name, path=t.path) for t in evaluate.mcq.tasks), prompts=evaluate.prompts
        )


class CorpusInputs(Inputs):
    corpus: CorpusConfig
    seed: int
    # What counts tokens for the statistics and the card: the CPT model (corpus.card.tokenizer null), a hub id or
    # local path, or "whitespace".
    tokenizer: ModelSpec | str
    benchmarks: BenchmarkRefs | None = None

    def fingerprints(self) -> dict[str, Any]:
        found = super().fingerprints()
        found["input_files"] = listing(self.corpus.input.paths, self.corpus.input.glob)
        if self.corpus.labelling is not None:  # prompt templates given as paths
            for lab in self.corpus.labelling.candidates:
                template = getattr(lab, "template", None)
                if template is not None and Path(template).expanduser().is_file():
                    found[f"template:{template}"] = tree_fingerprints(Path(template))
        return found


def bind(cfg: DefinemedConfig) -> CorpusInputs:
    corpus = cfg.corpus
    if corpus.card.tokenizer is not None:
        tokenizer: ModelSpec | str = corpus.card.tokenizer
    else:  # the CPT model's tokenizer: its id and revision (its dtype changes no token count, so it is not bound)
        model = cfg.models[cfg.cpt.model]
        tokenizer = ModelSpec(id=model.id, revision=model.revision)
    decontam = corpus.decontamination is not None and corpus.decontamination.enabled
    benchmarks = BenchmarkRefs.of(cfg.evaluate) if decontam else None
    return CorpusInputs(corpus=corpus, seed=cfg.run.seed, tokenizer=tokenizer, benchmarks=benchmarks)


def _template_missing(name: str) -> bool:
    """A prompt template is a path or a file under assets/prompts/; only a name found in neither is missing."""
    from importlib import resources

    if Path(name).expanduser().is_file():
        return False
    return not resources.files("definemed").joinpath("assets", "prompts", name).is_file()


def paths(cfg: DefinemedConfig) -> list[InputPath]:
    corpus = cfg.corpus
    out = [
        InputPath(f"corpus.input.paths.{i}", Path(p).expanduser())
        for i, p in enumerate(corpus.input.paths)
        if "://" not in p
    ]
    if corpus.labels is not None:
        out.append(InputPath("corpus.labels.path", corpus.labels.path, "file"))
    if corpus.labelling is not None:
        one = corpus.labelling.labeller is not None
        for i, lab in enumerate(corpus.labelling.candidates):
            where = "corpus.labelling.labeller" if one else f"corpus.labelling.labellers.{i}"
            if getattr(lab, "path", None) is not None:
                out.append(InputPath(f"{where}.path", lab.path, "file"))
            elif getattr(lab, "template", None) is not None and _template_missing(lab.template):
                out.append(InputPath(f"{where}.template", Path(lab.template), "file"))
        if corpus.labelling.audit is not None:
            out.append(InputPath("corpus.labelling.audit.gold", corpus.labelling.audit.gold, "file"))
    if corpus.classifier.real_test is not None:
        out.append(InputPath("corpus.classifier.real_test", corpus.classifier.real_test, "file"))
    if corpus.decontamination is not None and corpus.decontamination.enabled:
        out += benchmark_paths(cfg)
    return out


def benchmark_paths(cfg: DefinemedConfig) -> list[InputPath]:
    """The evaluation data files (read by evaluate, by corpus decontamination and by the merge sweep)."""
    ev = cfg.evaluate
    out = [
        InputPath(f"evaluate.mcq.tasks.{i}.{'path' if task.kind == 'local' else 'data_files'}", task.path)
        for i, task in enumerate(ev.mcq.tasks)
        if task.path is not None
    ]
    if ev.prompts is not None:
        out.append(InputPath("evaluate.prompts", ev.prompts))
    return out


STAGE = Stage(
    name="corpus",
    help="build the medical corpus (datatrove): read, language, quality, medical classifier, dedup, "
    "decontamination, dataset card",
    upstream=(),
    resumable=True,
    section="corpus",
    config=CorpusConfig,
    bind=bind,
    metrics=CorpusMetrics,
    run="definemed.corpus.stage:run",
    report_section="definemed.report.sections.corpus:section",
    paths=paths,
)
