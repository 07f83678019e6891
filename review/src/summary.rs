//! The change summary at the top of the page (and of the terminal summary): every setting
//! and data file that differs from the previous release, the measured leak values side by
//! side, and the headline metrics with their intervals, judged better or worse only when
//! the intervals do not overlap.

use std::collections::{BTreeMap, BTreeSet};

use airlock_schemas::{
    CardConfiguration, CardMetrics, CnnSpec, ConvBlock, LeakLayer, LeakReport, ModelCard,
    ModelSpec, TaskSpec,
};

use crate::architecture::{block_words, image_words};
use crate::diff::{ChangeState, changes};
use crate::format::{fmt4, grouped, plain, verdict_word};
use crate::task::{compared_metrics, is_binary, tasks_differ};
use crate::{Previous, ReviewInput};

/// A metric's point estimate and its interval, as one release records it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Estimate {
    pub(crate) value: Option<f64>,
    pub(crate) low: Option<f64>,
    pub(crate) high: Option<f64>,
}

impl Estimate {
    fn point(v: f64) -> Self {
        Self::point_of(Some(v))
    }

    fn point_of(value: Option<f64>) -> Self {
        Self {
            value,
            low: None,
            high: None,
        }
    }

    /// The interval, when both ends are recorded, finite and in order; anything else is
    /// treated as no interval, so a malformed one can never make a change read as noise.
    pub(crate) fn interval(&self) -> Option<(f64, f64)> {
        match (self.low, self.high) {
            (Some(l), Some(h)) if l.is_finite() && h.is_finite() && l <= h => Some((l, h)),
            _ => None,
        }
    }

    fn finite(&self) -> Option<f64> {
        self.value.filter(|v| v.is_finite())
    }
}

/// `name`'s estimate in `card`: from the holdout evaluation when the card has one, else the
/// point estimate every card records (ROC AUC, accuracy, loss), with no interval.
pub(crate) fn estimate(card: &ModelCard, name: &str) -> Estimate {
    let evaluated = card
        .evaluation
        .as_ref()
        .and_then(|e| e.metrics.iter().find(|m| m.name == name));
    if let Some(m) = evaluated {
        return Estimate {
            value: m.value,
            low: m.low,
            high: m.high,
        };
    }
    match name {
        "roc_auc" => Estimate::point_of(card.metrics.binary().map(|b| b.roc_auc)),
        "accuracy" => Estimate::point_of(match &card.metrics {
            CardMetrics::Binary(b) => Some(b.accuracy),
            CardMetrics::Multiclass(m) => Some(m.accuracy),
            CardMetrics::Regression(_) => None,
        }),
        "macro_f1" => Estimate::point_of(match &card.metrics {
            CardMetrics::Multiclass(m) => Some(m.macro_f1),
            _ => None,
        }),
        "rmse" | "mae" | "r2" => Estimate::point_of(match &card.metrics {
            CardMetrics::Regression(r) => Some(match name {
                "rmse" => r.rmse,
                "mae" => r.mae,
                _ => r.r2,
            }),
            _ => None,
        }),
        "loss" => Estimate::point(card.metrics.loss()),
        _ => Estimate::default(),
    }
}

/// How a metric is named on the page.
pub(crate) fn metric_label(name: &str) -> Option<&'static str> {
    Some(match name {
        "roc_auc" => "ROC AUC",
        "accuracy" => "Accuracy",
        "sensitivity" => "Sensitivity (recall)",
        "specificity" => "Specificity",
        "ppv" => "PPV (precision)",
        "npv" => "NPV",
        "brier" => "Brier score",
        "loss" => "Loss",
        "macro_f1" => "Macro-F1",
        "rmse" => "RMSE",
        "mae" => "MAE",
        "r2" => "R²",
        _ => return None,
    })
}

/// Whether a higher value of the metric is better (`None`: a metric this page does not
/// know, which is never called better or worse).
pub(crate) fn higher_is_better(name: &str) -> Option<bool> {
    match name {
        "roc_auc" | "accuracy" | "sensitivity" | "specificity" | "ppv" | "npv" | "macro_f1"
        | "r2" => Some(true),
        "brier" | "loss" | "rmse" | "mae" => Some(false),
        _ => None,
    }
}

