//! From a verified release to its CycloneDX 1.6 ML-BOM: which airlock field goes where.
//! Pure: no file is read, no clock is asked, so the same release gives the same bytes.
//!
//! What never goes in: a row, a cell or any other value of the training data (datasets are
//! named by file name, SHA-256 and row count), the subgroup tables of the evaluation (their
//! group labels are values of the data), the officers' reasons and the names they signed
//! with (free text; officers are named by their trust policy's key names).

use airlock_schemas::{
    CardMetrics, Decision, LeakReport, ModelCard as Card, ReleasePredicate, Statement, Verdict,
};
use airlock_trust::approvals::ApprovalSummary;

use super::cyclonedx::{
    Annotation, Annotator, Approach, Bom, Component, ComponentData, ConfidenceInterval,
    Considerations, DatasetRef, Dependency, ExternalReference, Hash, Individual, Lifecycle,
    Metadata, MlFormat, ModelCard, ModelParameters, PerformanceMetric, Property,
    QuantitativeAnalysis, Risk, SCHEMA_URI, Tools,
};
use crate::provenance::{Provenance, parse_provenance};

/// Everything the BOM says, taken from one verification of the bundle.
#[derive(Debug, Clone)]
pub struct Release<'a> {
    /// The verified release statement.
    pub statement: &'a Statement<ReleasePredicate>,
    /// SHA-256 of the statement's bytes (what the officers' decisions sign).
    pub statement_sha256: String,
    /// The model card.
    pub card: &'a Card,
    /// The leak report.
    pub report: &'a LeakReport,
    /// The SLSA provenance predicate, its builder signature verified.
    pub provenance: Option<&'a serde_json::Value>,
    /// (file name, SHA-256) of every top-level bundle file, as verified.
    pub files: Vec<(String, String)>,
    /// (path under the bundle, SHA-256) of every decision file.
    pub decisions: Vec<(String, String)>,
    /// (trust-policy name, key id) of the builder key whose signature verified.
    pub builder: Option<(String, String)>,
    /// The officers' decisions, judged against the trust policy.
    pub approvals: &'a ApprovalSummary,
    /// The version of airlock writing the BOM.
    pub tool_version: &'a str,
}

/// A training dataset, by name and digest only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// File name (never its on-prem path).
    pub name: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Data rows, when the card records them.
    pub rows: Option<u64>,
}

impl Dataset {
    /// Its `bom-ref`: `dataset:sha256:<hex>`.
    pub fn bom_ref(&self) -> String {
        format!("dataset:sha256:{}", self.sha256)
    }
}

/// The model component's `bom-ref`: `model:<name>@<version>`.
pub fn model_ref(p: &ReleasePredicate) -> String {
    format!("model:{}@{}", p.model_name, p.model_version)
}

/// The BOM of `r`.
pub fn bom(r: &Release<'_>) -> Bom {
    let prov = r.provenance.map(parse_provenance).unwrap_or_default();
    let datasets = datasets(r, &prov);
    let model_ref = model_ref(&r.statement.predicate);
    let mut dependencies = vec![Dependency {
        ref_: model_ref.clone(),
        depends_on: datasets.iter().map(Dataset::bom_ref).collect(),
    }];
    dependencies.extend(datasets.iter().map(|d| Dependency {
        ref_: d.bom_ref(),
        depends_on: Vec::new(),
    }));
    Bom {
        schema: SCHEMA_URI,
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: serial_number(&r.statement_sha256),
        version: 1,
        metadata: Metadata {
            timestamp: prov.finished.as_deref().and_then(rfc3339),
            lifecycles: vec![Lifecycle {
                phase: "post-build",
            }],
            tools: Tools {
                components: vec![Component {
                    type_: "application",
                    name: "airlock".into(),
                    version: Some(r.tool_version.to_owned()),
                    ..Component::default()
                }],
            },
            component: model_component(r, &prov, &datasets),
        },
        components: datasets.iter().map(data_component).collect(),
        dependencies,
        annotations: annotations(r, &model_ref),
    }
}

/// `urn:uuid:` of the statement digest's first 128 bits, marked as a UUIDv8 (RFC 9562:
/// version 8, variant 10): the same release always has the same serial number.
pub fn serial_number(statement_sha256: &str) -> String {
    let mut hex: Vec<u8> = statement_sha256
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| b.to_ascii_lowercase())
        .chain(std::iter::repeat(b'0'))
        .take(32)
        .collect();
    hex[12] = b'8';
    let nibble = char::from(hex[16]).to_digit(16).unwrap_or(0);
    hex[16] = b"89ab"[(nibble & 0x3) as usize];
    let h = String::from_utf8_lossy(&hex);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An RFC 3339 time as CycloneDX's `date-time` wants it, or `None` when it is not one.
