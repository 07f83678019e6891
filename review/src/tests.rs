//! Unit tests of the page and the summary on a fixture release.

use std::collections::BTreeMap;
use std::path::Path;

use airlock_schemas::{
    Decision, EpochMetrics, LeakLayer, LeakReport, ModelCard, ReleasePredicate, RocPoint,
    Statement, Verdict,
};
use airlock_trust::Check;
use airlock_trust::approvals::{ApprovalSummary, DecisionStatus};

use crate::charts::{nice_step, tick_label};
use crate::format::{grouped, shell_quote};
use crate::html::Html;
use crate::{Previous, ReviewInput, ReviewStatus, render_html, render_text, review_status};
use airlock_schemas::{
    Architecture, BinaryCardMetrics, CardMetrics, Finding, InputFeature, ModelOutput, ShardDigests,
    Subject, TensorSpec, TrainingSummary,
};
use airlock_schemas::{
    BootstrapInfo, Calibration, CalibrationBin, CardConfiguration, CardDataFile, CardSource,
    Confusion, EstimatedMetric, Evaluation, Hyperparameters, MlpSpec, ModelSpec, OptimizerKind,
    OptimizerSpec, SubgroupRow, SubgroupTable,
};
use serde_json::json;

fn card(epochs: usize, roc: usize, auc: f64) -> ModelCard {
    ModelCard {
        schema_version: 1,
        name: "fraud-detector".into(),
        version: "1.0.0".into(),
        onprem_only: false,
        intended_use: Some("Flag card transactions for manual fraud review.".into()),
        architecture: Architecture {
            kind: "mlp".into(),
            cnn: None,
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
        metrics: CardMetrics::Binary(BinaryCardMetrics {
            roc_auc: auc,
            accuracy: 0.912,
            loss: 0.25,
            holdout_rows: 3000,
            positive_rate: 0.08,
        }),
        training: TrainingSummary {
            epochs: (1..=epochs)
                .map(|e| EpochMetrics {
                    epoch: e,
                    train_loss: 1.0 / e as f64,
                    train_accuracy: Some(0.9),
                    validation_loss: 1.1 / e as f64,
                    validation_accuracy: Some(0.88),
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
        configuration: None,
        evaluation: None,
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
            "reproducibility",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| LeakLayer {
            id: format!("L{i}"),
            name: (*n).into(),
            verdict,
            parameters: if i == 3 {
                // As the packager writes L3 (packager/src/package.rs).
                [("max_auc", json!(0.6)), ("max_advantage", json!(0.15))]
                    .map(|(k, v)| (k.to_owned(), v))
                    .into_iter()
                    .collect()
            } else {
                BTreeMap::new()
            },
            counts: if i == 3 {
                [
                    ("auc", json!(0.512)),
                    ("advantage", json!(0.031)),
                    ("findings", json!(0)),
                ]
                .map(|(k, v)| (k.to_owned(), v))
                .into_iter()
                .collect()
            } else {
                [("checked", json!(12)), ("findings", json!(0))]
                    .map(|(k, v)| (k.to_owned(), v))
                    .into_iter()
                    .collect()
            },
            findings: vec![],
            error: None,
        })
        .collect(),
    }
}

fn metric(name: &str, value: f64, low: f64, high: f64) -> EstimatedMetric {
    EstimatedMetric {
        name: name.into(),
        value: Some(value),
        low: Some(low),
        high: Some(high),
    }
}

/// A holdout evaluation as the trainer records it: intervals, confusion counts, a
/// calibration curve with two empty bins, and two subgroup tables.
fn evaluation(auc: (f64, f64, f64)) -> Evaluation {
    Evaluation {
        threshold: 0.5,
        bootstrap: BootstrapInfo {
            resamples: 1000,
            confidence: 0.95,
            seed: 7,
        },
        confusion: Confusion {
            true_positives: 201,
            false_positives: 57,
            true_negatives: 2699,
            false_negatives: 43,
        },
        metrics: vec![
            metric("roc_auc", auc.0, auc.1, auc.2),
            metric("accuracy", 0.9667, 0.9600, 0.9730),
            metric("sensitivity", 0.8238, 0.7750, 0.8700),
            metric("specificity", 0.9793, 0.9740, 0.9840),
            metric("ppv", 0.7791, 0.7280, 0.8290),
            EstimatedMetric {
                name: "npv".into(),
                value: Some(0.9843),
                low: None,
                high: None,
            },
            metric("brier", 0.0312, 0.0270, 0.0355),
        ],
        calibration: Calibration {
            bins: (0..10)
                .map(|i| {
                    let lower = f64::from(i) / 10.0;
                    let empty = i == 6 || i == 7;
                    CalibrationBin {
                        lower,
                        upper: lower + 0.1,
                        rows: if empty {
                            0
                        } else {
                            300 - u64::from(i as u8) * 20
                        },
                        mean_predicted: (!empty).then_some(lower + 0.05),
                        observed_rate: (!empty).then_some(lower + 0.04),
                    }
                })
                .collect(),
            expected_calibration_error: 0.0123,
        },
        subgroups: vec![
            SubgroupTable {
                column: "sex".into(),
                bands: None,
                min_group_rows: 20,
                groups: vec![
                    SubgroupRow {
                        group: "F".into(),
                        rows: 1490,
                        positives: 118,
                        roc_auc: Some(0.9301),
                        accuracy: 0.9651,
                        sensitivity: Some(0.8136),
                        specificity: Some(0.9788),
                    },
                    SubgroupRow {
                        group: "M".into(),
                        rows: 1497,
                        positives: 124,
                        roc_auc: Some(0.9322),
                        accuracy: 0.9680,
                        sensitivity: Some(0.8306),
                        specificity: Some(0.9796),
                    },
                ],
                suppressed_groups: 1,
            },
            SubgroupTable {
                column: "age".into(),
                bands: Some(vec![30.0, 45.0, 60.0]),
                min_group_rows: 20,
                groups: vec![SubgroupRow {
                    group: "≥ 60".into(),
                    rows: 700,
                    positives: 0,
                    roc_auc: None,
                    accuracy: 0.99,
                    sensitivity: None,
                    specificity: Some(0.99),
                }],
                suppressed_groups: 0,
            },
        ],
    }
}

fn configuration(epochs: usize, rows: u64) -> CardConfiguration {
    CardConfiguration {
        hyperparameters: Hyperparameters {
            task: Default::default(),
            model: ModelSpec::Mlp(MlpSpec {
                hidden: vec![8],
                dropout: 0.1,
            }),
            features: ["amount", "age", "hour", "distance"]
                .map(String::from)
                .to_vec(),
            label: "fraud".into(),
            optimizer: OptimizerSpec {
                kind: OptimizerKind::Adam,
                learning_rate: 0.001,
                weight_decay: 0.0,
            },
            epochs,
            batch_size: 256,
        },
        seed: 42,
        split_fractions: [0.7, 0.15, 0.15],
        data: vec![CardDataFile {
            name: "transactions.csv".into(),
            sha256: "11".repeat(32),
            rows,
        }],
        source: CardSource {
            git_commit: Some("0123abc".into()),
            git_dirty: Some(false),
            uncommitted_allowed: false,
        },
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
            privacy: None,
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
        verified: true,
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
    // Neither card records an interval: a difference is never called better.
    assert!(
        row("ROC AUC").contains("+0.0312 (no interval recorded: cannot tell a change from noise)")
    );
    assert!(!section.contains("(better)"));
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
    assert!(text.contains(
        "    configuration not recorded in both cards (older airlock): compared what both record\n"
    ));
    assert!(
        text.contains("    Layer widths: was 4 → 16 → 1, now 4 → 8 → 1\n"),
        "{text}"
    );
    assert!(text.contains("    leak L3 membership-inference: verdict: was fail, 0 findings, now pass, 0 findings\n"), "{text}");
    assert!(text.contains(
        "    ROC AUC: was 0.9000, now 0.9312: no interval recorded: cannot tell a change from noise\n"
    ));
    // What changed leads: before the verification and the approvals.
    assert!(
        text.find("changed since").expect("changes")
            < text.find("verification:").expect("verification")
    );
    i.previous = Some(Previous {
        bundle: Path::new("old"),
        card: &old_card,
        report: &old_report,
        provenance: None,
        verified: true,
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
    let rest = html.replace(Html::text(BUILDER_URL).as_str(), "");
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
    assert!(text.contains("leak checks:  pass (L0 pass, L1 pass, L2 pass, L3 pass, L4 pass)"));
}

/// A string that would be markup if it reached the page unescaped: a tag, both quote kinds
/// (an attribute break-out) and an entity.
fn hostile(field: &str) -> String {
    format!("<x-{field} a=\"1\" b='2'>&amp;")
}

#[test]
fn a_hostile_string_in_every_field_comes_out_escaped() {
    let h = hostile;
    let mut f = fixture();
    // The model card.
    f.card.name = h("card-name");
    f.card.version = h("card-version");
    f.card.intended_use = Some(h("intended-use"));
    f.card.architecture.kind = h("arch-kind");
    f.card.architecture.activation = h("activation");
    f.card.architecture.tensors[0].name = h("tensor-name");
    f.card.architecture.tensors[0].dtype = h("tensor-dtype");
    f.card.inputs[0].name = h("feature-name");
    f.card.inputs[0].dtype = h("feature-dtype");
    f.card.output.label = h("output-label");
    f.card.output.classes = vec![h("class-a"), h("class-b")];
    f.card.output.transform = h("transform");
    // The leak report.
    let layer = &mut f.report.layers[1];
    layer.id = h("layer-id");
    layer.name = h("layer-name");
    layer.error = Some(h("layer-error"));
    layer
        .parameters
        .insert(h("param-key"), json!(h("param-value")));
    layer.counts.insert(h("count-key"), json!(h("count-value")));
    layer.findings.push(Finding {
        kind: h("finding-kind"),
        location: h("finding-location"),
        record: Some(7),
        column: Some(h("finding-column")),
    });
    f.report.inputs.push(airlock_schemas::ReportInput {
        role: h("input-role"),
        name: h("input-name"),
        sha256: h("input-sha"),
    });
    // The signed statement.
    f.statement.predicate.model_name = h("statement-name");
    f.statement.predicate.model_version = h("statement-version");
    // The provenance.
    f.provenance = json!({
        "buildDefinition": {
            "externalParameters": {"pipeline": {"name": h("pipeline-name"), "sha256": h("pipeline-sha")}},
            "internalParameters": {h("internal-key"): h("internal-value")},
            "resolvedDependencies": [
                {"name": format!("training-record:{}", h("record-name")), "digest": {"sha256": h("record-sha")}},
                {"name": format!("training-data:{}", h("data-name")), "digest": {"sha256": h("data-sha")}},
                {"name": "source", "digest": {"gitCommit": h("git-commit")}},
            ],
        },
        "runDetails": {
            "builder": {"id": h("builder-id")},
            "metadata": {"startedOn": h("started"), "finishedOn": h("finished")},
        },
    });
    // The checks' details.
    f.checks[0].detail = h("check-detail");
    // The officers' decisions, with and without a key in the policy.
    let mut d = decision(&h("officer"), Decision::Reject, true, &h("reason"));
    d.file = h("decision-file");
    d.keyid = Some(h("keyid-named"));
    d.key_name = Some(h("key-name"));
    d.time = Some(h("time"));
    d.expires = Some(h("expires"));
    d.why = h("why");
    let mut unknown = decision("x", Decision::Approve, false, "r");
    unknown.keyid = Some(h("keyid-unknown"));
    unknown.key_name = None;
    f.approvals.decisions = vec![d, unknown];
    // The previous release.
    let mut old_card = card(3, 3, 0.5);
    old_card.name = h("previous-name");
    old_card.version = h("previous-version");
    old_card.architecture.tensors[1].name = h("previous-tensor");
    let old_report = report(Verdict::Pass);
    let mut old_prov = f.provenance.clone();
    old_prov["buildDefinition"]["resolvedDependencies"][1]["name"] =
        json!(format!("training-data:{}", h("previous-data")));

    // The recorded configuration and evaluation, on both releases.
    let mut cfg = configuration(12, 10);
    cfg.hyperparameters.features = vec![h("feature-col")];
    cfg.hyperparameters.label = h("config-label");
    cfg.data[0].name = h("data-file");
    cfg.data[0].sha256 = h("data-file-sha");
    cfg.source.git_commit = Some(h("card-commit"));
    cfg.source.git_dirty = Some(true);
    f.card.configuration = Some(cfg);
    let mut ev = evaluation((0.9, 0.8, 0.95));
    ev.metrics.push(metric(&h("metric-name"), 0.5, 0.4, 0.6));
    ev.subgroups[0].column = h("subgroup-column");
    ev.subgroups[0].groups[0].group = h("subgroup-group");
    f.card.evaluation = Some(ev);
    let mut old_cfg = configuration(10, 10);
    old_cfg.hyperparameters.label = h("previous-label");
    old_card.configuration = Some(old_cfg);
    let bundle = std::path::PathBuf::from(h("bundle"));
    let trust = std::path::PathBuf::from(h("trust"));
    let previous = std::path::PathBuf::from(h("previous-bundle"));
    let mut i = input(&f);
    i.bundle = &bundle;
    i.trust = Some(&trust);
    i.files = vec![(h("file-name"), h("file-sha"))];
    i.builder = Some((h("builder-name"), h("builder-key")));
    i.previous = Some(Previous {
        bundle: &previous,
        card: &old_card,
        report: &old_report,
        provenance: Some(&old_prov),
        verified: false,
    });
    let html = render_html(&i);

    assert!(!html.contains("<x-"), "a hostile tag reached the page");
    assert!(
        !html.contains("a=\"1\"") && !html.contains("b='2'"),
        "a hostile quote reached the page"
    );
    for field in [
        "card-name",
        "card-version",
        "intended-use",
        "arch-kind",
        "activation",
        "tensor-name",
        "tensor-dtype",
        "feature-name",
        "feature-dtype",
        "output-label",
        "class-a",
        "class-b",
        "transform",
        "layer-id",
        "layer-name",
        "layer-error",
        "param-key",
        "param-value",
        "count-key",
        "count-value",
        "finding-kind",
        "finding-location",
        "finding-column",
        "input-role",
        "input-name",
        "input-sha",
        "statement-name",
        "statement-version",
        "pipeline-name",
        "pipeline-sha",
        "internal-key",
        "internal-value",
        "record-name",
        "record-sha",
        "data-name",
        "data-sha",
        "git-commit",
        "builder-id",
        "started",
        "finished",
        "check-detail",
        "officer",
        "reason",
        "decision-file",
        "keyid-named",
        "key-name",
        "time",
        "expires",
        "why",
        "keyid-unknown",
        "previous-name",
        "previous-version",
        "previous-tensor",
        "previous-data",
        "file-name",
        "file-sha",
        "builder-name",
        "builder-key",
        "bundle",
        "trust",
        "previous-bundle",
        "feature-col",
        "config-label",
        "data-file",
        "data-file-sha",
        "card-commit",
        "metric-name",
        "subgroup-column",
        "subgroup-group",
        "previous-label",
    ] {
        // Shell quoting (bundle and trust paths in the commands) and capitalizing (internal
        // parameter names) change what follows the tag's name, never the escaping of `<`.
        assert!(
            html.contains(&format!("&lt;x-{field} ")),
            "{field} is not on the page escaped"
        );
    }
    // Where a string is shown as it is, it is escaped whole: quotes and the entity too.
    assert!(html.contains("&lt;x-reason a=&quot;1&quot; b=&#39;2&#39;&gt;&amp;amp;"));
    assert!(html.contains("id=\"previous-unverified\""));
}

#[test]
fn an_unverified_previous_release_is_labelled() {
    let f = fixture();
    let old_card = card(3, 3, 0.5);
    let old_report = report(Verdict::Pass);
    let mut i = input(&f);
    let previous = |verified| Previous {
        bundle: Path::new("old"),
        card: &old_card,
        report: &old_report,
        provenance: None,
        verified,
    };
    i.previous = Some(previous(true));
    assert!(!render_html(&i).contains("previous-unverified"));
    assert!(render_text(&i).contains("  changed since 1.0.0:\n"));
    i.previous = Some(previous(false));
    let html = render_html(&i);
    assert!(html.contains(
        "<strong class=\"fail\" id=\"previous-unverified\">That release does NOT verify"
    ));
    // The change summary at the top says it too.
    assert!(html.contains("id=\"summary-previous-unverified\">That release does NOT verify"));
    assert!(render_text(&i).contains("  changed since 1.0.0 (that release does NOT verify):\n"));
}

/// The `<tr>` of `html` (within `from`'s element onwards) carrying `attr`.
fn row_with<'h>(html: &'h str, from: &str, attr: &str) -> &'h str {
    let section = &html[html.find(from).unwrap_or_else(|| panic!("no {from}"))..];
    let at = section
        .find(attr)
        .unwrap_or_else(|| panic!("no row {attr}"));
    let start = section[..at].rfind("<tr").expect("row start");
    let end = section[at..].find("</tr>").expect("row end") + at;
    &section[start..end]
}

#[test]
fn a_difference_is_better_or_worse_only_when_the_intervals_do_not_overlap() {
    use crate::summary::{Estimate, Judgement, judge};
    let e = |v: f64, lo: f64, hi: f64| Estimate {
        value: Some(v),
        low: Some(lo),
        high: Some(hi),
    };
    let old = e(0.9300, 0.9200, 0.9400);
    // +0.0006 with overlapping intervals: noise, not "better".
    assert_eq!(
        judge("roc_auc", &old, &e(0.9306, 0.9205, 0.9410)),
        Judgement::WithinNoise
    );
    assert_eq!(
        judge("roc_auc", &old, &e(0.9600, 0.9500, 0.9700)),
        Judgement::Better
    );
    assert_eq!(
        judge("roc_auc", &old, &e(0.9000, 0.8900, 0.9100)),
        Judgement::Worse
    );
    // Lower is better for the Brier score.
    assert_eq!(
        judge("brier", &old, &e(0.9000, 0.8900, 0.9100)),
        Judgement::Better
    );
    // A metric of unknown direction is never called better.
    assert_eq!(
        judge("mystery", &old, &e(0.9600, 0.9500, 0.9700)),
        Judgement::Different
    );
    // Touching intervals overlap.
    assert_eq!(
        judge("roc_auc", &old, &e(0.9500, 0.9400, 0.9600)),
        Judgement::WithinNoise
    );
    // No interval on one side, or a malformed one (low above high, NaN): cannot tell.
    let point = Estimate {
        value: Some(0.96),
        low: None,
        high: None,
    };
    assert_eq!(judge("roc_auc", &old, &point), Judgement::NoInterval);
    assert_eq!(
        judge("roc_auc", &old, &e(0.96, 0.97, 0.95)),
        Judgement::NoInterval
    );
    assert_eq!(
        judge("roc_auc", &old, &e(0.96, f64::NAN, 0.97)),
        Judgement::NoInterval
    );
    assert_eq!(
        judge("roc_auc", &old, &e(0.93, 0.5, 0.99)),
        Judgement::Unchanged
    );
    let undefined = Estimate::default();
    assert_eq!(judge("ppv", &old, &undefined), Judgement::NotComparable);
}

/// A second release: epochs 12 → 20, more rows, a feature swapped, intervals on both.
fn second_release(f: &mut Fixture, auc: (f64, f64, f64)) -> (ModelCard, LeakReport) {
    let mut c = configuration(20, 24_000);
    c.hyperparameters.features[3] = "merchant_risk".into();
    c.data[0].sha256 = "12".repeat(32);
    f.card.configuration = Some(c);
    f.card.evaluation = Some(evaluation(auc));
    let mut old_card = card(12, 50, 0.9300);
    old_card.version = "0.9.0".into();
    old_card.configuration = Some(configuration(12, 20_000));
    old_card.evaluation = Some(evaluation((0.9300, 0.9200, 0.9400)));
    let mut old_report = report(Verdict::Pass);
    old_report.layers[3]
        .counts
        .insert("auc".into(), json!(0.5234));
    old_report.layers[3]
        .counts
        .insert("advantage".into(), json!(0.0467));
    (old_card, old_report)
}

#[test]
fn the_change_summary_comes_first_and_names_every_changed_setting() {
    let mut f = fixture();
    let (old_card, old_report) = second_release(&mut f, (0.9306, 0.9205, 0.9410));
    let old_prov = provenance(&"22".repeat(32));
    let mut i = input(&f);
    i.previous = Some(Previous {
        bundle: Path::new("releases/fraud-detector-0.9.0"),
        card: &old_card,
        report: &old_report,
        provenance: Some(&old_prov),
        verified: true,
    });
    let html = render_html(&i);
    // The first section of the page, before the identity section.
    let first = html.find("<section").expect("a section");
    assert_eq!(
        first,
        html.find("<section id=\"change-summary\">")
            .expect("summary")
    );
    assert!(first < html.find("id=\"identity\"").expect("identity"));
    let summary = &html[first..html[first..].find("</section>").expect("end") + first];
    let changed = |item: &str| {
        row_with(
            summary,
            "summary-settings",
            &format!("data-item=\"{item}\""),
        )
    };
    assert!(changed("Epochs").contains("<td>12</td><td class=\"changed\">20</td>"));
    assert!(changed("Features").contains("added: merchant_risk; removed: distance"));
    assert!(changed("Data transactions.csv: rows").contains("20,000"));
    assert!(changed("Data transactions.csv: SHA-256").contains(&"12".repeat(32)));
    // Exactly four settings changed; the others collapse into one line.
    assert_eq!(summary.matches("class=\"row-changed\"").count(), 4);
    assert!(!summary.contains("data-item=\"Learning rate\""));
    assert!(summary.contains("<summary data-unchanged=\"12\">12 other items unchanged</summary>"));
    assert!(summary.contains("Learning rate: 0.001"));
    assert!(!summary.contains("configuration-not-recorded"));
    // Measured leak values of both releases, with their limits.
    let auc = row_with(summary, "summary-leaks", "L3 membership AUC");
    assert!(auc.contains(">0.5234<") && auc.contains(">0.5120<") && auc.contains("at most 0.6000"));
    let adv = row_with(summary, "summary-leaks", "L3 membership advantage");
    assert!(adv.contains(">0.0467<") && adv.contains(">0.0310<") && adv.contains("at most 0.1500"));
    assert!(row_with(summary, "summary-leaks", "L1 pii-patterns").contains("pass, 0 findings"));
    // Metrics with intervals; +0.0006 with overlapping intervals is noise.
    let roc = row_with(summary, "summary-metrics", "data-metric=\"roc_auc\"");
    assert!(
        roc.contains("0.9200 – 0.9400") && roc.contains("0.9205 – 0.9410"),
        "{roc}"
    );
    assert!(
        roc.contains("+0.0006: within noise (intervals overlap)"),
        "{roc}"
    );
    assert!(!summary.contains("(better"));
    assert!(summary.contains("only when the two releases' 95% intervals do not overlap"));
    // The detail table agrees.
    assert!(
        row_with(&html, "id=\"changes\"", "<td>ROC AUC</td>")
            .contains("+0.0006 (within noise (intervals overlap))")
    );

    let text = render_text(&i);
    assert!(text.contains("    Epochs: was 12, now 20\n"), "{text}");
    assert!(text.contains("    12 other items unchanged\n"), "{text}");
    assert!(
        text.contains("    leak L3 membership AUC: was 0.5234, now 0.5120 (at most 0.6000)\n"),
        "{text}"
    );
    assert!(text.contains(
        "    ROC AUC: was 0.9300 (95% CI 0.9200–0.9400), now 0.9306 (95% CI 0.9205–0.9410): within noise (intervals overlap)\n"
    ), "{text}");
    assert!(text.find("Epochs").expect("epochs") < text.find("verification:").expect("v"));

    // A real improvement, with intervals apart, is called better.
    let mut f = fixture();
    let (old_card, old_report) = second_release(&mut f, (0.9600, 0.9500, 0.9700));
    let mut i = input(&f);
    i.previous = Some(Previous {
        bundle: Path::new("old"),
        card: &old_card,
        report: &old_report,
        provenance: None,
        verified: true,
    });
    let html = render_html(&i);
    let roc = row_with(&html, "summary-metrics", "data-metric=\"roc_auc\"");
    assert!(roc.contains("data-judgement=\"better\""));
    assert!(roc.contains("+0.0300: better (intervals do not overlap)"));
}

#[test]
fn without_a_recorded_configuration_the_summary_says_so_and_compares_what_it_can() {
    let mut f = fixture();
    let (mut old_card, old_report) = second_release(&mut f, (0.95, 0.94, 0.96));
    old_card.configuration = None;
    old_card.evaluation = None;
    old_card.architecture.layer_widths = vec![4, 16, 1];
    let old_prov = provenance(&"22".repeat(32));
    let mut i = input(&f);
    i.previous = Some(Previous {
        bundle: Path::new("old"),
        card: &old_card,
        report: &old_report,
        provenance: Some(&old_prov),
        verified: true,
    });
    let html = render_html(&i);
    assert!(html.contains(
        "<p class=\"unknown\" id=\"configuration-not-recorded\">The training configuration was \
         not recorded in the previous release's card (older airlock)"
    ));
    assert!(html.contains("data-item=\"Layer widths\""));
    assert!(html.contains("data-item=\"transactions.csv (SHA-256)\""));
    // The previous card has no interval: nothing is called better or worse.
    let roc = row_with(&html, "summary-metrics", "data-metric=\"roc_auc\"");
    assert!(roc.contains("data-judgement=\"no-interval\""), "{roc}");
    let ppv = row_with(&html, "summary-metrics", "data-metric=\"ppv\"");
    assert!(ppv.contains("not comparable"), "{ppv}");
}

#[test]
fn the_clinical_section_shows_intervals_confusion_calibration_and_subgroups() {
    let mut f = fixture();
    f.card.evaluation = Some(evaluation((0.9312, 0.9201, 0.9420)));
    let html = render_html(&input(&f));
    let at = html
        .find("<section id=\"clinical\">")
        .expect("clinical section");
    let clinical = &html[at..at + html[at..].find("</section>").expect("end")];
    assert!(clinical.contains("95% percentile bootstrap over 1,000 resamples"));
    for (name, value, interval) in [
        ("sensitivity", "0.8238", "0.7750 – 0.8700"),
        ("specificity", "0.9793", "0.9740 – 0.9840"),
        ("ppv", "0.7791", "0.7280 – 0.8290"),
        ("brier", "0.0312", "0.0270 – 0.0355"),
    ] {
        let row = row_with(
            clinical,
            "clinical-metrics",
            &format!("data-metric=\"{name}\""),
        );
        assert!(row.contains(value) && row.contains(interval), "{row}");
    }
    // NPV has no interval: it says so rather than inventing one.
    assert!(row_with(clinical, "clinical-metrics", "data-metric=\"npv\"").contains(">none<"));
    assert!(clinical.contains("data-cell=\"tp\">201 "));
    assert!(clinical.contains("data-cell=\"fn\">43 "));
    assert!(clinical.contains("data-cell=\"fp\">57 "));
    assert!(clinical.contains("data-cell=\"tn\">2,699 "));
    // The calibration chart: 8 of 10 bins (the two empty ones omitted), the diagonal, ECE.
    let cal = svg(clinical, "calibration-chart");
    assert_eq!(cal.matches("class=\"pt calibration\"").count(), 8);
    assert!(cal.contains("class=\"diagonal\""));
    assert!(cal.contains("Calibration curve (ECE 0.0123)"));
    assert!(clinical.contains("8 of 10 bins plotted (bins with no rows are omitted)"));
    assert!(clinical.contains("(ECE) <strong>0.0123</strong>"));
    // Subgroups: one table per column, the suppressed count in words.
    assert_eq!(clinical.matches("<table class=\"subgroups\"").count(), 2);
    let f_row = row_with(clinical, "data-column=\"sex\"", "<td>F</td>");
    assert!(f_row.contains("1,490") && f_row.contains("0.9301") && f_row.contains("0.8136"));
    assert!(clinical.contains("1 group was suppressed for having fewer than 20 holdout rows"));
    assert!(
        clinical.contains("No group was suppressed: every group has at least 20 holdout rows.")
    );
    assert!(clinical.contains("(banded at 30, 45, 60)"));
    // Undefined figures read n/a, never NaN.
    assert!(row_with(clinical, "data-column=\"age\"", "≥ 60").contains("n/a"));
    // The metrics section carries the intervals too.
    assert!(
        row_with(&html, "holdout-metrics", "data-metric=\"roc_auc\"").contains("0.9201 – 0.9420")
    );
    let text = render_text(&input(&f));
    assert!(
        text.contains("ROC AUC 0.9312 (95% CI 0.9201–0.9420)"),
        "{text}"
    );
    assert!(
        text.contains(
            "clinical:     at threshold 0.5: Sensitivity (recall) 0.8238 (95% CI 0.7750–0.8700)"
        ),
        "{text}"
    );
}

#[test]
fn a_card_without_evaluation_says_so_plainly() {
    let f = fixture();
    let html = render_html(&input(&f));
    assert!(html.contains(
        "id=\"no-evaluation\">This release's card records no holdout evaluation (older airlock)"
    ));
    assert!(!html.contains("id=\"calibration-chart\""));
    assert!(row_with(&html, "holdout-metrics", "data-metric=\"roc_auc\"").contains(">none<"));
    assert!(render_text(&input(&f)).contains(
        "  clinical:     this release's card records no holdout evaluation (older airlock)\n"
    ));
}

#[test]
fn a_release_without_a_clean_commit_is_flagged() {
    let mut f = fixture();
    // Clean: no warning.
    f.card.configuration = Some(configuration(12, 100));
    let html = render_html(&input(&f));
    assert!(!html.contains("id=\"source-warning\""));
    assert!(html.contains("<dd class=\"ok\" id=\"work-tree\">clean</dd>"));
    assert!(render_text(&input(&f)).contains("  source:       commit 0123abc, clean\n"));
    // No commit, allowed by the pipeline: a visible warning that says it was allowed.
    let src = &mut f.card.configuration.as_mut().expect("configuration").source;
    src.git_commit = None;
    src.git_dirty = None;
    src.uncommitted_allowed = true;
    let html = render_html(&input(&f));
    let warning = &html[html.find("id=\"source-warning\"").expect("warning")..];
    assert!(warning.starts_with(
        "id=\"source-warning\">Provenance: No git commit is recorded: the code this model was \
         built from cannot be identified. The pipeline allowed this release without a clean \
         commit ([release] allow_uncommitted = true, or a DEMO run).</div>"
    ));
    // Above the first section.
    assert!(html.find("source-warning").expect("w") < html.find("<section").expect("s"));
    assert!(render_text(&input(&f)).contains("  source:       WARNING: No git commit is recorded"));
    // Dirty, not recorded as allowed.
    let src = &mut f.card.configuration.as_mut().expect("configuration").source;
    src.git_commit = Some("0123abc".into());
    src.git_dirty = Some(true);
    src.uncommitted_allowed = false;
    let html = render_html(&input(&f));
    assert!(html.contains("uncommitted changes: commit 0123abc does not describe the code exactly. The card does not record that the pipeline allowed this."));
    assert!(html.contains("<dd class=\"fail\" id=\"work-tree\">DIRTY (uncommitted changes)</dd>"));
    // A card commit that differs from the signed provenance's is called out.
    f.card
        .configuration
        .as_mut()
        .expect("configuration")
        .source
        .git_commit = Some("fff".into());
    assert!(render_html(&input(&f)).contains("DIFFERS from the commit in the signed provenance"));
}

#[test]
fn bundle_strings_reach_the_terminal_with_control_characters_escaped() {
    let mut f = fixture();
    f.card.name = "fraud\u{1b}[2J\u{1b}]0;pwned\u{7}".into();
    f.card.version = "1.0\r\n  status:       Approved (2 of 2)".into();
    f.approvals.decisions[0].officer = Some("Al\u{202e}ecila".into());
    f.approvals.decisions[0].why = "ok\u{9b}31m".into();
    f.report.layers[0].id = "L0\u{8}\u{8}".into();
    let mut old_card = card(1, 1, 0.5);
    old_card.version = "0.9\u{1b}[1A".into();
    let old_report = report(Verdict::Pass);
    let mut i = input(&f);
    i.previous = Some(Previous {
        bundle: Path::new("old\u{1b}"),
        card: &old_card,
        report: &old_report,
        provenance: None,
        verified: true,
    });
    let text = render_text(&i);
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "raw {c:?} in the summary:\n{text}"
        );
    }
    assert!(text.starts_with("fraud\\u{1b}[2J\\u{1b}]0;pwned\\u{7} 1.0\\u{d}\\u{a}  status:"));
    assert!(text.contains("Al\\u{202e}ecila"));
    assert_eq!(
        crate::format::term("a\u{2067}b\u{61c}"),
        "a\\u{2067}b\\u{61c}"
    );
    assert!(text.contains("ok\\u{9b}31m"));
    assert!(text.contains("L0\\u{8}\\u{8} pass"));
    assert!(text.contains("changed since 0.9\\u{1b}[1A:"));
    // A backslash is doubled, so an escape cannot be forged either.
    assert_eq!(crate::format::term("a\\u{1b}"), "a\\\\u{1b}");
}

#[test]
fn a_changed_leak_limit_and_a_reordered_feature_list_are_named() {
    let mut f = fixture();
    let (mut old_card, mut old_report) = second_release(&mut f, (0.93, 0.92, 0.94));
    // Same columns as this release, in another order.
    let mut reordered = f.card.configuration.clone().expect("configuration");
    reordered.hyperparameters.features.reverse();
    old_card.configuration = Some(reordered);
    old_report.layers[3]
        .parameters
        .insert("max_auc".into(), json!(0.55));
    old_report.layers[3].counts.remove("advantage");
    let mut i = input(&f);
    i.previous = Some(Previous {
        bundle: Path::new("old"),
        card: &old_card,
        report: &old_report,
        provenance: None,
        verified: true,
    });
    let html = render_html(&i);
    assert!(
        row_with(&html, "summary-settings", "data-item=\"Features\"")
            .contains("same columns in a different order")
    );
    let auc = row_with(&html, "summary-leaks", "L3 membership AUC");
    assert!(auc.contains("at most 0.6000 (was 0.5500)"), "{auc}");
    let adv = row_with(&html, "summary-leaks", "L3 membership advantage");
    assert!(
        adv.contains(">not measured<") && adv.contains(">0.0310<"),
        "{adv}"
    );
    // Only the feature order differs: every other setting collapses into the one line.
    let at = html
        .find("<section id=\"change-summary\">")
        .expect("summary");
    let summary = &html[at..at + html[at..].find("</section>").expect("end")];
    assert_eq!(summary.matches("class=\"row-changed\"").count(), 1);
    assert!(summary.contains("<summary data-unchanged=\"15\">15 other items unchanged</summary>"));
}

// ---------------------------------------------------------------------------------------
// Other tasks and families: a multi-class CNN and a regression.

use airlock_schemas::{
    CnnArchitecture, CnnSpec, ConvBlock, ImageInput, MulticlassCardMetrics, RegressionCardMetrics,
    ResidualBin, TaskSpec,
};

const SCAN_CLASSES: [&str; 3] = ["normal", "benign", "malignant"];

fn conv(channels: usize, kernel: usize, padding: usize, pool: Option<usize>) -> ConvBlock {
    ConvBlock {
        channels,
        kernel,
        stride: 1,
        padding,
        pool,
        batch_norm: false,
    }
}

/// What the packager writes for a CNN on 1 × 28 × 28 scans, `classes` classes.
fn cnn_architecture() -> (Architecture, CnnSpec) {
    let input = ImageInput {
        channels: 1,
        height: 28,
        width: 28,
    };
    let blocks = vec![conv(8, 3, 1, Some(2)), conv(16, 3, 0, Some(2))];
    let spec = CnnSpec {
        input,
        conv: blocks.clone(),
        hidden: vec![32],
        dropout: 0.2,
    };
    let arch = Architecture {
        kind: "cnn".into(),
        cnn: Some(CnnArchitecture {
            input,
            conv: blocks,
            input_normalization: true,
        }),
        layer_widths: vec![400, 32, 3],
        activation: "relu".into(),
        tensors: vec![TensorSpec {
            name: "conv.0.weight".into(),
            dtype: "F32".into(),
            shape: vec![8, 1, 3, 3],
        }],
    };
    (arch, spec)
}

/// A multi-class CNN card: the 3 × 3 matrix below (120 holdout rows, 100 right).
fn multiclass_card() -> ModelCard {
    let mut c = card(6, 0, f64::NAN);
    c.name = "scan-triage".into();
    let (arch, spec) = cnn_architecture();
    c.architecture = arch;
    c.inputs = Vec::new();
    c.output = ModelOutput {
        label: "finding".into(),
        classes: SCAN_CLASSES.map(String::from).to_vec(),
        transform: "softmax".into(),
    };
    c.metrics = CardMetrics::Multiclass(MulticlassCardMetrics {
        loss: 0.4321,
        accuracy: 100.0 / 120.0,
        macro_f1: 0.8123,
        confusion: vec![vec![50, 3, 2], vec![4, 30, 6], vec![1, 4, 20]],
        holdout_rows: 120,
    });
    let mut cfg = configuration(6, 800);
    cfg.hyperparameters.task = TaskSpec::Multiclass {
        classes: SCAN_CLASSES.map(String::from).to_vec(),
    };
    cfg.hyperparameters.model = ModelSpec::Cnn(spec);
    cfg.hyperparameters.features = Vec::new();
    c.configuration = Some(cfg);
    c
}

fn multiclass_with(classes: Vec<String>, confusion: Vec<Vec<u64>>, rows: u64) -> ModelCard {
    let mut c = multiclass_card();
    c.output.classes = classes;
    if let CardMetrics::Multiclass(m) = &mut c.metrics {
        m.confusion = confusion;
        m.holdout_rows = rows;
    }
    c
}

fn bin(rows: u64, predicted: f64, mean: f64, rms: f64) -> ResidualBin {
    ResidualBin {
        rows,
        predicted,
        mean_residual: mean,
        rms_residual: rms,
    }
}

/// A regression on the transactions: 5 residual bins, one empty and one not finite.
fn regression_card() -> ModelCard {
    let mut c = card(8, 0, f64::NAN);
    c.name = "transaction-amount".into();
    c.output = ModelOutput {
        label: "amount".into(),
        classes: Vec::new(),
        transform: "identity".into(),
    };
    for e in &mut c.training.epochs {
        e.train_accuracy = None;
        e.validation_accuracy = None;
    }
    c.metrics = CardMetrics::Regression(RegressionCardMetrics {
        loss: 156.25,
        rmse: 12.5,
        mae: 9.25,
        r2: 0.8765,
        residuals: vec![
            bin(600, 20.0, 3.5, 8.0),
            bin(600, 80.0, -1.25, 10.0),
            bin(0, 120.0, 0.0, 0.0),
            bin(600, 150.0, f64::NAN, 9.0),
            bin(600, 260.0, -6.75, 18.0),
        ],
        holdout_rows: 3000,
    });
    let mut cfg = configuration(8, 20_000);
    cfg.hyperparameters.task = TaskSpec::Regression;
    cfg.hyperparameters.label = "amount".into();
    c.configuration = Some(cfg);
    c
}

fn section<'h>(html: &'h str, id: &str) -> &'h str {
    let at = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"));
    &html[at..at + html[at..].find("</section>").expect("section end")]
}