/// What a metric difference between two releases means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judgement {
    /// The same at the precision shown.
    Unchanged,
    /// Better, and the intervals do not overlap.
    Better,
    /// Worse, and the intervals do not overlap.
    Worse,
    /// Different, the intervals do not overlap, and the metric has no known direction.
    Different,
    /// The intervals overlap: the difference is within noise.
    WithinNoise,
    /// At least one side has no interval: noise cannot be told from a change.
    NoInterval,
    /// Undefined on at least one side.
    NotComparable,
    /// The two releases are of different tasks: no figure of one says anything about the
    /// other's.
    DifferentTasks,
}

impl Judgement {
    /// The words on the page and in the summary.
    pub(crate) fn words(self) -> &'static str {
        match self {
            Judgement::Unchanged => "unchanged",
            Judgement::Better => "better (intervals do not overlap)",
            Judgement::Worse => "worse (intervals do not overlap)",
            Judgement::Different => "different (intervals do not overlap)",
            Judgement::WithinNoise => "within noise (intervals overlap)",
            Judgement::NoInterval => "no interval recorded: cannot tell a change from noise",
            Judgement::NotComparable => "not comparable (undefined on one side)",
            Judgement::DifferentTasks => "not comparable (the releases are of different tasks)",
        }
    }

    /// The CSS class and `data-judgement`.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Judgement::Unchanged => "unchanged",
            Judgement::Better => "better",
            Judgement::Worse => "worse",
            Judgement::Different => "different",
            Judgement::WithinNoise => "noise",
            Judgement::NoInterval => "no-interval",
            Judgement::NotComparable | Judgement::DifferentTasks => "not-comparable",
        }
    }
}

/// Judge `name` of the card `new` against `old`'s: never across different tasks, else as
/// [`judge`] does.
pub(crate) fn judge_cards(
    name: &str,
    cards: (&ModelCard, &ModelCard),
    old: &Estimate,
    new: &Estimate,
) -> Judgement {
    if tasks_differ(cards.0, cards.1) {
        Judgement::DifferentTasks
    } else {
        judge(name, old, new)
    }
}

/// Judge `new` against `old`: better or worse only when both intervals exist and do not
/// overlap.
pub(crate) fn judge(name: &str, old: &Estimate, new: &Estimate) -> Judgement {
    let (Some(a), Some(b)) = (old.finite(), new.finite()) else {
        return Judgement::NotComparable;
    };
    if fmt4(a) == fmt4(b) {
        return Judgement::Unchanged;
    }
    let (Some((alo, ahi)), Some((blo, bhi))) = (old.interval(), new.interval()) else {
        return Judgement::NoInterval;
    };
    let higher = if blo > ahi {
        true
    } else if bhi < alo {
        false
    } else {
        return Judgement::WithinNoise;
    };
    match higher_is_better(name) {
        Some(up) if up == higher => Judgement::Better,
        Some(_) => Judgement::Worse,
        None => Judgement::Different,
    }
}

/// One compared setting or data item.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    pub(crate) item: String,
    pub(crate) before: String,
    pub(crate) after: String,
    /// What the difference is, when the two values alone do not say (features added).
    pub(crate) note: String,
    /// Could not be compared (counts as not unchanged).
    pub(crate) unknown: bool,
}

impl Setting {
    fn new(item: impl Into<String>, before: String, after: String) -> Self {
        Self {
            item: item.into(),
            before,
            after,
            note: String::new(),
            unknown: false,
        }
    }

    pub(crate) fn changed(&self) -> bool {
        self.unknown || self.before != self.after
    }
}

/// One row of the measured leak values.
#[derive(Debug, Clone)]
pub(crate) struct LeakRow {
    pub(crate) id: String,
    pub(crate) measure: String,
    pub(crate) before: String,
    pub(crate) after: String,
    pub(crate) limit: String,
}

/// One row of the metrics side by side.
#[derive(Debug, Clone)]
pub(crate) struct MetricRow {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) before: Estimate,
    pub(crate) after: Estimate,
    pub(crate) judgement: Judgement,
}

/// The whole change summary.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Whether each card records its training configuration (previous, this).
    pub(crate) recorded: (bool, bool),
    pub(crate) changed: Vec<Setting>,
    pub(crate) unchanged: Vec<Setting>,
    pub(crate) leaks: Vec<LeakRow>,
    pub(crate) metrics: Vec<MetricRow>,
    /// Confidence level of the intervals (previous, this), when recorded.
    pub(crate) confidence: (Option<f64>, Option<f64>),
}

impl Summary {
    /// Both cards record their configuration, so every setting was compared.
    pub(crate) fn configuration_recorded(&self) -> bool {
        self.recorded.0 && self.recorded.1
    }
}