fn rfc3339(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s, &Rfc3339).ok()?;
    t.format(&Rfc3339).ok()
}

/// The training datasets, from the card's configuration (with row counts), the provenance
/// and the leak report's inputs, each digest once, in that order.
fn datasets(r: &Release<'_>, prov: &Provenance) -> Vec<Dataset> {
    let mut out: Vec<Dataset> = Vec::new();
    let mut add = |name: &str, sha256: &str, rows: Option<u64>| {
        if !out.iter().any(|d| d.sha256 == sha256) {
            out.push(Dataset {
                name: name.to_owned(),
                sha256: sha256.to_owned(),
                rows,
            });
        }
    };
    for d in r.card.configuration.iter().flat_map(|c| &c.data) {
        add(&d.name, &d.sha256, Some(d.rows));
    }
    for (name, sha) in &prov.training_data {
        add(name, sha, None);
    }
    for i in r.report.inputs.iter().filter(|i| i.role == "training-data") {
        add(&i.name, &i.sha256, None);
    }
    out
}

/// A dataset's `data` component: name, digest and row count, no content.
fn data_component(d: &Dataset) -> Component {
    let rows = d.rows.map(|n| format!(", {n} rows")).unwrap_or_default();
    let mut properties = vec![Property::new("airlock:data:role", "training-data")];
    if let Some(n) = d.rows {
        properties.push(Property::new("airlock:data:rows", n.to_string()));
    }
    Component {
        type_: "data",
        bom_ref: Some(d.bom_ref()),
        name: d.name.clone(),
        hashes: vec![Hash::sha256(&d.sha256)],
        data: vec![ComponentData {
            type_: "dataset",
            name: d.name.clone(),
            description: Some(format!(
                "Training data{rows}, named by file name and SHA-256 only: its content stayed on the premises and is not in this BOM."
            )),
        }],
        properties,
        ..Component::default()
    }
}

/// The model: its digest, its files, the documents that vouch for it, its card.
fn model_component(r: &Release<'_>, prov: &Provenance, datasets: &[Dataset]) -> Component {
    let p = &r.statement.predicate;
    let model_sha = r
        .statement
        .subject
        .iter()
        .find(|s| s.name == airlock_trust::MODEL_FILE)
        .and_then(|s| s.digest.get("sha256"));
    Component {
        type_: "machine-learning-model",
        bom_ref: Some(model_ref(p)),
        name: p.model_name.clone(),
        version: Some(p.model_version.clone()),
        description: r.card.intended_use.clone(),
        hashes: model_sha.map(|s| Hash::sha256(s)).into_iter().collect(),
        external_references: external_references(r),
        components: r
            .files
            .iter()
            .map(|(name, sha)| Component {
                type_: "file",
                bom_ref: Some(format!("file:{name}")),
                name: name.clone(),
                hashes: vec![Hash::sha256(sha)],
                ..Component::default()
            })
            .collect(),
        model_card: Some(model_card(r, datasets)),
        properties: model_properties(r, prov),
        ..Component::default()
    }
}

