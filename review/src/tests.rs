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
    assert!(text.contains("leak checks:  pass (L0 pass, L1 pass, L2 pass, L3 pass)"));
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
    assert!(render_text(&i).contains("  changed since 1.0.0 (that release does NOT verify):\n"));
}
