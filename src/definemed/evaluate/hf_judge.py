"""A local transformers model as pairwise judge, with the same German template as the LLM judge.

Two ways to read a verdict:
- `logprob` (default): after the filled template (in the model's chat template, if it has one) and the start of
  the answer line "Urteil: ", compare the log-probabilities of the three verdicts [[A]], [[B]], [[C]]. The most
  likely one wins; A and B closer than `tie_margin` count as a tie. Always a valid verdict, no parsing, no
  reasoning text: cheap, and the way to get a judge out of a small local model.
- `generate`: greedy decoding of the full reply, read by the strict parser (`parse_verdict`); unparseable replies
  are 'invalid', as for the LLM judge.
Replies are cached like the LLM judge's (key: judge model, method, template, decoding settings, both answers and
their order). The model is loaded on the first cache miss, so a fully cached rerun never loads it.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from definemed.evaluate.config import HfJudgeConfig
from definemed.evaluate.verdicts import (
    JudgeItem,
    Verdict,
    VerdictCache,
    Winner,
    load_template,
    parse_verdict,
    render,
)
from definemed.schema import stable_hash

CACHE_FILE = "judge_cache.jsonl"
ANSWER_PREFIX = "Urteil: "
VERDICT_TEXT: dict[Winner, str] = {"A": "[[A]]", "B": "[[B]]", "tie": "[[C]]"}


class HfJudge:
    kind = "hf"

    def __init__(self, config: HfJudgeConfig, workdir: Path | None = None) -> None:
        self.config = config
        self.model = config.model
        self.template = load_template(config.template)
        self.cache = VerdictCache(Path(workdir) / CACHE_FILE if workdir is not None else None)
        self._lm: Any = None
        self._tok: Any = None

    def cache_key(self, item: JudgeItem) -> str:
        c = self.config
        return stable_hash(
            {
                "kind": "hf",
                "model": c.model,
                "method": c.method,
                "template": self.template,
                "tie_margin": c.tie_margin,
                "max_new_tokens": c.max_new_tokens,
                "prompt": item.prompt,
                "reference": item.reference,
                "answer_a": item.answer_a,
                "answer_b": item.answer_b,
                "order": "a_shown_first",
            }
        )

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from definemed import models

        path = models.resolve(self.config.model)
        dtype = self.config.dtype if self.config.dtype == "auto" else getattr(torch, self.config.dtype)
        self._tok = AutoTokenizer.from_pretrained(path)
        if self._tok.pad_token_id is None:
            self._tok.pad_token = self._tok.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self._lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()

    def prompt_text(self, item: JudgeItem) -> str:
        """The judge's input: the filled template as a user turn (chat template if any), then the answer start."""
        content = render(self.template, item)
        if getattr(self._tok, "chat_template", None):
            text = self._tok.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = content + "\n"
        return text + ANSWER_PREFIX if self.config.method == "logprob" else text

    def _ids(self, text: str) -> list[int]:
        # The chat template already carries BOS where the model wants one.
        return self._tok(text, add_special_tokens=not getattr(self._tok, "chat_template", None))["input_ids"]

    def _logprob_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        """Sum of log-probabilities of each verdict's tokens after the prompt; three sequences per item."""
        import torch

        seqs, spans = [], []
        for item in items:
            context = self._ids(self.prompt_text(item))
            for text in VERDICT_TEXT.values():
                cont = self._tok(text, add_special_tokens=False)["input_ids"]
                seqs.append(context + cont)
                spans.append((len(context), len(cont)))
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self._tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(seqs):  # right padding: positions stay those of the unpadded sequence
            ids[row, : len(seq)], mask[row, : len(seq)] = torch.tensor(seq), 1
        with torch.inference_mode():
            logits = self._lm(input_ids=ids.to(self._lm.device), attention_mask=mask.to(self._lm.device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        scores = [
            float(sum(logp[r, start + k - 1, seqs[r][start + k]] for k in range(n)))
            for r, (start, n) in enumerate(spans)
        ]
        return [self._decide(scores[3 * i : 3 * i + 3]) for i in range(len(items))]

    def _decide(self, scores: list[float]) -> Verdict:
        a, b, c = scores
        best: Winner = max(zip(VERDICT_TEXT, scores, strict=True), key=lambda kv: kv[1])[0]
        if best != "tie" and abs(a - b) < self.config.tie_margin:
            best = "tie"
        return Verdict(winner=best, raw=f"logprob A={a:.4f} B={b:.4f} C={c:.4f}")

    def _generate_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        import torch

        self._tok.padding_side = "left"
        enc = self._tok(
            [self.prompt_text(i) for i in items],
            return_tensors="pt",
            padding=True,
            add_special_tokens=not getattr(self._tok, "chat_template", None),
        ).to(self._lm.device)
        with torch.inference_mode():
            out = self._lm.generate(
                **enc,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self._tok.pad_token_id,
            )
        texts = self._tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [Verdict(winner=parse_verdict(t), raw=t) for t in texts]

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        """Verdicts in input order; cache misses are judged in batches of `batch_size`."""
        keys = [self.cache_key(i) for i in items]
        verdicts: list[Verdict | None] = []
        for key in keys:
            hit = self.cache.get(key)
            verdicts.append(None if hit is None else Verdict(winner=hit["winner"], raw=hit["raw"], cached=True))
        misses = [i for i, v in enumerate(verdicts) if v is None]
        if misses and self._lm is None:
            self._load()
        step = self._logprob_batch if self.config.method == "logprob" else self._generate_batch
        size = self.config.batch_size
        for start in range(0, len(misses), size):
            idx = misses[start : start + size]
            for i, verdict in zip(idx, step([items[i] for i in idx]), strict=True):
                verdicts[i] = verdict
                self.cache.put({"key": keys[i], "model": self.model, "raw": verdict.raw, "winner": verdict.winner})
        return [v for v in verdicts if v is not None]

    def close(self) -> None:
        """Release the weights."""
        self._lm = None
        gc.collect()
