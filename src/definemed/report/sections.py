"""One builder per report section, each from stage metrics (manifest.json) and named stage artifacts."""

from __future__ import annotations

import json
from typing import Any

import yaml

from definemed.artifacts import read_json, read_jsonl
from definemed.stage import StageContext
from definemed.config import DefinemedConfig
from definemed.report import plots
from definemed.report.document import Example, Figure, Link, Section, Table, fmt


def _mean_acc(mcq: dict[str, Any]) -> float | None:
    accs = [t["acc"] for t in mcq.values() if isinstance(t, dict) and t.get("acc") is not None]
    return sum(accs) / len(accs) if accs else None


def summary(cfg: DefinemedConfig, ctx: StageContext) -> Section:
    ev, an = ctx.input_metrics("evaluate"), ctx.input_metrics("analyze")
    baseline = cfg.evaluate.baseline
    vs = ev.get("pairwise", {}).get("vs_baseline", {})
    rows = []
    for model in cfg.evaluate.models:
        a = an.get("models", {}).get(model, {})
        rows.append([model, _mean_acc(ev.get("mcq", {}).get(model, {})),
                     vs.get(model) if model != baseline else None, a.get("mixing_rate"),
                     a.get("word_mixing_rate"), a.get("words_mean_untruncated", a.get("words_mean")),
                     a.get("truncation_rate")])
    judge = ev.get("judge", {})
    cpt = ctx.input_metrics("cpt").get("heldout", {})
    med = cpt.get("medical", {})
    intro = (f"Accuracy is the mean over the multiple-choice tasks; win-rate is against '{baseline}' "
             f"(wins + ties/2, both answer orders, disagreement counted as a tie); judge: {judge.get('kind', '?')}"
             f"{' (' + str(judge.get('model')) + ')' if judge.get('model') else ''}. Line-level mixing: share of answers "
             f"with at least one non-{cfg.analyze.expected_language} line; word-level: share with English spans "
             f"inside otherwise German lines. CPT changed held-out medical loss "
             f"{fmt(med.get('loss_before'))} -> {fmt(med.get('loss_after'))}.")
    table = Table(["model", "MCQ accuracy", f"win-rate vs {baseline}", "line-level mixing", "word-level mixing",
                   "words / untruncated answer", "truncated"], rows, css_id="summary-table")
    return Section("Summary", "summary", [intro, table])


def corpus(cfg: DefinemedConfig, ctx: StageContext) -> Section:
    m = ctx.input_metrics("corpus")
    dropped = m.get("dropped", {})
    clf = m.get("classifier", {})
    docs_in = m.get("docs_in") or 0
    counts = Table(["step", "documents"], [["read", docs_in], *[[f"dropped: {k}", v] for k, v in dropped.items()],
                                          ["corrupt files skipped", m.get("corrupt_files")],
                                          ["records without text", m.get("missing_text")],
                                          ["kept (medical)", m.get("docs_kept")]], caption="document flow")
    corrupt = Table(["corrupt input file", "error"], [[b["file"], b["error"]] for b in m.get("corrupt_file_list") or []],
                    caption="input files skipped as corrupt (documents read before the damage are kept)")
    share = (m.get("docs_kept") or 0) / docs_in if docs_in else None
    quality = Table(["classifier", "threshold", "precision", "recall", "F1", "accuracy", "train", "held-out"],
                    [[clf.get("kind"), clf.get("threshold"), clf.get("precision"), clf.get("recall"), clf.get("f1"),
                      clf.get("accuracy"), clf.get("n_train"), clf.get("n_heldout")]],
                    caption="medical classifier on held-out labels")
    fig = plots.bars(["read", *dropped, "kept"], [docs_in, *dropped.values(), m.get("docs_kept") or 0],
                     "Corpus filtering", "documents")
    tokenizer = m.get("tokenizer")
    tokenizer = tokenizer.get("name", tokenizer) if isinstance(tokenizer, dict) else tokenizer
    text = (f"Kept {fmt(share)} of the documents read ({fmt(m.get('kept_words'))} words; "
            f"{fmt(m.get('tokens_kept'))} tokens with {tokenizer or 'n/a'}, "
            f"{fmt(m.get('kept_tokens_share'))} of the input tokens).")
    blocks: list[Any] = [text, counts, *([corrupt] if corrupt.rows else []), quality,
                         Figure("corpus_flow", fig, "documents read, dropped per reason, kept")]
    blocks += _labelling_blocks(m.get("labelling"), clf.get("vs_gold"))
    blocks += _comparison_blocks(ctx, m.get("classifier_comparison"))
    blocks += _real_text_blocks(m.get("real_test"), m.get("filter_costs"))
    if "card" in ctx.upstream["corpus"].get("outputs", {}):
        blocks.append(Link("Dataset card of the corpus", f"../corpus/{ctx.upstream['corpus']['outputs']['card']}"))
    return Section("Corpus (FineMed-de)", "corpus", blocks)


