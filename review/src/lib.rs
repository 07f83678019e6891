#![doc = include_str!("../README.md")]

//! `airlock review`: the page a compliance officer reads before deciding whether a model may
//! leave the premises, and a short terminal summary of the same.
//!
//! The page is one self-contained HTML5 file (inline CSS, inline SVG, no script, no external
//! URL at all) so it can be opened, archived and printed on an air-gapped laptop, and so
//! opening it never tells anyone outside that a review took place. Every string that came
//! from a bundle, a trust policy or an officer is escaped: the documents are signed, but
//! signed is not the same as harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use airlock_schemas::{
    Decision, EpochMetrics, LeakLayer, LeakReport, ModelCard, ReleasePredicate, RocPoint,
    Statement, Verdict,
};

use airlock_trust::Check;
use airlock_trust::approvals::{ApprovalSummary, DecisionStatus};

/// Everything the review page shows.
#[derive(Debug, Clone)]
pub struct ReviewInput<'a> {
    /// The bundle directory under review.
    pub bundle: &'a Path,
    /// Its `model-card.json`.
    pub card: &'a ModelCard,
    /// Its `leak-report.json`.
    pub report: &'a LeakReport,
    /// The release statement, when its builder signature verified.
    pub statement: Option<&'a Statement<ReleasePredicate>>,
    /// The SLSA provenance predicate (JSON), when its signature verified (the whole
    /// statement is accepted too). Its `buildDefinition.resolvedDependencies` hold
    /// `{"name": "training-data:<file>", "digest": {"sha256": ..}}`,
    /// `{"name": "training-record:...", ...}` and `{"name": "source", "digest": {"gitCommit": ..}}`;
    /// `buildDefinition.externalParameters.pipeline` = `{"name", "sha256"}`; `runDetails.builder.id`.
    pub provenance: Option<&'a serde_json::Value>,
    /// (file name, sha256) of every bundle file.
    pub files: Vec<(String, String)>,
    /// The verification checks, in order.
    pub checks: &'a [Check],
    /// (trust-policy name, key id) of the builder key that signed, if any.
    pub builder: Option<(String, String)>,
    /// Officer decisions, judged against the trust policy.
    pub approvals: &'a ApprovalSummary,
    /// The release being replaced, for "what changed".
    pub previous: Option<Previous<'a>>,
    /// Demo release (local demo keys): shown prominently as DEMO on the page.
    pub demo: bool,
    /// The trust policy file, as the officer should pass it to `airlock approve`.
    pub trust: Option<&'a Path>,
}

/// The release a new one replaces: what the "What changed" section compares against.
#[derive(Debug, Clone)]
pub struct Previous<'a> {
    /// Its bundle directory.
    pub bundle: &'a Path,
    /// Its model card.
    pub card: &'a ModelCard,
    /// Its leak report.
    pub report: &'a LeakReport,
    /// Its SLSA provenance predicate, when its signature verified.
    pub provenance: Option<&'a serde_json::Value>,
}

/// Where a release stands, as the page's banner says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStatus {
    /// A check failed (or nothing was checked): no decision should be taken on it.
    DoesNotVerify,
    /// A valid officer rejection blocks the release.
    Rejected,
    /// Enough valid approvals and no rejection.
    Approved,
    /// Verifies, waiting for approvals.
    ReadyToApprove,
}

/// The banner state of `input`. Verification comes first: approvals of bytes that do not
/// verify mean nothing, so a failed check outranks every decision.
pub fn review_status(input: &ReviewInput<'_>) -> ReviewStatus {
    if !verifies(input) {
        ReviewStatus::DoesNotVerify
    } else if input.approvals.rejected {
        ReviewStatus::Rejected
    } else if input.approvals.approved() {
        ReviewStatus::Approved
    } else {
        ReviewStatus::ReadyToApprove
    }
}

/// Fail closed: no checks, a failed check, a missing signed statement or a leak report
/// that did not pass all count as "does not verify".
fn verifies(input: &ReviewInput<'_>) -> bool {
    !input.checks.is_empty()
        && input.checks.iter().all(|c| c.ok)
        && input.statement.is_some()
        && input.report.verdict == Verdict::Pass
}

fn status_headline(input: &ReviewInput<'_>) -> String {
    let a = input.approvals;
    match review_status(input) {
        ReviewStatus::DoesNotVerify => "DOES NOT VERIFY".to_owned(),
        ReviewStatus::Rejected => "Blocked: rejected".to_owned(),
        ReviewStatus::Approved => format!("Approved ({} of {})", a.approvals, a.required),
        ReviewStatus::ReadyToApprove => "Ready to approve".to_owned(),
    }
}

fn status_explanation(input: &ReviewInput<'_>) -> String {
    let a = input.approvals;
    match review_status(input) {
        ReviewStatus::DoesNotVerify => {
            let failed: Vec<&str> = input
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name)
                .collect();
            let mut why = Vec::new();
            if input.checks.is_empty() {
                why.push("nothing was verified".to_owned());
            }
            if !failed.is_empty() {
                why.push(format!("failed checks: {}", failed.join(", ")));
            }
            if input.statement.is_none() {
                why.push("the builder's signature on the release statement did not verify".into());
            }
            if input.report.verdict != Verdict::Pass {
                why.push(format!(
                    "the leak checks did not pass ({})",
                    verdict_word(input.report.verdict)
                ));
            }
            format!(
                "Do not approve: this bundle is not the one that was built and checked, or it \
                 failed a check. {}.",
                capitalize(&why.join("; "))
            )
        }
        ReviewStatus::Rejected => {
            "An officer rejected this release; it cannot be published while that rejection \
             stands."
                .to_owned()
        }
        ReviewStatus::Approved if a.required == 0 => {
            "Every check passed. The trust policy requires no officer approval.".to_owned()
        }
        ReviewStatus::Approved => format!(
            "Every check passed and {} of {} required officer approvals are in place.",
            a.approvals, a.required
        ),
        ReviewStatus::ReadyToApprove => format!(
            "Every check passed. {} of {} required approvals so far: review the sections below, \
             then approve or reject.",
            a.approvals, a.required
        ),
    }
}

fn status_class(status: ReviewStatus) -> &'static str {
    match status {
        ReviewStatus::DoesNotVerify => "status-broken",
        ReviewStatus::Rejected => "status-rejected",
        ReviewStatus::Approved => "status-approved",
        ReviewStatus::ReadyToApprove => "status-pending",
    }
}

/// HTML-escape text and attribute values alike (quotes included, so the same function is
/// safe inside `"..."` attributes).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// Writing into a String cannot fail; this keeps the renderers free of `let _ =` noise.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        let _ = write!($dst, $($arg)*);
    };
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn fmt4(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "n/a".to_owned()
    }
}

fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}%", x * 100.0)
    } else {
        "n/a".to_owned()
    }
}

/// 12345 → "12,345": row counts are read by people, not parsed.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn short_id(id: &str) -> String {
    id.chars().take(16).collect()
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "error",
    }
}

fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "Pass",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR (could not run)",
    }
}

/// What each leak layer means, for a reader who has not read the design notes.
fn layer_meaning(name: &str) -> &'static str {
    match name {
        "structure" => {
            "Only the declared model weights ship: no optimizer state, data statistics or extra metadata."
        }
        "pii-patterns" => {
            "No personal identifiers (emails, card numbers, SSNs, IBANs, phone numbers) appear in the files."
        }
        "exact-records" => "No training record, text or numbers, is copied into the files.",
        "membership-inference" => {
            "The model does not behave differently on its training rows (it did not memorize them)."
        }
        _ => "",
    }
}

/// Times read better as "2025-06-01 14:03 UTC" than as RFC 3339; anything unparsable is
/// shown as written.
fn human_time(s: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) else {
        return s.to_owned();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Quote a path for a POSIX shell only when it needs it, so the usual case stays readable.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn json_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => grouped(u),
            (None, Some(i), _) => i.to_string(),
            (_, _, Some(f)) if f != 0.0 && f.abs() < 1e-3 => format!("{f:.3e}"),
            (_, _, Some(f)) => fmt4(f),
            _ => n.to_string(),
        },
        serde_json::Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Provenance

