"""Scoring labeller on a local transformers causal LM: P(medical) from the log-probability of two answer words.

The prompt is the rubric plus the `yesno` answer section, wrapped in the model's chat template when it has one.
Each answer word is scored with its capitalised variant as well ("ja" + "Ja"), summing their probabilities, so
the verdict does not hinge on casing. P(medical) = p(positive) / (p(positive) + p(negative)). Sequences are
left-padded so that only the last few positions need logits (`logits_to_keep`), which keeps memory flat for
large vocabularies. This backend yields `medical` and `p_medical` only; `edu_score` and `subdomain` stay None.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from definemed.corpus.labelling.prompts import load_template, render
from definemed.corpus.labelling.schema import DocLabels, Document, LabelResult
from definemed.corpus.labelling.settings import HfLabellerSettings

logger = logging.getLogger("definemed")


def word_variants(word: str) -> list[str]:
    """The word as given and capitalised, without duplicates."""
    return list(dict.fromkeys([word, word[:1].upper() + word[1:]]))


def sigmoid(x: float) -> float:
    """1 / (1 + e^-x) without overflow for large |x|."""
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    z = math.exp(x)
    return z / (1 + z)


class HfLabeller:
    backend = "hf"
    parser = "logprob"

    def __init__(self, settings: HfLabellerSettings) -> None:
        self.settings = settings
        self.template = load_template(settings.template, "yesno")
        self._model: Any = None
        self._tokenizer: Any = None

    def identity(self) -> dict[str, Any]:
        s = self.settings
        return {
            "backend": self.backend,
            "model": s.model,
            "template": self.template,
            "positive": s.positive,
            "negative": s.negative,
            "threshold": s.threshold,
            "max_doc_chars": s.max_doc_chars,
            "dtype": s.dtype,
        }

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from definemed.models import resolve

        path = resolve(self.settings.model)
        dtype = "auto" if self.settings.dtype == "auto" else getattr(torch, self.settings.dtype)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.settings.device).eval()

    def _prompt_ids(self, text: str) -> list[int]:
        tok = self._tokenizer
        prompt = render(self.template, text, self.settings.max_doc_chars)
        if tok.chat_template:
            chat = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return tok(chat, add_special_tokens=False)["input_ids"]  # the template places BOS itself
        return tok(prompt.rstrip() + "\n")["input_ids"]

    def _word_ids(self) -> tuple[list[list[int]], int]:
        """Token ids of all answer variants (positive ones first) and how many are positive."""
        pos, neg = word_variants(self.settings.positive), word_variants(self.settings.negative)
        ids = [self._tokenizer(w, add_special_tokens=False)["input_ids"] for w in pos + neg]
        return ids, len(pos)

    def _variant_logprobs(self, prompts: list[list[int]], words: list[list[int]]) -> Any:
        """log p(word | prompt) for every prompt and answer variant: tensor [n_prompts, n_words]."""
        import torch

        single = all(len(w) == 1 for w in words)  # one pass over the prompt suffices
        seqs = prompts if single else [p + w for p in prompts for w in words]
        keep = 1 if single else max(len(w) for w in words) + 1
        width = max(map(len, seqs))
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=self._model.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self._model.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self._model(
            input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
        ).logits.float()
        logp = torch.log_softmax(logits, dim=-1)  # [len(seqs), keep, vocab]
        if single:
            return logp[:, -1, [w[0] for w in words]]
        out = torch.empty(len(seqs), device=logp.device)
        for i, word in enumerate(words * len(prompts)):  # seqs are ordered prompt-major
            steps = torch.arange(keep - len(word) - 1, keep - 1, device=logp.device)
            out[i] = logp[i, steps, torch.tensor(word, device=logp.device)].sum()
        return out.view(len(prompts), len(words))

    def _results(self, docs: Sequence[Document]) -> list[LabelResult]:
        import torch

        words, n_pos = self._word_ids()
        prompts = [self._prompt_ids(d.text) for d in docs]
        with torch.inference_mode():
            logprobs = self._variant_logprobs(prompts, words)
        pos = torch.logsumexp(logprobs[:, :n_pos], dim=-1).tolist()
        neg = torch.logsumexp(logprobs[:, n_pos:], dim=-1).tolist()
        results = []
        for doc, prompt, lp_pos, lp_neg in zip(docs, prompts, pos, neg, strict=True):
            p = sigmoid(lp_pos - lp_neg)
            raw = json.dumps({"logprob": {self.settings.positive: lp_pos, self.settings.negative: lp_neg}})
            results.append(
                LabelResult(
                    doc_id=doc.id,
                    status="ok",
                    raw=raw,
                    attempts=1,
                    prompt_tokens=len(prompt),
                    labels=DocLabels(medical=p >= self.settings.threshold, p_medical=p),
                )
            )
        return results

    def label_many(
        self, docs: Sequence[Document], on_result: Callable[[LabelResult], None] | None = None
    ) -> list[LabelResult]:
        """Label `docs` in batches of `batch_size` (results in input order)."""
        if not docs:
            return []
        self._load()
        results: list[LabelResult] = []
        step = self.settings.batch_size
        for start in range(0, len(docs), step):
            for result in self._results(docs[start : start + step]):
                results.append(result)
                if on_result is not None:
                    on_result(result)
        logger.info("hf labeller %s: %d documents scored", self.settings.model, len(results))
        return results