def _ci(metric: dict[str, float] | None) -> str:
    if not metric:
        return "n/a"
    return f"{fmt(metric.get('value'))} [{fmt(metric.get('ci_low'))}, {fmt(metric.get('ci_high'))}]"


def _labelling_blocks(lab: dict[str, Any] | None, vs_gold: dict[str, Any] | None) -> list[Any]:
    """Where the labels came from: the audit of each candidate labeller (95 % bootstrap intervals), the choice."""
    if not lab:
        return []
    counts, labels = lab.get("counts", {}), lab.get("labels", {})
    blocks: list[Any] = [
        f"Labels: '{lab.get('chosen')}' labelled {fmt(lab.get('sample', {}).get('docs'))} filter survivors "
        f"({fmt(labels.get('docs'))} valid, {fmt(labels.get('medical_share'))} medical; {fmt(counts.get('failed'))} "
        f"failed, {fmt(counts.get('cached'))} from the cache) in "
        f"{fmt(lab.get('sample_s', lab.get('seconds')), 1)} s" + (
            f" (audits before it: {fmt(lab['seconds'] - lab['sample_s'], 1)} s)" if lab.get("audit") and
            lab.get("sample_s") is not None and lab.get("seconds") is not None else "") + "."]
    audit = lab.get("audit")
    if audit:
        rows = [[name + (" (chosen)" if name == lab.get("chosen") else ""), a.get("kind"), a.get("n"),
                 _ci(a["metrics"].get("precision")), _ci(a["metrics"].get("recall")), _ci(a["metrics"].get("f1")),
                 a["metrics"].get("accuracy", {}).get("value"), a.get("failed"), a.get("docs_per_s")]
                for name, a in lab.get("audits", {}).items()]
        rows += [[name, "disqualified", None, why, None, None, None, None, None]  # the whole reason
                 for name, why in lab.get("disqualified", {}).items()]
        blocks.append(Table(["labeller", "kind", "gold docs", "precision [95% CI]", "recall [95% CI]",
                             "F1 [95% CI]", "accuracy", "failed", "docs/s"], rows,
                            caption=f"labeller audit on {audit.get('docs')} gold documents outside the classifier's "
                                    f"held-out split ({audit.get('gold')})", css_id="labeller-audit"))
        if lab.get("selection"):
            blocks.append(f"Chosen by {lab.get('select_by')}: {lab['selection'].get('reason')}.")
    if vs_gold:
        c, t = vs_gold.get("classifier", {}), vs_gold.get("training_labels", {})
        blocks.append(f"Against gold on the {vs_gold.get('n')} held-out documents with a gold label (unused by the "
                      f"audit): classifier F1 {fmt(c.get('f1'))} (P {fmt(c.get('precision'))}, R "
                      f"{fmt(c.get('recall'))}); the labels it learned: F1 {fmt(t.get('f1'))}.")
    return blocks


COMPARISON_COLUMNS = [("family", "kind"), ("status", "status"), ("precision", "precision"), ("recall", "recall"),
                      ("F1", "f1"), ("F1 vs gold", "gold_f1"), ("written F1 vs gold", "written_f1"), ("real F1", "real_f1"), ("real F1 low", "real_f1_lo"),
                      ("real F1 high", "real_f1_hi"), ("real P", "real_precision"), ("real R", "real_recall"),
                      ("real FPR technical", "real_fpr_technical"), ("real R short", "real_recall_short"),
                      ("AP", "ap"), ("threshold", "threshold"), ("docs/s", "docs_per_s"),
                      ("held-out docs", "heldout_docs"), ("cascade pass share", "pass_share"),
                      ("cost saved vs stage 2", "cost_saved"), ("F1 lost vs stage 2", "f1_lost"), ("note", "note")]


