//! The terminal summary: a dozen plain-text lines of what the page shows.

use std::fmt::Write as _;

use airlock_schemas::{CardMetrics, ModelCard, MulticlassCardMetrics, RegressionCardMetrics};

use crate::charts::plotted_residuals;
use crate::format::{
    decision_word, fmt4, grouped, percent, plain, short_id, term, verdict_word, with_interval,
};
use crate::metrics::{ClassTotals, class_totals, confusion_shape};
use crate::status::status_headline;
use crate::summary::{estimate, membership_layer, membership_values, metric_label, summarize};
use crate::summary_html::source_problem;
use crate::{Previous, ReviewInput};

// Writing into a String cannot fail; this keeps the summary free of `let _ =` noise.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        {
            let _ = write!($dst, $($arg)*);
        }
    };
}

/// A short plain-text summary for the terminal: model, version and status, then what
/// changed since the previous release (settings, measured leak values, metrics with their
/// intervals), then verification, leak checks with L3's measured values, holdout and
/// clinical metrics, source and approvals. Every string from a bundle is passed through
/// `format::term`, so it cannot move the cursor, recolour or rewrite the terminal.
pub fn render_text(input: &ReviewInput<'_>) -> String {
    let card = input.card;
    let mut t = String::new();
    w!(
        t,
        "{} {}{}\n",
        term(&card.name),
        term(&card.version),
        if input.demo {
            "  [DEMO: local demo keys]"
        } else {
            ""
        }
    );
    w!(
        t,
        "  bundle:       {}\n",
        term(&input.bundle.display().to_string())
    );
    w!(t, "  status:       {}\n", term(&status_headline(input)));
    if let Some(prev) = &input.previous {
        summary_lines(&mut t, input, prev);
    }
    verification_lines(&mut t, input);
    let layers: Vec<String> = input
        .report
        .layers
        .iter()
        .map(|l| format!("{} {}", term(&l.id), verdict_word(l.verdict)))
        .collect();
    w!(
        t,
        "  leak checks:  {} ({})\n",
        verdict_word(input.report.verdict),
        layers.join(", ")
    );
    if let Some(p) = input.statement.and_then(|s| s.predicate.privacy.as_ref()) {
        w!(t, "  privacy:      ε = {}\n", privacy_words(p));
    }
    if let Some(l) = membership_layer(input.report) {
        let (auc, adv, max_auc, max_adv) = membership_values(l);
        let v = |x: Option<f64>| x.map_or_else(|| "not measured".to_owned(), fmt4);
        let lim = |x: Option<f64>| x.map_or_else(|| "not recorded".to_owned(), fmt4);
        w!(
            t,
            "  {} measured:  membership AUC {} (limit {}), advantage {} (limit {})\n",
            term(&l.id),
            v(auc),
            lim(max_auc),
            v(adv),
            lim(max_adv)
        );
    }
    holdout_lines(&mut t, card);
    match source_problem(card) {
        Some(p) => w!(t, "  source:       WARNING: {}\n", term(&p)),
        None => {
            if let Some(c) = card.configuration.as_ref() {
                w!(
                    t,
                    "  source:       commit {}, clean\n",
                    term(c.source.git_commit.as_deref().unwrap_or_default())
                );
            }
        }
    }
    approval_lines(&mut t, input);
    t
}

/// The holdout metrics per task: with their intervals and the clinical ones at the
/// threshold (binary), with the confusion matrix's weakest classes (multi-class), or with
/// the residuals' largest bias (regression).
fn holdout_lines(t: &mut String, card: &ModelCard) {
    match &card.metrics {
        CardMetrics::Binary(_) => binary_lines(t, card),
        CardMetrics::Multiclass(m) => multiclass_lines(t, card, m),
        CardMetrics::Regression(r) => regression_lines(t, r),
    }
}

