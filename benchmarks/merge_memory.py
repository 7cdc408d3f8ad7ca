"""Peak memory and time of a SLERP merge of two >= 500 MB checkpoints, against the size of one model.

Model A is SmolLM2-135M-Instruct materialised as float32 safetensors (538 MB; `definemed.models.resolve`), or with
`--layers N` a float32 Llama of that shape with N layers and random weights (an embedding of the same size, more
layers: a larger model). Model B is A with every weight moved by 1 % of its standard deviation. Both are written
tensor by tensor (one file each, or shards of `--input-shard-mb`). Each merge (t = 0.5) runs in a child process
of its own, in this order, repeated `--repeat` times:
  - `mergekit`: plain `mergekit.merge.run_merge` with mergekit's default options (5 GB output shard, its loader):
    the baseline for time;
  - `stage`: the merge stage's own path, `definemed.merge.stage.run_mergekit` (releasing loader, output shard of
    `--shard-params` parameters, default `merge.out_shard_params`);
  - ablations (`--ablation`): the stage's merge with mergekit's own loader (`stage-no-loader`), and with ours
    but without its switch of glibc's mmap threshold for the largest tensors (`stage-no-heap-switch`).
A child that only imports what the stage's merge imports gives the import baseline. The parent polls each child's
/proc/<pid>/status every 5 ms (RssAnon: private memory; RssFile: resident pages of mapped files: shared
libraries and the inputs' memory maps); the child reports its own VmHWM (the kernel's exact peak of
RssAnon + RssFile + RssShmem) when it ends. The target is judged on VmHWM: below one model's size.

Run: .venv/bin/python benchmarks/merge_memory.py [--repeat 3] [--layers N] [--shard-params N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MIB = 1024 * 1024
FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
VARIANTS = ("mergekit", "stage")
ABLATIONS = ("stage-no-loader", "stage-no-heap-switch")


# ---------------------------------------------------------------- models


def write_model(tensors: Iterator[tuple[str, Any]], out: Path, shard_mb: int | None) -> int:
    """Write (name, tensor) pairs as one safetensors file or shards of `shard_mb` plus the index; return bytes."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = [{}]
    sizes, total, files = [0], 0, []
    limit = (shard_mb or 0) * 1_000_000

    def flush(last: bool) -> None:
        name = "model.safetensors" if last and not files else f"model-{len(files) + 1:05d}.safetensors"
        save_file(shards[-1], str(out / name), metadata={"format": "pt"})
        files.append((name, list(shards[-1])))
        shards[-1], sizes[-1] = {}, 0

    for name, t in tensors:
        nbytes = t.numel() * t.element_size()
        if limit and shards[-1] and sizes[-1] + nbytes > limit:
            flush(last=False)
        shards[-1][name], sizes[-1], total = t, sizes[-1] + nbytes, total + nbytes
    flush(last=True)
    if len(files) > 1:
        weight_map = {key: name for name, keys in files for key in keys}
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}), encoding="utf-8"
        )
    return total