def _real_text_blocks(real: dict[str, Any] | None, costs: dict[str, Any] | None) -> list[Any]:
    """What the filters cost the medical class, and every family and the cascade on the real test set."""
    blocks: list[Any] = []
    if costs:
        rec, real_rec = costs.get("medical_recall", {}), costs.get("real_medical_recall", {})
        rows = [[step, v.get("dropped"), v.get("medical_dropped"), v.get("real_medical_dropped")]
                for step, v in costs.get("steps", {}).items()]
        blocks.append(Table(["step", "dropped", f"medical ({costs.get('source')}) dropped", "real medical dropped"],
                            rows, caption="what each step cost the medical class", css_id="filter-costs"))
        blocks.append(f"Medical recall of the language and quality filters: {fmt(rec.get('recall'))} of "
                      f"{fmt(rec.get('docs'))} known medical documents; real clinical text: "
                      f"{fmt(real_rec.get('recall'))} of {fmt(real_rec.get('docs'))}.")
    if real:
        for fam in (real.get("families") or {}).values():
            gate = fam.get("cascade")
            if gate:
                alone = gate.get("stage2_alone", {})
                h = {k: "n/a" if gate.get(k) is None else f"{gate[k]:,.1f}" for k in
                     ("stage1_cpu_hours", "stage2_gpu_hours", "stage2_alone_gpu_hours", "stage2_cpu_hours",
                      "stage2_alone_cpu_hours")}
                blocks.append(
                    f"Cascade on the real test set: F1 {fmt(fam.get('real_f1'))} against {fmt(alone.get('real_f1'))} "
                    f"for its stage 2 ({gate.get('stage2_kind')}) alone; {fmt(gate.get('routed_share'))} of the "
                    f"documents routed to stage 2. For {gate.get('projection_docs', 0):,} documents at that share: "
                    f"stage 1 {h['stage1_cpu_hours']} CPU-core-hours, stage 2 {h['stage2_gpu_hours']} GPU-hours "
                    f"(alone: {h['stage2_alone_gpu_hours']}) or {h['stage2_cpu_hours']} CPU-core-hours (alone: "
                    f"{h['stage2_alone_cpu_hours']}).")
        blocks.insert(0 if not costs else 2,
                      f"Real held-out test set ({real.get('path')}): {fmt(real.get('n'))} real documents "
                      f"({fmt(real.get('medical'))} medical) that no labelling, training or threshold choice saw; "
                      "each family at its saved threshold (columns 'real ...' above; 95 % bootstrap intervals).")
    return blocks


def _comparison_blocks(ctx: StageContext, rows: list[dict[str, Any]] | None) -> list[Any]:
    """The classifier families on one split, and their PR curves (from the corpus stats.json)."""
    if not rows:
        return []
    blocks: list[Any] = [Table([h for h, _ in COMPARISON_COLUMNS], [[r.get(k) for _, k in COMPARISON_COLUMNS]
                                                                    for r in rows],
                               caption="classifier families on the same held-out labels", css_id="family-comparison")]
    if "stats" in ctx.upstream["corpus"].get("outputs", {}):
        curves = read_json(ctx.input_path("corpus", "stats")).get("comparison_curves") or {}
        if curves:
            series = {f"{k} (AP {fmt(c.get('average_precision'))})": (c["recall"], c["precision"])
                      for k, c in curves.items()}
            blocks.append(Figure("classifier_pr", plots.lines(series, "Classifier families: precision vs recall",
                                                              "recall (medical)", "precision (medical)"),
                                 "held-out precision-recall curve of each family"))
    return blocks