fn multiclass_lines(t: &mut String, card: &ModelCard, m: &MulticlassCardMetrics) {
    w!(
        t,
        "  holdout:      accuracy {}, macro-F1 {}, loss {} on {} rows ({} classes)\n",
        with_interval(&estimate(card, "accuracy"), None),
        with_interval(&estimate(card, "macro_f1"), None),
        fmt4(m.loss),
        grouped(m.holdout_rows),
        card.output.classes.len()
    );
    let k = match confusion_shape(card, &m.confusion) {
        Ok(k) => k,
        Err(why) => {
            w!(t, "  confusion:    not shown: {}\n", term(&why));
            return;
        }
    };
    let totals = class_totals(&m.confusion);
    let lowest = |f: fn(&ClassTotals) -> Option<f64>| {
        totals
            .iter()
            .enumerate()
            .filter_map(|(i, c)| f(c).map(|v| (i, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or_else(
                || "n/a".to_owned(),
                |(i, v)| format!("{} {}", term(&card.output.classes[i]), percent(v)),
            )
    };
    w!(
        t,
        "  confusion:    {k}×{k}; lowest recall {}, lowest precision {}\n",
        lowest(ClassTotals::recall),
        lowest(ClassTotals::precision)
    );
}

fn regression_lines(t: &mut String, r: &RegressionCardMetrics) {
    w!(
        t,
        "  holdout:      RMSE {}, MAE {}, R² {}, loss {} on {} rows\n",
        fmt4(r.rmse),
        fmt4(r.mae),
        fmt4(r.r2),
        fmt4(r.loss),
        grouped(r.holdout_rows)
    );
    let bins = plotted_residuals(&r.residuals);
    let worst = bins
        .iter()
        .max_by(|a, b| a.mean_residual.abs().total_cmp(&b.mean_residual.abs()));
    match (bins.first(), bins.last(), worst) {
        (Some(lo), Some(hi), Some(w)) => w!(
            t,
            "  residuals:    {} bins over predictions {} to {}; largest mean residual {:+.4} at {}\n",
            bins.len(),
            fmt4(lo.predicted),
            fmt4(hi.predicted),
            w.mean_residual,
            fmt4(w.predicted)
        ),
        _ => t.push_str("  residuals:    no residual bin was recorded\n"),
    }
}

/// A binary classifier's holdout metrics with their intervals, and the clinical ones at
/// the threshold.
fn binary_lines(t: &mut String, card: &ModelCard) {
    let conf = card.evaluation.as_ref().map(|e| e.bootstrap.confidence);
    let m = &card.metrics;
    w!(
        t,
        "  holdout:      ROC AUC {}, accuracy {}, loss {} on {} rows\n",
        with_interval(&estimate(card, "roc_auc"), conf),
        with_interval(&estimate(card, "accuracy"), conf),
        fmt4(m.loss()),
        grouped(m.holdout_rows())
    );
    match &card.evaluation {
        None => t.push_str(
            "  clinical:     this release's card records no holdout evaluation (older airlock)\n",
        ),
        Some(e) => {
            let parts: Vec<String> = ["sensitivity", "specificity", "ppv", "npv"]
                .iter()
                .map(|n| {
                    format!(
                        "{} {}",
                        metric_label(n).unwrap_or(n),
                        with_interval(&estimate(card, n), conf)
                    )
                })
                .collect();
            w!(
                t,
                "  clinical:     at threshold {}: {}\n",
                plain(e.threshold),
                parts.join(", ")
            );
        }
    }
}

/// The checks and the builder's signature.
fn verification_lines(t: &mut String, input: &ReviewInput<'_>) {
    let failed: Vec<&str> = input
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name)
        .collect();
    w!(
        t,
        "  verification: {} of {} checks passed{}\n",
        input.checks.len() - failed.len(),
        input.checks.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" (FAILED: {})", term(&failed.join(", ")))
        }
    );
    match (&input.builder, input.statement) {
        (Some((name, id)), Some(_)) => {
            w!(
                t,
                "  signature:    valid, builder {} ({})\n",
                term(name),
                term(&short_id(id))
            );
        }
        (Some((name, id)), None) => {
            w!(
                t,
                "  signature:    statement NOT verified (builder {} ({}))\n",
                term(name),
                term(&short_id(id))
            );
        }
        (None, _) => {
            t.push_str("  signature:    NO valid builder signature\n");
        }
    }
}