/// The parts of a SLSA provenance predicate the page shows.
#[derive(Debug, Default)]
struct Provenance {
    pipeline_name: Option<String>,
    pipeline_sha256: Option<String>,
    git_commit: Option<String>,
    /// (file name, sha256) of every training-data dependency.
    training_data: Vec<(String, String)>,
    /// (name, sha256) of the training record(s).
    training_record: Vec<(String, String)>,
    builder_id: Option<String>,
    internal: Vec<(String, String)>,
    started: Option<String>,
    finished: Option<String>,
}

fn parse_provenance(v: &serde_json::Value) -> Provenance {
    // Accept the whole statement too: the predicate is what the page needs either way.
    let p = v.get("predicate").unwrap_or(v);
    let s = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let build = p.get("buildDefinition");
    let pipeline = build
        .and_then(|b| b.get("externalParameters"))
        .and_then(|e| e.get("pipeline"));
    let mut out = Provenance {
        pipeline_name: s(pipeline.and_then(|p| p.get("name"))),
        pipeline_sha256: s(pipeline.and_then(|p| p.get("sha256"))),
        builder_id: s(p.pointer("/runDetails/builder/id")),
        started: s(p.pointer("/runDetails/metadata/startedOn")),
        finished: s(p.pointer("/runDetails/metadata/finishedOn")),
        ..Provenance::default()
    };
    if let Some(internal) = build
        .and_then(|b| b.get("internalParameters"))
        .and_then(|i| i.as_object())
    {
        out.internal = internal
            .iter()
            .map(|(k, v)| (k.clone(), json_scalar(v)))
            .collect();
    }
    let deps = build
        .and_then(|b| b.get("resolvedDependencies"))
        .and_then(|d| d.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for dep in deps {
        let name = dep.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        let sha = s(dep.pointer("/digest/sha256")).unwrap_or_default();
        if let Some(file) = name.strip_prefix("training-data:") {
            out.training_data.push((file.to_owned(), sha));
        } else if let Some(rec) = name.strip_prefix("training-record:") {
            out.training_record.push((rec.to_owned(), sha));
        } else if name == "source" {
            out.git_commit = s(dep.pointer("/digest/gitCommit"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// What changed

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeState {
    Changed,
    Unchanged,
    Unknown,
}

impl ChangeState {
    fn word(self) -> &'static str {
        match self {
            ChangeState::Changed => "changed",
            ChangeState::Unchanged => "unchanged",
            ChangeState::Unknown => "unknown",
        }
    }
}

#[derive(Debug)]
struct Change {
    area: &'static str,
    item: String,
    before: String,
    after: String,
    state: ChangeState,
    note: String,
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

/// A metric row: compared at the precision shown, so float noise never reads as a change.
fn metric_change(item: &str, before: f64, after: f64, higher_is_better: bool) -> Change {
    let mut c = compare("Holdout metrics", item, fmt4(before), fmt4(after));
    if c.state == ChangeState::Changed && before.is_finite() && after.is_finite() {
        let d = after - before;
        let better = (d > 0.0) == higher_is_better;
        c.note = format!("{d:+.4} ({})", if better { "better" } else { "worse" });
    }
    c
}

fn widths(card: &ModelCard) -> String {
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

fn changes(input: &ReviewInput<'_>, prev: &Previous<'_>) -> Vec<Change> {
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
    out.push(metric_change(
        "ROC AUC",
        old.metrics.roc_auc,
        new.metrics.roc_auc,
        true,
    ));
    out.push(metric_change(
        "Accuracy",
        old.metrics.accuracy,
        new.metrics.accuracy,
        true,
    ));
    out.push(metric_change(
        "Loss",
        old.metrics.loss,
        new.metrics.loss,
        false,
    ));
    out.push(compare(
        "Holdout metrics",
        "Holdout rows",
        grouped(old.metrics.holdout_rows),
        grouped(new.metrics.holdout_rows),
    ));

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
    out.push(compare(
        "Architecture",
        "Output",
        format!("{} ({})", old.output.label, old.output.classes.join(" / ")),
        format!("{} ({})", new.output.label, new.output.classes.join(" / ")),
    ));

    out.push(compare(
        "Leak checks",
        "Overall verdict",
        verdict_word(prev.report.verdict).to_owned(),
        verdict_word(input.report.verdict).to_owned(),
    ));
    let layers = |r: &LeakReport| -> BTreeMap<String, (String, Verdict)> {
        r.layers
            .iter()
            .map(|l| (l.id.clone(), (l.name.clone(), l.verdict)))
            .collect()
    };
    let (old_l, new_l) = (layers(prev.report), layers(input.report));
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

    match (prev.provenance, input.provenance) {
        (Some(old_p), Some(new_p)) => {
            let (old_p, new_p) = (parse_provenance(old_p), parse_provenance(new_p));
            let data = |p: &Provenance| -> BTreeMap<String, String> {
                p.training_data.iter().cloned().collect()
            };
            let (old_d, new_d) = (data(&old_p), data(&new_p));
            let files: BTreeSet<&String> = old_d.keys().chain(new_d.keys()).collect();
            for file in files {
                let get = |m: &BTreeMap<String, String>| {
                    m.get(file).cloned().unwrap_or_else(|| "absent".into())
                };
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
        (old_p, new_p) => {
            let why = |p: Option<&serde_json::Value>| match p {
                Some(_) => "available",
                None => "not verified",
            };
            out.push(Change {
                area: "Training data",
                item: "Dataset fingerprints".to_owned(),
                before: format!("provenance {}", why(old_p)),
                after: format!("provenance {}", why(new_p)),
                state: ChangeState::Unknown,
                note: "cannot compare without verified provenance on both releases".to_owned(),
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Charts

/// Plot geometry in SVG user units; the SVG scales to the page width.
#[derive(Debug, Clone, Copy)]
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn x0(&self) -> f64 {
        self.left
    }
    fn x1(&self) -> f64 {
        self.width - self.right
    }
    fn y0(&self) -> f64 {
        self.height - self.bottom
    }
    fn y1(&self) -> f64 {
        self.top
    }
    /// Map `v` in `[lo, hi]` to x; values outside are clamped so nothing draws off-chart.
    fn x(&self, v: f64, lo: f64, hi: f64) -> f64 {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.x0() + t.clamp(0.0, 1.0) * (self.x1() - self.x0())
    }
    fn y(&self, v: f64, lo: f64, hi: f64) -> f64 {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.y0() - t.clamp(0.0, 1.0) * (self.y0() - self.y1())
    }
}

/// A "nice" tick step (1, 2, 2.5 or 5 × 10^k) giving about `target` ticks up to `max`.
fn nice_step(max: f64, target: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 0.2;
    }
    let raw = max / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Just enough decimals to tell ticks apart: one per power of ten below 1, plus one for
/// 2.5-style steps.
fn tick_label(v: f64, step: f64) -> String {
    let exp = step.log10().floor();
    let mantissa = step / 10f64.powf(exp);
    let mut decimals = (-exp).max(0.0) as usize;
    if (mantissa - mantissa.round()).abs() > 1e-6 {
        decimals += 1;
    }
    format!("{v:.decimals$}")
}

fn point_list(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Train and validation loss per epoch: two polylines, one circle per finite point.
fn loss_chart(epochs: &[EpochMetrics]) -> String {
    let f = Frame {
        width: 640.0,
        height: 320.0,
        left: 60.0,
        right: 20.0,
        top: 44.0,
        bottom: 48.0,
    };
    let mut s = String::new();
    w!(
        s,
        r#"<svg id="loss-chart" class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="loss-chart-title">"#,
        w = f.width,
        h = f.height
    );
    let title = "Training and validation loss per epoch";
    w!(s, r#"<title id="loss-chart-title">{title}</title>"#);
    w!(
        s,
        r#"<text class="chart-title" x="{}" y="22">{title}</text>"#,
        f.x0()
    );

    let finite_max = epochs
        .iter()
        .flat_map(|e| [e.train_loss, e.validation_loss])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let step = nice_step(finite_max, 5.0);
    let ymax = if finite_max > 0.0 {
        (finite_max / step).ceil() * step
    } else {
        1.0
    };

    // Y grid and labels.
    let mut k = 0u32;
    loop {
        let v = f64::from(k) * step;
        if v > ymax + step * 1e-9 {
            break;
        }
        let y = f.y(v, 0.0, ymax);
        w!(
            s,
            r#"<line class="grid" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            f.x0(),
            f.x1(),
            f.x0() - 6.0,
            y + 4.0,
            tick_label(v, step)
        );
        k += 1;
    }

    let n = epochs.len();
    let xi = |i: usize| {
        if n <= 1 {
            f.x(0.5, 0.0, 1.0)
        } else {
            f.x(i as f64, 0.0, (n - 1) as f64)
        }
    };
    // X ticks: every epoch when few, about ten otherwise.
    let every = if n <= 15 { 1 } else { n.div_ceil(10) };
    let last_regular = (n.saturating_sub(1) / every) * every;
    for (i, e) in epochs.iter().enumerate() {
        // The last epoch gets a tick too, unless it would crowd the previous label.
        let last = i + 1 == n && 2 * (i - last_regular) >= every;
        if i.is_multiple_of(every) || last {
            let x = xi(i);
            w!(
                s,
                r#"<line class="tickmark" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                f.y0(),
                f.y0() + 5.0,
                f.y0() + 18.0,
                e.epoch
            );
        }
    }
    axes(&mut s, &f, "epoch", "loss");

    if epochs.is_empty() {
        w!(
            s,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">No per-epoch figures were recorded.</text>"#,
            (f.x0() + f.x1()) / 2.0,
            (f.y0() + f.y1()) / 2.0
        );
    }

    for (series, label, get) in [
        (
            "train",
            "training",
            (|e: &EpochMetrics| e.train_loss) as fn(&EpochMetrics) -> f64,
        ),
        ("validation", "validation", |e: &EpochMetrics| {
            e.validation_loss
        }),
    ] {
        let pts: Vec<(usize, f64, f64, f64)> = epochs
            .iter()
            .enumerate()
            .filter(|(_, e)| get(e).is_finite())
            .map(|(i, e)| (e.epoch, get(e), xi(i), f.y(get(e), 0.0, ymax)))
            .collect();
        let xy: Vec<(f64, f64)> = pts.iter().map(|&(_, _, x, y)| (x, y)).collect();
        w!(
            s,
            r#"<polyline class="series {series}" data-series="{series}" points="{}"/>"#,
            point_list(&xy)
        );
        for (epoch, v, x, y) in pts {
            w!(
                s,
                r#"<circle class="pt {series}" cx="{x:.1}" cy="{y:.1}" r="3"><title>epoch {epoch}: {label} loss {}</title></circle>"#,
                fmt4(v)
            );
        }
    }

    // Legend, top right.
    let lx = f.x1() - 210.0;
    for (i, (series, label)) in [
        ("train", "training loss"),
        ("validation", "validation loss"),
    ]
    .iter()
    .enumerate()
    {
        let x = lx + i as f64 * 110.0;
        w!(
            s,
            r#"<line class="legend {series}" x1="{x:.1}" y1="18" x2="{:.1}" y2="18"/><text class="legend-label" x="{:.1}" y="22">{label}</text>"#,
            x + 18.0,
            x + 22.0
        );
    }
    s.push_str("</svg>");
    s
}

/// The holdout ROC curve with the chance diagonal; the AUC is in the title.
fn roc_chart(curve: &[RocPoint], auc: f64) -> String {
    let f = Frame {
        width: 420.0,
        height: 400.0,
        left: 56.0,
        right: 20.0,
        top: 44.0,
        bottom: 48.0,
    };
    let mut s = String::new();
    w!(
        s,
        r#"<svg id="roc-chart" class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="roc-chart-title">"#,
        w = f.width,
        h = f.height
    );
    let title = format!("ROC curve (AUC {})", fmt4(auc));
    w!(s, r#"<title id="roc-chart-title">{title}</title>"#);
    w!(
        s,
        r#"<text class="chart-title" x="{}" y="22">{title}</text>"#,
        f.x0()
    );
    for k in 0..=5 {
        let v = f64::from(k) * 0.2;
        let (x, y) = (f.x(v, 0.0, 1.0), f.y(v, 0.0, 1.0));
        w!(
            s,
            r#"<line class="grid" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text>"#,
            f.x0(),
            f.x1(),
            f.x0() - 6.0,
            y + 4.0
        );
        w!(
            s,
            r#"<line class="tickmark" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{v:.1}</text>"#,
            f.y0(),
            f.y0() + 5.0,
            f.y0() + 18.0
        );
    }
    axes(&mut s, &f, "false positive rate", "true positive rate");
    w!(
        s,
        r#"<line class="diagonal" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"><title>chance (AUC 0.5)</title></line>"#,
        f.x0(),
        f.y0(),
        f.x1(),
        f.y1()
    );
    let pts: Vec<&RocPoint> = curve
        .iter()
        .filter(|p| p.fpr.is_finite() && p.tpr.is_finite())
        .collect();
    if pts.is_empty() {
        w!(
            s,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">No ROC curve was recorded.</text>"#,
            (f.x0() + f.x1()) / 2.0,
            (f.y0() + f.y1()) / 2.0 - 20.0
        );
    } else {
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (f.x(p.fpr, 0.0, 1.0), f.y(p.tpr, 0.0, 1.0)))
            .collect();
        w!(
            s,
            r#"<polyline class="series roc" data-series="roc" points="{}"/>"#,
            point_list(&xy)
        );
        for (p, (x, y)) in pts.iter().zip(&xy) {
            w!(
                s,
                r#"<circle class="pt roc" cx="{x:.1}" cy="{y:.1}" r="1.8"><title>false positives {} / true positives {}</title></circle>"#,
                fmt4(p.fpr),
                fmt4(p.tpr)
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn axes(s: &mut String, f: &Frame, xlabel: &str, ylabel: &str) {
    w!(
        s,
        r#"<line class="axis" x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y0:.1}"/><line class="axis" x1="{x0:.1}" y1="{y0:.1}" x2="{x0:.1}" y2="{y1:.1}"/>"#,
        x0 = f.x0(),
        x1 = f.x1(),
        y0 = f.y0(),
        y1 = f.y1()
    );
    w!(
        s,
        r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{xlabel}</text>"#,
        (f.x0() + f.x1()) / 2.0,
        f.height - 8.0
    );
    let (cx, cy) = (14.0, (f.y0() + f.y1()) / 2.0);
    w!(
        s,
        r#"<text class="axis-label" x="{cx:.1}" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 {cx:.1} {cy:.1})">{ylabel}</text>"#
    );
}

// ---------------------------------------------------------------------------------------
// HTML

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
svg .diagonal { stroke: #8c959f; stroke-dasharray: 5 4; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 6px 0; }
dl.facts dt { font-weight: 600; color: var(--muted); }
dl.facts dd { margin: 0; }
pre.command { background: #f6f8fa; border: 1px solid var(--line); padding: 10px 12px; border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
nav.toc { font-size: 0.9rem; margin: 8px 0; }
nav.toc a { color: #0969da; margin-right: 12px; }
footer { margin-top: 36px; font-size: 0.85rem; color: var(--muted); }
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

/// The review page: one self-contained HTML5 document (inline style and SVG, no script, no
/// external URL).
pub fn render_html(input: &ReviewInput<'_>) -> String {
    let card = input.card;
    let status = review_status(input);
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Defense in depth: even if a future edit slipped a URL in, the browser would not fetch it.
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n",
    );
    h.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    h.push_str("<link rel=\"icon\" href=\"data:,\">\n");
    w!(
        h,
        "<title>{}Review: {} {}</title>\n",
        if input.demo { "[DEMO] " } else { "" },
        escape(&card.name),
        escape(&card.version)
    );
    w!(h, "<style>{STYLE}</style>\n</head>\n<body>\n");
    if input.demo {
        h.push_str("<div class=\"demo-ribbon\" id=\"demo-ribbon\">DEMO</div>\n");
    }
    h.push_str("<main>\n");

    // 1. Header and banner.
    w!(
        h,
        "<header id=\"summary\">\n<h1>{} <span class=\"muted\">version {}</span></h1>\n",
        escape(&card.name),
        escape(&card.version)
    );
    w!(
        h,
        "<p class=\"lead\">Release review for the compliance officer. Bundle: <code class=\"digest\">{}</code></p>\n",
        escape(&input.bundle.display().to_string())
    );
    if input.demo {
        h.push_str(
            "<div class=\"demo-note\">DEMO RELEASE: signed with local demo keys, not with the \
             organisation's keys. Do not treat an approval of it as a real release decision.</div>\n",
        );
    }
    w!(
        h,
        "<div class=\"banner {}\" id=\"status\" data-status=\"{}\">\n<div class=\"headline\">{}</div>\n<p>{}</p>\n</div>\n",
        status_class(status),
        match status {
            ReviewStatus::DoesNotVerify => "does-not-verify",
            ReviewStatus::Rejected => "rejected",
            ReviewStatus::Approved => "approved",
            ReviewStatus::ReadyToApprove => "ready",
        },
        escape(&status_headline(input)),
        escape(&status_explanation(input))
    );
    h.push_str(
        "<nav class=\"toc\"><a href=\"#identity\">Identity</a><a href=\"#model\">Model</a>\
         <a href=\"#metrics\">Metrics</a><a href=\"#leaks\">Leak checks</a>\
         <a href=\"#provenance\">Provenance</a><a href=\"#approvals-section\">Approvals</a>",
    );
    if input.previous.is_some() {
        h.push_str("<a href=\"#changes\">What changed</a>");
    }
    h.push_str("</nav>\n</header>\n");

    identity_section(&mut h, input);
    model_section(&mut h, card);
    metrics_section(&mut h, card);
    leak_section(&mut h, input.report);
    provenance_section(&mut h, input);
    approvals_section(&mut h, input);
    if let Some(prev) = &input.previous {
        changes_section(&mut h, input, prev);
    }

    h.push_str(
        "<footer>Generated by <code>airlock review</code> from the bundle's files. Every figure \
         on this page is an aggregate; the leak report names places (file, tensor, record \
         number, column), never values.</footer>\n</main>\n</body>\n</html>\n",
    );
    h
}

fn identity_section(h: &mut String, input: &ReviewInput<'_>) {
    h.push_str("<section id=\"identity\">\n<h2>1. Identity and digests</h2>\n");
    h.push_str(
        "<p class=\"lead\">The exact bytes under review. An approval is bound to these \
         digests: if any byte changes, the approval no longer counts.</p>\n",
    );
    h.push_str("<dl class=\"facts\">\n");
    match &input.builder {
        Some((name, id)) => {
            w!(
                h,
                "<dt>Signed by (builder key)</dt><dd><strong>{}</strong>, key id <code class=\"digest\">{}</code></dd>\n",
                escape(name),
                escape(id)
            );
        }
        None => {
            h.push_str(
                "<dt>Signed by (builder key)</dt><dd class=\"fail\">No signature from a builder \
                 key in the trust policy verified.</dd>\n",
            );
        }
    }
    match input.statement {
        Some(st) => {
            let p = &st.predicate;
            let matches = p.model_name == input.card.name && p.model_version == input.card.version;
            w!(
                h,
                "<dt>Release statement</dt><dd><span class=\"ok\">signature verified</span>: {} {}{}</dd>\n",
                escape(&p.model_name),
                escape(&p.model_version),
                if matches {
                    ""
                } else {
                    " <span class=\"fail\">(DIFFERS from the model card)</span>"
                }
            );
            w!(
                h,
                "<dt>Leak verdict (signed)</dt><dd><span class=\"verdict {v}\">{}</span></dd>\n",
                verdict_label(p.leak_verdict),
                v = verdict_word(p.leak_verdict)
            );
            w!(
                h,
                "<dt>Model size</dt><dd>{} bytes</dd>\n",
                grouped(p.model_shards.length)
            );
        }
        None => {
            h.push_str(
                "<dt>Release statement</dt><dd class=\"fail\">Its signature did not verify: \
                 nothing on this page is vouched for by the builder.</dd>\n",
            );
        }
    }
    h.push_str("</dl>\n");

    h.push_str("<h3>Files</h3>\n<table id=\"files\">\n<thead><tr><th>File</th><th>SHA-256</th></tr></thead>\n<tbody>\n");
    if input.files.is_empty() {
        h.push_str("<tr><td colspan=\"2\" class=\"muted\">No files were listed.</td></tr>\n");
    }
    for (name, sha) in &input.files {
        w!(
            h,
            "<tr><td><code>{}</code></td><td><code class=\"digest\">{}</code></td></tr>\n",
            escape(name),
            escape(sha)
        );
    }
    h.push_str("</tbody>\n</table>\n");

    let passed = input.checks.iter().filter(|c| c.ok).count();
    w!(
        h,
        "<h3>Verification checks ({} of {} passed)</h3>\n<table id=\"checks\">\n<thead><tr><th>Check</th><th>Result</th><th>Detail</th></tr></thead>\n<tbody>\n",
        passed,
        input.checks.len()
    );
    if input.checks.is_empty() {
        h.push_str(
            "<tr><td colspan=\"3\" class=\"fail\">No check was run: treat this bundle as \
             unverified.</td></tr>\n",
        );
    }
    for c in input.checks {
        w!(
            h,
            "<tr data-check-ok=\"{}\"><td>{}</td><td class=\"{}\">{}</td><td class=\"digest\">{}</td></tr>\n",
            c.ok,
            escape(c.name),
            if c.ok { "ok" } else { "fail" },
            if c.ok { "ok" } else { "FAIL" },
            escape(&c.detail)
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn model_section(h: &mut String, card: &ModelCard) {
    h.push_str("<section id=\"model\">\n<h2>2. The model</h2>\n<dl class=\"facts\">\n");
    w!(
        h,
        "<dt>Intended use</dt><dd>{}</dd>\n",
        card.intended_use.as_deref().map_or_else(
            || "<span class=\"fail\">Not stated.</span>".to_owned(),
            escape
        )
    );
    w!(
        h,
        "<dt>Kind</dt><dd>{} with {} activation</dd>\n<dt>Layer widths</dt><dd>{}</dd>\n",
        escape(&card.architecture.kind),
        escape(&card.architecture.activation),
        escape(&widths(card))
    );
    w!(
        h,
        "<dt>Output</dt><dd>predicts <code>{}</code>, classes {}; the raw output goes through {} to give the probability of <em>{}</em></dd>\n",
        escape(&card.output.label),
        escape(&card.output.classes.join(" / ")),
        escape(&card.output.transform),
        escape(
            card.output
                .classes
                .last()
                .map_or("the positive class", String::as_str)
        )
    );
    h.push_str("</dl>\n");

    let params: usize = card
        .architecture
        .tensors
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    w!(
        h,
        "<h3>Tensors ({} parameters)</h3>\n<table id=\"tensors\">\n<thead><tr><th>Tensor</th><th>Type</th><th>Shape</th><th>Values</th></tr></thead>\n<tbody>\n",
        grouped(params as u64)
    );
    for t in &card.architecture.tensors {
        let dims: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        w!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&t.name),
            escape(&t.dtype),
            escape(&dims.join(" × ")),
            grouped(t.shape.iter().product::<usize>() as u64)
        );
    }
    h.push_str("</tbody>\n</table>\n");

    w!(
        h,
        "<h3>Inputs ({} columns, raw values; normalization is built into the weights)</h3>\n<table id=\"inputs\">\n<thead><tr><th>#</th><th>Column</th><th>Type</th></tr></thead>\n<tbody>\n",
        card.inputs.len()
    );
    for (i, f) in card.inputs.iter().enumerate() {
        w!(
            h,
            "<tr><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
            i + 1,
            escape(&f.name),
            escape(&f.dtype)
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn metrics_section(h: &mut String, card: &ModelCard) {
    let m = &card.metrics;
    h.push_str("<section id=\"metrics\">\n<h2>3. How well it works (holdout data)</h2>\n");
    h.push_str("<p class=\"lead\">Measured on rows the model never saw during training.</p>\n");
    h.push_str("<table id=\"holdout-metrics\">\n<thead><tr><th>Measure</th><th>Value</th><th>What it means</th></tr></thead>\n<tbody>\n");
    let rows = [
        (
            "ROC AUC",
            fmt4(m.roc_auc),
            "Chance that a random positive scores above a random negative (0.5 is a coin toss, 1.0 is perfect).",
        ),
        (
            "Accuracy",
            format!("{} ({})", fmt4(m.accuracy), percent(m.accuracy)),
            "Share of holdout rows classified correctly at threshold 0.5.",
        ),
        (
            "Loss",
            fmt4(m.loss),
            "Binary cross-entropy: lower is better.",
        ),
        (
            "Holdout rows",
            grouped(m.holdout_rows),
            "How many rows the figures above are measured on.",
        ),
        (
            "Positive rate",
            percent(m.positive_rate),
            "Share of holdout rows with the positive label.",
        ),
    ];
    for (name, value, meaning) in rows {
        w!(
            h,
            "<tr><td>{name}</td><td class=\"num\">{}</td><td class=\"muted\">{meaning}</td></tr>\n",
            escape(&value)
        );
    }
    h.push_str("</tbody>\n</table>\n");
    let [tr, va, ho] = card.training.split_rows;
    w!(
        h,
        "<p class=\"muted\">Rows used: {} training, {} validation, {} holdout.</p>\n",
        grouped(tr),
        grouped(va),
        grouped(ho)
    );
    h.push_str("<div class=\"charts\">\n");
    h.push_str(&loss_chart(&card.training.epochs));
    h.push('\n');
    h.push_str(&roc_chart(&card.training.roc_curve, m.roc_auc));
    h.push_str("\n</div>\n");
    h.push_str(
        "<p class=\"muted\">Loss chart: the two lines should fall and stay close; a validation \
         line that rises while training keeps falling is a sign of overfitting. ROC chart: the \
         further the curve bows towards the top left above the dashed diagonal, the better.</p>\n",
    );
    h.push_str("</section>\n");
}

fn kv_list(m: &BTreeMap<String, serde_json::Value>) -> String {
    if m.is_empty() {
        return "<span class=\"muted\">none</span>".to_owned();
    }
    m.iter()
        .map(|(k, v)| {
            format!(
                "{}: <strong>{}</strong>",
                escape(k),
                escape(&json_scalar(v))
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn leak_section(h: &mut String, report: &LeakReport) {
    h.push_str("<section id=\"leaks\">\n<h2>4. Leak checks</h2>\n");
    w!(
        h,
        "<p>Overall: <span class=\"verdict {}\" id=\"leak-verdict\">{}</span>. Every check fails \
         closed: one that could not run blocks the release.</p>\n",
        verdict_word(report.verdict),
        verdict_label(report.verdict)
    );
    h.push_str("<table id=\"leak-layers\">\n<thead><tr><th>Layer</th><th>Check</th><th>Verdict</th><th>Parameters</th><th>Counts</th></tr></thead>\n<tbody>\n");
    if report.layers.is_empty() {
        h.push_str("<tr><td colspan=\"5\" class=\"fail\">No leak check was recorded.</td></tr>\n");
    }
    for l in &report.layers {
        layer_row(h, l);
    }
    h.push_str("</tbody>\n</table>\n");

    for l in report.layers.iter().filter(|l| !l.findings.is_empty()) {
        w!(
            h,
            "<h3>Findings of {} {} ({} listed)</h3>\n<table class=\"findings\" data-layer=\"{}\">\n<thead><tr><th>Kind</th><th>Location</th><th>Record</th><th>Column</th></tr></thead>\n<tbody>\n",
            escape(&l.id),
            escape(&l.name),
            l.findings.len(),
            escape(&l.id)
        );
        for f in &l.findings {
            w!(
                h,
                "<tr><td>{}</td><td class=\"digest\"><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>\n",
                escape(&f.kind),
                escape(&f.location),
                f.record.map_or_else(|| "—".to_owned(), |r| r.to_string()),
                f.column.as_deref().map_or_else(|| "—".to_owned(), escape)
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }

    if !report.inputs.is_empty() {
        h.push_str("<h3>What was checked</h3>\n<table id=\"leak-inputs\">\n<thead><tr><th>Role</th><th>File</th><th>SHA-256</th></tr></thead>\n<tbody>\n");
        for i in &report.inputs {
            w!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td><code class=\"digest\">{}</code></td></tr>\n",
                escape(&i.role),
                escape(&i.name),
                escape(&i.sha256)
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str("</section>\n");
}

fn layer_row(h: &mut String, l: &LeakLayer) {
    let meaning = layer_meaning(&l.name);
    w!(
        h,
        "<tr data-layer=\"{id}\"><td><strong>{id}</strong></td><td>{}{}{}</td><td class=\"verdict {}\">{}</td><td>{}</td><td>{}</td></tr>\n",
        escape(&l.name),
        if meaning.is_empty() {
            String::new()
        } else {
            format!("<br><span class=\"muted\">{meaning}</span>")
        },
        l.error.as_deref().map_or_else(String::new, |e| format!(
            "<br><span class=\"fail\">Could not run: {}</span>",
            escape(e)
        )),
        verdict_word(l.verdict),
        verdict_label(l.verdict),
        kv_list(&l.parameters),
        kv_list(&l.counts),
        id = escape(&l.id)
    );
}

fn provenance_section(h: &mut String, input: &ReviewInput<'_>) {
    h.push_str("<section id=\"provenance\">\n<h2>5. Provenance: how it was built</h2>\n");
    let Some(v) = input.provenance else {
        h.push_str(
            "<p class=\"fail\">No verified provenance: its signature did not verify or it is \
             missing. Where the model came from cannot be confirmed.</p>\n</section>\n",
        );
        return;
    };
    let p = parse_provenance(v);
    let or_missing = |s: &Option<String>| {
        s.as_deref().map_or_else(
            || "<span class=\"muted\">not recorded</span>".to_owned(),
            |s| format!("<code class=\"digest\">{}</code>", escape(s)),
        )
    };
    h.push_str("<dl class=\"facts\">\n");
    w!(
        h,
        "<dt>Pipeline</dt><dd>{}</dd>\n<dt>Pipeline file SHA-256</dt><dd>{}</dd>\n<dt>Source code (git commit)</dt><dd>{}</dd>\n<dt>Builder</dt><dd>{}</dd>\n",
        p.pipeline_name.as_deref().map_or_else(
            || "<span class=\"muted\">not recorded</span>".to_owned(),
            escape
        ),
        or_missing(&p.pipeline_sha256),
        or_missing(&p.git_commit),
        or_missing(&p.builder_id)
    );
    if let (Some(a), Some(b)) = (&p.started, &p.finished) {
        w!(
            h,
            "<dt>Trained</dt><dd>{} to {}</dd>\n",
            escape(&human_time(a)),
            escape(&human_time(b))
        );
    }
    for (k, v) in &p.internal {
        w!(
            h,
            "<dt>{}</dt><dd>{}</dd>\n",
            escape(&capitalize(&k.replace('_', " "))),
            escape(v)
        );
    }
    h.push_str("</dl>\n");
    h.push_str("<h3>Training data (stayed on the premises; only its fingerprint is here)</h3>\n<table id=\"training-data\">\n<thead><tr><th>File</th><th>SHA-256</th></tr></thead>\n<tbody>\n");
    if p.training_data.is_empty() {
        h.push_str("<tr><td colspan=\"2\" class=\"fail\">No training data recorded.</td></tr>\n");
    }
    for (name, sha) in &p.training_data {
        w!(
            h,
            "<tr><td><code>{}</code></td><td><code class=\"digest\">{}</code></td></tr>\n",
            escape(name),
            escape(sha)
        );
    }
    for (name, sha) in &p.training_record {
        w!(
            h,
            "<tr><td>training record <code>{}</code></td><td><code class=\"digest\">{}</code></td></tr>\n",
            escape(name),
            escape(sha)
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn decision_word(d: Option<Decision>) -> &'static str {
    match d {
        Some(Decision::Approve) => "approve",
        Some(Decision::Reject) => "reject",
        None => "unreadable",
    }
}

fn approvals_section(h: &mut String, input: &ReviewInput<'_>) {
    let a = input.approvals;
    h.push_str("<section id=\"approvals-section\">\n<h2>6. Officer decisions</h2>\n");
    let pct = if a.required == 0 {
        100
    } else {
        (a.approvals.min(a.required as usize) * 100) / a.required as usize
    };
    w!(
        h,
        "<p id=\"approval-progress\"><strong>{} of {} required approvals</strong>{}</p>\n<div class=\"progress\" aria-hidden=\"true\"><div style=\"width: {pct}%\"></div></div>\n",
        a.approvals,
        a.required,
        if a.rejected {
            " <span class=\"fail\">and a valid rejection, which blocks the release</span>"
        } else {
            ""
        }
    );
    h.push_str("<table id=\"approvals\">\n<thead><tr><th>Officer</th><th>Key</th><th>Decision</th><th>Time</th><th>Expires</th><th>Reason</th><th>Counts</th><th>Why</th></tr></thead>\n<tbody>\n");
    if a.decisions.is_empty() {
        h.push_str(
            "<tr class=\"empty\"><td colspan=\"8\" class=\"muted\">No officer has decided on \
             this release yet.</td></tr>\n",
        );
    }
    for d in &a.decisions {
        decision_row(h, d);
    }
    h.push_str("</tbody>\n</table>\n");

    let bundle = escape(&shell_quote(&input.bundle.display().to_string()));
    let trust = input.trust.map_or_else(
        || "&lt;trust.toml&gt;".to_owned(),
        |t| escape(&shell_quote(&t.display().to_string())),
    );
    h.push_str(
        "<h3>To decide</h3>\n<p>Run one of these on the machine that holds your officer key, \
         with your own key file, name and reason. Your signature covers the exact digests \
         above.</p>\n",
    );
    w!(
        h,
        "<pre class=\"command\" id=\"approve-command\">airlock approve {bundle} --trust {trust} --key &lt;officer.key&gt; --name \"&lt;name&gt;\" --reason \"&lt;why&gt;\"</pre>\n"
    );
    w!(
        h,
        "<pre class=\"command\" id=\"reject-command\">airlock reject {bundle} --trust {trust} --key &lt;officer.key&gt; --name \"&lt;name&gt;\" --reason \"&lt;why&gt;\"</pre>\n"
    );
    h.push_str("</section>\n");
}

fn decision_row(h: &mut String, d: &DecisionStatus) {
    let dash = || "—".to_owned();
    let key = match (&d.key_name, &d.keyid) {
        (Some(n), Some(id)) => format!(
            "{}<br><code title=\"{}\">{}</code>",
            escape(n),
            escape(id),
            escape(&short_id(id))
        ),
        (None, Some(id)) => format!(
            "<span class=\"fail\">not in the trust policy</span><br><code title=\"{}\">{}</code>",
            escape(id),
            escape(&short_id(id))
        ),
        (Some(n), None) => escape(n),
        (None, None) => dash(),
    };
    let word = decision_word(d.decision);
    w!(
        h,
        "<tr class=\"decision-{word}\" data-decision=\"{word}\" data-counts=\"{}\" data-file=\"{}\"><td>{}</td><td>{key}</td><td class=\"decision\">{word}</td><td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td><td>{}</td><td class=\"counts-{}{}\">{}</td><td>{}</td></tr>\n",
        d.counts,
        escape(&d.file),
        d.officer.as_deref().map_or_else(dash, escape),
        d.time
            .as_deref()
            .map_or_else(dash, |t| escape(&human_time(t))),
        d.expires
            .as_deref()
            .map_or_else(|| "never".to_owned(), |t| escape(&human_time(t))),
        d.reason.as_deref().map_or_else(dash, escape),
        if d.counts { "yes" } else { "no" },
        if d.decision == Some(Decision::Reject) {
            " reject"
        } else {
            ""
        },
        if d.counts { "yes" } else { "no" },
        escape(&d.why)
    );
}

fn changes_section(h: &mut String, input: &ReviewInput<'_>, prev: &Previous<'_>) {
    let list = changes(input, prev);
    let changed = list
        .iter()
        .filter(|c| c.state == ChangeState::Changed)
        .count();
    w!(
        h,
        "<section id=\"changes\">\n<h2>7. What changed since {} {}</h2>\n<p class=\"lead\">Compared with the release in <code class=\"digest\">{}</code>: {} of {} items changed.</p>\n",
        escape(&prev.card.name),
        escape(&prev.card.version),
        escape(&prev.bundle.display().to_string()),
        changed,
        list.len()
    );
    h.push_str("<table id=\"what-changed\">\n<thead><tr><th>Area</th><th>Item</th><th>Previous</th><th>This release</th><th>Status</th></tr></thead>\n<tbody>\n");
    for c in &list {
        let cell = |s: &str| {
            if s.len() >= 32 && s.chars().all(|c| c.is_ascii_hexdigit()) {
                format!("<code class=\"digest\">{}</code>", escape(s))
            } else {
                escape(s)
            }
        };
        w!(
            h,
            "<tr class=\"row-{st}\" data-change=\"{st}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{st}\">{st}{}</td></tr>\n",
            c.area,
            escape(&c.item),
            cell(&c.before),
            cell(&c.after),
            if c.note.is_empty() {
                String::new()
            } else {
                format!("<br><span class=\"muted\">{}</span>", escape(&c.note))
            },
            st = c.state.word()
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// A short plain-text summary for the terminal (a dozen lines): model, version, verdicts,
/// signature, approvals k/n, what changed.
pub fn render_text(input: &ReviewInput<'_>) -> String {
    let card = input.card;
    let a = input.approvals;
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
    if let Some(prev) = &input.previous {
        let list = changes(input, prev);
        w!(t, "  changed since {}:\n", prev.card.version);
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
            let changed: Vec<&&Change> = rows
                .iter()
                .filter(|c| c.state == ChangeState::Changed)
                .collect();
            if changed.is_empty() {
                if !rows.is_empty() {
                    same.push(area.to_lowercase());
                }
                continue;
            }
            // Tensors come in numbers; naming each one would drown the line.
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
            w!(t, "    {}: {}\n", area.to_lowercase(), items.join(", "));
        }
        if !same.is_empty() {
            w!(t, "    unchanged: {}\n", same.join(", "));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_schemas::{
        Architecture, CardMetrics, Finding, InputFeature, ModelOutput, ShardDigests, Subject,
        TensorSpec, TrainingSummary,
    };
    use serde_json::json;

    fn card(epochs: usize, roc: usize, auc: f64) -> ModelCard {
        ModelCard {
            schema_version: 1,
            name: "fraud-detector".into(),
            version: "1.0.0".into(),
            intended_use: Some("Flag card transactions for manual fraud review.".into()),
            architecture: Architecture {
                kind: "mlp".into(),
                layer_widths: vec![4, 8, 1],
                activation: "relu".into(),
                tensors: vec![
                    TensorSpec {
                        name: "layers.0.weight".into(),
                        dtype: "F32".into(),
                        shape: vec![8, 4],
                    },
                    TensorSpec {
                        name: "layers.0.bias".into(),
                        dtype: "F32".into(),
                        shape: vec![8],
                    },
                ],
            },
            inputs: ["amount", "age", "hour", "distance"]
                .iter()
                .map(|n| InputFeature {
                    name: (*n).into(),
                    dtype: "float32".into(),
                })
                .collect(),
            output: ModelOutput {
                label: "fraud".into(),
                classes: vec!["legit".into(), "fraud".into()],
                transform: "sigmoid".into(),
            },
            metrics: CardMetrics {
                roc_auc: auc,
                accuracy: 0.912,
                loss: 0.25,
                holdout_rows: 3000,
                positive_rate: 0.08,
            },
            training: TrainingSummary {
                epochs: (1..=epochs)
                    .map(|e| EpochMetrics {
                        epoch: e,
                        train_loss: 1.0 / e as f64,
                        train_accuracy: 0.9,
                        validation_loss: 1.1 / e as f64,
                        validation_accuracy: 0.88,
                        seconds: 1.0,
                    })
                    .collect(),
                roc_curve: (0..roc)
                    .map(|i| {
                        let x = if roc > 1 {
                            i as f64 / (roc - 1) as f64
                        } else {
                            0.0
                        };
                        RocPoint {
                            fpr: x,
                            tpr: x.sqrt(),
                        }
                    })
                    .collect(),
                split_rows: [14000, 3000, 3000],
            },
        }
    }

    fn report(verdict: Verdict) -> LeakReport {
        LeakReport {
            schema_version: 1,
            verdict,
            inputs: vec![],
            layers: [
                "structure",
                "pii-patterns",
                "exact-records",
                "membership-inference",
            ]
            .iter()
            .enumerate()
            .map(|(i, n)| LeakLayer {
                id: format!("L{i}"),
                name: (*n).into(),
                verdict,
                parameters: BTreeMap::new(),
                counts: [("checked".to_owned(), json!(12))].into_iter().collect(),
                findings: vec![],
                error: None,
            })
            .collect(),
        }
    }

    fn statement() -> Statement<ReleasePredicate> {
        Statement {
            type_: airlock_schemas::STATEMENT_TYPE.into(),
            subject: vec![Subject {
                name: "model.safetensors".into(),
                digest: BTreeMap::new(),
            }],
            predicate_type: airlock_schemas::RELEASE_PREDICATE_TYPE.into(),
            predicate: ReleasePredicate {
                model_name: "fraud-detector".into(),
                model_version: "1.0.0".into(),
                pipeline_sha256: "ab".repeat(32),
                training_record_sha256: "cd".repeat(32),
                leak_verdict: Verdict::Pass,
                git_commit: Some("0123abc".into()),
                model_shards: ShardDigests {
                    length: 1234,
                    shard_size: 1 << 20,
                    sha256: vec![],
                },
            },
        }
    }

    const BUILDER_URL: &str = "https://airlock.dev/builder/key/0011";

    fn provenance(data_sha: &str) -> serde_json::Value {
        json!({
            "buildDefinition": {
                "externalParameters": {"pipeline": {"name": "fraud-detector", "sha256": "ab".repeat(32)}},
                "internalParameters": {"seed": 42, "backend": "flex"},
                "resolvedDependencies": [
                    {"name": "training-record:training-record.json", "digest": {"sha256": "cd".repeat(32)}},
                    {"name": "training-data:transactions.csv", "digest": {"sha256": data_sha}},
                    {"name": "source", "digest": {"gitCommit": "0123abc"}},
                ],
            },
            "runDetails": {"builder": {"id": BUILDER_URL}},
        })
    }

    fn checks(ok: bool) -> Vec<Check> {
        vec![
            Check {
                name: "bundle files",
                ok: true,
                detail: "all present".into(),
            },
            Check {
                name: "statement signature",
                ok,
                detail: "ci-builder".into(),
            },
        ]
    }

    fn decision(officer: &str, d: Decision, counts: bool, reason: &str) -> DecisionStatus {
        DecisionStatus {
            file: format!("{officer}.dsse.json"),
            keyid: Some("ef".repeat(32)),
            key_name: Some(officer.to_lowercase()),
            officer: Some(officer.into()),
            decision: Some(d),
            reason: Some(reason.into()),
            time: Some("2025-06-01T14:03:00Z".into()),
            expires: None,
            counts,
            why: if counts {
                "valid".into()
            } else {
                "key not an officer".into()
            },
        }
    }

    struct Fixture {
        card: ModelCard,
        report: LeakReport,
        statement: Statement<ReleasePredicate>,
        provenance: serde_json::Value,
        checks: Vec<Check>,
        approvals: ApprovalSummary,
    }

    fn fixture() -> Fixture {
        Fixture {
            card: card(12, 101, 0.9312),
            report: report(Verdict::Pass),
            statement: statement(),
            provenance: provenance(&"11".repeat(32)),
            checks: checks(true),
            approvals: ApprovalSummary {
                required: 2,
                approvals: 1,
                rejected: false,
                decisions: vec![decision("Alice", Decision::Approve, true, "looks fine")],
            },
        }
    }

    fn input(f: &Fixture) -> ReviewInput<'_> {
        ReviewInput {
            bundle: Path::new("releases/fraud-detector-1.0.0"),
            card: &f.card,
            report: &f.report,
            statement: Some(&f.statement),
            provenance: Some(&f.provenance),
            files: vec![("model.safetensors".into(), "aa".repeat(32))],
            checks: &f.checks,
            builder: Some(("ci-builder".into(), "0011".repeat(16))),
            approvals: &f.approvals,
            previous: None,
            demo: false,
            trust: None,
        }
    }

    fn svg<'h>(html: &'h str, id: &str) -> &'h str {
        let start = html
            .find(&format!("<svg id=\"{id}\""))
            .expect("chart present");
        let end = html[start..].find("</svg>").expect("chart closed") + start;
        &html[start..end]
    }

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn officer_text_is_escaped() {
        let mut f = fixture();
        f.approvals.decisions[0].reason = Some("<script>alert(1)</script>".into());
        f.approvals.decisions[0].officer = Some("Eve \"<b>\"".into());
        f.report.layers[1].findings.push(Finding {
            kind: "email<img src=x>".into(),
            location: "model-card.json: intended_use".into(),
            record: Some(3),
            column: Some("<i>email</i>".into()),
        });
        let html = render_html(&input(&f));
        assert!(!html.contains("<script"), "no script element at all");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Eve &quot;&lt;b&gt;&quot;"));
        assert!(html.contains("email&lt;img src=x&gt;"));
        assert!(html.contains("&lt;i&gt;email&lt;/i&gt;"));
        assert!(!html.contains("<img"));
    }

    #[test]
    fn charts_have_one_point_per_epoch_and_roc_point() {
        let f = fixture();
        let html = render_html(&input(&f));
        let loss = svg(&html, "loss-chart");
        assert!(loss.contains("<title"));
        assert_eq!(loss.matches("<polyline").count(), 2);
        assert_eq!(loss.matches("class=\"pt train\"").count(), 12);
        assert_eq!(loss.matches("class=\"pt validation\"").count(), 12);
        let roc = svg(&html, "roc-chart");
        assert!(roc.contains("ROC curve (AUC 0.9312)"));
        assert!(roc.contains("class=\"diagonal\""));
        assert_eq!(roc.matches("class=\"pt roc\"").count(), 101);
        let points = roc
            .split("points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("roc polyline points");
        assert_eq!(points.split(' ').count(), 101);
    }

    #[test]
    fn one_epoch_and_empty_curves_render() {
        let mut f = fixture();
        f.card = card(1, 0, f64::NAN);
        let html = render_html(&input(&f));
        let loss = svg(&html, "loss-chart");
        assert_eq!(loss.matches("class=\"pt train\"").count(), 1);
        assert!(!loss.contains("NaN"));
        let roc = svg(&html, "roc-chart");
        assert!(roc.contains("No ROC curve was recorded."));
        assert!(roc.contains("AUC n/a"));
        assert_eq!(roc.matches("class=\"pt roc\"").count(), 0);
        assert!(!roc.contains("NaN") && !roc.contains("inf"));

        f.card = card(0, 1, 0.5);
        let html = render_html(&input(&f));
        assert!(svg(&html, "loss-chart").contains("No per-epoch figures were recorded."));
        assert_eq!(
            svg(&html, "roc-chart").matches("class=\"pt roc\"").count(),
            1
        );
    }

    #[test]
    fn nice_ticks() {
        assert_eq!(nice_step(1.0, 5.0), 0.2);
        assert_eq!(nice_step(0.7, 5.0), 0.2);
        assert_eq!(nice_step(12.0, 5.0), 2.5);
        assert_eq!(nice_step(30.0, 5.0), 10.0);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(tick_label(10.0, 5.0), "10");
        assert_eq!(tick_label(7.5, 2.5), "7.5");
        assert_eq!(tick_label(0.05, 0.05), "0.05");
        assert_eq!(tick_label(20.0, 10.0), "20");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(12), "12");
    }

    fn banner(html: &str) -> &str {
        let start = html.find("<div class=\"headline\">").expect("banner") + 22;
        let end = html[start..].find("</div>").expect("banner end") + start;
        &html[start..end]
    }

    #[test]
    fn status_banner() {
        let mut f = fixture();
        let html = render_html(&input(&f));
        assert_eq!(banner(&html), "Ready to approve");
        assert!(html.contains("1 of 2 required approvals"));
        assert!(render_text(&input(&f)).contains("status:       Ready to approve"));

        f.approvals.approvals = 2;
        f.approvals
            .decisions
            .push(decision("Bob", Decision::Approve, true, "ok"));
        let html = render_html(&input(&f));
        assert_eq!(banner(&html), "Approved (2 of 2)");
        assert!(html.contains("status-approved"));

        f.approvals.rejected = true;
        f.approvals
            .decisions
            .push(decision("Carol", Decision::Reject, true, "no"));
        assert_eq!(banner(&render_html(&input(&f))), "Blocked: rejected");

        f.checks = checks(false);
        let html = render_html(&input(&f));
        assert_eq!(banner(&html), "DOES NOT VERIFY");
        assert!(html.contains("statement signature"));
        assert!(render_text(&input(&f)).contains("FAILED: statement signature"));

        // A missing signed statement or an empty check list never reads as verified.
        let f = fixture();
        let mut i = input(&f);
        i.statement = None;
        assert_eq!(review_status(&i), ReviewStatus::DoesNotVerify);
        let mut i = input(&f);
        i.checks = &[];
        assert_eq!(review_status(&i), ReviewStatus::DoesNotVerify);
    }

    #[test]
    fn empty_approvals_table_has_a_row_and_the_command() {
        let mut f = fixture();
        f.approvals = ApprovalSummary {
            required: 2,
            ..ApprovalSummary::default()
        };
        let html = render_html(&input(&f));
        assert!(html.contains("No officer has decided on this release yet."));
        assert!(html.contains("0 of 2 required approvals"));
        assert!(html.contains(
            "airlock approve releases/fraud-detector-1.0.0 --trust &lt;trust.toml&gt; --key &lt;officer.key&gt; --name \"&lt;name&gt;\" --reason \"&lt;why&gt;\""
        ));
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }

    #[test]
    fn demo_marker() {
        let f = fixture();
        let mut i = input(&f);
        assert!(!render_html(&i).contains("demo-ribbon\""));
        i.demo = true;
        let html = render_html(&i);
        assert!(html.contains("<div class=\"demo-ribbon\" id=\"demo-ribbon\">DEMO</div>"));
        assert!(html.contains("DEMO RELEASE"));
        assert!(render_text(&i).contains("[DEMO"));
    }

    #[test]
    fn what_changed_only_with_previous() {
        let f = fixture();
        let html = render_html(&input(&f));
        assert!(!html.contains("id=\"changes\""));
        assert!(!render_text(&input(&f)).contains("changed since"));

        let mut old_card = card(10, 50, 0.9);
        old_card.version = "0.9.0".into();
        old_card.architecture.layer_widths = vec![4, 16, 1];
        old_card.architecture.tensors[0].shape = vec![16, 4];
        let mut old_report = report(Verdict::Pass);
        old_report.layers[3].verdict = Verdict::Fail;
        let old_prov = provenance(&"22".repeat(32));
        let mut i = input(&f);
        i.previous = Some(Previous {
            bundle: Path::new("releases/fraud-detector-0.9.0"),
            card: &old_card,
            report: &old_report,
            provenance: Some(&old_prov),
        });
        let html = render_html(&i);
        let section = &html[html.find("id=\"changes\"").expect("section")..];
        let row = |item: &str| {
            let at = section.find(&format!("<td>{item}</td>")).expect(item);
            let start = section[..at].rfind("<tr").expect("row start");
            let end = section[at..].find("</tr>").expect("row end") + at;
            &section[start..end]
        };
        assert!(row("ROC AUC").contains("data-change=\"changed\""));
        assert!(row("ROC AUC").contains("+0.0312 (better)"));
        assert!(row("Accuracy").contains("data-change=\"unchanged\""));
        assert!(row("Layer widths").contains("data-change=\"changed\""));
        assert!(row("Tensor layers.0.weight").contains("data-change=\"changed\""));
        assert!(row("Tensor layers.0.bias").contains("data-change=\"unchanged\""));
        assert!(row("L3 membership-inference").contains("data-change=\"changed\""));
        assert!(row("L0 structure").contains("data-change=\"unchanged\""));
        assert!(row("transactions.csv (SHA-256)").contains("data-change=\"changed\""));
        assert!(row("Source code (git commit)").contains("data-change=\"unchanged\""));
        let text = render_text(&i);
        assert!(text.contains("changed since 0.9.0:"));
        assert!(text.contains("holdout metrics: ROC AUC +0.0312 (better)"));
        assert!(
            text.contains("architecture: Layer widths (was 4 → 16 → 1, now 4 → 8 → 1), 1 tensor\n")
        );
        assert!(text.contains("leak checks: L3 membership-inference (was fail, now pass)\n"));
        assert!(text.contains("training data: transactions.csv (SHA-256)\n"));
        assert!(text.contains("unchanged: build\n"));

        i.previous = Some(Previous {
            bundle: Path::new("old"),
            card: &old_card,
            report: &old_report,
            provenance: None,
        });
        let html = render_html(&i);
        assert!(html.contains("data-change=\"unknown\""));
    }

    #[test]
    fn no_external_urls() {
        let f = fixture();
        let mut i = input(&f);
        i.demo = true;
        let html = render_html(&i);
        for bad in [
            "src=",
            "href=\"http",
            "href='http",
            "url(",
            "@import",
            "<script",
            "<iframe",
            "<object",
            "<embed",
        ] {
            assert!(!html.contains(bad), "page contains {bad}");
        }
        // The only URL allowed is user data shown as text (the builder id from provenance).
        let rest = html.replace(&escape(BUILDER_URL), "");
        assert!(!rest.contains("http://") && !rest.contains("https://"));
        assert!(html.contains("<link rel=\"icon\" href=\"data:,\">"));
        for href in html.split("href=\"").skip(1) {
            assert!(
                href.starts_with('#') || href.starts_with("data:"),
                "unexpected href {}",
                &href[..href.len().min(40)]
            );
        }
    }

    #[test]
    fn text_summary_is_short() {
        let f = fixture();
        let text = render_text(&input(&f));
        assert!(text.lines().count() <= 14, "{text}");
        assert!(text.contains("fraud-detector 1.0.0"));
        assert!(text.contains("approvals:    1 of 2 required"));
        assert!(text.contains("signature:    valid, builder ci-builder"));
        assert!(text.contains("leak checks:  pass (L0 pass, L1 pass, L2 pass, L3 pass)"));
    }
}