/// The signed documents, each by its bundle-relative name and digest.
fn external_references(r: &Release<'_>) -> Vec<ExternalReference> {
    let sha = |name: &str| {
        r.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| vec![Hash::sha256(s)])
            .unwrap_or_default()
    };
    let builder = r.builder.as_ref().map_or_else(String::new, |(name, id)| {
        format!(", signed by builder key {name:?} ({id})")
    });
    let mut refs = vec![
        ExternalReference {
            url: airlock_trust::STATEMENT_DSSE_FILE.into(),
            comment: Some(format!("in-toto release statement, DSSE envelope{builder}")),
            type_: "attestation",
            hashes: sha(airlock_trust::STATEMENT_DSSE_FILE),
        },
        ExternalReference {
            url: airlock_trust::PROVENANCE_DSSE_FILE.into(),
            comment: Some(format!("SLSA provenance v1, DSSE envelope{builder}")),
            type_: "attestation",
            hashes: sha(airlock_trust::PROVENANCE_DSSE_FILE),
        },
        ExternalReference {
            url: airlock_trust::MODEL_CARD_FILE.into(),
            comment: Some("model card, pinned by the release statement".into()),
            type_: "model-card",
            hashes: sha(airlock_trust::MODEL_CARD_FILE),
        },
        ExternalReference {
            url: airlock_trust::LEAK_REPORT_FILE.into(),
            comment: Some(
                "leak checks L0-L4: parameters, input digests, counts and verdicts, pinned by the release statement"
                    .into(),
            ),
            type_: "evidence",
            hashes: sha(airlock_trust::LEAK_REPORT_FILE),
        },
    ];
    for d in r.approvals.decisions.iter().filter(|d| d.counts) {
        let path = format!("{}/{}", airlock_trust::APPROVALS_DIR, d.file);
        let hashes = r
            .decisions
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, s)| vec![Hash::sha256(s)])
            .unwrap_or_default();
        refs.push(ExternalReference {
            comment: Some(format!(
                "officer decision ({}), DSSE envelope signed by officer key {:?} ({})",
                decision_word(d.decision),
                d.key_name.as_deref().unwrap_or("?"),
                d.keyid.as_deref().unwrap_or("?")
            )),
            url: path,
            type_: "attestation",
            hashes,
        });
    }
    refs
}

fn decision_word(d: Option<Decision>) -> &'static str {
    match d {
        Some(Decision::Approve) => "approve",
        Some(Decision::Reject) => "reject",
        None => "unreadable",
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "error",
    }
}

/// `modelCard`: parameters, metrics, considerations.
fn model_card(r: &Release<'_>, datasets: &[Dataset]) -> ModelCard {
    let card = r.card;
    ModelCard {
        model_parameters: ModelParameters {
            approach: Approach {
                type_: "supervised",
            },
            task: task(card).into(),
            architecture_family: family(card),
            model_architecture: architecture(card),
            datasets: datasets
                .iter()
                .map(|d| DatasetRef { ref_: d.bom_ref() })
                .collect(),
            inputs: inputs(card),
            outputs: vec![MlFormat {
                format: output(card),
            }],
        },
        quantitative_analysis: QuantitativeAnalysis {
            performance_metrics: metrics(card),
        },
        considerations: considerations(r),
    }
}

/// The task, told by the card's metrics.
pub fn task(card: &Card) -> &'static str {
    match card.metrics {
        CardMetrics::Binary(_) => "binary-classification",
        CardMetrics::Multiclass(_) => "multi-class-classification",
        CardMetrics::Regression(_) => "regression",
    }
}

/// The architecture family in words.
fn family(card: &Card) -> String {
    match card.architecture.kind.as_str() {
        "mlp" => "multilayer perceptron".into(),
        "cnn" => "convolutional neural network".into(),
        other => other.to_owned(),
    }
}

/// `mlp [12, 64, 32, 1] relu`, a CNN with its input and blocks before its dense layers.
fn architecture(card: &Card) -> String {
    let a = &card.architecture;
    let dense = format!("dense layers {:?}, {}", a.layer_widths, a.activation);
    match &a.cnn {
        None => format!("{}: {dense}", a.kind),
        Some(c) => {
            let blocks: Vec<String> = c
                .conv
                .iter()
                .map(|b| crate::architecture::block_words(b, false))
                .collect();
            format!(
                "{}: input {}, {} convolution blocks ({}), then {dense}",
                a.kind,
                crate::architecture::image_words(&c.input),
                blocks.len(),
                blocks.join("; ")
            )
        }
    }
}

/// One entry per input feature (a CNN: its image), in input order.
fn inputs(card: &Card) -> Vec<MlFormat> {
    let mut v: Vec<MlFormat> = card
        .architecture
        .cnn
        .iter()
        .map(|c| MlFormat {
            format: format!("image {}", crate::architecture::image_words(&c.input)),
        })
        .collect();
    v.extend(card.inputs.iter().map(|f| MlFormat {
        format: format!("{}: {}", f.name, f.dtype),
    }));
    v
}

/// What the output means.
fn output(card: &Card) -> String {
    let o = &card.output;
    match card.metrics {
        CardMetrics::Binary(_) => format!(
            "{}: probability of class {:?} ({}), classes {:?}",
            o.label,
            o.classes.last().map_or("", String::as_str),
            o.transform,
            o.classes
        ),
        CardMetrics::Multiclass(_) => format!(
            "{}: probability of each class ({}), classes {:?}",
            o.label, o.transform, o.classes
        ),
        CardMetrics::Regression(_) => format!("{}: value ({})", o.label, o.transform),
    }
}

