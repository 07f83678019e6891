//! The page's clinical and risk section: the holdout metrics at the operating threshold
//! with their intervals, the confusion counts, the calibration curve and the performance per
//! subgroup, from the card's recorded evaluation.

use airlock_schemas::{Confusion, Evaluation, ModelCard, SubgroupRow, SubgroupTable};

use crate::charts::{calibration_chart, plotted_bins};
use crate::format::{fmt4, grouped, level, plain};
use crate::html::{Html, html};
use crate::summary::{Estimate, metric_label};
use crate::task::{is_binary, task_words};

/// What each evaluated metric means, for a reader who is not a statistician.
pub(crate) fn metric_meaning(name: &str) -> &'static str {
    match name {
        "roc_auc" => {
            "Chance that a random positive scores above a random negative (0.5 is a coin toss)."
        }
        "accuracy" => "Share of holdout rows classified correctly at the threshold.",
        "sensitivity" => "Share of actual positives the model flags (true positive rate).",
        "specificity" => "Share of actual negatives the model leaves alone (true negative rate).",
        "ppv" => "When the model flags a row, how often it is truly positive.",
        "npv" => "When the model does not flag a row, how often it is truly negative.",
        "brier" => "Mean squared error of the predicted probability: lower is better.",
        _ => "",
    }
}

/// `<td>` cells for an estimate and its interval.
pub(crate) fn estimate_cells(e: &Estimate) -> Html {
    let mut h = Html::raw_static("<td class=\"num\">");
    h.push_text(&e.value.map_or_else(|| "undefined".to_owned(), fmt4));
    h.push_static("</td><td class=\"num interval\">");
    match e.interval() {
        Some((lo, hi)) => html!(h, Html::text(&format!("{} – {}", fmt4(lo), fmt4(hi)))),
        None => html!(h, "<span class=\"muted\">none</span>"),
    }
    h.push_static("</td>");
    h
}

/// The section itself (numbered `n` on the page).
pub(crate) fn clinical_section(h: &mut Html, card: &ModelCard) {
    h.push_static(
        "<section id=\"clinical\">\n<h2>4. Clinical and risk metrics (holdout data)</h2>\n",
    );
    let Some(e) = &card.evaluation else {
        if !is_binary(card) {
            html!(
                h,
                "<p class=\"muted\" id=\"clinical-not-applicable\">Sensitivity, specificity, \
                 PPV, NPV, calibration and subgroup figures are measured for binary \
                 classifiers. This model's task is ",
                task_words(card),
                ": its holdout figures are in section 3.</p>\n</section>\n"
            );
            return;
        }
        h.push_static(
            "<p class=\"unknown\" id=\"no-evaluation\">This release's card records no holdout \
             evaluation (older airlock): no intervals, sensitivity, specificity, PPV, NPV, \
             calibration or subgroup figures can be shown.</p>\n</section>\n",
        );
        return;
    };
    html!(
        h,
        "<p class=\"lead\">At the operating threshold <strong id=\"threshold\">",
        Html::text(&plain(e.threshold)),
        "</strong> on the positive-class probability. ",
        intervals_sentence(e),
        "</p>\n"
    );
    metrics_table(h, e);
    confusion_table(h, &e.confusion);
    h.push_static("<div class=\"charts\">\n");
    h.push(calibration_chart(&e.calibration));
    h.push_static("\n</div>\n");
    let shown = plotted_bins(&e.calibration).len();
    html!(
        h,
        "<p class=\"muted\" id=\"calibration-caption\">Calibration: expected calibration error \
         (ECE) <strong>",
        Html::text(&fmt4(e.calibration.expected_calibration_error)),
        "</strong>, the row-weighted mean gap between predicted and observed rates. Points on \
         the dashed diagonal are perfectly calibrated; above it the model under-predicts risk, \
         below it over-predicts. ",
        shown,
        " of ",
        e.calibration.bins.len(),
        " bins plotted (bins with no rows are omitted).</p>\n"
    );
    h.push_static("<h3>Performance per subgroup</h3>\n");
    if e.subgroups.is_empty() {
        h.push_static(
            "<p class=\"muted\" id=\"no-subgroups\">The pipeline declares no subgroups \
             (<code>[data] subgroups</code>).</p>\n",
        );
    }
    for t in &e.subgroups {
        subgroup_table(h, t);
    }
    h.push_static("</section>\n");
}

fn intervals_sentence(e: &Evaluation) -> Html {
    let b = &e.bootstrap;
    if b.resamples == 0 {
        return Html::raw_static(
            "<span class=\"unknown\">No intervals were computed (0 bootstrap resamples).</span>",
        );
    }
    Html::text(&format!(
        "Intervals: {} percentile bootstrap over {} resamples of the holdout rows (seed {}).",
        level(b.confidence),
        grouped(u64::from(b.resamples)),
        b.seed
    ))
}

