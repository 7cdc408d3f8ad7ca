"""Fast proxy scores for merge-sweep candidates: cheap stand-ins for the evaluate and analyze stages.

- `mcq_acc`: accuracy on a dev split of a local multiple-choice task (the `mcq_limit` questions with the lowest
  id hashes, so the split does not depend on file order), through the evaluate stage's lm-eval runner.
- `medical_loss` / `general_loss` (+ `_ppl`): next-token loss on the CPT stage's held-out documents, rebuilt from
  the corpus outputs with the same id-hash split and packing the cpt stage uses (`definemed.train.data`).
- `mixing_rate`: share of answers to the first `prompts` open prompts with at least one line that language ID
  puts in another language than `analyze.expected_language` (the analyze stage's line-level rule).

What the proxies read of other sections is bound in `contract.SweepInputs`, nothing else.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from definemed.artifacts import read_jsonl, write_jsonl
from definemed.evaluate.config import HfGenerationConfig
from definemed.merge.config import SweepProxyConfig
from definemed.merge.contract import SweepInputs
from definemed.runfolder import safe_join
from definemed.stage import StageContext
from definemed.train.config import CptConfig
from definemed.train.monitor import perplexity

logger = logging.getLogger("definemed")

PROXY_FIELDS = ("mcq_acc", "medical_loss", "medical_ppl", "general_loss", "general_ppl", "mixing_rate")


def _id_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(str(row.get("id") or row.get("question")).encode("utf-8")).hexdigest()


def write_dev_split(task_path: Path, limit: int, target: Path) -> list[str]:
    """The `limit` questions of a local task (a JSONL file or folder of them) with the lowest id hashes."""
    path = Path(task_path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    rows = sorted((r for f in files for r in read_jsonl(f)), key=_id_hash)[:limit]
    if not rows:
        raise ValueError(f"merge.sweep.proxy.mcq_task: no questions in {task_path}")
    write_jsonl(target, rows)
    return [str(r.get("id")) for r in rows]


class ProxyScorer:
    """Scores candidate folders one after another; the dev split, prompts and held-out data are built once."""

    def __init__(
        self, inputs: SweepInputs, proxy: SweepProxyConfig, seed: int, ctx: StageContext, work_dir: Path
    ) -> None:
        self.inputs, self.proxy, self.seed, self.ctx, self.work_dir = inputs, proxy, seed, ctx, work_dir
        self.dev_ids: list[str] = []
        self.mcq = self._dev_mcq_config() if inputs.mcq is not None else None
        self.prompts = self._prompts()
        self._heldout: dict[str, Any] | None = None

    def _dev_mcq_config(self) -> Any:
        """evaluate.mcq reduced to the dev split of the proxy's task (the only task bound)."""
        assert self.inputs.mcq is not None
        (task,) = self.inputs.mcq.tasks
        dev_file = safe_join(self.work_dir / "dev", task.name, ".jsonl")
        self.dev_ids = write_dev_split(task.path, self.proxy.mcq_limit, dev_file)
        return self.inputs.mcq.model_copy(update={"tasks": [task.model_copy(update={"path": dev_file})]})

    def _prompts(self) -> list[str]:
        if self.inputs.prompts is None:
            return []
        return [r["prompt"] for r in read_jsonl(self.inputs.prompts)[: self.proxy.prompts]]

    def score(self, model_dir: Path, name: str) -> dict[str, float | None]:
        """Every proxy for one candidate (None where switched off or without data)."""
        from definemed.evaluate.generate import HfGenerator

        scores: dict[str, float | None] = dict.fromkeys(PROXY_FIELDS)
        if self.mcq is not None:
            from definemed.evaluate.mcq import evaluate_mcq
            from definemed.evaluate.resolve import ModelRef

            result = evaluate_mcq(ModelRef(name, str(model_dir)), self.mcq, self.work_dir / "mcq", self.seed)
            scores["mcq_acc"] = float(result["tasks"][self.proxy.mcq_task]["acc"])
        generator = HfGenerator(
            str(model_dir),
            HfGenerationConfig(
                max_new_tokens=self.proxy.max_new_tokens,
                batch_size=max(1, len(self.prompts)),
                system_prompt=self.inputs.system_prompt,
            ),
            seed=self.seed,
        )
        try:
            if self.proxy.heldout_blocks > 0:
                for split, loss in self._losses(generator.model, generator.tokenizer).items():
                    scores[f"{split}_loss"], scores[f"{split}_ppl"] = loss, perplexity(loss)
            if self.prompts:
                answers = [g.text for g in generator.generate(self.prompts, desc=f"sweep {name}")]
                scores["mixing_rate"] = mixing_rate(answers, self.inputs)
        finally:
            generator.close()
        return scores

    def _losses(self, model: Any, tokenizer: Any) -> dict[str, float | None]:
        if self._heldout is None:
            self._heldout = self._build_heldout(model, tokenizer)
        return {split: heldout_loss(model, blocks) for split, blocks in self._heldout.items()}

    def _build_heldout(self, model: Any, tokenizer: Any) -> dict[str, Any]:
        """The cpt stage's held-out split of the corpus outputs, at most `heldout_blocks` blocks per split."""
        from definemed.train.data import build_heldout
        from definemed.train.packing import resolve_packing_mode

        bound = self.inputs
        cpt = CptConfig(
            block_size=bound.block_size,
            heldout_fraction=bound.heldout_fraction,
            packing=bound.packing,
            eval_max_blocks=self.proxy.heldout_blocks,
        )
        mode = resolve_packing_mode(cpt.packing.mode, model)
        outputs = self.ctx.outputs("corpus")
        sets = {}
        for split in ("medical", "general"):
            if split in outputs:
                sets[split] = build_heldout(split, self.ctx.input_path("corpus", split), cpt, tokenizer, mode).blocks
            else:
                logger.warning("[merge] sweep: the corpus stage has no '%s' output; %s_loss is skipped", split, split)
        return sets


def heldout_loss(model: Any, blocks: list[dict[str, Any]]) -> float | None:
    """Mean over blocks of each block's mean next-token loss (the Trainer's figure for equal-length blocks)."""
    import torch

    if not blocks:
        return None
    device = next(model.parameters()).device
    losses = []
    with torch.inference_mode():
        for block in blocks:
            batch = {k: torch.as_tensor(v)[None].to(device) for k, v in block.items()}
            # No KV cache: with it transformers skips the packed-document mask that position ids ask for.
            losses.append(float(model(**batch, use_cache=False).loss))
    return round(sum(losses) / len(losses), 6)


def mixing_rate(answers: list[str], an: SweepInputs) -> float | None:
    """Share of answers with a kept line whose language is not the expected one (analyze stage's rule, with
    the analyze settings bound in `an`)."""
    from definemed.analyze.langid import identify, split_lines

    per_answer = [[line for line, _ in split_lines(a, an.min_line_tokens)] for a in answers]
    langs = iter(identify([line for lines in per_answer for line in lines]))
    mixed = 0
    for lines in per_answer:
        found = [next(langs) for _ in lines]
        mixed += any(lang != an.expected_language and score > an.lid_threshold for lang, score in found)
    return round(mixed / len(answers), 6) if answers else None