/// The change summary of `input` against `prev`.
pub(crate) fn summarize(input: &ReviewInput<'_>, prev: &Previous<'_>) -> Summary {
    let (old, new) = (prev.card, input.card);
    let settings = match (&old.configuration, &new.configuration) {
        (Some(a), Some(b)) => configuration_settings(a, b),
        _ => fallback_settings(input, prev),
    };
    let (changed, unchanged) = settings.into_iter().partition(Setting::changed);
    let confidence = |c: &ModelCard| c.evaluation.as_ref().map(|e| e.bootstrap.confidence);
    Summary {
        recorded: (old.configuration.is_some(), new.configuration.is_some()),
        changed,
        unchanged,
        leaks: leak_rows(prev.report, input.report),
        metrics: metric_rows(old, new),
        confidence: (confidence(old), confidence(new)),
    }
}

/// An enum setting as the pipeline file spells it (`mlp`, `adam`).
fn kind_name(v: Result<serde_json::Value, serde_json::Error>) -> String {
    match v {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}

fn list<T: ToString>(xs: &[T]) -> String {
    xs.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// Every hyperparameter, data file and source fact of two recorded configurations.
fn configuration_settings(a: &CardConfiguration, b: &CardConfiguration) -> Vec<Setting> {
    let (ha, hb) = (&a.hyperparameters, &b.hyperparameters);
    let mut s = task_settings(&ha.task, &hb.task);
    s.push(Setting::new(
        "Model kind",
        ha.model.kind().to_owned(),
        hb.model.kind().to_owned(),
    ));
    cnn_settings(&mut s, &ha.model, &hb.model);
    s.extend([
        Setting::new(
            "Hidden layer widths",
            list(ha.model.hidden()),
            list(hb.model.hidden()),
        ),
        Setting::new(
            "Dropout",
            plain(ha.model.dropout()),
            plain(hb.model.dropout()),
        ),
        Setting::new(
            "Optimizer",
            kind_name(serde_json::to_value(ha.optimizer.kind)),
            kind_name(serde_json::to_value(hb.optimizer.kind)),
        ),
        Setting::new(
            "Learning rate",
            plain(ha.optimizer.learning_rate),
            plain(hb.optimizer.learning_rate),
        ),
        Setting::new(
            "Weight decay",
            plain(ha.optimizer.weight_decay),
            plain(hb.optimizer.weight_decay),
        ),
        Setting::new("Epochs", ha.epochs.to_string(), hb.epochs.to_string()),
        Setting::new(
            "Batch size",
            ha.batch_size.to_string(),
            hb.batch_size.to_string(),
        ),
        Setting::new("Seed", a.seed.to_string(), b.seed.to_string()),
        Setting::new(
            "Split fractions (train / validation / holdout)",
            fractions(a.split_fractions),
            fractions(b.split_fractions),
        ),
    ]);
    s.push(features(&ha.features, &hb.features));
    s.push(Setting::new("Label", ha.label.clone(), hb.label.clone()));
    data_settings(&mut s, a, b);
    let commit = |c: &CardConfiguration| {
        c.source
            .git_commit
            .clone()
            .unwrap_or_else(|| "not recorded".into())
    };
    s.push(Setting::new("Source (git commit)", commit(a), commit(b)));
    s.push(Setting::new(
        "Source work tree",
        tree_state(a.source.git_dirty).into(),
        tree_state(b.source.git_dirty).into(),
    ));
    s
}

pub(crate) fn tree_state(dirty: Option<bool>) -> &'static str {
    match dirty {
        Some(false) => "clean",
        Some(true) => "DIRTY (uncommitted changes)",
        None => "not recorded",
    }
}

fn fractions(f: [f64; 3]) -> String {
    f.map(plain).join(" / ")
}

/// The task and its classes, when either release is not a binary classifier (between
/// binary ones there is nothing to say, and the summary stays as it always was).
fn task_settings(a: &TaskSpec, b: &TaskSpec) -> Vec<Setting> {
    if a.is_binary() && b.is_binary() {
        return Vec::new();
    }
    let mut s = vec![Setting::new(
        "Task",
        a.name().to_owned(),
        b.name().to_owned(),
    )];
    let classes = |t: &TaskSpec| match t {
        TaskSpec::Multiclass { classes } => classes.clone(),
        _ => Vec::new(),
    };
    if [a, b]
        .iter()
        .any(|t| matches!(t, TaskSpec::Multiclass { .. }))
    {
        let mut c = named_list("Classes", &classes(a), &classes(b));
        for v in [&mut c.before, &mut c.after] {
            if v.is_empty() {
                "none".clone_into(v);
            }
        }
        s.push(c);
    }
    s
}

/// A CNN's input images and each convolution block, when either release is a CNN.
fn cnn_settings(s: &mut Vec<Setting>, a: &ModelSpec, b: &ModelSpec) {
    let cnn = |m: &ModelSpec| match m {
        ModelSpec::Cnn(c) => Some(c.clone()),
        ModelSpec::Mlp(_) => None,
    };
    let (ca, cb) = (cnn(a), cnn(b));
    if ca.is_none() && cb.is_none() {
        return;
    }
    let input = |c: &Option<CnnSpec>| {
        c.as_ref().map_or_else(
            || "none (feature columns)".to_owned(),
            |c| image_words(&c.input),
        )
    };
    s.push(Setting::new("Input images", input(&ca), input(&cb)));
    let blocks = |c: &Option<CnnSpec>| c.as_ref().map_or_else(Vec::new, |c| c.conv.clone());
    let (ba, bb) = (blocks(&ca), blocks(&cb));
    for i in 0..ba.len().max(bb.len()) {
        let word = |v: &[ConvBlock]| {
            v.get(i)
                .map_or_else(|| "absent".to_owned(), |b| block_words(b, true))
        };
        s.push(Setting::new(
            format!("Convolution block {}", i + 1),
            word(&ba),
            word(&bb),
        ));
    }
}

/// The feature columns: which were added and removed (or reordered).
fn features(a: &[String], b: &[String]) -> Setting {
    named_list("Features", a, b)
}

/// A list of names: which were added and removed (or reordered).
fn named_list(item: &str, a: &[String], b: &[String]) -> Setting {
    let mut s = Setting::new(item, a.join(", "), b.join(", "));
    if !s.changed() {
        return s;
    }
    let (sa, sb): (BTreeSet<&String>, BTreeSet<&String>) = (a.iter().collect(), b.iter().collect());
    let added: Vec<&str> = b
        .iter()
        .filter(|f| !sa.contains(f))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = a
        .iter()
        .filter(|f| !sb.contains(f))
        .map(String::as_str)
        .collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed: {}", removed.join(", ")));
    }
    if parts.is_empty() {
        parts.push("same columns in a different order".into());
    }
    s.note = parts.join("; ");
    s
}