fn metric_row<'h>(html: &'h str, name: &str) -> &'h str {
    row_with(html, "holdout-metrics", &format!("data-metric=\"{name}\""))
}

#[test]
fn a_multiclass_card_shows_accuracy_macro_f1_and_the_confusion_matrix() {
    let mut f = fixture();
    f.card = multiclass_card();
    let html = render_html(&input(&f));
    let metrics = section(&html, "metrics");
    assert!(metric_row(metrics, "accuracy").contains(">0.8333<"));
    assert!(metric_row(metrics, "accuracy").contains("most probable class is the true class"));
    assert!(metric_row(metrics, "macro_f1").contains(">0.8123<"));
    assert!(metrics.contains("<td>Loss</td><td class=\"num\">0.4321</td>"));
    assert!(metrics.contains("Categorical cross-entropy: lower is better."));
    assert!(metrics.contains("<td>Holdout rows</td><td class=\"num\">120</td>"));
    assert!(!metrics.contains("data-metric=\"roc_auc\"") && !metrics.contains("Positive rate"));
    // The matrix: names as headers, rows the true class, the diagonal highlighted.
    let m = &metrics[metrics.find("id=\"confusion-matrix\"").expect("matrix")..];
    let m = &m[..m.find("</table>").expect("end")];
    assert!(m.contains(
        "<thead><tr><th>True class</th><th>normal</th><th>benign</th><th>malignant</th>\
         <th class=\"margin\">Recall</th></tr></thead>"
    ));
    let row = |i: usize| row_with(m, "<tbody>", &format!("data-true-class=\"{i}\""));
    assert!(row(1).contains(
        "<th class=\"true-class\">benign</th><td class=\"num\">4</td><td class=\"num diag\">30</td>\
         <td class=\"num\">6</td><td class=\"num margin\">75.0%</td>"
    ));
    assert!(row(0).contains("<td class=\"num margin\">90.9%</td>"));
    assert_eq!(m.matches("<td class=\"num diag\">").count(), 3);
    // Precision per predicted class along the bottom: 50/55, 30/37, 20/28.
    assert!(m.contains(
        "<tfoot><tr><th class=\"margin\">Precision</th><td class=\"num margin\">90.9%</td>\
         <td class=\"num margin\">81.1%</td><td class=\"num margin\">71.4%</td>"
    ));
    assert!(!html.contains("id=\"confusion-error\"") && !html.contains("id=\"confusion-count\""));
    // The loss chart, no ROC chart; the matrix's style ships with it.
    assert_eq!(
        svg(metrics, "loss-chart")
            .matches("class=\"pt train\"")
            .count(),
        6
    );
    assert!(!html.contains("id=\"roc-chart\"") && !html.contains("ROC chart:"));
    assert!(html.contains("table.confusion td.diag {"));
    // The clinical section says why it is empty, not that the card is old.
    assert!(section(&html, "clinical").contains(
        "id=\"clinical-not-applicable\">Sensitivity, specificity, PPV, NPV, calibration and \
         subgroup figures are measured for binary classifiers. This model's task is multi-class \
         classification"
    ));
    assert!(!html.contains("no-evaluation"));
    let model = section(&html, "model");
    assert!(
        model.contains("<dt>Task</dt><dd id=\"task\">multi-class classification (3 classes)</dd>")
    );
    assert!(model.contains(
        "predicts <code>finding</code>, one of 3 classes: normal / benign / malignant; the raw \
         outputs go through softmax to give each class's probability</dd>"
    ));
}