/// The card's holdout metrics, then the evaluation's at the operating threshold with
/// their intervals.
pub fn metrics(card: &Card) -> Vec<PerformanceMetric> {
    let holdout = format!("holdout, {} rows", card.metrics.holdout_rows());
    let plain: Vec<(&str, f64)> = match &card.metrics {
        CardMetrics::Binary(b) => vec![
            ("roc_auc", b.roc_auc),
            ("accuracy", b.accuracy),
            ("loss", b.loss),
            ("positive_rate", b.positive_rate),
        ],
        CardMetrics::Multiclass(m) => vec![
            ("accuracy", m.accuracy),
            ("macro_f1", m.macro_f1),
            ("loss", m.loss),
        ],
        CardMetrics::Regression(r) => vec![
            ("rmse", r.rmse),
            ("mae", r.mae),
            ("r2", r.r2),
            ("loss", r.loss),
        ],
    };
    let mut out: Vec<PerformanceMetric> = plain
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(name, v)| PerformanceMetric {
            type_: name.into(),
            value: format!("{v}"),
            slice: Some(holdout.clone()),
            confidence_interval: None,
        })
        .collect();
    if let Some(e) = &card.evaluation {
        let slice = format!("{holdout}, operating threshold {}", e.threshold);
        for m in &e.metrics {
            let Some(v) = m.value.filter(|v| v.is_finite()) else {
                continue;
            };
            out.push(PerformanceMetric {
                type_: m.name.clone(),
                value: format!("{v}"),
                slice: Some(slice.clone()),
                confidence_interval: match (m.low, m.high) {
                    (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() => {
                        Some(ConfidenceInterval {
                            lower_bound: format!("{lo}"),
                            upper_bound: format!("{hi}"),
                        })
                    }
                    _ => None,
                },
            });
        }
    }
    out
}

/// Uses, limitations, and the risks the release was checked for.
fn considerations(r: &Release<'_>) -> Considerations {
    let card = r.card;
    let mut limits = Vec::new();
    if card.architecture.cnn.is_none() {
        limits.push(format!(
            "Takes the {} input features in the order listed, as raw values: the standardization is folded into the first layer.",
            card.inputs.len()
        ));
    }
    if card.onprem_only {
        limits.push(
            "Served on the premises only: a router sends none of its requests to the cloud.".into(),
        );
    }
    let layers: Vec<String> = r
        .report
        .layers
        .iter()
        .map(|l| format!("{} {} {}", l.id, l.name, verdict_word(l.verdict)))
        .collect();
    let mut risks = vec![Risk {
        name: "Training records leaking through the released files".into(),
        mitigation_strategy: format!(
            "Leak checks before signing, verdict {}: {} (leak-report.json).",
            verdict_word(r.report.verdict),
            layers.join(", ")
        ),
    }];
    if let Some(g) = &r.statement.predicate.privacy {
        risks.push(Risk {
            name: "Membership of a training row inferred from the model".into(),
            mitigation_strategy: format!(
                "Trained with DP-SGD: epsilon {} at delta {} per training row (noise multiplier {}, clipping norm {}, sampling rate {}, {} steps).",
                g.epsilon, g.delta, g.noise_multiplier, g.max_grad_norm, g.sampling_rate, g.steps
            ),
        });
    }
    let a = r.approvals;
    risks.push(Risk {
        name: "Release without compliance review".into(),
        mitigation_strategy: format!(
            "{} of {} required officer approvals count{}.",
            a.approvals,
            a.required,
            if a.rejected {
                ", and a valid rejection blocks the release"
            } else {
                ""
            }
        ),
    });
    Considerations {
        use_cases: card.intended_use.iter().cloned().collect(),
        technical_limitations: limits,
        ethical_considerations: risks,
    }
}