/// Each training-data file's digest and row count, by file name.
fn data_settings(s: &mut Vec<Setting>, a: &CardConfiguration, b: &CardConfiguration) {
    let files = |c: &CardConfiguration| -> BTreeMap<String, (String, u64)> {
        c.data
            .iter()
            .map(|d| (d.name.clone(), (d.sha256.clone(), d.rows)))
            .collect()
    };
    let (fa, fb) = (files(a), files(b));
    let names: BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    for name in names {
        let sha = |m: &BTreeMap<String, (String, u64)>| {
            m.get(name)
                .map_or_else(|| "absent".to_owned(), |(sha, _)| sha.clone())
        };
        let rows = |m: &BTreeMap<String, (String, u64)>| {
            m.get(name)
                .map_or_else(|| "absent".to_owned(), |&(_, r)| grouped(r))
        };
        s.push(Setting::new(
            format!("Data {name}: SHA-256"),
            sha(&fa),
            sha(&fb),
        ));
        s.push(Setting::new(
            format!("Data {name}: rows"),
            rows(&fa),
            rows(&fb),
        ));
    }
}

/// Without a recorded configuration on both cards: what the cards and provenance let us
/// compare (architecture, inputs, data digests, build inputs), as before.
fn fallback_settings(input: &ReviewInput<'_>, prev: &Previous<'_>) -> Vec<Setting> {
    changes(input, prev)
        .into_iter()
        .filter(|c| !matches!(c.area, "Holdout metrics" | "Leak checks") && c.item != "Version")
        .map(|c| Setting {
            unknown: c.state == ChangeState::Unknown,
            item: c.item,
            before: c.before,
            after: c.after,
            note: c.note,
        })
        .collect()
}

/// A layer's figure under `key`, when it is a number.
fn number(map: &BTreeMap<String, serde_json::Value>, key: &str) -> Option<f64> {
    map.get(key).and_then(serde_json::Value::as_f64)
}

