//! What changed since the previous release: one row per compared item, shared by the page's
//! "What changed" table and the terminal summary.

use std::collections::{BTreeMap, BTreeSet};

use airlock_schemas::{CnnArchitecture, ConvBlock, LeakReport, ModelCard, Verdict};

use crate::architecture::{block_words, image_words, is_cnn, normalization_words};
use crate::format::{fmt4, grouped, verdict_word};
use crate::provenance::{Provenance, parse_provenance};
use crate::summary::{Estimate, Judgement, estimate, judge_cards, metric_label};
use crate::task::{compared_metrics, is_binary, task_words};
use crate::{Previous, ReviewInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeState {
    Changed,
    Unchanged,
    Unknown,
}

impl ChangeState {
    pub(crate) fn word(self) -> &'static str {
        match self {
            ChangeState::Changed => "changed",
            ChangeState::Unchanged => "unchanged",
            ChangeState::Unknown => "unknown",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) area: &'static str,
    pub(crate) item: String,
    pub(crate) before: String,
    pub(crate) after: String,
    pub(crate) state: ChangeState,
    pub(crate) note: String,
}

fn compare(area: &'static str, item: impl Into<String>, before: String, after: String) -> Change {
    let state = if before == after {
        ChangeState::Unchanged
    } else {
        ChangeState::Changed
    };
    Change {
        area,
        item: item.into(),
        before,
        after,
        state,
        note: String::new(),
    }
}

/// A metric row: compared at the precision shown, so float noise never reads as a change,
/// and called better or worse only when both releases record intervals that do not overlap.
fn metric_change(old: &ModelCard, new: &ModelCard, name: &str) -> Change {
    let (a, b) = (estimate(old, name), estimate(new, name));
    let show = |e: &Estimate| e.value.map_or_else(|| "undefined".to_owned(), fmt4);
    let item = metric_label(name).unwrap_or("metric");
    let mut c = compare("Holdout metrics", item, show(&a), show(&b));
    if c.state == ChangeState::Changed {
        let j = judge_cards(name, (old, new), &a, &b);
        c.note = match (a.value, b.value) {
            // A difference across tasks would read as a change of quality: only the words.
            _ if j == Judgement::DifferentTasks => j.words().to_owned(),
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                format!("{:+.4} ({})", y - x, j.words())
            }
            _ => j.words().to_owned(),
        };
    }
    c
}

pub(crate) fn widths(card: &ModelCard) -> String {
    card.architecture
        .layer_widths
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}

fn shape(dtype: &str, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("{dtype} [{}]", dims.join(" × "))
}

/// Every compared item of `input` against `prev`, in the order the page lists them.
pub(crate) fn changes(input: &ReviewInput<'_>, prev: &Previous<'_>) -> Vec<Change> {
    let (old, new) = (prev.card, input.card);
    let mut out = vec![compare(
        "Release",
        "Version",
        old.version.clone(),
        new.version.clone(),
    )];
    if old.name != new.name {
        out.push(compare(
            "Release",
            "Model name",
            old.name.clone(),
            new.name.clone(),
        ));
    }
    metrics(&mut out, old, new);
    architecture(&mut out, old, new);
    leak_checks(&mut out, prev.report, input.report);
    build(&mut out, prev.provenance, input.provenance);
    out
}

fn metrics(out: &mut Vec<Change>, old: &ModelCard, new: &ModelCard) {
    let names = if is_binary(old) && is_binary(new) {
        vec!["roc_auc", "accuracy", "loss"]
    } else {
        compared_metrics(old, new)
    };
    for name in names {
        out.push(metric_change(old, new, name));
    }
    out.push(compare(
        "Holdout metrics",
        "Holdout rows",
        grouped(old.metrics.holdout_rows()),
        grouped(new.metrics.holdout_rows()),
    ));
}