def cpt(cfg: DefinemedConfig, ctx: StageContext) -> Section:
    m = ctx.input_metrics("cpt")
    held = m.get("heldout", {})
    rows = [[name, v.get("loss_before"), v.get("loss_after"), v.get("ppl_before"), v.get("ppl_after"), v.get("blocks")]
            for name, v in held.items()]
    table = Table(["held-out set", "loss before", "loss after", "ppl before", "ppl after", "blocks"], rows,
                  caption="token-weighted cross-entropy before and after continual pre-training")
    settings = Table(["steps", "train tokens", "final train loss", "packing efficiency", "seconds"],
                     [[m.get("steps"), m.get("train_tokens"), m.get("final_train_loss"), m.get("packing_efficiency"),
                       m.get("seconds")]])
    blocks: list[Any] = [table, settings]
    log = [r for r in read_jsonl(ctx.input_path("cpt", "log")) if "loss" in r and "step" in r]
    if log:
        blocks.append(Figure("cpt_loss", plots.lines({"train loss": ([r["step"] for r in log], [r["loss"] for r in log])},
                                                     "CPT training loss", "step", "loss"), "training loss per logged step"))
    if held:
        series = {"before": [v.get("loss_before") or 0 for v in held.values()],
                  "after": [v.get("loss_after") or 0 for v in held.values()]}
        blocks.append(Figure("cpt_heldout", plots.grouped_bars(list(held), series, "Held-out loss", "loss"),
                             "held-out loss on medical and general German text, before vs after CPT"))
    return Section("Continual pre-training", "cpt", blocks)


def merge(cfg: DefinemedConfig, ctx: StageContext) -> Section:
    m = ctx.input_metrics("merge")
    params = m.get("parameters") or {}
    table = Table(["method", "base", "parameters", "seconds"],
                  [[m.get("method"), m.get("base"), json.dumps(params or {"t": m.get("t")}), m.get("seconds")]])
    blocks: list[Any] = [table, Link("Model card of the merged model", "../merge/model/README.md")]
    t = m.get("t")
    if isinstance(t, int | float | list):
        anchors = t if isinstance(t, list) else [t, t]
        xs = [i / (len(anchors) - 1) for i in range(len(anchors))]
        fig = plots.lines({"t": (xs, anchors)}, "SLERP factor across depth (weight of CPT model)",
                          "relative layer depth", "t")
        blocks.append(Figure("merge_t", fig, "interpolation factor from first to last layer"))
    sweep = m.get("sweep")
    if sweep:
        keys = ["t", "mcq_acc", "medical_loss", "general_loss", "mixing_rate", "objective"]
        rows = [[json.dumps(r.get("t")) if k == "t" else r.get(k) for k in keys] for r in sweep.get("rows", [])]
        blocks.append(f"Merge-factor sweep; chosen: t = {json.dumps(sweep.get('chosen', {}).get('t'))} "
                      f"(objective: maximize {json.dumps(sweep.get('objective', {}).get('maximize'))}).")
        blocks.append(Table(keys, rows, caption="sweep candidates and their proxy scores", css_id="sweep-table"))
        objectives = [r.get("objective") or 0 for r in sweep.get("rows", [])]
        blocks.append(Figure("merge_sweep", plots.bars([f"#{i}" for i in range(len(objectives))], objectives,
                                                       "Sweep objective per candidate", "objective"),
                             "objective of each candidate (higher is better)"))
    return Section("Merge", "merge", blocks)


def evaluate(cfg: DefinemedConfig, ctx: StageContext) -> Section:
    m = ctx.input_metrics("evaluate")
    mcq = m.get("mcq", {})
    rows, names, accs, errs = [], [], [], []
    for model, tasks in mcq.items():
        for task, r in tasks.items():
            rows.append([model, task, r.get("acc"), r.get("acc_stderr"), r.get("n")])
        names.append(model)
        accs.append(_mean_acc(tasks) or 0)
        errs.append(max((r.get("acc_stderr") or 0) for r in tasks.values()) if tasks else 0)
    split = m.get("mcq_split") or {}
    caption = "multiple choice" + "".join(
        f"; {task}: {v['excluded_dev']} of {v['questions']} questions excluded (the merge sweep chose its factor "
        f"on them)" for task, v in split.items())
    blocks: list[Any] = [Table(["model", "task", "accuracy", "stderr", "questions"], rows, caption=caption)]
    if names:
        blocks.append(Figure("mcq_accuracy", plots.bars(names, accs, "Multiple-choice accuracy", "accuracy", errs),
                             "accuracy with standard error"))
    blocks.extend(_subject_table(mcq))
    blocks.extend(_pairwise_blocks(cfg, ctx, m))
    blocks.extend(_rating_blocks(m.get("ratings") or {}))
    blocks.extend(_audit_blocks(m.get("judge_audit") or {}))
    return Section("Evaluation", "evaluate", blocks)


