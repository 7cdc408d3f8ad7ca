"""What keeps a merge's resident memory bounded beyond what mergekit does itself (docs/merging.md, Memory).

1. Input pages. mergekit's `LazyTensorLoader` keeps the safetensors handle of the shard it last read open, one per
   input model, until it needs a tensor from another shard. A handle is a memory map of the whole shard file, and
   every page the merge has touched stays mapped, and counted in the process's RSS, while the handle lives: a
   merge of two single-file checkpoints ends with both files resident. `ReleasingTensorLoader` reads each tensor
   through a fresh handle and drops it at once; safetensors keeps the map alive for the tensors it returned, so a
   tensor's pages are unmapped when mergekit frees the tensor, which its executor does as soon as the tensor's
   last consumer has run. Tensors, merge plan and order of work stay mergekit's.
   The extension point is mergekit's process-wide `LoaderCache`: it returns a loader already in its `loaders`
   map instead of building one, so mergekit builds each loader (hub download, LoRA merge, shard index) and we
   register our subclass for the same model.
2. Heap reuse. mergekit computes SLERP in chunks of 1M elements. Once glibc's dynamic mmap threshold has risen
   past a chunk's temporaries (4 MB) they come from the heap, and the small per-chunk results kept between chunks
   pin the freed blocks, so in about half of the runs the heap grows by one more float32 copy of the tensor being
   merged (+108-128 MiB at SmolLM2-135M's embedding) and keeps it for reuse. Peak memory is set by the largest
   tensors, so only while those are merged does the loader fix glibc's threshold at 2 MiB (every block of 2 MiB
   or more mapped on its own and given back when freed); that costs fresh zeroed pages for their temporaries,
   which is why the rest of the merge keeps the heap (threshold 32 MiB, where glibc's dynamic one ends up).

Imports mergekit: import this module inside the function that merges.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
from typing import Any

from mergekit.io.lazy_tensor_loader import LazyTensorLoader, ShardedTensorIndex
from mergekit.io.tasks import LoaderCache

from definemed.merge.checks import tensor_shapes

M_MMAP_THRESHOLD = -3  # mallopt parameter, glibc malloc.h
LARGE_TENSOR_MMAP_THRESHOLD = 2 << 20
# glibc's dynamic threshold never rises above 32 MiB on 64-bit. Setting the threshold switches the dynamic
# adjustment off for the life of the process, so it is set where a long-running torch process ends up anyway.
DEFAULT_MMAP_THRESHOLD = 32 << 20
# A tensor of at least this share of the largest tensor's elements is merged with the low threshold: a smaller one
# plus one extra float32 copy of itself stays below the three copies (two inputs, one output) of the largest.
LARGE_TENSOR_SHARE = 0.25


class ReleasingTensorLoader(LazyTensorLoader):
    """A LazyTensorLoader that closes its safetensors handle after every read (pickled `.bin` shards keep
    mergekit's behaviour: reopening one means unpickling its index again). Reading a tensor of at least
    `large_numel` elements switches glibc's mmap threshold low for its merge, any other tensor switches it back."""

    def __init__(self, index: ShardedTensorIndex, lazy_unpickle: bool = True, large_numel: int | None = None):
        super().__init__(index, lazy_unpickle=lazy_unpickle)
        self.large_numel = large_numel

    def get_tensor(
        self, key: str, device: str = "cpu", aliases: list[str] | None = None, raise_on_missing: bool = True
    ) -> Any:
        try:
            tensor = super().get_tensor(key, device=device, aliases=aliases, raise_on_missing=raise_on_missing)
        finally:
            if self.index.is_safetensors:
                self.flush()
        if tensor is not None and self.large_numel is not None:
            large = tensor.numel() >= self.large_numel
            set_mmap_threshold(LARGE_TENSOR_MMAP_THRESHOLD if large else DEFAULT_MMAP_THRESHOLD)
        return tensor


def largest_numel(index: ShardedTensorIndex) -> int | None:
    """Elements of the largest tensor of a safetensors checkpoint, from its headers (None for pickled shards)."""
    if not index.is_safetensors:
        return None
    shapes = tensor_shapes(os.path.join(index.base_path, shard.filename) for shard in index.shards)
    return max((math.prod(shape) for shape in shapes.values()), default=0)


def use_releasing_loaders(merge_config: Any, options: Any) -> None:
    """Register a ReleasingTensorLoader for every model `merge_config` reads, in mergekit's loader cache."""
    cache = LoaderCache()
    cache.setup(options=options)
    loaders = {model: cache.get(model) for model in merge_config.referenced_models()}
    sizes = [n for n in (largest_numel(loader.index) for loader in loaders.values()) if n]
    large = math.ceil(LARGE_TENSOR_SHARE * max(sizes)) if sizes else None
    for model, loader in loaders.items():
        cache.loaders[model] = ReleasingTensorLoader(loader.index, loader.lazy_unpickle, large_numel=large)


def release_loaders() -> None:
    """After a merge: drop every loader mergekit cached (process-wide; open handles and memory maps go with them),
    put glibc's mmap threshold back to its default and hand free heap pages back to the system."""
    cache = LoaderCache()
    cache.flush_all()
    cache.loaders.clear()
    set_mmap_threshold(DEFAULT_MMAP_THRESHOLD)
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def set_mmap_threshold(nbytes: int) -> None:
    """glibc: allocations of `nbytes` or more are mapped on their own and unmapped when freed (no-op elsewhere)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, nbytes)