#[test]
fn a_binary_page_carries_neither_the_task_style_nor_a_task_line() {
    let f = fixture();
    let html = render_html(&input(&f));
    assert!(!html.contains("table.confusion") && !html.contains("#residual-chart"));
    assert!(!html.contains("<dt>Task</dt>") && !html.contains("conv-blocks"));
    assert!(html.contains("Binary cross-entropy: lower is better."));
}

#[test]
fn a_hostile_class_name_comes_out_escaped_in_the_matrix_and_the_summary() {
    let evil = "<script>alert('x')</script>&\"".to_owned();
    let mut f = fixture();
    f.card = multiclass_card();
    f.card.output.classes[2] = evil.clone();
    let mut cfg = f.card.configuration.clone().expect("configuration");
    cfg.hyperparameters.task = TaskSpec::Multiclass {
        classes: vec!["normal".into(), "benign".into(), evil.clone()],
    };
    f.card.configuration = Some(cfg);
    let old_card = multiclass_card();
    let old_report = report(Verdict::Pass);
    let mut i = input(&f);
    i.previous = Some(Previous {
        bundle: Path::new("old"),
        card: &old_card,
        report: &old_report,
        provenance: None,
        verified: true,
    });
    let html = render_html(&i);
    assert!(
        !html.contains("<script"),
        "a class name reached the page as markup"
    );
    let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;";
    let m = &html[html.find("id=\"confusion-matrix\"").expect("matrix")..];
    assert!(m.contains(&format!("<th>{escaped}</th>")), "column header");
    assert!(
        m.contains(&format!("<th class=\"true-class\">{escaped}</th>")),
        "row header"
    );
    assert!(section(&html, "model").contains(&format!("benign / {escaped};")));
    // In the comparisons too: the changed class list and the changed output.
    let classes = row_with(&html, "summary-settings", "data-item=\"Classes\"");
    assert!(
        classes.contains(&format!("added: {escaped}; removed: malignant")),
        "{classes}"
    );
    assert!(row_with(&html, "id=\"changes\"", "<td>Output</td>").contains(escaped));
    // Numbered columns carry the name in a tooltip: escaped inside the attribute.
    let many: Vec<String> = (0..12)
        .map(|i| {
            if i == 5 {
                evil.clone()
            } else {
                format!("c{i}")
            }
        })
        .collect();
    f.card = multiclass_with(many, vec![vec![1; 12]; 12], 144);
    let html = render_html(&input(&f));
    assert!(!html.contains("<script"));
    assert!(html.contains(&format!("<th title=\"{escaped}\">6</th>")));
}