/// The membership-inference layer (L3) of a report.
pub(crate) fn membership_layer(r: &LeakReport) -> Option<&LeakLayer> {
    r.layers
        .iter()
        .find(|l| l.name == "membership-inference")
        .or_else(|| r.layers.iter().find(|l| l.id == "L3"))
}

/// L3's measured values and limits: (AUC, advantage, max AUC, max advantage).
pub(crate) fn membership_values(
    l: &LeakLayer,
) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
    (
        number(&l.counts, "auc"),
        number(&l.counts, "advantage"),
        number(&l.parameters, "max_auc"),
        number(&l.parameters, "max_advantage"),
    )
}

fn measured(v: Option<f64>) -> String {
    v.map_or_else(|| "not measured".to_owned(), fmt4)
}

/// Each layer's verdict and findings count, then L3's AUC and advantage with their limits.
fn leak_rows(old: &LeakReport, new: &LeakReport) -> Vec<LeakRow> {
    let by_id = |r: &LeakReport| -> BTreeMap<String, String> {
        r.layers
            .iter()
            .map(|l| {
                let findings = number(&l.counts, "findings").map_or_else(String::new, |n| {
                    format!(
                        ", {} finding{}",
                        plain(n),
                        if (n - 1.0).abs() < f64::EPSILON {
                            ""
                        } else {
                            "s"
                        }
                    )
                });
                (
                    l.id.clone(),
                    format!("{}{findings}", verdict_word(l.verdict)),
                )
            })
            .collect()
    };
    let names: BTreeMap<&String, &String> = old
        .layers
        .iter()
        .chain(&new.layers)
        .map(|l| (&l.id, &l.name))
        .collect();
    let (a, b) = (by_id(old), by_id(new));
    let mut rows: Vec<LeakRow> = names
        .iter()
        .map(|(id, name)| LeakRow {
            id: (*id).clone(),
            measure: format!("{id} {name}: verdict"),
            before: a.get(*id).cloned().unwrap_or_else(|| "not run".into()),
            after: b.get(*id).cloned().unwrap_or_else(|| "not run".into()),
            limit: String::new(),
        })
        .collect();
    let (ma, mb) = (membership_layer(old), membership_layer(new));
    if ma.is_none() && mb.is_none() {
        return rows;
    }
    let va = ma.map(membership_values).unwrap_or_default();
    let vb = mb.map(membership_values).unwrap_or_default();
    let id = mb.or(ma).map(|l| l.id.clone()).unwrap_or_default();
    let limit = |old: Option<f64>, new: Option<f64>| match (old, new) {
        (Some(o), Some(n)) if fmt4(o) != fmt4(n) => {
            format!("at most {} (was {})", fmt4(n), fmt4(o))
        }
        (_, Some(n)) => format!("at most {}", fmt4(n)),
        (_, None) => "not recorded".to_owned(),
    };
    rows.push(LeakRow {
        id: id.clone(),
        measure: format!("{id} membership AUC"),
        before: measured(va.0),
        after: measured(vb.0),
        limit: limit(va.2, vb.2),
    });
    rows.push(LeakRow {
        id: id.clone(),
        measure: format!("{id} membership advantage"),
        before: measured(va.1),
        after: measured(vb.1),
        limit: limit(va.3, vb.3),
    });
    rows
}

/// The headline metrics of both releases: between binary classifiers the evaluation's when
/// either card has one, else the three every card records; otherwise each side's task
/// metrics too (after any evaluation's).
fn metric_rows(old: &ModelCard, new: &ModelCard) -> Vec<MetricRow> {
    let mut names: Vec<String> = Vec::new();
    for card in [new, old] {
        for m in card.evaluation.iter().flat_map(|e| &e.metrics) {
            if !names.contains(&m.name) {
                names.push(m.name.clone());
            }
        }
    }
    if !(is_binary(old) && is_binary(new)) {
        for n in compared_metrics(old, new) {
            if !names.iter().any(|m| m == n) {
                names.push(n.to_owned());
            }
        }
    } else if names.is_empty() {
        names = ["roc_auc", "accuracy", "loss"].map(String::from).to_vec();
    }
    names
        .into_iter()
        .map(|name| {
            let (before, after) = (estimate(old, &name), estimate(new, &name));
            MetricRow {
                label: metric_label(&name).map_or_else(|| name.clone(), str::to_owned),
                judgement: judge_cards(&name, (old, new), &before, &after),
                name,
                before,
                after,
            }
        })
        .collect()
}