fn metrics_table(h: &mut Html, e: &Evaluation) {
    h.push_static(
        "<table id=\"clinical-metrics\">\n<colgroup><col style=\"width:22%\"><col \
         style=\"width:12%\"><col style=\"width:20%\"><col></colgroup>\n<thead><tr><th>Measure\
         </th><th>Estimate</th><th>Interval</th><th>What it means</th></tr></thead>\n<tbody>\n",
    );
    for m in &e.metrics {
        let est = Estimate {
            value: m.value,
            low: m.low,
            high: m.high,
        };
        html!(
            h,
            "<tr data-metric=\"",
            Html::text(&m.name),
            "\"><td>",
            metric_label(&m.name).map_or_else(|| Html::text(&m.name), Html::raw_static),
            "</td>",
            estimate_cells(&est),
            "<td class=\"muted\">",
            metric_meaning(&m.name),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");
}

fn confusion_table(h: &mut Html, c: &Confusion) {
    let n = |v: u64| Html::text(&grouped(v));
    let sum = |a: u64, b: u64| Html::text(&a.checked_add(b).map_or_else(|| "n/a".into(), grouped));
    h.push_static(
        "<h3>Confusion counts at the threshold</h3>\n<table id=\"confusion\">\n<thead><tr><th>\
         </th><th>Predicted positive</th><th>Predicted negative</th><th>Total</th></tr></thead>\n\
         <tbody>\n",
    );
    html!(
        h,
        "<tr><th>Actually positive</th><td class=\"num\" data-cell=\"tp\">",
        n(c.true_positives),
        " <span class=\"muted\">true positives</span></td><td class=\"num\" data-cell=\"fn\">",
        n(c.false_negatives),
        " <span class=\"muted\">missed</span></td><td class=\"num\">",
        sum(c.true_positives, c.false_negatives),
        "</td></tr>\n"
    );
    html!(
        h,
        "<tr><th>Actually negative</th><td class=\"num\" data-cell=\"fp\">",
        n(c.false_positives),
        " <span class=\"muted\">false alarms</span></td><td class=\"num\" data-cell=\"tn\">",
        n(c.true_negatives),
        " <span class=\"muted\">true negatives</span></td><td class=\"num\">",
        sum(c.false_positives, c.true_negatives),
        "</td></tr>\n</tbody>\n</table>\n"
    );
}

fn opt4(v: Option<f64>) -> Html {
    v.filter(|v| v.is_finite()).map_or_else(
        || Html::raw_static("<span class=\"muted\">n/a</span>"),
        |v| Html::text(&fmt4(v)),
    )
}

fn subgroup_table(h: &mut Html, t: &SubgroupTable) {
    html!(h, "<h3>By <code>", Html::text(&t.column), "</code>");
    if let Some(bands) = &t.bands {
        let edges: Vec<String> = bands.iter().map(|b| plain(*b)).collect();
        html!(h, " (banded at ", Html::text(&edges.join(", ")), ")");
    }
    html!(
        h,
        "</h3>\n<table class=\"subgroups\" data-column=\"",
        Html::text(&t.column),
        "\">\n<colgroup><col style=\"width:25%\"><col span=\"6\" style=\"width:12.5%\"></colgroup>\n<thead><tr><th>Group</th><th>Rows</th><th>Positives</th><th>ROC AUC</th>\
         <th>Accuracy</th><th>Sensitivity</th><th>Specificity</th></tr></thead>\n<tbody>\n"
    );
    if t.groups.is_empty() {
        h.push_static(
            "<tr><td colspan=\"7\" class=\"muted\">No group is large enough to show.</td></tr>\n",
        );
    }
    for g in &t.groups {
        subgroup_row(h, g);
    }
    h.push_static("</tbody>\n</table>\n");
    html!(
        h,
        "<p class=\"muted suppressed\" data-suppressed=\"",
        t.suppressed_groups,
        "\">",
        Html::text(&suppressed_sentence(t)),
        "</p>\n"
    );
}

/// How many groups were left out, and why.
pub(crate) fn suppressed_sentence(t: &SubgroupTable) -> String {
    match t.suppressed_groups {
        0 => format!(
            "No group was suppressed: every group has at least {} holdout rows.",
            grouped(t.min_group_rows)
        ),
        n => format!(
            "{} group{} suppressed for having fewer than {} holdout rows (neither {} label nor \
             {} figures are recorded, so no row can be singled out).",
            grouped(n),
            if n == 1 { " was" } else { "s were" },
            grouped(t.min_group_rows),
            if n == 1 { "its" } else { "their" },
            if n == 1 { "its" } else { "their" },
        ),
    }
}

fn subgroup_row(h: &mut Html, g: &SubgroupRow) {
    html!(
        h,
        "<tr><td>",
        Html::text(&g.group),
        "</td><td class=\"num\">",
        Html::text(&grouped(g.rows)),
        "</td><td class=\"num\">",
        Html::text(&grouped(g.positives)),
        "</td><td class=\"num\">",
        opt4(g.roc_auc),
        "</td><td class=\"num\">",
        opt4(Some(g.accuracy)),
        "</td><td class=\"num\">",
        opt4(g.sensitivity),
        "</td><td class=\"num\">",
        opt4(g.specificity),
        "</td></tr>\n"
    );
}