#[test]
fn a_64_class_matrix_renders_compactly_with_numbered_columns() {
    let k = 64;
    let names: Vec<String> = (0..k).map(|i| format!("class-{i:02}")).collect();
    let counts: Vec<Vec<u64>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| if i == j { 1234 } else { (i + j) as u64 % 3 })
                .collect()
        })
        .collect();
    let total = counts.iter().flatten().sum();
    let mut f = fixture();
    f.card = multiclass_with(names, counts, total);
    let html = render_html(&input(&f));
    let at = html
        .find("<div id=\"confusion-matrix\" data-classes=\"64\">")
        .expect("matrix");
    let m = &html[at..at + html[at..].find("</div>").expect("end")];
    // Two tables of 32 predicted classes, every true class in each.
    assert_eq!(m.matches("<table class=\"confusion tiny\"").count(), 2);
    assert!(
        m.contains("data-predicted=\"1-32\">\n<caption>Predicted classes 1 to 32 of 64</caption>")
    );
    assert!(m.contains(
        "data-predicted=\"33-64\">\n<caption>Predicted classes 33 to 64 of 64</caption>"
    ));
    assert_eq!(m.matches("<tr data-true-class=").count(), 128);
    // The diagonal once per class; no thousands separator where room is short.
    assert_eq!(m.matches("<td class=\"num diag\">1234</td>").count(), 64);
    // The recall column only once, at the end of the last table.
    assert_eq!(m.matches("<th class=\"margin\">Recall %</th>").count(), 1);
    assert!(m.contains("<th title=\"class-63\">64</th><th class=\"margin\">Recall %</th>"));
    assert!(m.contains("<th title=\"class-31\">32</th></tr>"));
    assert!(m.contains("<th class=\"true-class\"><span class=\"muted\">64</span> class-63</th>"));
    // Whole percentages without the sign where room is shortest; a precision per column in
    // each table.
    assert!(!m.contains("%</td>"));
    assert!(m.contains("<td class=\"num margin\">95</td>"));
    assert_eq!(
        m.matches("<th class=\"margin\">Precision %</th>").count(),
        2
    );
    assert!(html.contains("Columns are numbered as the rows"));
    assert!(!html.contains("id=\"confusion-count\""));
    // From 11 classes on the type gets smaller (one table up to 24), from 25 smaller still.
    let square = |k: usize| {
        multiclass_with(
            (0..k).map(|i| format!("c{i}")).collect(),
            vec![vec![1; k]; k],
            (k * k) as u64,
        )
    };
    for (k, table) in [
        (10, "<table class=\"confusion\" data-predicted=\"1-10\">"),
        (
            11,
            "<table class=\"confusion compact\" data-predicted=\"1-11\">",
        ),
        (
            24,
            "<table class=\"confusion compact\" data-predicted=\"1-24\">",
        ),
        (
            25,
            "<table class=\"confusion tiny\" data-predicted=\"1-25\">",
        ),
        (
            33,
            "<table class=\"confusion tiny\" data-predicted=\"18-33\">",
        ),
    ] {
        f.card = square(k);
        assert!(render_html(&input(&f)).contains(table), "{k} classes");
    }
}

