//! The review page: one self-contained HTML5 document (inline style and SVG, no script, no
//! external URL), written through [`Html`] so that every string from a bundle, a trust
//! policy or an officer is escaped.

use std::collections::BTreeMap;

use airlock_schemas::{Decision, LeakLayer, LeakReport, ModelCard};
use airlock_trust::approvals::DecisionStatus;

use crate::architecture::{conv_table, family_facts, image_input, is_cnn, output_fact};
use crate::clinical::clinical_section;
use crate::diff::{ChangeState, changes, widths};
use crate::format::{
    capitalize, decision_word, fmt4, grouped, human_time, json_scalar, layer_meaning, shell_quote,
    short_id, verdict_label, verdict_word,
};
use crate::html::{Html, html};
use crate::metrics::metrics_section;
use crate::provenance::parse_provenance;
use crate::status::{review_status, status_explanation, status_headline};
use crate::summary::{membership_layer, membership_values};
use crate::summary_html::{source_facts, source_warning, summary_section};
use crate::task::is_binary;
use crate::{Previous, ReviewInput};

const STYLE: &str = r#"
:root { --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #cf222e; --fail-bg: #ffebe9;
  --pending: #9a6700; --pending-bg: #fff8c5; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", "Liberation Sans", "DejaVu Sans", Arial, sans-serif;
  color: #1f2328; background: #f6f8fa; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.9rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 18px 0 6px; }
p.lead, .muted { color: var(--muted); }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: 0.88em; }
.digest { overflow-wrap: anywhere; word-break: break-all; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 0.93rem; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.banner { margin: 16px 0 8px; padding: 16px 20px; border-radius: 8px; border: 2px solid; }
.banner .headline { font-size: 1.8rem; font-weight: 700; }
.status-approved { color: var(--pass); background: var(--pass-bg); border-color: var(--pass); }
.status-pending { color: var(--pending); background: var(--pending-bg); border-color: var(--pending); }
.status-rejected, .status-broken { color: var(--fail); background: var(--fail-bg); border-color: var(--fail); }
.banner p { color: #1f2328; margin: 6px 0 0; }
.demo-ribbon { position: fixed; top: 26px; right: -58px; transform: rotate(45deg); background: #bc4c00;
  color: #fff; font-weight: 800; letter-spacing: 0.2em; padding: 6px 70px; z-index: 10; }
.demo-note { border: 3px dashed #bc4c00; color: #bc4c00; background: #fff1e5; padding: 10px 14px;
  font-weight: 700; border-radius: 6px; margin: 12px 0; }
.verdict, .ok, .fail, .counts-yes, .counts-no { font-weight: 700; }
.verdict.pass, .ok, .unchanged, .counts-yes { color: var(--pass); }
.verdict.fail, .verdict.error, .fail, .counts-no.reject { color: var(--fail); }
.verdict.pass { background: var(--pass-bg); }
.verdict.fail, .verdict.error { background: var(--fail-bg); }
.changed { color: var(--pending); font-weight: 700; }
.unknown, .counts-no { color: var(--muted); }
tr.row-changed td { background: #fffbe6; }
.nowrap { white-space: nowrap; }
.interval { color: var(--muted); }
tr.decision-approve td.decision { color: var(--pass); font-weight: 700; }
tr.decision-reject td.decision { color: var(--fail); font-weight: 700; }
.progress { height: 14px; background: #eaeef2; border-radius: 7px; overflow: hidden; max-width: 420px; }
.progress > div { height: 100%; background: var(--pass); }
.charts { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
svg.chart { height: auto; min-width: 0; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
#loss-chart { flex: 3 1 480px; max-width: 640px; } #roc-chart { flex: 2 1 320px; max-width: 420px; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .axis { stroke: #57606a; stroke-width: 1.2; }
svg .tickmark { stroke: #57606a; }
svg .tick, svg .legend-label { font-size: 11px; fill: #57606a; }
svg .axis-label { font-size: 12px; fill: #1f2328; }
svg .chart-title { font-size: 14px; font-weight: 700; fill: #1f2328; }
svg .empty { font-size: 13px; fill: var(--muted); }
svg .series { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg .train { stroke: #0969da; fill: #0969da; }
svg .validation { stroke: #bc4c00; fill: #bc4c00; }
svg polyline.train, svg polyline.validation, svg polyline.roc { fill: none; }
svg .legend { stroke-width: 3; }
svg .roc { stroke: #0969da; fill: #0969da; }
svg .calibration { stroke: #8250df; fill: #8250df; } svg polyline.calibration { fill: none; }
svg .diagonal { stroke: #8c959f; stroke-dasharray: 5 4; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 6px 0; }
dl.facts dt { font-weight: 600; color: var(--muted); }
dl.facts dd { margin: 0; }
pre.command { background: #f6f8fa; border: 1px solid var(--line); padding: 10px 12px; border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
nav.toc { font-size: 0.9rem; margin: 8px 0; }
nav.toc a { color: #0969da; margin-right: 12px; }
footer { margin-top: 36px; font-size: 0.85rem; color: var(--muted); }
.warning { border: 2px solid var(--fail); color: var(--fail); background: var(--fail-bg); padding: 10px 14px;
  font-weight: 700; border-radius: 6px; margin: 12px 0; }
.better { color: var(--pass); font-weight: 700; }
.worse { color: var(--fail); font-weight: 700; }
.noise, .no-interval, .not-comparable, .different { color: var(--pending); font-weight: 700; }
details.unchanged-items summary { cursor: default; color: var(--muted); }
#calibration-chart { flex: 0 1 420px; max-width: 420px; }
#change-summary { border: 2px solid var(--pending); border-radius: 8px; padding: 4px 16px 8px; margin-top: 16px; }
#change-summary h2 { margin-top: 12px; }
/* fit: every table, list and chart fits the page's width (a 1280 px screen included) */
main { overflow-wrap: anywhere; }
table { table-layout: fixed; }
th, td { overflow-wrap: anywhere; min-width: 0; }
dl.facts { grid-template-columns: minmax(0, max-content) minmax(0, 1fr); }
dl.facts dt { max-width: 16em; }
dl.facts dd { min-width: 0; }
/* end fit */
@media print {
  body { background: #fff; font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  .demo-ribbon { position: absolute; }
  section { break-inside: avoid-page; }
  table, svg { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// The style of what only a multi-class or regression card shows: the confusion matrix and
/// the residual plot. Kept out of a binary card's page, which stays as it always was.
const TASK_STYLE: &str = r#"#residual-chart { flex: 2 1 360px; max-width: 480px; }
svg .residual { stroke: #0969da; fill: #0969da; } svg polyline.residual { fill: none; }
svg .band { fill: #0969da; fill-opacity: 0.15; stroke: none; }
svg .zero { stroke: #8c959f; stroke-dasharray: 5 4; }
table.confusion th, table.confusion td { text-align: right; padding: 3px 5px; }
table.confusion caption { text-align: left; font-weight: 600; color: var(--muted); padding: 4px 0; }
table.confusion thead th:first-child, table.confusion th.true-class { text-align: left; }
table.confusion td.diag { background: var(--pass-bg); color: var(--pass); font-weight: 700; }
table.confusion .margin { background: #f6f8fa; color: var(--muted); }
table.confusion.compact { font-size: 0.72rem; }
table.confusion.compact th, table.confusion.compact td { padding: 2px; }
table.confusion.tiny { font-size: 0.58rem; line-height: 1.25; }
table.confusion.tiny th, table.confusion.tiny td { padding: 1px 1px 1px 0; }
table.confusion.tiny td.diag { font-weight: 400; }
"#;

/// The review page: one self-contained HTML5 document (inline style and SVG, no script, no
/// external URL).
pub fn render_html(input: &ReviewInput<'_>) -> String {
    render_page(input).into_string()
}

/// [`render_html`] as [`Html`].
pub fn render_page(input: &ReviewInput<'_>) -> Html {
    let mut h = Html::with_capacity(64 * 1024);
    head(&mut h, input);
    header(&mut h, input);
    if let Some(prev) = &input.previous {
        summary_section(&mut h, input, prev);
    }
    identity_section(&mut h, input);
    model_section(&mut h, input.card);
    metrics_section(&mut h, input.card);
    clinical_section(&mut h, input.card);
    leak_section(&mut h, input.report);
    provenance_section(&mut h, input);
    approvals_section(&mut h, input);
    if let Some(prev) = &input.previous {
        changes_section(&mut h, input, prev);
    }
    h.push_static(
        "<footer>Generated by <code>airlock review</code> from the bundle's files. Every figure \
         on this page is an aggregate; the leak report names places (file, tensor, record \
         number, column), never values.</footer>\n</main>\n</body>\n</html>\n",
    );
    h
}

/// From the doctype to `<main>`.
fn head(h: &mut Html, input: &ReviewInput<'_>) {
    h.push_static("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_static("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Defense in depth: even if a future edit slipped a URL in, the browser would not fetch it.
    h.push_static(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n",
    );
    h.push_static("<meta name=\"referrer\" content=\"no-referrer\">\n");
    h.push_static("<link rel=\"icon\" href=\"data:,\">\n");
    html!(
        h,
        "<title>",
        if input.demo { "[DEMO] " } else { "" },
        "Review: ",
        Html::text(&input.card.name),
        " ",
        Html::text(&input.card.version),
        "</title>\n"
    );
    html!(
        h,
        "<style>",
        STYLE,
        if is_binary(input.card) {
            ""
        } else {
            TASK_STYLE
        },
        "</style>\n</head>\n<body>\n"
    );
    if input.demo {
        h.push_static("<div class=\"demo-ribbon\" id=\"demo-ribbon\">DEMO</div>\n");
    }
    h.push_static("<main>\n");
}

/// The title, the status banner and the table of contents.
fn header(h: &mut Html, input: &ReviewInput<'_>) {
    let card = input.card;
    let status = review_status(input);
    html!(
        h,
        "<header id=\"summary\">\n<h1>",
        Html::text(&card.name),
        " <span class=\"muted\">version ",
        Html::text(&card.version),
        "</span></h1>\n"
    );
    html!(
        h,
        "<p class=\"lead\">Release review for the compliance officer. Bundle: <code class=\"digest\">",
        Html::text(&input.bundle.display().to_string()),
        "</code></p>\n"
    );
    if input.demo {
        h.push_static(
            "<div class=\"demo-note\">DEMO RELEASE: signed with local demo keys, not with the \
             organisation's keys. Do not treat an approval of it as a real release decision.</div>\n",
        );
    }
    html!(
        h,
        "<div class=\"banner ",
        status.class(),
        "\" id=\"status\" data-status=\"",
        status.data(),
        "\">\n<div class=\"headline\">",
        Html::text(&status_headline(input)),
        "</div>\n<p>",
        Html::text(&status_explanation(input)),
        "</p>\n</div>\n"
    );
    source_warning(h, card);
    privacy_note(h, input);
    h.push_static("<nav class=\"toc\">");
    if input.previous.is_some() {
        h.push_static("<a href=\"#change-summary\">What changed</a>");
    }
    h.push_static(
        "<a href=\"#identity\">Identity</a><a href=\"#model\">Model</a>\
         <a href=\"#metrics\">Metrics</a><a href=\"#clinical\">Clinical</a>\
         <a href=\"#leaks\">Leak checks</a><a href=\"#provenance\">Provenance</a>\
         <a href=\"#approvals-section\">Approvals</a>",
    );
    if input.previous.is_some() {
        h.push_static("<a href=\"#changes\">Every compared item</a>");
    }
    h.push_static("</nav>\n</header>\n");
}

/// The signed differential-privacy guarantee, under the status: what it bounds, and
/// whether the one-run audit agrees.
fn privacy_note(h: &mut Html, input: &ReviewInput<'_>) {
    evidence_note(h, input);
    let Some(statement) = input.statement else {
        return;
    };
    let Some(p) = &statement.predicate.privacy else {
        h.push_static(
            "<p class=\"muted\" id=\"privacy\" data-epsilon=\"none\">No differential-privacy \
             guarantee: trained without DP-SGD (the leak checks are the evidence).</p>\n",
        );
        return;
    };
    html!(
        h,
        "<div class=\"privacy\" id=\"privacy\" data-epsilon=\"",
        Html::text(&format!("{}", p.epsilon)),
        "\"><strong>Differential privacy: ε = ",
        Html::text(&crate::text::privacy_words(p)),
        "</strong></div>\n"
    );
}

/// Whether training was replayed (L4) and what RMIA measured (L3), from the leak report.
fn evidence_note(h: &mut Html, input: &ReviewInput<'_>) {
    let layer = |id: &str| input.report.layers.iter().find(|l| l.id == id);
    let count = |id: &str, k: &str| layer(id).and_then(|l| l.counts.get(k)).cloned();
    let replayed = match count("L4", "reproduced") {
        Some(serde_json::Value::Bool(true)) => "the weights are what a replay of training gives",
        Some(serde_json::Value::Bool(false)) => {
            "training was NOT replayed: nothing shows the weights are what training produced"
        }
        _ => "no replay was recorded",
    };
    let num = |k: &str| {
        count("L3", k)
            .and_then(|v| v.as_f64())
            .map_or_else(|| "not measured".to_owned(), |v| format!("{v:.4}"))
    };
    html!(
        h,
        "<p id=\"evidence\" data-reproduced=\"",
        Html::text(&format!(
            "{}",
            count("L4", "reproduced").unwrap_or(serde_json::Value::Null)
        )),
        "\">Replay (L4): ",
        Html::text(replayed),
        ". RMIA (L3): AUC ",
        Html::text(&num("rmia_auc")),
        ", members found at 1 % false positives ",
        Html::text(&num("rmia_tpr_at_1pct_fpr")),
        ", at 0.1 % ",
        Html::text(&num("rmia_tpr_at_0_1pct_fpr")),
        ".</p>\n"
    );
}

fn identity_section(h: &mut Html, input: &ReviewInput<'_>) {
    h.push_static("<section id=\"identity\">\n<h2>1. Identity and digests</h2>\n");
    h.push_static(
        "<p class=\"lead\">The exact bytes under review. An approval is bound to these \
         digests: if any byte changes, the approval no longer counts.</p>\n",
    );
    h.push_static("<dl class=\"facts\">\n");
    signer_facts(h, input);
    h.push_static("</dl>\n");

    h.push_static("<h3>Files</h3>\n<table id=\"files\">\n<colgroup><col style=\"width:32%\"><col></colgroup>\n<thead><tr><th>File</th><th>SHA-256</th></tr></thead>\n<tbody>\n");
    if input.files.is_empty() {
        h.push_static("<tr><td colspan=\"2\" class=\"muted\">No files were listed.</td></tr>\n");
    }
    for (name, sha) in &input.files {
        html!(
            h,
            "<tr><td><code>",
            Html::text(name),
            "</code></td><td><code class=\"digest\">",
            Html::text(sha),
            "</code></td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");

    let passed = input.checks.iter().filter(|c| c.ok).count();
    html!(
        h,
        "<h3>Verification checks (",
        passed,
        " of ",
        input.checks.len(),
        " passed)</h3>\n<table id=\"checks\">\n<colgroup><col style=\"width:30%\"><col style=\"width:9%\"><col></colgroup>\n<thead><tr><th>Check</th><th>Result</th><th>Detail</th></tr></thead>\n<tbody>\n"
    );
    if input.checks.is_empty() {
        h.push_static(
            "<tr><td colspan=\"3\" class=\"fail\">No check was run: treat this bundle as \
             unverified.</td></tr>\n",
        );
    }
    for c in input.checks {
        html!(
            h,
            "<tr data-check-ok=\"",
            c.ok,
            "\"><td>",
            Html::text(c.name),
            "</td><td class=\"",
            if c.ok { "ok" } else { "fail" },
            "\">",
            if c.ok { "ok" } else { "FAIL" },
            "</td><td class=\"digest\">",
            Html::text(&c.detail),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n</section>\n");
}

/// Who signed, and what the signed statement says.
fn signer_facts(h: &mut Html, input: &ReviewInput<'_>) {
    match &input.builder {
        Some((name, id)) => html!(
            h,
            "<dt>Signed by (builder key)</dt><dd><strong>",
            Html::text(name),
            "</strong>, key id <code class=\"digest\">",
            Html::text(id),
            "</code></dd>\n"
        ),
        None => {
            h.push_static(
                "<dt>Signed by (builder key)</dt><dd class=\"fail\">No signature from a builder \
                 key in the trust policy verified.</dd>\n",
            );
        }
    }
    let Some(st) = input.statement else {
        h.push_static(
            "<dt>Release statement</dt><dd class=\"fail\">Its signature did not verify: \
             nothing on this page is vouched for by the builder.</dd>\n",
        );
        return;
    };
    let p = &st.predicate;
    let matches = p.model_name == input.card.name && p.model_version == input.card.version;
    html!(
        h,
        "<dt>Release statement</dt><dd><span class=\"ok\">signature verified</span>: ",
        Html::text(&p.model_name),
        " ",
        Html::text(&p.model_version),
        if matches {
            ""
        } else {
            " <span class=\"fail\">(DIFFERS from the model card)</span>"
        },
        "</dd>\n"
    );
    html!(
        h,
        "<dt>Leak verdict (signed)</dt><dd><span class=\"verdict ",
        verdict_word(p.leak_verdict),
        "\">",
        verdict_label(p.leak_verdict),
        "</span></dd>\n"
    );
    html!(
        h,
        "<dt>Model size</dt><dd>",
        Html::text(&grouped(p.model_shards.length)),
        " bytes</dd>\n"
    );
}

fn model_section(h: &mut Html, card: &ModelCard) {
    h.push_static("<section id=\"model\">\n<h2>2. The model</h2>\n<dl class=\"facts\">\n");
    html!(
        h,
        "<dt>Intended use</dt><dd>",
        card.intended_use.as_deref().map_or_else(
            || Html::raw_static("<span class=\"fail\">Not stated.</span>"),
            Html::text
        ),
        "</dd>\n"
    );
    html!(
        h,
        "<dt>Kind</dt><dd>",
        Html::text(&card.architecture.kind),
        " with ",
        Html::text(&card.architecture.activation),
        if is_cnn(card) {
            " activation</dd>\n<dt>Dense layer widths</dt><dd>"
        } else {
            " activation</dd>\n<dt>Layer widths</dt><dd>"
        },
        Html::text(&widths(card)),
        if is_cnn(card) {
            " (the first is the flattened output of the last convolution block)</dd>\n"
        } else {
            "</dd>\n"
        }
    );
    family_facts(h, card);
    output_fact(h, card);
    h.push_static("</dl>\n");
    conv_table(h, card);
    tensors_table(h, card);
    image_input(h, card);
    if card.architecture.cnn.is_none() || !card.inputs.is_empty() {
        inputs_table(h, card);
    }
    h.push_static("</section>\n");
}

/// The input columns of a model on feature columns.
fn inputs_table(h: &mut Html, card: &ModelCard) {
    html!(
        h,
        "<h3>Inputs (",
        card.inputs.len(),
        " columns, raw values; normalization is built into the weights)</h3>\n<table id=\"inputs\">\n<colgroup><col style=\"width:8%\"><col style=\"width:60%\"><col></colgroup>\n<thead><tr><th>#</th><th>Column</th><th>Type</th></tr></thead>\n<tbody>\n"
    );
    for (i, f) in card.inputs.iter().enumerate() {
        html!(
            h,
            "<tr><td class=\"num\">",
            i + 1,
            "</td><td><code>",
            Html::text(&f.name),
            "</code></td><td>",
            Html::text(&f.dtype),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");
}

fn tensors_table(h: &mut Html, card: &ModelCard) {
    let params: usize = card
        .architecture
        .tensors
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    html!(
        h,
        "<h3>Tensors (",
        Html::text(&grouped(params as u64)),
        " parameters)</h3>\n<table id=\"tensors\">\n<colgroup><col style=\"width:40%\"><col style=\"width:15%\"><col style=\"width:25%\"><col></colgroup>\n<thead><tr><th>Tensor</th><th>Type</th><th>Shape</th><th>Values</th></tr></thead>\n<tbody>\n"
    );
    for t in &card.architecture.tensors {
        let dims: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        html!(
            h,
            "<tr><td><code>",
            Html::text(&t.name),
            "</code></td><td>",
            Html::text(&t.dtype),
            "</td><td>",
            Html::text(&dims.join(" × ")),
            "</td><td class=\"num\">",
            Html::text(&grouped(t.shape.iter().product::<usize>() as u64)),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");
}

fn kv_list(m: &BTreeMap<String, serde_json::Value>) -> Html {
    if m.is_empty() {
        return Html::raw_static("<span class=\"muted\">none</span>");
    }
    Html::join(
        m.iter().map(|(k, v)| {
            let mut h = Html::text(k);
            html!(h, ": <strong>", Html::text(&json_scalar(v)), "</strong>");
            h
        }),
        "<br>",
    )
}

fn leak_section(h: &mut Html, report: &LeakReport) {
    h.push_static("<section id=\"leaks\">\n<h2>5. Leak checks</h2>\n");
    html!(
        h,
        "<p>Overall: <span class=\"verdict ",
        verdict_word(report.verdict),
        "\" id=\"leak-verdict\">",
        verdict_label(report.verdict),
        "</span>. Every check fails closed: one that could not run blocks the release.</p>\n"
    );
    membership_line(h, report);
    h.push_static("<table id=\"leak-layers\">\n<colgroup><col style=\"width:7%\"><col style=\"width:27%\"><col style=\"width:11%\"><col style=\"width:27%\"><col></colgroup>\n<thead><tr><th>Layer</th><th>Check</th><th>Verdict</th><th>Parameters</th><th>Counts</th></tr></thead>\n<tbody>\n");
    if report.layers.is_empty() {
        h.push_static(
            "<tr><td colspan=\"5\" class=\"fail\">No leak check was recorded.</td></tr>\n",
        );
    }
    for l in &report.layers {
        layer_row(h, l);
    }
    h.push_static("</tbody>\n</table>\n");
    for l in report.layers.iter().filter(|l| !l.findings.is_empty()) {
        findings_table(h, l);
    }
    if !report.inputs.is_empty() {
        h.push_static("<h3>What was checked</h3>\n<table id=\"leak-inputs\">\n<colgroup><col style=\"width:16%\"><col style=\"width:30%\"><col></colgroup>\n<thead><tr><th>Role</th><th>File</th><th>SHA-256</th></tr></thead>\n<tbody>\n");
        for i in &report.inputs {
            html!(
                h,
                "<tr><td>",
                Html::text(&i.role),
                "</td><td><code>",
                Html::text(&i.name),
                "</code></td><td><code class=\"digest\">",
                Html::text(&i.sha256),
                "</code></td></tr>\n"
            );
        }
        h.push_static("</tbody>\n</table>\n");
    }
    h.push_static("</section>\n");
}

/// L3's measured values against their limits, in words, where the eye lands first.
fn membership_line(h: &mut Html, report: &LeakReport) {
    let Some(l) = membership_layer(report) else {
        return;
    };
    let (auc, adv, max_auc, max_adv) = membership_values(l);
    let v = |x: Option<f64>| Html::text(&x.map_or_else(|| "not measured".to_owned(), fmt4));
    let lim = |x: Option<f64>| Html::text(&x.map_or_else(|| "not recorded".to_owned(), fmt4));
    html!(
        h,
        "<p id=\"membership-measured\">",
        Html::text(&l.id),
        " membership inference, measured: AUC <strong class=\"measured\" data-measure=\"auc\">",
        v(auc),
        "</strong> (limit ",
        lim(max_auc),
        "; 0.5 means the attack cannot tell training rows from holdout rows), advantage \
         <strong class=\"measured\" data-measure=\"advantage\">",
        v(adv),
        "</strong> (limit ",
        lim(max_adv),
        ").</p>\n"
    );
}

fn findings_table(h: &mut Html, l: &LeakLayer) {
    html!(
        h,
        "<h3>Findings of ",
        Html::text(&l.id),
        " ",
        Html::text(&l.name),
        " (",
        l.findings.len(),
        " listed)</h3>\n<table class=\"findings\" data-layer=\"",
        Html::text(&l.id),
        "\">\n<colgroup><col style=\"width:16%\"><col style=\"width:52%\"><col style=\"width:10%\"><col></colgroup>\n<thead><tr><th>Kind</th><th>Location</th><th>Record</th><th>Column</th></tr></thead>\n<tbody>\n"
    );
    for f in &l.findings {
        let mut record = Html::new();
        match f.record {
            Some(r) => record.push(r),
            None => record.push_static("—"),
        };
        html!(
            h,
            "<tr><td>",
            Html::text(&f.kind),
            "</td><td class=\"digest\"><code>",
            Html::text(&f.location),
            "</code></td><td class=\"num\">",
            record,
            "</td><td>",
            f.column
                .as_deref()
                .map_or_else(|| Html::raw_static("—"), Html::text),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");
}

fn layer_row(h: &mut Html, l: &LeakLayer) {
    let meaning = layer_meaning(&l.name);
    let id = Html::text(&l.id);
    html!(
        h,
        "<tr data-layer=\"",
        &id,
        "\"><td><strong>",
        &id,
        "</strong></td><td>",
        Html::text(&l.name)
    );
    if !meaning.is_empty() {
        html!(h, "<br><span class=\"muted\">", meaning, "</span>");
    }
    if let Some(e) = &l.error {
        html!(
            h,
            "<br><span class=\"fail\">Could not run: ",
            Html::text(e),
            "</span>"
        );
    }
    html!(
        h,
        "</td><td class=\"verdict ",
        verdict_word(l.verdict),
        "\">",
        verdict_label(l.verdict),
        "</td><td>",
        kv_list(&l.parameters),
        "</td><td>",
        kv_list(&l.counts),
        "</td></tr>\n"
    );
}

fn provenance_section(h: &mut Html, input: &ReviewInput<'_>) {
    h.push_static("<section id=\"provenance\">\n<h2>6. Provenance: how it was built</h2>\n");
    source_facts(h, input);
    let Some(v) = input.provenance else {
        h.push_static(
            "<p class=\"fail\">No verified provenance: its signature did not verify or it is \
             missing. Where the model came from cannot be confirmed.</p>\n</section>\n",
        );
        return;
    };
    let p = parse_provenance(v);
    let not_recorded = || Html::raw_static("<span class=\"muted\">not recorded</span>");
    let or_missing = |s: &Option<String>| {
        s.as_deref().map_or_else(not_recorded, |s| {
            let mut h = Html::raw_static("<code class=\"digest\">");
            html!(h, Html::text(s), "</code>");
            h
        })
    };
    h.push_static("<dl class=\"facts\">\n");
    html!(
        h,
        "<dt>Pipeline</dt><dd>",
        p.pipeline_name
            .as_deref()
            .map_or_else(not_recorded, Html::text),
        "</dd>\n<dt>Pipeline file SHA-256</dt><dd>",
        or_missing(&p.pipeline_sha256),
        "</dd>\n<dt>Source code (git commit)</dt><dd>",
        or_missing(&p.git_commit),
        "</dd>\n<dt>Builder</dt><dd>",
        or_missing(&p.builder_id),
        "</dd>\n"
    );
    if let (Some(a), Some(b)) = (&p.started, &p.finished) {
        html!(
            h,
            "<dt>Trained</dt><dd>",
            Html::text(&human_time(a)),
            " to ",
            Html::text(&human_time(b)),
            "</dd>\n"
        );
    }
    for (k, v) in &p.internal {
        html!(
            h,
            "<dt>",
            Html::text(&capitalize(&k.replace('_', " "))),
            "</dt><dd>",
            Html::text(v),
            "</dd>\n"
        );
    }
    h.push_static("</dl>\n");
    h.push_static("<h3>Training data (stayed on the premises; only its fingerprint is here)</h3>\n<table id=\"training-data\">\n<colgroup><col style=\"width:34%\"><col></colgroup>\n<thead><tr><th>File</th><th>SHA-256</th></tr></thead>\n<tbody>\n");
    if p.training_data.is_empty() {
        h.push_static(
            "<tr><td colspan=\"2\" class=\"fail\">No training data recorded.</td></tr>\n",
        );
    }
    for (name, sha) in &p.training_data {
        html!(
            h,
            "<tr><td><code>",
            Html::text(name),
            "</code></td><td><code class=\"digest\">",
            Html::text(sha),
            "</code></td></tr>\n"
        );
    }
    for (name, sha) in &p.training_record {
        html!(
            h,
            "<tr><td>training record <code>",
            Html::text(name),
            "</code></td><td><code class=\"digest\">",
            Html::text(sha),
            "</code></td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n</section>\n");
}

fn approvals_section(h: &mut Html, input: &ReviewInput<'_>) {
    let a = input.approvals;
    h.push_static("<section id=\"approvals-section\">\n<h2>7. Officer decisions</h2>\n");
    let pct = if a.required == 0 {
        100
    } else {
        (a.approvals.min(a.required as usize) * 100) / a.required as usize
    };
    html!(
        h,
        "<p id=\"approval-progress\"><strong>",
        a.approvals,
        " of ",
        a.required,
        " required approvals</strong>",
        if a.rejected {
            " <span class=\"fail\">and a valid rejection, which blocks the release</span>"
        } else {
            ""
        },
        "</p>\n<div class=\"progress\" aria-hidden=\"true\"><div style=\"width: ",
        pct,
        "%\"></div></div>\n"
    );
    h.push_static("<table id=\"approvals\">\n<colgroup><col style=\"width:12%\"><col style=\"width:14%\"><col style=\"width:9%\"><col style=\"width:11%\"><col style=\"width:11%\"><col style=\"width:18%\"><col style=\"width:7%\"><col></colgroup>\n<thead><tr><th>Officer</th><th>Key</th><th>Decision</th><th>Time</th><th>Expires</th><th>Reason</th><th>Counts</th><th>Why</th></tr></thead>\n<tbody>\n");
    if a.decisions.is_empty() {
        h.push_static(
            "<tr class=\"empty\"><td colspan=\"8\" class=\"muted\">No officer has decided on \
             this release yet.</td></tr>\n",
        );
    }
    for d in &a.decisions {
        decision_row(h, d);
    }
    h.push_static("</tbody>\n</table>\n");
    decide_commands(h, input);
    h.push_static("</section>\n");
}

/// The `airlock approve` / `airlock reject` command lines for this bundle.
fn decide_commands(h: &mut Html, input: &ReviewInput<'_>) {
    let bundle = Html::text(&shell_quote(&input.bundle.display().to_string()));
    let trust = input.trust.map_or_else(
        || Html::raw_static("&lt;trust.toml&gt;"),
        |t| Html::text(&shell_quote(&t.display().to_string())),
    );
    h.push_static(
        "<h3>To decide</h3>\n<p>Run one of these on the machine that holds your officer key, \
         with your own key file, name and reason. Your signature covers the exact digests \
         above.</p>\n",
    );
    for (verb, id) in [("approve", "approve-command"), ("reject", "reject-command")] {
        html!(
            h,
            "<pre class=\"command\" id=\"",
            id,
            "\">airlock ",
            verb,
            " ",
            &bundle,
            " --trust ",
            &trust,
            " --key &lt;officer.key&gt; --name \"&lt;name&gt;\" --reason \"&lt;why&gt;\"</pre>\n"
        );
    }
}

/// The officer's key: its name in the trust policy and its (shortened) id.
fn decision_key(d: &DecisionStatus) -> Html {
    let code = |id: &str| {
        let mut h = Html::raw_static("<br><code title=\"");
        html!(
            h,
            Html::text(id),
            "\">",
            Html::text(&short_id(id)),
            "</code>"
        );
        h
    };
    match (&d.key_name, &d.keyid) {
        (Some(n), Some(id)) => {
            let mut h = Html::text(n);
            h.push(code(id));
            h
        }
        (None, Some(id)) => {
            let mut h = Html::raw_static("<span class=\"fail\">not in the trust policy</span>");
            h.push(code(id));
            h
        }
        (Some(n), None) => Html::text(n),
        (None, None) => Html::raw_static("—"),
    }
}

fn decision_row(h: &mut Html, d: &DecisionStatus) {
    let dash = || Html::raw_static("—");
    let word = decision_word(d.decision);
    let yes_no = if d.counts { "yes" } else { "no" };
    html!(
        h,
        "<tr class=\"decision-",
        word,
        "\" data-decision=\"",
        word,
        "\" data-counts=\"",
        d.counts,
        "\" data-file=\"",
        Html::text(&d.file),
        "\"><td>",
        d.officer.as_deref().map_or_else(dash, Html::text),
        "</td><td>",
        decision_key(d),
        "</td><td class=\"decision\">",
        word,
        "</td><td>",
        d.time
            .as_deref()
            .map_or_else(dash, |t| Html::text(&human_time(t))),
        "</td><td>",
        d.expires
            .as_deref()
            .map_or_else(|| Html::raw_static("never"), |t| Html::text(&human_time(t))),
        "</td><td>",
        d.reason.as_deref().map_or_else(dash, Html::text),
        "</td><td class=\"counts-",
        yes_no,
        if d.decision == Some(Decision::Reject) {
            " reject"
        } else {
            ""
        },
        "\">",
        yes_no,
        "</td><td>",
        Html::text(&d.why),
        "</td></tr>\n"
    );
}

fn changes_section(h: &mut Html, input: &ReviewInput<'_>, prev: &Previous<'_>) {
    let list = changes(input, prev);
    let changed = list
        .iter()
        .filter(|c| c.state == ChangeState::Changed)
        .count();
    html!(
        h,
        "<section id=\"changes\">\n<h2>8. Every compared item since ",
        Html::text(&prev.card.name),
        " ",
        Html::text(&prev.card.version),
        "</h2>\n<p class=\"lead\">Compared with the release in <code class=\"digest\">",
        Html::text(&prev.bundle.display().to_string()),
        "</code>: ",
        changed,
        " of ",
        list.len(),
        " items changed.",
        if prev.verified {
            ""
        } else {
            " <strong class=\"fail\" id=\"previous-unverified\">That release does NOT verify \
             against this trust policy: its figures below are what its files say, vouched for \
             by no one.</strong>"
        },
        "</p>\n"
    );
    h.push_static("<table id=\"what-changed\">\n<colgroup><col style=\"width:12%\"><col style=\"width:22%\"><col style=\"width:22%\"><col style=\"width:22%\"><col></colgroup>\n<thead><tr><th>Area</th><th>Item</th><th>Previous</th><th>This release</th><th>Status</th></tr></thead>\n<tbody>\n");
    let cell = |s: &str| {
        if s.len() >= 32 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut h = Html::raw_static("<code class=\"digest\">");
            html!(h, Html::text(s), "</code>");
            h
        } else {
            Html::text(s)
        }
    };
    for c in &list {
        let st = c.state.word();
        html!(
            h,
            "<tr class=\"row-",
            st,
            "\" data-change=\"",
            st,
            "\"><td>",
            c.area,
            "</td><td>",
            Html::text(&c.item),
            "</td><td>",
            cell(&c.before),
            "</td><td>",
            cell(&c.after),
            "</td><td class=\"",
            st,
            "\">",
            st
        );
        if !c.note.is_empty() {
            html!(
                h,
                "<br><span class=\"muted\">",
                Html::text(&c.note),
                "</span>"
            );
        }
        h.push_static("</td></tr>\n");
    }
    h.push_static("</tbody>\n</table>\n</section>\n");
}
