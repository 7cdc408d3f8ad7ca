"""The merge's memory measures (merge/memory.py): same tensors as plain mergekit, file pages released with the
tensor, large temporaries given back, output shards sized in parameters."""

from __future__ import annotations

import gc
import math
import sys
from pathlib import Path

import pytest

from definemed.merge import stage
from definemed.merge.config import SlerpMergeConfig
from definemed.merge.methods import slerp_config
from tests.merge.test_merge import _weights

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
MIB = 1 << 20


def _rss(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def test_stage_merge_reads_through_our_loader_and_writes_the_same_tensors_as_plain_mergekit(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.io.tasks import LoaderCache
    from mergekit.merge import MergeOptions, run_merge

    from definemed.merge.memory import ReleasingTensorLoader, release_loaders

    reads: list[str] = []
    original = ReleasingTensorLoader.get_tensor

    def counting(self: ReleasingTensorLoader, key: str, *args: object, **kwargs: object) -> object:
        reads.append(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(ReleasingTensorLoader, "get_tensor", counting)
    merge_dict = slerp_config(SlerpMergeConfig(t=[0.2, 0.7]), {"instruct": tiny_llama_dir, "cpt": tiny_llama_other_dir})
    stage.run_mergekit(merge_dict, tmp_path / "ours", "# card\n", tiny_llama_dir, shard_params=20_000)
    assert reads.count("model.embed_tokens.weight") == 2 and not LoaderCache().loaders  # both inputs; released
    run_merge(
        MergeConfiguration.model_validate(merge_dict),
        str(tmp_path / "plain"),
        options=MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True),
    )
    release_loaders()
    ours, plain = _weights(tmp_path / "ours"), _weights(tmp_path / "plain")
    assert ours.keys() == plain.keys() and len(ours) > 10
    assert all(torch.equal(ours[k], plain[k]) for k in ours)
    assert len(list((tmp_path / "ours").glob("*.safetensors"))) > 1  # sharded, unlike mergekit's 5B default


def test_releasing_loader_closes_its_handle_after_every_read(tiny_llama_dir: Path) -> None:
    import torch
    from mergekit.io.lazy_tensor_loader import ShardedTensorIndex
    from safetensors.torch import load_file

    from definemed.merge.memory import ReleasingTensorLoader

    loader = ReleasingTensorLoader(ShardedTensorIndex.from_disk(str(tiny_llama_dir)))
    expected = load_file(tiny_llama_dir / "model.safetensors")
    for key in ("model.embed_tokens.weight", "lm_head.weight", "model.embed_tokens.weight"):
        tensor = loader.get_tensor(key)
        assert loader.current_shard is None
        assert torch.equal(tensor, expected[key])
    with pytest.raises(KeyError):
        loader.get_tensor("no.such.tensor")
    assert loader.get_tensor("no.such.tensor", raise_on_missing=False) is None


def _big_file(path: Path, mib: int) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.rand(mib * MIB // 4, generator=torch.Generator().manual_seed(0))}, str(path))
    return path


@linux_only
def test_file_pages_leave_the_process_with_the_tensor(tmp_path: Path) -> None:
    """mergekit's loader keeps a read tensor's pages mapped while its handle lives; ours unmaps them when the
    tensor is freed."""
    from mergekit.io.lazy_tensor_loader import LazyTensorLoader, ShardedTensorIndex

    from definemed.merge.memory import ReleasingTensorLoader

    index = ShardedTensorIndex.from_file(str(_big_file(tmp_path / "model.safetensors", 64)))
    kept = {}
    for cls in (LazyTensorLoader, ReleasingTensorLoader):
        loader = cls(index)
        gc.collect()
        before = _rss("RssFile")
        tensor = loader.get_tensor("w")
        assert float(tensor.sum()) > 0  # touches every page
        assert _rss("RssFile") - before > 48 * MIB
        del tensor
        gc.collect()
        kept[cls.__name__] = _rss("RssFile") - before
        loader.flush()
    assert kept["LazyTensorLoader"] > 48 * MIB
    assert kept["ReleasingTensorLoader"] < 8 * MIB


def test_reading_a_large_tensor_switches_the_mmap_threshold_low(
    tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader sets glibc's mmap threshold low for the largest tensors and back for the others; the merge's
    end restores the default and trims the heap. (What glibc then does with RSS depends on the process's heap
    history, so the effect itself is measured by benchmarks/merge_memory.py, not asserted here.)"""
    from mergekit.io.lazy_tensor_loader import ShardedTensorIndex

    from definemed.merge import memory

    calls: list[tuple[str, int]] = []

    class FakeGlibc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append(("mallopt", param, value))
            return 1

        def malloc_trim(self, pad: int) -> int:
            calls.append(("malloc_trim", pad))
            return 1

    monkeypatch.setattr(memory, "_glibc", FakeGlibc)
    index = ShardedTensorIndex.from_disk(str(tiny_llama_dir))
    largest = memory.largest_numel(index)
    assert largest == 600 * 32  # the embedding (and the untied LM head)
    loader = memory.ReleasingTensorLoader(index, large_numel=largest // 4)
    try:
        loader.get_tensor("model.layers.0.mlp.up_proj.weight")  # 64 x 32: small
        loader.get_tensor("model.embed_tokens.weight")
        loader.get_tensor("model.norm.weight")
    finally:
        memory.release_loaders()
    low, default = memory.LARGE_TENSOR_MMAP_THRESHOLD, memory.DEFAULT_MMAP_THRESHOLD
    threshold = memory.M_MMAP_THRESHOLD
    assert calls == [
        ("mallopt", threshold, default),
        ("mallopt", threshold, low),
        ("mallopt", threshold, default),
        ("mallopt", threshold, default),
        ("malloc_trim", 0),
    ]


def _shard_bytes(folder: Path) -> list[tuple[int, int]]:
    """(tensors, data bytes) of every output shard, from the safetensors headers."""
    from safetensors import safe_open

    width = {"F32": 4, "BF16": 2, "F16": 2}
    out = []
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as fh:
            slices = [fh.get_slice(k) for k in fh.keys()]  # noqa: SIM118 - a safetensors handle is not iterable
            out.append((len(slices), sum(math.prod(s.get_shape()) * width[s.get_dtype()] for s in slices)))
    return out


def test_out_shard_params_counts_parameters_not_bytes(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    """mergekit's `out_shard_size` is compared with bytes: the stage converts parameters with the dtype."""
    shard = 20_000
    for dtype, width in (("float32", 4), ("bfloat16", 2)):
        merge_dict = slerp_config(
            SlerpMergeConfig(t=0.5, dtype=dtype), {"instruct": tiny_llama_dir, "cpt": tiny_llama_other_dir}
        )
        stage.run_mergekit(merge_dict, tmp_path / dtype, "# card\n", tiny_llama_dir, shard_params=shard)
        shards = _shard_bytes(tmp_path / dtype)
        assert len(shards) > 1
        assert all(size <= width * shard for n, size in shards if n > 1)
        assert any(size > shard for n, size in shards if n > 1)  # more bytes than parameters in one shard