def _rating_blocks(ratings: dict[str, Any]) -> list[Any]:
    """Bradley-Terry scores with bootstrap intervals, length-controlled win-rates and win-rate fold changes."""
    blocks: list[Any] = []
    bt = ratings.get("bradley_terry") or {}
    if bt:
        names = list(bt)
        blocks.append(Table(["model", "Bradley-Terry score", "95% lower", "95% upper"],
                            [[n, bt[n]["score"], bt[n]["lower"], bt[n]["upper"]] for n in names],
                            caption=f"Bradley-Terry scores (Elo scale, anchor {ratings.get('anchor')} = 1000), "
                                    f"{ratings.get('bootstrap_rounds')} bootstrap rounds over "
                                    f"{ratings.get('n_battles')} battles", css_id="bt-table"))
        errs = [[bt[n]["score"] - bt[n]["lower"] for n in names], [bt[n]["upper"] - bt[n]["score"] for n in names]]
        blocks.append(Figure("bradley_terry", plots.intervals(names, [bt[n]["score"] for n in names], errs,
                                                              "Bradley-Terry scores", "score"),
                             "Bradley-Terry scores with 95% bootstrap intervals"))
        if ratings.get("bradley_terry_note"):
            blocks.append(str(ratings["bradley_terry_note"]))
    lc = {k: v for k, v in (ratings.get("lc_winrate") or {}).items() if v}
    if lc:
        blocks.append(Table(["model", "opponent", "raw win-rate", "length-controlled", "length coefficient", "n"],
                            [[k, v.get("opponent"), v.get("raw"), v.get("lc"), v.get("length_coef"), v.get("n")]
                             for k, v in lc.items()], caption="length-controlled win-rate (AlpacaEval-2 style)",
                            css_id="lc-table"))
    folds = ratings.get("fold_change") or {}
    if folds:
        blocks.append(Table(["comparison", "win-rate fold change"], [[k, v] for k, v in folds.items()],
                            caption="ratio of win-rates against the same opponent (the paper's 3.5x)"))
    return blocks


def _audit_blocks(audit: dict[str, Any]) -> list[Any]:
    if not audit:
        return []
    pos = audit.get("position_consistency") or {}
    length = audit.get("length_bias") or {}
    kappa = audit.get("kappa") or {}
    rows = [["position consistency (both orders agree)", pos.get("consistency")],
            ["first-position win share", pos.get("first_position_win_share")],
            ["invalid verdict share", pos.get("invalid_share")],
            ["tie share", audit.get("tie_share")],
            ["longer answer wins (decisive, unequal length)", length.get("longer_wins_share")],
            ["length coefficient (logistic, per-model strengths controlled)", length.get("length_coef")],
            ["Cohen's kappa vs human labels", kappa.get("kappa") if kappa else None]]
    return ["Judge audit: how far the win-rates above can be trusted.",
            Table(["judge audit", "value"], rows, caption="judge audit", css_id="judge-audit")]


def _subject_table(mcq: dict[str, Any]) -> list[Any]:
    subjects = sorted({s for tasks in mcq.values() for r in tasks.values() for s in r.get("per_subject", {})})
    if not subjects:
        return []
    rows = []
    for subject in subjects:
        row: list[Any] = [subject]
        for tasks in mcq.values():
            vals = [r["per_subject"][subject] for r in tasks.values() if subject in r.get("per_subject", {})]
            acc = vals[0].get("acc") if vals and isinstance(vals[0], dict) else (vals[0] if vals else None)
            row.append(acc)
        rows.append(row)
    return [Table(["subject", *mcq], rows, caption="accuracy per subject")]


