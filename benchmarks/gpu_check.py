"""GPU figures the CPU machines cannot give, for the corpus projection (#3) and the CPT stage (#4).

1. Encoder scoring throughput of the corpus classifier families at 512 tokens, bf16, sdpa: an xlm-roberta-base-shaped
   sequence classifier (the paper's `finetune`) and a multilingual-e5-small-shaped one (`embedding`), random
   weights (the cost does not depend on them). Gives docs/s, MFU and the GPU-hours to score 428M documents,
   measured instead of assumed (benchmarks/corpus_throughput.py assumes an H100 at 30 % MFU).
2. Causal-LM training steps (AdamW, bf16 autocast over fp32 weights, as the CPT stage's Trainer with `bf16: true`)
   on blocks of packed documents, two ways in the same process: plain causal attention over the block (`eos`
   packing) and document-isolated attention through per-document position ids (the stage's `position_ids`
   packing; transformers turns them into a block-diagonal mask for sdpa). Gives tokens/s, MFU and peak memory for
   a SmolLM2-135M-shaped and a Llama-3.2-1B-shaped model.
Also an 8192^3 bf16 matrix product, the chip's practical peak, as the MFU reference next to the nominal one.

Self-contained (torch + transformers only: the device image has no pydantic), so it runs from the repository
root without installing definemed: python3 benchmarks/gpu_check.py [--smoke] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

CORPUS_DOCS = 428e6
NOMINAL_BF16_TFLOPS = 989.0  # H100/H200 SXM dense bf16, the datasheet figure
ENCODERS = {
    "finetune: xlm-roberta-base": (
        "xlm-roberta",
        {
            "vocab_size": 250_002,
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "max_position_embeddings": 514,
            "type_vocab_size": 1,
        },
    ),
    "embedding: multilingual-e5-small": (
        "bert",
        {
            "vocab_size": 250_037,
            "hidden_size": 384,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
        },
    ),
}
LM_BATCH = {"SmolLM2-135M shape": 8, "Llama-3.2-1B shape": 2}  # blocks of 4096 tokens per step (fits 80 GB)
LMS = {
    "SmolLM2-135M shape": {
        "vocab_size": 49_152,
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "intermediate_size": 1536,
        "tie_word_embeddings": True,
    },
    "Llama-3.2-1B shape": {
        "vocab_size": 128_256,
        "hidden_size": 2048,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 8192,
        "tie_word_embeddings": True,
    },
}


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Any, warmup: int, iters: int) -> float:
    """Seconds per call, after warm-up calls."""
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters


def matmul_peak(device: str, n: int) -> float:
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return 2 * n**3 / timed(lambda: a @ b, 3, 10) / 1e12


def encoder_flops(hidden: int, layers: int, intermediate: int, seq_len: int) -> float:
    """Forward FLOPs of one sequence (the formula of benchmarks/corpus_throughput.py)."""
    matmul_params = layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    return 2 * matmul_params * seq_len + layers * 4 * seq_len * seq_len * hidden


def bench_encoders(device: str, batch: int, seq: int, iters: int, peak: float) -> list[dict[str, Any]]:
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, XLMRobertaConfig

    rows = []
    for name, (kind, shape) in ENCODERS.items():
        cfg_cls = XLMRobertaConfig if kind == "xlm-roberta" else BertConfig
        config = cfg_cls(**shape, num_labels=2)
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
        model = model.to(device, dtype=torch.bfloat16).eval()
        ids = torch.randint(5, shape["vocab_size"], (batch, seq), device=device)
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            seconds = timed(lambda m=model, x=ids, am=mask: m(input_ids=x, attention_mask=am).logits, 2, iters)
        docs_per_s = batch / seconds
        flops = encoder_flops(shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"], seq)
        rows.append(
            {
                "model": name,
                "batch": batch,
                "seq_len": seq,
                "docs_per_s": round(docs_per_s, 1),
                "tflops": round(docs_per_s * flops / 1e12, 1),
                "mfu_nominal": round(docs_per_s * flops / (NOMINAL_BF16_TFLOPS * 1e12), 3),
                "mfu_of_matmul_peak": round(docs_per_s * flops / (peak * 1e12), 3),
                "gpu_hours_428M": round(CORPUS_DOCS / docs_per_s / 3600, 2),
            }
        )
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def packed_position_ids(batch: int, block: int, mean_doc: int, seed: int = 0) -> Any:
    """Position ids restarting at each document of a packed block (document lengths ~ exponential, mean_doc)."""
    import random

    import torch

    rng = random.Random(seed)
    rows = []
    for _ in range(batch):
        pos: list[int] = []
        while len(pos) < block:
            length = max(8, int(rng.expovariate(1 / mean_doc)))
            pos.extend(range(min(length, block - len(pos))))
        rows.append(pos)
    return torch.tensor(rows)


def lm_flops_per_token(shape: dict[str, Any], n_params: int, seq: int) -> float:
    """Training FLOPs per token: 6 x parameters in matmuls (all but the input embedding lookup; a tied embedding
    counts once, as the output head) + causal attention 6 x layers x hidden x seq (scores and values, half masked)."""
    embedding = 0 if shape["tie_word_embeddings"] else shape["vocab_size"] * shape["hidden_size"]
    return 6 * (n_params - embedding) + 6 * shape["num_hidden_layers"] * shape["hidden_size"] * seq


def bench_lms(device: str, batch: int, block: int, iters: int, peak: float, mean_doc: int) -> list[dict[str, Any]]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    rows = []
    for name, shape in LMS.items():
        torch.manual_seed(0)
        config = LlamaConfig(**shape, max_position_embeddings=max(block, 2048), use_cache=False)
        model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa").to(device)
        model.train()
        n_params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
        batch = 1 if batch == 1 else LM_BATCH[name]
        ids = torch.randint(0, shape["vocab_size"], (batch, block), device=device)
        positions = packed_position_ids(batch, block, mean_doc).to(device)
        for mode in ("eos", "position_ids"):
            kwargs = {"position_ids": positions} if mode == "position_ids" else {}

            def step(kw: dict[str, Any] = kwargs, m: Any = model, o: Any = opt, x: Any = ids) -> None:
                with torch.autocast(device_type=device, dtype=torch.bfloat16):
                    loss = m(input_ids=x, labels=x, **kw).loss
                loss.backward()
                o.step()
                o.zero_grad(set_to_none=True)

            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = timed(step, 2, iters)
            tokens_per_s = batch * block / seconds
            flops = lm_flops_per_token(shape, n_params, block) * tokens_per_s
            rows.append(
                {
                    "model": name,
                    "params_m": round(n_params / 1e6, 1),
                    "packing": mode,
                    "batch": batch,
                    "block": block,
                    "tokens_per_s": round(tokens_per_s),
                    "step_s": round(seconds, 4),
                    "tflops": round(flops / 1e12, 1),
                    "mfu_nominal": round(flops / (NOMINAL_BF16_TFLOPS * 1e12), 3),
                    "mfu_of_matmul_peak": round(flops / (peak * 1e12), 3),
                    "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
                }
            )
        del model, opt
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CPU check of the script itself)")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_check.json")
    args = parser.parse_args()
    import torch
    import transformers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
    }
    print(json.dumps(info), flush=True)
    if args.smoke:
        for shapes in (*ENCODERS.values(),):
            shapes[1].update(num_hidden_layers=2, vocab_size=1000)
        for shape in LMS.values():
            shape.update(num_hidden_layers=2, vocab_size=1000)
    peak = matmul_peak(device, 512 if args.smoke else 8192)
    print(f"bf16 matmul peak: {peak:.1f} TFLOP/s (nominal {NOMINAL_BF16_TFLOPS})", flush=True)
    encoders = bench_encoders(
        device, batch=4 if args.smoke else 256, seq=64 if args.smoke else 512, iters=1 if args.smoke else 10, peak=peak
    )
    for row in encoders:
        print(json.dumps(row), flush=True)
    lms = bench_lms(
        device,
        batch=1 if args.smoke else 8,
        block=128 if args.smoke else 4096,
        iters=1 if args.smoke else 8,
        peak=peak,
        mean_doc=32 if args.smoke else 700,
    )
    for row in lms:
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(
            json.dumps({**info, "matmul_peak_tflops": peak, "encoders": encoders, "lms": lms}, indent=2)
        )
    print(
        f"MFU note: FLOPs by formula (encoders: 2 x matmul params x tokens + attention; LMs: 6 x params + "
        f"causal attention); math.isfinite check {all(math.isfinite(r['tokens_per_s']) for r in lms)}"
    )


if __name__ == "__main__":
    main()
