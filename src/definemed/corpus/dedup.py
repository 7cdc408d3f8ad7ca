"""MinHash near-deduplication of the kept medical documents with datatrove's four MinHash stages.

FineWeb2 is already MinHash-deduplicated per language across all its crawls, so on FineWeb2 input this pass is
cheap insurance (a few near-duplicates survive any LSH setting); on other inputs (JSONL sources, the demo) it does
the real work. It runs only on the kept medical documents, about 2 % of the input:

1. signature (one task per input shard, the same sharding as the filter stage): a MinHash signature per
   document from German word n-grams (datatrove's spaCy `de` tokenizer), split into `num_buckets` buckets;
2. buckets (one task per bucket): documents whose signatures agree in a bucket form duplicate pairs;
3. cluster (one task): union-find over the pairs; all but one document per cluster are marked for removal;
4. filter (same tasks as 1): reads the shards again in the same order and drops the marked documents.

Stage 4 relies on every rank reading exactly the documents, in the same order, that the same rank signed in
stage 1; both use the same reader over the same folder, so that holds on every executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatrove.pipeline.writers import JsonlWriter

if TYPE_CHECKING:
    from datatrove.data import Document

    from definemed.corpus.config import DedupConfig

REASON = "minhash_duplicate"
# Rows of the four stages, as named in the corpus stage's logging folders.
SIGNATURE, BUCKETS, CLUSTER, FILTER = "dedup_signature", "dedup_buckets", "dedup_cluster", "dedup_filter"


class ReasonJsonlWriter(JsonlWriter):
    """JsonlWriter that stamps `metadata.filter_reason` on every document it writes.

    datatrove's `MinhashDedupFilter` hands removed documents to its exclusion writer without a reason (unlike
    `BaseFilter`); stamping it here keeps every folder under `rejected/` self-describing.
    """

    def __init__(self, output_folder: str, reason: str, **kwargs: Any) -> None:
        super().__init__(output_folder, **kwargs)
        self.reason = reason

    def write(self, document: Document, rank: int = 0, **kwargs: Any) -> None:
        document.metadata["filter_reason"] = self.reason
        super().write(document, rank, **kwargs)


def minhash_config(dedup: DedupConfig) -> Any:
    """datatrove's MinhashConfig from `corpus.dedup`: 64-bit xxhash, default text normalisation."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(
        n_grams=dedup.n_grams,
        num_buckets=dedup.num_buckets,
        hashes_per_bucket=dedup.hashes_per_bucket,
        seed=dedup.seed,
        hash_config=HashConfig(precision=64, hash_fc="xxhash"),
    )


def similarity_threshold(dedup: DedupConfig) -> float:
    """Jaccard similarity above which a pair is caught with high probability: (1/b)^(1/r)."""
    return round((1 / dedup.num_buckets) ** (1 / dedup.hashes_per_bucket), 3)


def signature_step(dedup: DedupConfig, work: Path) -> Any:
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.utils.typeshelper import Languages

    # German word tokenisation: shingles of words, not of whitespace chunks glued to punctuation.
    return MinhashDedupSignature(
        output_folder=str(work / "signatures"), config=minhash_config(dedup), language=Languages.german
    )


def buckets_step(dedup: DedupConfig, work: Path) -> Any:
    from datatrove.pipeline.dedup import MinhashDedupBuckets

    return MinhashDedupBuckets(
        input_folder=str(work / "signatures"), output_folder=str(work / "buckets"), config=minhash_config(dedup)
    )


def cluster_step(dedup: DedupConfig, work: Path) -> Any:
    from datatrove.pipeline.dedup import MinhashDedupCluster

    return MinhashDedupCluster(
        input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"), config=minhash_config(dedup)
    )


def filter_step(work: Path, rejected: Path) -> Any:
    from datatrove.pipeline.dedup import MinhashDedupFilter

    writer = ReasonJsonlWriter(str(rejected), reason=REASON, output_filename="${rank}.jsonl.gz", compression="gzip")
    return MinhashDedupFilter(input_folder=str(work / "remove_ids"), exclusion_writer=writer)