/// `airlock:` properties of the model: the statement, the build, the signer, the leak
/// verdict per layer, the privacy guarantee, the approvals.
fn model_properties(r: &Release<'_>, prov: &Provenance) -> Vec<Property> {
    let p = &r.statement.predicate;
    let mut v = vec![
        Property::new("airlock:statement:sha256", &r.statement_sha256),
        Property::new(
            "airlock:statement:predicate-type",
            &r.statement.predicate_type,
        ),
        Property::new("airlock:pipeline:sha256", &p.pipeline_sha256),
    ];
    if let Some(name) = &prov.pipeline_name {
        v.push(Property::new("airlock:pipeline:name", name));
    }
    v.push(Property::new(
        "airlock:training-record:sha256",
        &p.training_record_sha256,
    ));
    if let Some(c) = &p.git_commit {
        v.push(Property::new("airlock:source:git-commit", c));
    }
    if let Some(c) = &r.card.configuration {
        v.push(Property::new("airlock:training:seed", c.seed.to_string()));
        v.push(Property::new(
            "airlock:training:epochs",
            c.hyperparameters.epochs.to_string(),
        ));
        v.push(Property::new(
            "airlock:training:batch-size",
            c.hyperparameters.batch_size.to_string(),
        ));
    }
    let [train, validation, holdout] = r.card.training.split_rows;
    v.push(Property::new("airlock:split:train-rows", train.to_string()));
    v.push(Property::new(
        "airlock:split:validation-rows",
        validation.to_string(),
    ));
    v.push(Property::new(
        "airlock:split:holdout-rows",
        holdout.to_string(),
    ));
    if let Some((name, id)) = &r.builder {
        v.push(Property::new("airlock:signature:builder:key-id", id));
        v.push(Property::new("airlock:signature:builder:name", name));
    }
    v.extend(leak_properties(r.report));
    if let Some(g) = &p.privacy {
        v.push(Property::new("airlock:privacy:mechanism", "dp-sgd"));
        v.push(Property::new(
            "airlock:privacy:epsilon",
            g.epsilon.to_string(),
        ));
        v.push(Property::new("airlock:privacy:delta", g.delta.to_string()));
    }
    if r.card.onprem_only {
        v.push(Property::new("airlock:onprem-only", "true"));
    }
    v.extend(approval_properties(r.approvals));
    v
}

/// `airlock:leak:verdict` and `airlock:leak:<layer id>` = `pass` | `fail` | `error`, and
/// whether L4 replayed the training.
pub fn leak_properties(report: &LeakReport) -> Vec<Property> {
    let mut v = vec![Property::new(
        "airlock:leak:verdict",
        verdict_word(report.verdict),
    )];
    for l in &report.layers {
        v.push(Property::new(
            format!("airlock:leak:{}", l.id),
            verdict_word(l.verdict),
        ));
        if let Some(serde_json::Value::Bool(b)) = l.counts.get("reproduced") {
            v.push(Property::new(
                format!("airlock:leak:{}:reproduced", l.id),
                b.to_string(),
            ));
        }
    }
    v
}

/// The threshold, the count, the status, and each counted decision's key id and policy
/// name (in pairs, in decision-file order).
pub fn approval_properties(a: &ApprovalSummary) -> Vec<Property> {
    let status = if a.rejected {
        "rejected"
    } else if a.approved() {
        "approved"
    } else {
        "pending"
    };
    let mut v = vec![
        Property::new("airlock:approvals:required", a.required.to_string()),
        Property::new("airlock:approvals:counted", a.approvals.to_string()),
        Property::new("airlock:approvals:status", status),
    ];
    for d in a.decisions.iter().filter(|d| d.counts) {
        let which = match d.decision {
            Some(Decision::Reject) => "rejection",
            _ => "approval",
        };
        v.push(Property::new(
            format!("airlock:{which}:key-id"),
            d.keyid.as_deref().unwrap_or("?"),
        ));
        v.push(Property::new(
            format!("airlock:{which}:name"),
            d.key_name.as_deref().unwrap_or("?"),
        ));
    }
    v
}

/// One annotation per decision that counts, by the officer (their trust policy name), at
/// the signed decision time.
fn annotations(r: &Release<'_>, model_ref: &str) -> Vec<Annotation> {
    let required = r.approvals.required;
    r.approvals
        .decisions
        .iter()
        .filter(|d| d.counts)
        .filter_map(|d| {
            let timestamp = rfc3339(d.time.as_deref()?)?;
            let name = d.key_name.clone().unwrap_or_else(|| "?".into());
            let id = d.keyid.as_deref().unwrap_or("?");
            let text = match d.decision {
                Some(Decision::Reject) => format!(
                    "Rejected by officer key {name:?} ({id}): a valid rejection blocks the release."
                ),
                _ => format!(
                    "Approved by officer key {name:?} ({id}); one of the {required} distinct officer approvals the trust policy requires."
                ),
            };
            Some(Annotation {
                subjects: vec![model_ref.to_owned()],
                annotator: Annotator {
                    individual: Individual { name },
                },
                timestamp,
                text,
            })
        })
        .collect()
}
