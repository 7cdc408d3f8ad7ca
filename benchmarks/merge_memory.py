"""Peak memory and time of a SLERP merge of two ~538 MB checkpoints, against the size of one model.

Model A is SmolLM2-135M-Instruct materialised as float32 safetensors (`definemed.models.resolve`); model B is A
with every weight moved by 1 % of its standard deviation, written tensor by tensor to a temporary folder. Each
merge runs in its own child process (the stage's `run_mergekit`, t = 0.5), once with mergekit's default output
shard (5B parameters: the whole model is buffered before it is written) and once with our default
(`merge.out_shard_params`). The parent polls the child's /proc status every 10 ms:
  - peak RSS (VmHWM): everything resident, including the pages of the memory-mapped input files, which the
    kernel can drop under pressure;
  - peak anonymous RSS (RssAnon, polled): the merge's private memory, what actually has to fit in RAM;
  - the same figures for a child that only imports torch + mergekit (the floor any merge process pays).

Run: .venv/bin/python benchmarks/merge_memory.py [--shard-params N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MIB = 1024 * 1024


def perturbed_copy(src: Path, dst: Path, scale: float = 0.01) -> Path:
    """A second model: `src` plus noise, one tensor in memory at a time."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    gen = torch.Generator().manual_seed(0)
    for file in sorted(src.glob("*.safetensors")):
        out = {}
        with safe_open(str(file), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open handles are not iterable
                t = fh.get_tensor(key)
                out[key] = t + scale * t.float().std() * torch.randn(t.shape, generator=gen) if t.is_floating_point() else t
        save_file(out, str(dst / file.name), metadata={"format": "pt"})
        del out
    return dst


def _status() -> dict[str, int]:
    return _read_status(os.getpid())


def _read_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS / RssAnon / RssFile of a process in bytes (Linux /proc)."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def child(args: argparse.Namespace) -> None:
    """Runs inside the measured process: import only, or one merge. Prints one JSON line."""
    t0 = time.perf_counter()
    from definemed.config import SlerpMergeConfig
    from definemed.merge.methods import slerp_config
    from definemed.merge.stage import run_mergekit

    import_s = time.perf_counter() - t0
    if args.child == "merge":
        base, other = Path(args.base), Path(args.other)
        merge_dict = slerp_config(SlerpMergeConfig(t=0.5), {"instruct": base, "cpt": other})
        t1 = time.perf_counter()
        run_mergekit(merge_dict, Path(args.out), "# benchmark\n", base, shard_params=args.shard_params)
        print(json.dumps({"merge_s": time.perf_counter() - t1, "import_s": import_s, **_status()}))
    else:
        import mergekit.merge  # noqa: F401 - the import is what is measured

        print(json.dumps({"import_s": import_s, **_status()}))


def measure(cmd: list[str]) -> dict[str, float]:
    """Run a child, polling its anonymous RSS; return its own report plus the polled peaks."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak_anon = peak_rss = 0
    while proc.poll() is None:
        try:
            st = _read_status(proc.pid)
            peak_anon, peak_rss = max(peak_anon, st.get("RssAnon", 0)), max(peak_rss, st.get("VmRSS", 0))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.01)
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {' '.join(cmd)}")
    report = json.loads(stdout.strip().splitlines()[-1])
    return {**report, "peak_anon_polled": peak_anon, "peak_rss_polled": peak_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=["import", "merge"], help=argparse.SUPPRESS)
    parser.add_argument("--base"), parser.add_argument("--other"), parser.add_argument("--out")
    parser.add_argument("--shard-params", type=int, default=None, help="our shard size (default: the config's)")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import resource

    from definemed.config import SlerpMergeConfig
    from definemed.models import resolve

    ours = args.shard_params or SlerpMergeConfig().out_shard_params
    base = Path(resolve(MODEL_ID))
    size = sum(f.stat().st_size for f in base.glob("*.safetensors"))
    me = [sys.executable, __file__]
    with tempfile.TemporaryDirectory(prefix="merge-mem-") as tmp:
        other = perturbed_copy(base, Path(tmp) / "other")
        floor = measure([*me, "--child", "import"])
        print(f"model size: {size / MIB:.0f} MiB per model (two inputs); {MODEL_ID} float32 safetensors")
        print(f"import floor (torch + mergekit): RSS {floor['VmHWM'] / MIB:.0f} MiB, anon "
              f"{floor['peak_anon_polled'] / MIB:.0f} MiB")
        for label, shard in (("mergekit default shard 5B", 5_000_000_000), (f"our shard {ours:,}", ours)):
            out = Path(tmp) / f"out-{shard}"
            r = measure([*me, "--child", "merge", "--base", str(base), "--other", str(other), "--out", str(out),
                         "--shard-params", str(shard)])
            shutil.rmtree(out, ignore_errors=True)
            anon_work = r["peak_anon_polled"] - floor["peak_anon_polled"]
            print(f"{label}: peak RSS {r['VmHWM'] / MIB:.0f} MiB ({r['VmHWM'] / size:.2f} x model), "
                  f"peak anon {r['peak_anon_polled'] / MIB:.0f} MiB ({r['peak_anon_polled'] / size:.2f} x model), "
                  f"anon above import floor {anon_work / MIB:.0f} MiB ({anon_work / size:.2f} x model), "
                  f"merge {r['merge_s']:.1f} s")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"cross-check: getrusage(RUSAGE_CHILDREN) max RSS {children / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