/// Approvals k of n, then one line per decision.
fn approval_lines(t: &mut String, input: &ReviewInput<'_>) {
    let a = input.approvals;
    w!(
        t,
        "  approvals:    {} of {} required{}\n",
        a.approvals,
        a.required,
        if a.rejected {
            ", REJECTED by an officer"
        } else {
            ""
        }
    );
    for d in &a.decisions {
        w!(
            t,
            "    - {} {} ({}): {}\n",
            term(d.officer.as_deref().unwrap_or("?")),
            decision_word(d.decision),
            if d.counts { "counts" } else { "does not count" },
            term(&d.why)
        );
    }
}

/// What changed since `prev`: the settings that differ, how many did not, the measured
/// leak values and the metrics with their intervals.
fn summary_lines(t: &mut String, input: &ReviewInput<'_>, prev: &Previous<'_>) {
    let s = summarize(input, prev);
    w!(
        t,
        "  changed since {}{}:\n",
        term(&prev.card.version),
        if prev.verified {
            ""
        } else {
            " (that release does NOT verify)"
        }
    );
    if !s.configuration_recorded() {
        t.push_str(
            "    configuration not recorded in both cards (older airlock): compared what both record\n",
        );
    }
    for c in &s.changed {
        w!(
            t,
            "    {}: was {}, now {}{}\n",
            term(&c.item),
            term(&shown(&c.item, &c.before)),
            term(&shown(&c.item, &c.after)),
            if c.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", term(&c.note))
            }
        );
    }
    match (s.changed.is_empty(), s.unchanged.len()) {
        (true, 0) => {}
        (true, n) => w!(t, "    no setting or data changed ({n} items compared)\n"),
        (false, 0) => {}
        (false, n) => w!(
            t,
            "    {n} other item{} unchanged\n",
            if n == 1 { "" } else { "s" }
        ),
    }
    let mut same = 0;
    for r in &s.leaks {
        if r.limit.is_empty() && r.before == r.after {
            same += 1;
            continue;
        }
        w!(
            t,
            "    leak {}: was {}, now {}{}\n",
            term(&r.measure),
            term(&r.before),
            term(&r.after),
            if r.limit.is_empty() {
                String::new()
            } else {
                format!(" ({})", term(&r.limit))
            }
        );
    }
    if same > 0 {
        w!(
            t,
            "    leak verdicts and findings: {same} layers unchanged\n"
        );
    }
    let conf = (s.confidence.0, s.confidence.1);
    for m in &s.metrics {
        w!(
            t,
            "    {}: was {}, now {}: {}\n",
            term(&m.label),
            with_interval(&m.before, conf.0),
            with_interval(&m.after, conf.1),
            m.judgement.words()
        );
    }
}

/// A compared value as the summary lines show it: whole for a CNN's input and blocks,
/// whose every word matters, else [`short`].
fn shown(item: &str, s: &str) -> String {
    let whole = item.starts_with("Convolution block ")
        || matches!(item, "Input images" | "Input normalization");
    if whole { s.to_owned() } else { short(s) }
}

/// Long values (digests) shortened so a line stays a line.
fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(16).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

/// A signed DP-SGD guarantee in words, after "ε = ": the budget, what it is per, how it
/// was spent, and the audit's verdict on it.
pub(crate) fn privacy_words(p: &airlock_schemas::PrivacyGuarantee) -> String {
    let audit = p.audit.as_ref().map_or_else(
        || "not audited".to_owned(),
        |a| {
            format!(
                "one-run audit with {} canaries: {} of {} guesses right, ε ≥ {:.3} at 95 % confidence",
                a.canaries, a.correct, a.guesses, a.epsilon_lower_bound
            )
        },
    );
    format!(
        "{:.3} at δ = {:.1e} per training row (DP-SGD: noise multiplier {:.4}, clipping norm {}, sampling rate {:.5}, {} steps; {audit})",
        p.epsilon, p.delta, p.noise_multiplier, p.max_grad_norm, p.sampling_rate, p.steps
    )
}
