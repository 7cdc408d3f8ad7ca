from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.helpers import minimal_config_dict

from definemed.artifacts import write_json, write_jsonl
from definemed.stage import StageContext
from definemed.config import DefinemedConfig
from definemed.report.stage import run

MODELS = ["instruct", "cpt", "merged"]


def _fake_upstream(run_dir: Path) -> dict:
    """Manifests and artifacts shaped like the real stages write them."""
    write_jsonl(run_dir / "cpt" / "metrics.jsonl", [{"step": s, "loss": 3.0 - 0.1 * s} for s in range(1, 6)])
    write_json(run_dir / "evaluate" / "pairwise.json", {"pairs": [
        {"model": a, "opponent": b, "wins": 3, "ties": 1, "losses": 2, "invalid": 0, "win_rate": 0.583}
        for a in MODELS for b in MODELS if a != b]})
    per_answer = [{"model": m, "prompt_id": f"p{i}", "words": 10 * i + j} for j, m in enumerate(MODELS) for i in range(4)]
    write_jsonl(run_dir / "analyze" / "per_answer.jsonl", per_answer)
    write_json(run_dir / "analyze" / "examples.json", {"language_mixing": {"merged": [
        {"prompt_id": "p1", "score": 0.5, "answer": "Gut.\nThis is English.", "foreign_lines": [
            {"line": "This is English.", "lang": "en", "score": 0.9}]}]}})
    mcq = {m: {"demo": {"acc": 0.3 + 0.1 * i, "acc_stderr": 0.04, "n": 120, "per_subject": {"anatomy": {"acc": 0.5}}}}
           for i, m in enumerate(MODELS)}
    base = {"run_id": "abc", "key": "k", "finished_at": "now", "duration_s": 1.0, "versions": {"torch": "x"}}
    return {
        "corpus": {**base, "outputs": {}, "metrics": {"docs_in": 100, "docs_kept": 30, "dropped": {"language": 10},
                                                      "classifier": {"kind": "tfidf_logreg", "f1": 0.9}}},
        "cpt": {**base, "outputs": {"log": "metrics.jsonl"}, "metrics": {"heldout": {
            "medical": {"loss_before": 3.0, "loss_after": 2.5}, "general": {"loss_before": 3.1, "loss_after": 3.2}}}},
        "merge": {**base, "outputs": {}, "metrics": {"method": "slerp", "t": [0.2, 0.5, 0.2]}},
        "evaluate": {**base, "outputs": {"pairwise": "pairwise.json"}, "metrics": {
            "mcq": mcq, "pairwise": {"vs_baseline": {"cpt": 0.6, "merged": 0.7}}, "judge": {"kind": "reference"},
            "ratings": {"n_battles": 144, "bootstrap_rounds": 1000, "anchor": "instruct",
                        "bradley_terry": {m: {"score": 1000.0 + 20 * i, "lower": 980.0 + 20 * i, "upper": 1030.0 + 20 * i}
                                          for i, m in enumerate(MODELS)},
                        "lc_winrate": {"merged": {"raw": 0.7, "lc": 0.64, "length_coef": 0.3, "n": 48,
                                                  "opponent": "instruct"}},
                        "fold_change": {"merged/cpt vs instruct": 1.17}},
            "judge_audit": {"position_consistency": {"consistency": 0.8, "first_position_win_share": 0.55},
                            "tie_share": 0.2, "length_bias": {"longer_wins_share": 0.6, "length_coef": 0.2}}}},
        "analyze": {**base, "outputs": {"per_answer": "per_answer.jsonl", "examples": "examples.json"}, "metrics": {
            "models": {m: {"mixing_rate": 0.1 * i, "word_mixing_rate": 0.05, "words_mean": 50.0}
                       for i, m in enumerate(MODELS)}}},
    }


def _render_fake_report(tmp_path: Path) -> tuple[Any, StageContext]:
    """Run the report stage over fake upstream manifests for MODELS with 'instruct' as the baseline."""
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"models": MODELS, "baseline": "instruct"}
    cfg = DefinemedConfig.model_validate(data)
    run_dir = tmp_path / "run"
    ctx = StageContext(run_dir=run_dir, stage="report", upstream=_fake_upstream(run_dir))
    ctx.stage_dir.mkdir(parents=True)
    return run(cfg, ctx), ctx


def test_report_has_summary_every_plot_and_no_failed_section(tmp_path: Path) -> None:
    result, ctx = _render_fake_report(tmp_path)
    assert result.metrics["failed_sections"] == []
    html = (ctx.stage_dir / "report.html").read_text()
    md = (ctx.stage_dir / "report.md").read_text()
    assert 'id="summary-table"' in html and "http://" not in html and "https://" not in html
    # summary first: model rows carry accuracy, win-rate vs baseline and mixing rate
    assert md.index("## Summary") < md.index("## Corpus")
    assert "| merged | 0.500 | 0.700 | 0.200 | 0.050 | 50.000 |" in md
    figures = re.findall(r'<img class="plot"[^>]*data-name="([a-z_]+)"', html)
    assert set(figures) == {"corpus_flow", "cpt_loss", "cpt_heldout", "merge_t", "mcq_accuracy", "winrate_matrix",
                            "bradley_terry", "answer_words"}
    for table_id in ("bt-table", "lc-table", "judge-audit"):
        assert f'id="{table_id}"' in html
    assert "| merged | instruct | 0.700 | 0.640 |" in md
    assert all((ctx.stage_dir / "figures" / f"{name}.png").stat().st_size > 1000 for name in figures)
    assert "<mark>This is English.</mark>" in html


def test_broken_section_is_reported_not_fatal(tmp_path: Path) -> None:
    cfg = DefinemedConfig.model_validate(minimal_config_dict(tmp_path))
    run_dir = tmp_path / "run"
    upstream = _fake_upstream(run_dir)
    (run_dir / "evaluate" / "pairwise.json").unlink()
    ctx = StageContext(run_dir=run_dir, stage="report", upstream=upstream)
    ctx.stage_dir.mkdir(parents=True)
    result = run(cfg, ctx)
    assert [f.split(":")[0] for f in result.metrics["failed_sections"]] == ["evaluate"]
    assert "could not be built" in (ctx.stage_dir / "report.html").read_text()


def _chromium() -> str | None:
    import shutil

    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """A real browser loads the self-contained HTML: the summary table is there and every plot decodes."""
    import subprocess

    import pytest

    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    _, ctx = _render_fake_report(tmp_path)
    # A probe appended to a copy records, inside the browser, whether each image decoded.
    probe = ("<script>window.addEventListener('load',()=>{document.querySelectorAll('img.plot').forEach(i=>"
             "i.setAttribute('data-decoded', i.complete && i.naturalWidth > 0 ? 'yes' : 'no'));"
             "document.body.setAttribute('data-rows', document.querySelectorAll('#summary-table tbody tr').length);"
             "});</script>")
    page = tmp_path / "probe.html"
    page.write_text((ctx.stage_dir / "report.html").read_text().replace("</body>", probe + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    out = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert 'data-rows="3"' in out
    decoded = re.findall(r'<img class="plot"[^>]*data-decoded="(yes|no)"', out)
    assert decoded == ["yes"] * 8, decoded
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