fn architecture(out: &mut Vec<Change>, old: &ModelCard, new: &ModelCard) {
    if !(is_binary(old) && is_binary(new)) {
        out.push(compare(
            "Architecture",
            "Task",
            task_words(old).to_owned(),
            task_words(new).to_owned(),
        ));
    }
    if is_cnn(old) || is_cnn(new) {
        family(out, old, new);
    }
    out.push(compare(
        "Architecture",
        "Layer widths",
        widths(old),
        widths(new),
    ));
    out.push(compare(
        "Architecture",
        "Activation",
        old.architecture.activation.clone(),
        new.architecture.activation.clone(),
    ));
    let tensors = |c: &ModelCard| -> BTreeMap<String, String> {
        c.architecture
            .tensors
            .iter()
            .map(|t| (t.name.clone(), shape(&t.dtype, &t.shape)))
            .collect()
    };
    let (old_t, new_t) = (tensors(old), tensors(new));
    let names: BTreeSet<&String> = old_t.keys().chain(new_t.keys()).collect();
    for name in names {
        let get = |m: &BTreeMap<String, String>| {
            m.get(name).cloned().unwrap_or_else(|| "absent".to_owned())
        };
        out.push(compare(
            "Architecture",
            format!("Tensor {name}"),
            get(&old_t),
            get(&new_t),
        ));
    }
    let inputs = |c: &ModelCard| {
        if c.inputs.is_empty() {
            return "none".to_owned();
        }
        c.inputs
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(compare(
        "Architecture",
        "Input columns",
        inputs(old),
        inputs(new),
    ));
    out.push(compare("Architecture", "Output", output(old), output(new)));
}

/// `label (class / class)`, or the label alone when there are no classes (a regression).
fn output(c: &ModelCard) -> String {
    if c.output.classes.is_empty() {
        c.output.label.clone()
    } else {
        format!("{} ({})", c.output.label, c.output.classes.join(" / "))
    }
}

/// The family, a CNN's input images, input normalization and each convolution block.
fn family(out: &mut Vec<Change>, old: &ModelCard, new: &ModelCard) {
    out.push(compare(
        "Architecture",
        "Kind",
        old.architecture.kind.clone(),
        new.architecture.kind.clone(),
    ));
    let cnn = |c: &ModelCard| c.architecture.cnn.clone();
    let (ca, cb) = (cnn(old), cnn(new));
    let none = || "none".to_owned();
    let input =
        |c: &Option<CnnArchitecture>| c.as_ref().map_or_else(none, |c| image_words(&c.input));
    out.push(compare(
        "Architecture",
        "Input images",
        input(&ca),
        input(&cb),
    ));
    let norm = |c: &Option<CnnArchitecture>| {
        c.as_ref()
            .map_or_else(none, |c| normalization_words(c).to_owned())
    };
    out.push(compare(
        "Architecture",
        "Input normalization",
        norm(&ca),
        norm(&cb),
    ));
    let blocks = |c: &Option<CnnArchitecture>| c.as_ref().map_or_else(Vec::new, |c| c.conv.clone());
    let (ba, bb) = (blocks(&ca), blocks(&cb));
    for i in 0..ba.len().max(bb.len()) {
        let word = |v: &[ConvBlock]| {
            v.get(i)
                .map_or_else(|| "absent".to_owned(), |b| block_words(b, false))
        };
        out.push(compare(
            "Architecture",
            format!("Convolution block {}", i + 1),
            word(&ba),
            word(&bb),
        ));
    }
}

fn leak_checks(out: &mut Vec<Change>, old: &LeakReport, new: &LeakReport) {
    out.push(compare(
        "Leak checks",
        "Overall verdict",
        verdict_word(old.verdict).to_owned(),
        verdict_word(new.verdict).to_owned(),
    ));
    let layers = |r: &LeakReport| -> BTreeMap<String, (String, Verdict)> {
        r.layers
            .iter()
            .map(|l| (l.id.clone(), (l.name.clone(), l.verdict)))
            .collect()
    };
    let (old_l, new_l) = (layers(old), layers(new));
    let ids: BTreeSet<&String> = old_l.keys().chain(new_l.keys()).collect();
    for id in ids {
        let name = new_l
            .get(id)
            .or_else(|| old_l.get(id))
            .map(|(n, _)| n.as_str())
            .unwrap_or_default();
        let get = |m: &BTreeMap<String, (String, Verdict)>| {
            m.get(id).map_or_else(
                || "not run".to_owned(),
                |(_, v)| verdict_word(*v).to_owned(),
            )
        };
        out.push(compare(
            "Leak checks",
            format!("{id} {name}"),
            get(&old_l),
            get(&new_l),
        ));
    }
}

/// Training data and build inputs, from the provenance of both releases.
fn build(out: &mut Vec<Change>, old: Option<&serde_json::Value>, new: Option<&serde_json::Value>) {
    let (Some(old_p), Some(new_p)) = (old, new) else {
        let why = |p: Option<&serde_json::Value>| match p {
            Some(_) => "available",
            None => "not verified",
        };
        out.push(Change {
            area: "Training data",
            item: "Dataset fingerprints".to_owned(),
            before: format!("provenance {}", why(old)),
            after: format!("provenance {}", why(new)),
            state: ChangeState::Unknown,
            note: "cannot compare without verified provenance on both releases".to_owned(),
        });
        return;
    };
    let (old_p, new_p) = (parse_provenance(old_p), parse_provenance(new_p));
    let data =
        |p: &Provenance| -> BTreeMap<String, String> { p.training_data.iter().cloned().collect() };
    let (old_d, new_d) = (data(&old_p), data(&new_p));
    let files: BTreeSet<&String> = old_d.keys().chain(new_d.keys()).collect();
    for file in files {
        let get =
            |m: &BTreeMap<String, String>| m.get(file).cloned().unwrap_or_else(|| "absent".into());
        out.push(compare(
            "Training data",
            format!("{file} (SHA-256)"),
            get(&old_d),
            get(&new_d),
        ));
    }
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "not recorded".into());
    out.push(compare(
        "Build",
        "Pipeline file (SHA-256)",
        opt(&old_p.pipeline_sha256),
        opt(&new_p.pipeline_sha256),
    ));
    out.push(compare(
        "Build",
        "Source code (git commit)",
        opt(&old_p.git_commit),
        opt(&new_p.git_commit),
    ));
}