#[test]
fn an_odd_confusion_matrix_gets_an_error_line_never_a_panic() {
    let names = |k: usize| (0..k).map(|i| format!("c{i}")).collect::<Vec<_>>();
    let mut f = fixture();
    for (classes, confusion, why) in [
        (
            names(3),
            vec![vec![1, 2, 3]; 2],
            "it has 2 rows for the card&#39;s 3 classes",
        ),
        (
            names(3),
            vec![vec![1, 2, 3], vec![1, 2], vec![1, 2, 3]],
            "its row 2 has 2 counts for the card&#39;s 3 classes",
        ),
        (Vec::new(), Vec::new(), "the card names no classes"),
        (
            names(65),
            vec![vec![0; 65]; 65],
            "the card names 65 classes, more than the 64 a multi-class model may have",
        ),
    ] {
        f.card = multiclass_with(classes, confusion, 10);
        let html = render_html(&input(&f));
        assert!(
            html.contains(&format!(
                "<p class=\"fail\" id=\"confusion-error\">The card's confusion matrix cannot \
                 be shown: {why}.</p>"
            )),
            "{why}"
        );
        assert!(!html.contains("id=\"confusion-matrix\""));
        let text = render_text(&input(&f));
        let plain_why = why.replace("&#39;", "'");
        assert!(
            text.contains(&format!("  confusion:    not shown: {plain_why}\n")),
            "{text}"
        );
    }
    // Counts at the top of the range neither overflow nor hide that they do not add up.
    f.card = multiclass_with(names(2), vec![vec![u64::MAX, u64::MAX], vec![0, 1]], 7);
    let html = render_html(&input(&f));
    assert!(html.contains(
        "id=\"confusion-count\">The matrix counts 36893488147419103231 rows, but the card's \
         holdout has 7.</p>"
    ));
    assert!(
        html.contains("<td class=\"num margin\">50.0%</td>"),
        "recall of class 1"
    );
    // A class never seen nor predicted has no recall or precision: n/a, not NaN.
    f.card = multiclass_with(names(2), vec![vec![5, 0], vec![0, 0]], 5);
    let html = render_html(&input(&f));
    assert!(!html.contains("NaN"));
    assert_eq!(html.matches("<span class=\"muted\">n/a</span>").count(), 2);
    assert!(
        render_text(&input(&f)).contains("lowest recall c0 100.00%, lowest precision c0 100.00%")
    );
}