def read_tensors(model: Path) -> Iterator[tuple[str, Any]]:
    from safetensors import safe_open

    for file in sorted(model.glob("*.safetensors")):
        with safe_open(str(file), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open handles are not iterable
                yield key, fh.get_tensor(key).clone()


def random_tensors(config: Any) -> Iterator[tuple[str, Any]]:
    """Random float32 weights of a Llama built from `config`, one tensor at a time (norms are ones)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    for name, shape in shapes.items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        yield name, (torch.ones(shape) if len(shape) == 1 else 0.02 * torch.randn(shape, generator=gen))


def perturbed(tensors: Iterator[tuple[str, Any]], scale: float = 0.01) -> Iterator[tuple[str, Any]]:
    import torch

    gen = torch.Generator().manual_seed(1)
    for name, t in tensors:
        yield name, t + scale * t.float().std() * torch.randn(t.shape, generator=gen)


def build_models(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path, int, str]:
    """Write models A and B under `tmp`; return their folders, the size of A in bytes and a description."""
    from transformers import AutoConfig

    from definemed.models import resolve

    source = Path(resolve(MODEL_ID))
    a, b = tmp / "a", tmp / "b"
    for folder in (a, b):
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.index.json"))
    if args.layers:
        config = AutoConfig.from_pretrained(source)
        config.num_hidden_layers = args.layers
        config.save_pretrained(a), config.save_pretrained(b)
        size = write_model(random_tensors(config), a, args.input_shard_mb)
        what = f"float32 Llama of {MODEL_ID}'s shape with {args.layers} layers, random weights"
    else:
        size = write_model(read_tensors(source), a, args.input_shard_mb)
        what = f"{MODEL_ID}, float32"
    write_model(perturbed(read_tensors(a)), b, args.input_shard_mb)
    shards = f", inputs in {args.input_shard_mb} MB shards" if args.input_shard_mb else ", one file per input"
    return a, b, size, what + shards


# ---------------------------------------------------------------- children


def read_status(pid: int | str = "self") -> dict[str, int]:
    """VmHWM / VmRSS / RssAnon / RssFile of a process in bytes (Linux /proc)."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in FIELDS:
                out[key] = int(value.split()[0]) * 1024
    return out


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    """Runs inside the measured process: the imports of the stage's merge, then (unless --child import) a merge.
    Prints one JSON line."""
    t0 = time.perf_counter()
    import mergekit.config
    import mergekit.merge  # noqa: F401 - run_merge, imported by the stage
    import transformers  # noqa: F401 - copy_tokenizer's import, part of the stage's merge

    from definemed.merge import memory, stage  # noqa: F401 - run_mergekit imports memory
    from definemed.merge.config import SlerpMergeConfig
    from definemed.merge.methods import slerp_config

    report: dict[str, Any] = {"import_s": time.perf_counter() - t0, "before": read_status()}
    if args.child != "import":
        base, other, out = Path(args.base), Path(args.other), Path(args.out)
        merge_dict = slerp_config(SlerpMergeConfig(t=0.5), {"instruct": base, "cpt": other})
        t1, cpu1 = time.perf_counter(), _cpu_s()
        if args.child == "stage":
            stage.run_mergekit(merge_dict, out, "# benchmark\n", base, shard_params=args.shard_params)
        else:
            run_ablation(args.child, merge_dict, out, args.shard_params)
        report["merge_s"], report["merge_cpu_s"] = time.perf_counter() - t1, _cpu_s() - cpu1
        report["output_files"] = len(list(out.glob("*.safetensors")))
    print(json.dumps({**report, **read_status()}))


def run_ablation(variant: str, merge_dict: dict[str, Any], out: Path, shard_params: int) -> None:
    """mergekit with its defaults, or the stage's merge without its loader or without the loader's heap switch."""
    from mergekit.config import MergeConfiguration
    from mergekit.io.tasks import LoaderCache
    from mergekit.merge import MergeOptions, run_merge

    from definemed.merge import memory, stage

    config = MergeConfiguration.model_validate(merge_dict)
    if variant == "mergekit":
        options = MergeOptions(write_model_card=False, quiet=True)
    else:
        options = stage.mergekit_options(None, shard_params * stage.BYTES_PER_PARAM["float32"])
    if variant == "stage-no-heap-switch":
        memory.use_releasing_loaders(config, options)
        for loader in LoaderCache().loaders.values():
            loader.large_numel = None
    run_merge(config, str(out), options=options)
    memory.release_loaders()


def measure(cmd: list[str], threads: int | None = None) -> dict[str, Any]:
    """Run a child, polling its /proc status; return its own report plus the polled peaks."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    peak = {"anon": 0, "file": 0, "rss": 0, "anon_at_rss": 0, "file_at_rss": 0}
    while proc.poll() is None:
        try:
            st = read_status(proc.pid)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            break
        if len(st) < len(FIELDS):  # a zombie's status has no memory lines
            break
        peak["anon"], peak["file"] = max(peak["anon"], st["RssAnon"]), max(peak["file"], st["RssFile"])
        if st["VmRSS"] > peak["rss"]:
            peak.update(rss=st["VmRSS"], anon_at_rss=st["RssAnon"], file_at_rss=st["RssFile"])
        time.sleep(0.005)
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {' '.join(cmd)}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "polled": peak}


# ---------------------------------------------------------------- report


def summarise(
    runs: list[dict[str, Any]], floor: dict[str, Any], size: int, baseline: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """Peaks over the runs of one variant; times as medians (and minima) and as ratios to mergekit's."""

    def median(rs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    hwm = max(r["VmHWM"] for r in runs)
    best = min(r["merge_s"] for r in runs)
    return {
        "peak_rss": hwm,
        "peak_rss_x_model": hwm / size,
        "peak_anon": max(r["polled"]["anon"] for r in runs),
        "peak_file": max(r["polled"]["file"] for r in runs),
        "above_import_baseline": hwm - floor["VmHWM"],
        "above_import_baseline_x_model": (hwm - floor["VmHWM"]) / size,
        "merge_s": [round(r["merge_s"], 2) for r in runs],
        "merge_s_median": median(runs, "merge_s"),
        "merge_s_min": best,
        "merge_cpu_s_median": median(runs, "merge_cpu_s"),
        "time_x_mergekit": median(runs, "merge_s") / median(baseline, "merge_s") if baseline else None,
        "time_x_mergekit_min": best / min(r["merge_s"] for r in baseline) if baseline else None,
        "cpu_x_mergekit": median(runs, "merge_cpu_s") / median(baseline, "merge_cpu_s") if baseline else None,
        "output_files": runs[0]["output_files"],
    }


def print_table(results: dict[str, Any]) -> None:
    size, floor = results["model_bytes"], results["import_baseline"]
    print(f"model: {results['model']}; one model = {size / MIB:.0f} MiB ({size / 1e6:.0f} MB)")
    print(
        f"import baseline (torch + transformers + mergekit + definemed.merge): VmHWM {floor['VmHWM'] / MIB:.0f} MiB "
        f"({floor['VmHWM'] / size:.2f} x model; anon {floor['RssAnon'] / MIB:.0f}, file {floor['RssFile'] / MIB:.0f})"
    )
    head = (
        "variant",
        "peak RSS MiB",
        "x model",
        "peak anon",
        "peak file",
        "above imports",
        "x model",
        "merge s (median, min)",
        "time x mergekit (median, min)",
        "CPU s",
        "CPU x mergekit",
        "out files",
    )
    print(" | ".join(head))
    for name, r in results["variants"].items():
        ratio = "-" if r["time_x_mergekit"] is None else f"{r['time_x_mergekit']:.2f}, {r['time_x_mergekit_min']:.2f}"
        cpu = "-" if r["cpu_x_mergekit"] is None else f"{r['cpu_x_mergekit']:.2f}"
        print(
            f"{name} | {r['peak_rss'] / MIB:.0f} | {r['peak_rss_x_model']:.2f} | {r['peak_anon'] / MIB:.0f} | "
            f"{r['peak_file'] / MIB:.0f} | {r['above_import_baseline'] / MIB:.0f} | "
            f"{r['above_import_baseline_x_model']:.2f} | {r['merge_s_median']:.1f}, {r['merge_s_min']:.1f} | {ratio} | "
            f"{r['merge_cpu_s_median']:.1f} | {cpu} | {r['output_files']}"
        )
    stage = results["variants"]["stage"]
    verdict = "meets" if stage["peak_rss_x_model"] < 1 else "misses"
    print(f"target (stage peak RSS below one model): {verdict} it at {stage['peak_rss_x_model']:.2f} x model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=["import", *VARIANTS, *ABLATIONS], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--other", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument(
        "--shard-params",
        type=int,
        default=None,
        help="the stage's output shard in parameters (default: merge.out_shard_params)",
    )
    parser.add_argument(
        "--layers",
        type=int,
        default=0,
        help="random-weight Llama with this many layers instead "
        "of SmolLM2-135M's real weights (30 layers = 538 MB; each layer adds 14 MB)",
    )
    parser.add_argument("--input-shard-mb", type=int, default=None, help="write the inputs in shards of this size")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all variants (time: median)")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also run the stage's merge without our loader, and without its heap switch",
    )
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the merge processes (default: torch's)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from definemed.merge.config import SlerpMergeConfig

    shard = args.shard_params or SlerpMergeConfig().out_shard_params
    variants = [*VARIANTS, *(ABLATIONS if args.ablation else ())]
    me = [sys.executable, __file__, "--shard-params", str(shard)]
    with tempfile.TemporaryDirectory(prefix="merge-mem-") as tmp:
        a, b, size, what = build_models(args, Path(tmp))
        floor = measure([*me, "--child", "import"], args.threads)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for _ in range(args.repeat):
            for v in variants:
                out = Path(tmp) / f"out-{v}"
                cmd = [*me, "--child", v, "--base", str(a), "--other", str(b), "--out", str(out)]
                runs[v].append(measure(cmd, args.threads))
                shutil.rmtree(out, ignore_errors=True)
    results = {
        "model": what,
        "model_bytes": size,
        "stage_out_shard_params": shard,
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "repeat": args.repeat,
        "import_baseline": {k: floor[k] for k in FIELDS},
        "variants": {
            v: summarise(rs, floor, size, None if v == "mergekit" else runs["mergekit"]) for v, rs in runs.items()
        },
    }
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
