//! The terminal summary: a dozen plain-text lines of what the page shows.

use std::fmt::Write as _;

use crate::diff::{Change, ChangeState, changes};
use crate::format::{decision_word, fmt4, grouped, short_id, verdict_word};
use crate::status::status_headline;
use crate::{Previous, ReviewInput};

// Writing into a String cannot fail; this keeps the summary free of `let _ =` noise.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        let _ = write!($dst, $($arg)*);
    };
}

/// A short plain-text summary for the terminal (a dozen lines): model, version, verdicts,
/// signature, approvals k/n, what changed.
pub fn render_text(input: &ReviewInput<'_>) -> String {
    let card = input.card;
    let mut t = String::new();
    w!(
        t,
        "{} {}{}\n",
        card.name,
        card.version,
        if input.demo {
            "  [DEMO: local demo keys]"
        } else {
            ""
        }
    );
    w!(t, "  bundle:       {}\n", input.bundle.display());
    w!(t, "  status:       {}\n", status_headline(input));
    verification_lines(&mut t, input);
    let layers: Vec<String> = input
        .report
        .layers
        .iter()
        .map(|l| format!("{} {}", l.id, verdict_word(l.verdict)))
        .collect();
    w!(
        t,
        "  leak checks:  {} ({})\n",
        verdict_word(input.report.verdict),
        layers.join(", ")
    );
    let m = &card.metrics;
    w!(
        t,
        "  holdout:      ROC AUC {}, accuracy {}, loss {} on {} rows\n",
        fmt4(m.roc_auc),
        fmt4(m.accuracy),
        fmt4(m.loss),
        grouped(m.holdout_rows)
    );
    approval_lines(&mut t, input);
    if let Some(prev) = &input.previous {
        change_lines(&mut t, input, prev);
    }
    t
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
            format!(" (FAILED: {})", failed.join(", "))
        }
    );
    match (&input.builder, input.statement) {
        (Some((name, id)), Some(_)) => {
            w!(
                t,
                "  signature:    valid, builder {name} ({})\n",
                short_id(id)
            );
        }
        (Some((name, id)), None) => {
            w!(
                t,
                "  signature:    statement NOT verified (builder {name} ({}))\n",
                short_id(id)
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
            d.officer.as_deref().unwrap_or("?"),
            decision_word(d.decision),
            if d.counts { "counts" } else { "does not count" },
            d.why
        );
    }
}

/// What changed since `prev`, one line per area.
fn change_lines(t: &mut String, input: &ReviewInput<'_>, prev: &Previous<'_>) {
    let list = changes(input, prev);
    w!(
        t,
        "  changed since {}{}:\n",
        prev.card.version,
        if prev.verified {
            ""
        } else {
            " (that release does NOT verify)"
        }
    );
    let mut same = Vec::new();
    for area in [
        "Holdout metrics",
        "Architecture",
        "Leak checks",
        "Training data",
        "Build",
    ] {
        let rows: Vec<&Change> = list.iter().filter(|c| c.area == area).collect();
        if rows.iter().any(|c| c.state == ChangeState::Unknown) {
            w!(
                t,
                "    {}: unknown (provenance not verified)\n",
                area.to_lowercase()
            );
            continue;
        }
        let changed: Vec<&Change> = rows
            .into_iter()
            .filter(|c| c.state == ChangeState::Changed)
            .collect();
        if changed.is_empty() {
            if list.iter().any(|c| c.area == area) {
                same.push(area.to_lowercase());
            }
            continue;
        }
        w!(
            t,
            "    {}: {}\n",
            area.to_lowercase(),
            changed_items(&changed)
        );
    }
    if !same.is_empty() {
        w!(t, "    unchanged: {}\n", same.join(", "));
    }
}

/// The changed items of one area, tensors counted rather than named (naming each one would
/// drown the line).
fn changed_items(changed: &[&Change]) -> String {
    let tensors = changed
        .iter()
        .filter(|c| c.item.starts_with("Tensor "))
        .count();
    let mut items: Vec<String> = changed
        .iter()
        .filter(|c| !c.item.starts_with("Tensor "))
        .map(|c| {
            if !c.note.is_empty() {
                format!("{} {}", c.item, c.note)
            } else if c.before.chars().count() <= 16 && c.after.chars().count() <= 16 {
                format!("{} (was {}, now {})", c.item, c.before, c.after)
            } else {
                c.item.clone()
            }
        })
        .collect();
    if tensors > 0 {
        items.push(format!(
            "{tensors} tensor{}",
            if tensors == 1 { "" } else { "s" }
        ));
    }
    items.join(", ")
}