#[test]
fn a_regression_card_shows_rmse_mae_r2_and_the_residual_plot() {
    let mut f = fixture();
    f.card = regression_card();
    let html = render_html(&input(&f));
    let metrics = section(&html, "metrics");
    for (name, label, value, meaning) in [
        (
            "rmse",
            "RMSE",
            "12.5000",
            "Root mean squared error, in the label's units",
        ),
        (
            "mae",
            "MAE",
            "9.2500",
            "Mean absolute error, in the label's units",
        ),
        (
            "r2",
            "R²",
            "0.8765",
            "0 is no better than always predicting the mean",
        ),
    ] {
        let row = metric_row(metrics, name);
        assert!(
            row.contains(&format!("<td>{label}</td><td class=\"num\">{value}</td>")),
            "{row}"
        );
        assert!(row.contains(meaning), "{row}");
        assert!(row.contains(">none<"), "no interval recorded: {row}");
    }
    assert!(metrics.contains("<td>Loss</td><td class=\"num\">156.2500</td>"));
    assert!(metrics.contains("Mean squared error, in the label's units squared"));
    assert!(!metrics.contains("data-metric=\"accuracy\"") && !metrics.contains("confusion"));
    // The loss chart does not need accuracies.
    let loss = svg(metrics, "loss-chart");
    assert_eq!(loss.matches("class=\"pt validation\"").count(), 8);
    // The residual plot: 3 of 5 bins (one empty, one not finite), band, line and zero line.
    let res = svg(metrics, "residual-chart");
    assert_eq!(res.matches("class=\"pt residual\"").count(), 3);
    assert!(res.contains(
        "<title>600 rows, mean prediction 260.0000: mean residual -6.7500, rms 18.0000</title>"
    ));
    assert_eq!(res.matches("<polygon class=\"band\"").count(), 1);
    assert_eq!(
        res.matches("<polyline class=\"series residual\"").count(),
        1
    );
    assert!(res.contains("<line class=\"zero\""));
    assert!(!res.contains("NaN") && !res.contains("inf"));
    // The band's six corners: upper edge left to right, lower edge back.
    let band = res
        .split("data-series=\"rms-band\" points=\"")
        .nth(1)
        .expect("band points");
    assert_eq!(
        band.split('"').next().expect("points").split(' ').count(),
        6
    );
    assert!(metrics.contains("3 of 5 bins plotted."));
    assert!(!html.contains("id=\"roc-chart\""));
    assert!(html.contains("svg .band {"));
    let model = section(&html, "model");
    assert!(model.contains("<dd id=\"task\">regression</dd>"));
    assert!(model.contains(
        "predicts <code>amount</code>, a number; the raw output goes through identity to give the \
         predicted value itself</dd>"
    ));
    assert!(section(&html, "clinical").contains("This model's task is regression"));
}

