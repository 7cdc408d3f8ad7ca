"""benchmarks/judge_throughput.py: the ratio arithmetic, and one tiny run against its server process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "judge_throughput.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("judge_throughput_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_ratio_against_the_ideal(bench: ModuleType) -> None:
    assert bench.ideal_rate(16, 0.2) == pytest.approx(80.0)
    assert bench.efficiency(judgments=64, seconds=1.0, concurrency=16, latency_s=0.2) == pytest.approx(0.8)
    assert bench.efficiency(judgments=5, seconds=1.0, concurrency=1, latency_s=0.2) == pytest.approx(1.0)


def test_tiny_run(bench: ModuleType) -> None:
    row = bench.measure(concurrency=2, latency_s=0.05, n_requests=6)
    assert row["judgments"] == 6 and row["max_in_flight"] == 2
    assert 0.2 < row["ratio"] <= 1.05  # cannot beat the ideal; 6 requests at 2 x 20/s take >= 0.15 s
    assert row["ideal"] == pytest.approx(40.0)