def _judge_failures(judge: dict[str, Any]) -> str:
    """Invalid verdicts by cause and the requests behind them (retries included), for an HTTP judge."""
    causes = judge.get("invalid_by_cause") or {}
    endpoint = judge.get("endpoint") or {}
    parts = []
    if causes:
        parts.append("invalid verdicts by cause: " + ", ".join(f"{c} {n}" for c, n in causes.items()))
    if endpoint:
        retries = endpoint.get("retries") or {}
        parts.append(f"{endpoint.get('requests')} requests for {judge.get('n_judgments')} judgments"
                     + ("; retried: " + ", ".join(f"{c} {n}" for c, n in retries.items()) if retries else "")
                     + (f"; log-probabilities via {endpoint['logprobs']}" if endpoint.get("logprobs") else ""))
    return (" " + "; ".join(parts) + ".") if parts else ""


def _pairwise_blocks(cfg: DefinemedConfig, ctx: StageContext, m: dict[str, Any]) -> list[Any]:
    pairwise = read_json(ctx.input_path("evaluate", "pairwise"))
    pairs = pairwise.get("pairs", [])
    judge = m.get("judge", {})
    blocks: list[Any] = [f"Judge: {judge.get('kind')} {judge.get('model') or ''}; judgments: {judge.get('n_judgments')}; "
                         f"invalid: {judge.get('invalid')}." + _judge_failures(judge)]
    blocks.append(Table(["model", "opponent", "wins", "ties", "losses", "invalid", "win-rate"],
                        [[p["model"], p["opponent"], p["wins"], p["ties"], p["losses"], p.get("invalid"), p["win_rate"]]
                         for p in pairs], caption="pairwise results (both orders per prompt)", css_id="winrate-table"))
    models = cfg.evaluate.models
    matrix = [[None] * len(models) for _ in models]
    for p in pairs:
        if p["model"] in models and p["opponent"] in models:
            matrix[models.index(p["model"])][models.index(p["opponent"])] = p["win_rate"]
    if pairs:
        blocks.append(Figure("winrate_matrix", plots.heatmap(models, matrix, "Win-rate (row vs column)"),
                             "pairwise win-rate matrix"))
    return blocks


def analyze(cfg: DefinemedConfig, ctx: StageContext) -> Section:
    m = ctx.input_metrics("analyze")
    keys = ["n", "mixing_rate", "foreign_line_share", "word_mixing_rate", "english_word_share", "words_mean", "words_median",
            "words_mean_untruncated", "length_ratio_untruncated", "length_ratio_to_reference_model",
            "length_ratio_to_reference_answers", "repetition_mean", "truncation_rate", "empty_rate"]
    rows = [[model, *[s.get(k) for k in keys]] for model, s in m.get("models", {}).items()]
    blocks: list[Any] = [Table(["model", *keys], rows, caption="failure modes per model")]
    per_answer = read_jsonl(ctx.input_path("analyze", "per_answer"))
    words: dict[str, list[float]] = {}
    for r in per_answer:
        words.setdefault(r["model"], []).append(r["words"])
    if words:
        blocks.append(Figure("answer_words", plots.boxplot(words, "Answer length", "words"), "words per answer"))
    examples = read_json(ctx.input_path("analyze", "examples"))
    for mode, by_model in examples.items():
        for model, items in by_model.items():
            for ex in items[:1]:
                spans = [f["line"] for f in ex.get("foreign_lines", [])] + list(ex.get("english_spans", []))
                blocks.append(Example(f"{mode} - {model} - {ex['prompt_id']} (score {fmt(ex['score'])})",
                                      ex.get("answer", ""), spans))
    return Section("Failure modes", "analyze", blocks)


def provenance(cfg: DefinemedConfig, ctx: StageContext) -> Section:
    rows = [[stage, man.get("run_id", "")[:8], man.get("finished_at"), man.get("duration_s"),
             (man.get("git_revision") or "n/a")[:12], man.get("config_hash", "")[:12]]
            for stage, man in ctx.upstream.items()]
    versions = next(iter(ctx.upstream.values()), {}).get("versions", {})
    config_text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return Section("Configuration and provenance", "provenance", [
        Table(["stage", "run", "finished", "seconds", "git", "config hash"], rows),
        Table(["package", "version"], [[k, v] for k, v in versions.items()]),
        Example("resolved configuration", config_text)])


BUILDERS = [summary, corpus, cpt, merge, evaluate, analyze, provenance]