#[test]
fn the_residual_plot_survives_one_bin_no_bin_and_extreme_values() {
    use crate::charts::residual_chart;
    let one = residual_chart(&[bin(50, 7.0, 0.0, 0.0)]).into_string();
    assert_eq!(one.matches("class=\"pt residual\"").count(), 1);
    assert!(!one.contains("NaN") && !one.contains("inf"));
    let none = residual_chart(&[]).into_string();
    assert!(none.contains("No residual bin was recorded."));
    assert_eq!(none.matches("<polygon").count(), 0);
    let huge = residual_chart(&[
        bin(10, -1e300, 1e300, 1e300),
        bin(10, 1e300, -1e300, f64::MAX),
        bin(10, f64::INFINITY, 1.0, 1.0),
        bin(10, 3.0, 1.0, -1.0),
    ])
    .into_string();
    assert_eq!(huge.matches("class=\"pt residual\"").count(), 2);
    assert!(!huge.contains("NaN") && !huge.contains("inf"));
    // At most 16 ticks per axis, whatever the range.
    assert!(huge.matches("class=\"grid\"").count() <= 16);
    assert!(huge.matches("class=\"tickmark\"").count() <= 16);
    // A symmetric axis around zero, zero written as such.
    let small = residual_chart(&[bin(10, 1.0, 0.3, 0.1), bin(10, 2.0, -0.2, 0.1)]).into_string();
    assert!(
        small.contains(">0.0</text>") && !small.contains(">-0.0<"),
        "{small}"
    );
    assert!(
        small.contains(">-0.4</text>") && small.contains(">0.4</text>"),
        "{small}"
    );
}

#[test]
fn a_cnn_card_shows_its_input_blocks_and_normalization() {
    let mut f = fixture();
    f.card = multiclass_card();
    let html = render_html(&input(&f));
    let model = section(&html, "model");
    assert!(model.contains(
        "<dt>Dense layer widths</dt><dd>400 → 32 → 3 (the first is the flattened output of the \
         last convolution block)</dd>"
    ));
    assert!(model.contains("<dd id=\"image-input\">1 × 28 × 28 (grayscale)</dd>"));
    assert!(model.contains(
        "id=\"input-normalization\" data-ships=\"true\">ships as the tensors input.mean and input.std</dd>"
    ));
    // 28 → conv 3, pad 1 → 28 → pool 2 → 14; → conv 3 → 12 → pool 2 → 6.
    assert!(row_with(model, "conv-blocks", "data-block=\"1\"").contains(
        "<td class=\"num\">8</td><td class=\"num\">3</td><td class=\"num\">1</td>\
         <td class=\"num\">1</td><td class=\"num\">2</td><td class=\"num\">8 × 14 × 14</td>"
    ));
    assert!(row_with(model, "conv-blocks", "data-block=\"2\"").contains("16 × 6 × 6"));
    assert!(model.contains("id=\"input-images\">One image per row, 1 × 28 × 28 (grayscale)"));
    assert!(model.contains("<code>input.mean</code> and <code>input.std</code>"));
    // No feature columns: no empty inputs table.
    assert!(!model.contains("id=\"inputs\""));
    // Folded normalization, a block without pooling, and blocks that do not fit.
    let cnn = f.card.architecture.cnn.as_mut().expect("cnn");
    cnn.input_normalization = false;
    cnn.conv[1].pool = None;
    cnn.conv.push(conv(4, 31, 0, None));
    let html = render_html(&input(&f));
    let model = section(&html, "model");
    assert!(model.contains("data-ships=\"false\">folded into the first convolution</dd>"));
    assert!(model.contains("no input statistics ship"));
    assert!(
        row_with(model, "conv-blocks", "data-block=\"2\"")
            .contains("<td class=\"num\">none</td><td class=\"num\">16 × 12 × 12</td>")
    );
    assert!(
        row_with(model, "conv-blocks", "data-block=\"3\"").contains("<td class=\"num\">—</td>")
    );
    assert!(model.contains(
        "id=\"conv-error\">These blocks do not fit the card's input images: model.conv[2]"
    ));
    // A card that names a CNN but records no convolutions says so.
    f.card.architecture.cnn = None;
    assert!(render_html(&input(&f)).contains("id=\"cnn-missing\""));
}

#[test]
fn the_terminal_summary_speaks_each_task() {
    let mut f = fixture();
    f.card = multiclass_card();
    let text = render_text(&input(&f));
    assert!(text.contains(
        "  holdout:      accuracy 0.8333, macro-F1 0.8123, loss 0.4321 on 120 rows (3 classes)\n\
         \x20 confusion:    3×3; lowest recall benign 75.00%, lowest precision malignant 71.43%\n"
    ), "{text}");
    assert!(
        !text.contains("ROC AUC") && !text.contains("clinical:"),
        "{text}"
    );
    assert!(text.lines().count() <= 14, "{text}");
    f.card = regression_card();
    let text = render_text(&input(&f));
    assert!(
        text.contains(
            "  holdout:      RMSE 12.5000, MAE 9.2500, R² 0.8765, loss 156.2500 on 3,000 rows\n\
         \x20 residuals:    3 bins over predictions 20.0000 to 260.0000; largest mean residual \
         -6.7500 at 260.0000\n"
        ),
        "{text}"
    );
    if let CardMetrics::Regression(r) = &mut f.card.metrics {
        r.residuals.clear();
    }
    assert!(render_text(&input(&f)).contains("  residuals:    no residual bin was recorded\n"));
    // A class name reaches the terminal with its control characters escaped.
    f.card = multiclass_card();
    f.card.output.classes[1] = "ben\u{1b}[2Jign".into();
    assert!(render_text(&input(&f)).contains("lowest recall ben\\u{1b}[2Jign 75.00%"));
}

