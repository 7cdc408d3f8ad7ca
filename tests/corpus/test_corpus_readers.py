"""Robust readers, the language filter, German quality settings and executor selection."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from datatrove.data import Document

from definemed.corpus.config import LocalExecutorConfig, ParquetInput, QualityConfig, RayExecutorConfig
from definemed.corpus.filters import GermanLanguageFilter, load_stopwords
from definemed.corpus.quality import build_quality_filters
from definemed.corpus.readers import RobustJsonlReader, RobustParquetReader, build_readers


@pytest.mark.parametrize("text", [None, "", "   \n", 42, ["a list"]])
def test_records_without_usable_text_are_counted(tmp_path: Path, text) -> None:
    reader = RobustJsonlReader(str(tmp_path))
    assert reader.get_document_from_dict({"text": text, "id": "x"}, "f.jsonl", 0) is None
    assert reader.stats["missing_text"].total == 1
    doc = reader.get_document_from_dict({"text": "Hallo Welt", "id": "y", "url": "u"}, "f.jsonl", 1)
    assert doc.text == "Hallo Welt" and doc.metadata["url"] == "u"


def test_truncated_parquet_is_skipped_and_counted(tmp_path: Path, caplog) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "Guten Tag", "id": "a"}] * 50), tmp_path / "ok.parquet")
    data = (tmp_path / "ok.parquet").read_bytes()
    (tmp_path / "bad.parquet").write_bytes(data[: len(data) // 3])
    reader = RobustParquetReader(str(tmp_path), glob_pattern="*.parquet")
    docs = list(reader.run())
    assert len(docs) == 50
    assert reader.stats["corrupt_files"].total == 1


def test_one_reader_per_input_folder() -> None:
    readers = build_readers(ParquetInput(paths=["a", "b"], limit=5), doc_progress=False)
    assert [r.data_folder.path.rsplit("/", 1)[-1] for r in readers] == ["a", "b"]
    assert all(r.limit == 5 for r in readers)


def test_language_filter_keeps_german_and_records_the_score(german_texts) -> None:
    lid = GermanLanguageFilter(languages=["de"], min_score=0.65)
    german = Document(text=" ".join(german_texts["medical"][:3]), id="de")
    english = Document(text="The patient was admitted to the emergency department with chest pain.", id="en")
    assert lid.filter(german) is True and german.metadata["lid_language"] == "de"
    assert german.metadata["lid_score"] >= 0.65
    assert lid.filter(english) == (False, "language")


def test_fineweb_language_score_gate() -> None:
    lid = GermanLanguageFilter(languages=["de"], min_score=None, min_fineweb_language_score=0.8)
    doc = Document(text="Die Sonne scheint heute über der ganzen Stadt.", id="a", metadata={"language_score": 0.5})
    assert lid.filter(doc) == (False, "fineweb_language_score")


def test_german_quality_filters_keep_prose_and_drop_navigation(german_texts) -> None:
    steps = dict(build_quality_filters(QualityConfig(), lambda name: None))
    clinical = (
        "Bei Aufnahme lag der Blutdruck bei 165/95 mmHg, die Herzfrequenz bei 104/min und die "
        "Temperatur bei 38,9 °C. Das CRP betrug 142 mg/l (Norm < 5), die Leukozyten 15,2 G/l."
    )
    prose = Document(text="\n".join([clinical] + german_texts["general"][:4] + german_texts["medical"][:3]), id="p")
    # with the defaults, punctuation-heavy German prose passes every quality filter
    assert {name: f.filter(prose) for name, f in steps.items()} == dict.fromkeys(steps, True)
    nav = Document(text="\n".join(["Startseite", "Kontakt", "Impressum"] * 10), id="n")
    assert steps["gopher_repetition"].filter(nav)[0] is False
    assert "und" in load_stopwords() and "the" not in load_stopwords()


def test_null_quality_sections_are_left_out() -> None:
    cfg = QualityConfig(gopher_repetition=None, fineweb_quality=None)
    assert [name for name, _ in build_quality_filters(cfg, lambda name: None)] == ["gopher_quality"]


def test_local_executor_never_starts_more_workers_than_tasks(tmp_path: Path) -> None:
    from definemed.corpus.executors import build_local

    ex = build_local(LocalExecutorConfig(tasks=3, workers=8), [], str(tmp_path / "logs"), "job")
    assert (ex.world_size, ex.workers) == (3, 3)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_executor_without_ray_names_the_package(tmp_path: Path) -> None:
    from definemed.corpus.executors import build_ray

    with pytest.raises(RuntimeError, match=r"pip install 'ray\[default\]'"):
        build_ray(RayExecutorConfig(kind="ray", tasks=2), [], str(tmp_path / "logs"), "job")


def test_sample_input_files_is_seeded_relative_and_never_empty(tmp_path: Path) -> None:
    from definemed.corpus.config import ParquetInput
    from definemed.corpus.readers import sample_input_files

    (tmp_path / "in").mkdir()
    for k in range(10):
        (tmp_path / "in" / f"{k:03d}.parquet").write_bytes(b"")
    (tmp_path / "in" / "notes.txt").write_text("not an input file")
    source = ParquetInput(paths=[str(tmp_path / "in")])
    first = sample_input_files(source, 0.3, seed=1, out_dir=tmp_path / "a")
    names = Path(first[0]).read_text().split()
    assert len(names) == 3 and all(not n.startswith("/") and n.endswith(".parquet") for n in names)
    assert Path(sample_input_files(source, 0.3, seed=1, out_dir=tmp_path / "b")[0]).read_text().split() == names
    assert len(Path(sample_input_files(source, 0.01, seed=1, out_dir=tmp_path / "c")[0]).read_text().split()) == 1
    picks = {
        tuple(Path(sample_input_files(source, 0.3, seed=s, out_dir=tmp_path / f"s{s}")[0]).read_text().split())
        for s in range(5)
    }
    assert len(picks) > 1  # the seed matters
    with pytest.raises(RuntimeError, match=r"corpus.input.paths\[0\]: no files matching"):
        sample_input_files(ParquetInput(paths=[str(tmp_path / "in")], glob="*.none"), 0.5, 0, tmp_path / "d")
