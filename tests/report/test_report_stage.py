"""The report over valid typed metrics of every upstream stage: every section, table and plot, the values in them,
"n/a" only where a metric is legitimately absent, a broken section as a note, and the HTML in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

from tests.report.corpus_fixtures import corpus_metrics
from tests.report.metrics_fixtures import (
    UPSTREAM,
    analyze_metrics,
    changed,
    evaluate_metrics,
    judge_metrics,
    merge_metrics,
    render_report,
    report_inputs,
)

from definemed.evaluate.metrics import EndpointStats
from definemed.report.metrics import ReportMetrics
from definemed.report.stage import run
from definemed.stages import get_stage

FIGURES = {
    "corpus_flow",
    "classifier_pr",
    "cpt_loss",
    "cpt_heldout",
    "merge_t",
    "merge_sweep",
    "mcq_accuracy",
    "winrate_matrix",
    "bradley_terry",
    "answer_words",
}
SECTIONS = [
    "Summary",
    "Corpus (FineMed-de)",
    "Continual pre-training",
    "Merge",
    "Evaluation",
    "Failure modes",
    "Configuration and provenance",
]


def _sections(md: str) -> dict[str, str]:
    """report.md split at its '## ' headings: {title: text}."""
    parts = re.split(r"^## (.+)$", md, flags=re.MULTILINE)[1:]
    return dict(zip(parts[::2], parts[1::2], strict=True))


def test_report_has_every_section_table_and_plot(tmp_path: Path) -> None:
    metrics, ctx = render_report(tmp_path)
    assert metrics.failed_sections == [] and metrics.sections == SECTIONS and metrics.figures == len(FIGURES)
    get_stage("report").metrics.model_validate(metrics.model_dump(mode="json"))  # what the runner stores
    html = (ctx.stage_dir / "report.html").read_text()
    md = (ctx.stage_dir / "report.md").read_text()
    assert "http://" not in html and "https://" not in html
    for table_id in (
        "summary-table",
        "labeller-audit",
        "family-comparison",
        "filter-costs",
        "sweep-table",
        "winrate-table",
        "bt-table",
        "lc-table",
        "judge-audit",
    ):
        assert f'id="{table_id}"' in html, table_id
    figures = re.findall(r'<img class="plot"[^>]*data-name="([a-z_]+)"', html)
    assert sorted(figures) == sorted(FIGURES)
    assert all((ctx.stage_dir / "figures" / f"{name}.png").stat().st_size > 1000 for name in figures)
    assert "<mark>This is an English sentence.</mark>" in html and "<mark>weight-based</mark>" in html

    s = _sections(md)
    assert list(s) == SECTIONS
    # summary: accuracy, win-rate vs the baseline (none for the baseline itself), mixing, verbosity, truncation
    assert "| merged | 0.325 | 0.604 | 0.125 | 0.083 | 45.000 | 0.375 |" in s["Summary"]
    assert "| instruct | 0.300 | n/a | 0.083 | 0.125 | 44.500 | 0.333 |" in s["Summary"]
    assert "judge: reference. " in s["Summary"] and "held-out medical loss 2.914 -&gt; 2.587." in s["Summary"]
    assert "| medical | 2.914 | 2.587 | 18.430 | 13.290 | 12 |" in s["Continual pre-training"]
    assert "| 24 | 24576 | 2.713 | 1.000 | 95.310 |" in s["Continual pre-training"]
    assert '| slerp | HuggingFaceTB/SmolLM2-135M-Instruct | {"t": [0.2, 0.5, 0.5, 0.5, 0.2]} | 4.270 |' in s["Merge"]
    assert 'chosen: t = [0.2, 0.5, 0.5, 0.5, 0.2] (objective: maximize {"mcq_acc": 1.0' in s["Merge"]
    assert (
        '| {"self_attn": [0.0, 0.5, 0.3, 0.7, 1.0], "mlp": [1.0, 0.5, 0.7, 0.3, 0.0], "default": 0.5} | 0.300 | '
        "2.702 | 3.080 | 0.500 | -0.220 |" in s["Merge"]
    )
    ev = s["Evaluation"]
    assert "demo_medmcq_de: 40 of 120 questions excluded" in ev
    assert "| merged | demo_medmcq_de | 0.325 | 0.052 | 80 |" in ev
    assert "| anatomie | 0.350 | 0.338 | 0.375 |" in ev and "Judge: reference ; judgments: 144; invalid: 0." in ev
    assert "| merged | instruct | 12 | 5 | 7 | 0 | 0.604 |" in ev and "| merged | 1051.700 | 996.300 | 1110.400 |" in ev
    assert "| merged | instruct | 0.604 | 0.587 | 0.210 | 24 |" in ev and "| merged/cpt vs instruct | 1.318 |" in ev
    assert "| position consistency (both orders agree) | 0.792 |" in ev and "| tie share | 0.167 |" in ev
    assert (
        "| merged | 24 | 0.125 | 0.042 | 0.083 | 0.008 | 52.500 | 50.500 | 45.000 | 1.011 | 1.024 | 1.420 | 0.041 "
        "| 0.375 | 0.000 |" in s["Failure modes"]
    )
    prov = s["Configuration and provenance"]
    assert "| corpus | 11111111 | 2025-01-01T00:00:00+00:00 | 1.500 | n/a | 111111111111 |" in prov
    # the configuration each stage was keyed on (its bound inputs), the report's own included; no plan-only knob
    assert all(f"\n> {stage}:\n" in prov for stage in (*UPSTREAM, "report")) and ">   baseline: instruct" in prov
    assert "mfu" not in prov
    # every metric is set in the fixture: "n/a" only for the baseline's win-rate against itself, the kappa without
    # human labels, the columns a family does not have (corpus) and the git revision outside a checkout
    assert s["Summary"].count("n/a") == 1 and ev.count("n/a") == 1
    for title in ("Continual pre-training", "Merge", "Failure modes"):
        assert "n/a" not in s[title], title


def test_absent_optional_metrics_render_as_n_a_or_leave_their_block_out(tmp_path: Path) -> None:
    """Blocks a configuration switches off (no labelling step, no family comparison, no sweep, one judged pair
    less...) are None in the metrics: the report leaves them out or prints n/a, and builds every section."""
    corpus = changed(
        corpus_metrics(),
        labelling=None,
        classifier_comparison=None,
        real_test=None,
        filter_costs=None,
        corrupt_file_list=[],
    )
    ev = evaluate_metrics()
    evaluate = changed(
        ev, ratings=None, judge_audit=None, mcq_split=None, judge=judge_metrics(kind="openai", model="judge-7b")
    )
    analyze = analyze_metrics()
    merged = changed(analyze.models["merged"], words_mean_untruncated=None, length_ratio_to_reference_model=None)
    analyze = changed(analyze, models={**analyze.models, "merged": merged})
    metrics, ctx = render_report(
        tmp_path,
        {"corpus": corpus, "merge": changed(merge_metrics(), sweep=None), "evaluate": evaluate, "analyze": analyze},
    )
    assert metrics.failed_sections == []
    html = (ctx.stage_dir / "report.html").read_text()
    s = _sections((ctx.stage_dir / "report.md").read_text())
    for table_id in ("labeller-audit", "family-comparison", "filter-costs", "sweep-table", "bt-table", "judge-audit"):
        assert f'id="{table_id}"' not in html, table_id
    assert "corrupt input file" not in s["Corpus (FineMed-de)"] and "Real held-out" not in s["Corpus (FineMed-de)"]
    assert "judge: openai (judge-7b)." in s["Summary"]
    assert "| merged | 0.325 | 0.604 | 0.125 | 0.083 | n/a |" in s["Summary"]
    assert "*multiple choice*" in s["Evaluation"] and "Merge-factor sweep" not in s["Merge"]
    assert "| merged | 24 | 0.125 | 0.042 | 0.083 | 0.008 | 52.500 | 50.500 | n/a | 1.011 | n/a |" in s["Failure modes"]


def test_one_model_without_judging_has_no_pairwise_blocks(tmp_path: Path) -> None:
    """With a single evaluated model evaluate judges no pair: no pairwise.json, no judge, no ratings."""
    evaluate = changed(evaluate_metrics(), pairwise=None, judge=None, ratings=None, judge_audit=None)
    metrics, ctx = render_report(tmp_path, {"evaluate": evaluate}, evaluate={"models": ["instruct"]})
    assert metrics.failed_sections == []
    s = _sections((ctx.stage_dir / "report.md").read_text())
    assert "judge: ?." in s["Summary"] and "| instruct | 0.300 | n/a |" in s["Summary"]
    assert "Judge:" not in s["Evaluation"] and "| instruct | demo_medmcq_de | 0.300 |" in s["Evaluation"]


def test_http_judge_failures_by_cause_and_requests(tmp_path: Path) -> None:
    endpoint = EndpointStats(
        requests=96,
        answered=41,
        setup_requests=2,
        prompt_tokens=9000,
        completion_tokens=400,
        retries={"timeout": 48},
        failed={"timeout": 7},
        logprobs="chat",
    )
    judge = judge_metrics(
        kind="openai",
        model="judge-7b",
        n_judgments=48,
        invalid=4,
        invalid_verdicts=48,
        invalid_by_cause={"timeout": 41, "unparsed": 7},
        endpoint=endpoint,
    )
    metrics, ctx = render_report(tmp_path, {"evaluate": changed(evaluate_metrics(), judge=judge)})
    assert metrics.failed_sections == []
    md = (ctx.stage_dir / "report.md").read_text()
    assert (
        "Judge: openai judge-7b; judgments: 48; invalid: 4. invalid verdicts by cause: timeout 41, unparsed 7; "
        "96 requests for 48 judgments; retried: timeout 48; log-probabilities via chat."
    ) in md


def test_broken_section_is_reported_not_fatal(tmp_path: Path) -> None:
    _, ctx = render_report(tmp_path)
    (ctx.run_dir / "evaluate" / "pairwise.json").unlink()
    result = run(report_inputs(tmp_path), ctx)
    assert isinstance(result.metrics, ReportMetrics)
    assert [f.split(":")[0] for f in result.metrics.failed_sections] == ["evaluate"]
    assert "pairwise.json" in result.metrics.failed_sections[0]
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
    _, ctx = render_report(tmp_path)
    # A probe appended to a copy records, inside the browser, whether each image decoded.
    probe = (
        "<script>window.addEventListener('load',()=>{document.querySelectorAll('img.plot').forEach(i=>"
        "i.setAttribute('data-decoded', i.complete && i.naturalWidth > 0 ? 'yes' : 'no'));"
        "document.body.setAttribute('data-rows', document.querySelectorAll('#summary-table tbody tr').length);"
        "});</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text((ctx.stage_dir / "report.html").read_text().replace("</body>", probe + "</body>"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    out = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert 'data-rows="3"' in out
    decoded = re.findall(r'<img class="plot"[^>]*data-decoded="(yes|no)"', out)
    assert decoded == ["yes"] * len(FIGURES), decoded
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000