fn previous<'a>(card: &'a ModelCard, report: &'a LeakReport) -> Previous<'a> {
    Previous {
        bundle: Path::new("old"),
        card,
        report,
        provenance: None,
        verified: true,
    }
}

#[test]
fn a_change_of_task_and_family_is_named_and_no_metric_is_judged_across_it() {
    let mut f = fixture();
    f.card = multiclass_card();
    let mut old_card = card(12, 101, 0.93);
    old_card.configuration = Some(configuration(12, 800));
    let old_report = report(Verdict::Pass);
    let mut i = input(&f);
    i.previous = Some(previous(&old_card, &old_report));
    let html = render_html(&i);
    let changed =
        |item: &str| row_with(&html, "summary-settings", &format!("data-item=\"{item}\""));
    assert!(changed("Task").contains("<td>binary</td><td class=\"changed\">multiclass</td>"));
    assert!(changed("Classes").contains("added: normal, benign, malignant"));
    assert!(changed("Classes").contains("<td>none</td>"));
    assert!(changed("Model kind").contains("<td>mlp</td><td class=\"changed\">cnn</td>"));
    assert!(changed("Input images").contains(
        "<td>none (feature columns)</td><td class=\"changed\">1 × 28 × 28 (grayscale)</td>"
    ));
    assert!(changed("Convolution block 1").contains(
        "<td>absent</td><td class=\"changed\">8 channels, kernel 3, stride 1, padding 1, \
         max-pool 2, no batch norm</td>"
    ));
    assert!(changed("Convolution block 2").contains("16 channels, kernel 3"));
    // Each side's task metrics, none judged across tasks.
    for name in ["accuracy", "macro_f1", "loss", "roc_auc"] {
        let row = row_with(&html, "summary-metrics", &format!("data-metric=\"{name}\""));
        assert!(row.contains("data-judgement=\"not-comparable\""), "{row}");
        assert!(
            row.contains("not comparable (the releases are of different tasks)"),
            "{row}"
        );
    }
    let detail = |item: &str| row_with(&html, "id=\"changes\"", &format!("<td>{item}</td>"));
    assert!(
        detail("Task")
            .contains("<td>binary classification</td><td>multi-class classification</td>")
    );
    assert!(detail("Kind").contains("<td>mlp</td><td>cnn</td>"));
    assert!(detail("Input normalization").contains("<td>none</td><td>ships as the tensors"));
    assert!(
        detail("Convolution block 1").contains(
            "<td>absent</td><td>8 channels, kernel 3, stride 1, padding 1, max-pool 2</td>"
        )
    );
    assert!(detail("Macro-F1").contains("<td>undefined</td><td>0.8123</td>"));
    // No difference is computed across tasks: it would read as a change of quality.
    let accuracy = detail("Accuracy");
    assert!(
        accuracy.contains("<td>0.9120</td><td>0.8333</td>"),
        "{accuracy}"
    );
    assert!(accuracy.contains(
        "<span class=\"muted\">not comparable (the releases are of different tasks)</span>"
    ));
    assert!(!accuracy.contains("-0.0787"));
    let summary_accuracy = row_with(&html, "summary-metrics", "data-metric=\"accuracy\"");
    assert!(!summary_accuracy.contains("-0.0787"), "{summary_accuracy}");
    assert!(detail("Input columns").contains("<td>amount, age, hour, distance</td><td>none</td>"));
    let text = render_text(&i);
    assert!(
        text.contains("    Task: was binary, now multiclass\n"),
        "{text}"
    );
    assert!(
        text.contains("    Model kind: was mlp, now cnn\n"),
        "{text}"
    );
    assert!(text.contains(
        "    Macro-F1: was undefined, now 0.8123: not comparable (the releases are of different tasks)\n"
    ), "{text}");
}

#[test]
fn per_task_metrics_and_conv_blocks_are_compared_old_to_new() {
    // Two regressions: RMSE, MAE and R² side by side, no binary metric.
    let mut f = fixture();
    f.card = regression_card();
    let mut old_card = regression_card();
    old_card.version = "0.9.0".into();
    if let CardMetrics::Regression(r) = &mut old_card.metrics {
        (r.rmse, r.mae, r.r2) = (14.0, 10.5, 0.8);
    }
    let old_report = report(Verdict::Pass);
    let mut i = input(&f);
    i.previous = Some(previous(&old_card, &old_report));
    let html = render_html(&i);
    let summary = section(&html, "change-summary");
    let rmse = row_with(summary, "summary-metrics", "data-metric=\"rmse\"");
    assert!(
        rmse.contains(">14.0000<") && rmse.contains(">12.5000<"),
        "{rmse}"
    );
    assert!(rmse.contains("-1.5000: no interval recorded"), "{rmse}");
    assert!(row_with(summary, "summary-metrics", "data-metric=\"r2\"").contains("+0.0765"));
    assert!(
        !summary.contains("data-metric=\"roc_auc\"")
            && !summary.contains("data-metric=\"accuracy\"")
    );
    assert!(
        row_with(&html, "id=\"changes\"", "<td>MAE</td>")
            .contains("<td>10.5000</td><td>9.2500</td>")
    );
    assert!(
        row_with(&html, "id=\"changes\"", "<td>Output</td>")
            .contains("<td>amount</td><td>amount</td>")
    );
    let text = render_text(&i);
    assert!(text.contains(
        "    RMSE: was 14.0000, now 12.5000: no interval recorded: cannot tell a change from noise\n"
    ), "{text}");
    assert!(text.contains("    R²: was 0.8000, now 0.8765: "), "{text}");
    // Two CNNs whose second block changed its kernel.
    f.card = multiclass_card();
    let mut old_card = multiclass_card();
    old_card.architecture.cnn.as_mut().expect("cnn").conv[1].kernel = 5;
    let cfg = old_card.configuration.as_mut().expect("configuration");
    if let ModelSpec::Cnn(spec) = &mut cfg.hyperparameters.model {
        spec.conv[1].kernel = 5;
        spec.conv[1].batch_norm = true;
    }
    let mut i = input(&f);
    i.previous = Some(previous(&old_card, &old_report));
    let html = render_html(&i);
    let block = row_with(
        &html,
        "summary-settings",
        "data-item=\"Convolution block 2\"",
    );
    assert!(block.contains(
        "<td>16 channels, kernel 5, stride 1, padding 0, max-pool 2, batch norm</td>\
         <td class=\"changed\">16 channels, kernel 3, stride 1, padding 0, max-pool 2, no batch norm</td>"
    ), "{block}");
    assert!(
        row_with(&html, "id=\"changes\"", "<td>Convolution block 2</td>")
            .contains("data-change=\"changed\"")
    );
    assert!(
        row_with(&html, "id=\"changes\"", "<td>Convolution block 1</td>")
            .contains("data-change=\"unchanged\"")
    );
    // The terminal reads the blocks whole.
    assert!(render_text(&i).contains(
        "    Convolution block 2: was 16 channels, kernel 5, stride 1, padding 0, max-pool 2, \
         batch norm, now 16 channels, kernel 3, stride 1, padding 0, max-pool 2, no batch norm\n"
    ));
    let macro_f1 = row_with(&html, "summary-metrics", "data-metric=\"macro_f1\"");
    assert!(
        macro_f1.contains("data-judgement=\"unchanged\""),
        "{macro_f1}"
    );
}

#[test]
fn new_metrics_have_a_direction() {
    use crate::summary::{Estimate, Judgement, judge};
    let e = |v: f64| Estimate {
        value: Some(v),
        low: Some(v - 0.05),
        high: Some(v + 0.05),
    };
    for (name, better_when_higher) in [
        ("macro_f1", true),
        ("r2", true),
        ("rmse", false),
        ("mae", false),
    ] {
        let up = judge(name, &e(0.5), &e(0.8));
        let expected = if better_when_higher {
            Judgement::Better
        } else {
            Judgement::Worse
        };
        assert_eq!(up, expected, "{name}");
    }
}
