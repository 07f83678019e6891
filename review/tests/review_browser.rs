//! The review page in a real browser (Debian's Chromium, headless): it renders, its charts,
//! leak rows and approval rows are in the DOM, and loading it sends no request anywhere.
//!
//! Needs `/usr/bin/chromium` (or `AIRLOCK_CHROMIUM`): `tests/setup-browser.sh` installs it.
//! Without it the test fails instead of skipping, so a CI image that lost the browser is
//! noticed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use airlock_review::{Previous, ReviewInput, render_html, render_text};
use airlock_schemas::{
    Architecture, CardMetrics, Decision, EpochMetrics, InputFeature, LeakLayer, LeakReport,
    ModelCard, ModelOutput, ReleasePredicate, ReportInput, RocPoint, ShardDigests, Statement,
    Subject, TensorSpec, TrainingSummary, Verdict,
};
use airlock_trust::Check;
use airlock_trust::approvals::{ApprovalSummary, DecisionStatus};
use serde_json::json;

/// A hung browser must not hang the test suite.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Chromium's own background services (component updater, network time, sign-in). Headless
/// Chromium 156 contacts them at start-up whatever the flags say, so a request to one of
/// them says nothing about the page; the test separately asserts that the page names none
/// of these domains, so such a request cannot have come from it.
const BROWSER_SERVICE_DOMAINS: [&str; 5] = [
    "google.com",
    "googleapis.com",
    "gstatic.com",
    "gvt1.com",
    "gvt2.com",
];

fn chromium() -> PathBuf {
    let path = std::env::var_os("AIRLOCK_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: run tests/setup-browser.sh (as root) to install Debian's chromium, \
         or set AIRLOCK_CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// A stand-in HTTP proxy on loopback: every connection the browser opens through it is
/// recorded as "METHOD host" and answered 403, so nothing goes further.
struct CountingProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy on loopback");
        let port = listener.local_addr().expect("proxy address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        // The thread outlives the test's interest in it; it dies with the test process.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let request = answer_403(stream);
                log.lock().expect("proxy log lock").push(request);
            }
        });
        Self { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("proxy log lock").clone()
    }
}

/// Read the request head, answer 403, and name what was asked for.
fn answer_403(mut stream: TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream
        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        // Counted as a page request: an unreadable connection is not known to be harmless.
        return format!("UNPARSED {line:?}");
    };
    let host = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let host = host.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    format!("{method} {host}")
}

fn is_browser_service(request: &str) -> bool {
    let host = request.split(' ').nth(1).unwrap_or_default();
    BROWSER_SERVICE_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// What one headless run produced, and every request it sent through the proxy.
struct Run {
    stdout: String,
    requests: Vec<String>,
}

impl Run {
    fn page_requests(&self) -> Vec<&String> {
        self.requests
            .iter()
            .filter(|r| !is_browser_service(r))
            .collect()
    }
}

/// Load `page` in a fresh headless Chromium whose every http(s) request, loopback included,
/// goes to a counting proxy.
fn run_chromium(page: &Path, work: &Path, label: &str, extra: &[String]) -> Run {
    let proxy = CountingProxy::start();
    let profile = tempfile::tempdir().expect("profile dir");
    let stdout_path = work.join(format!("{label}.stdout"));
    let stderr_path = work.join(format!("{label}.stderr"));
    let url = format!("file://{}", page.display());
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--proxy-server=http://127.0.0.1:{}", proxy.port))
        // By default Chromium sends loopback requests direct; `<-loopback>` removes that
        // exception so even a request to 127.0.0.1 would be counted.
        .arg("--proxy-bypass-list=<-loopback>")
        .args(extra)
        .arg(&url)
        .stdin(Stdio::null())
        // Files, not pipes: a renderer that outlives the browser cannot block a reader.
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        // Its own process group, so a hung browser is killed with all its helpers.
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "chromium ({label}) did not finish within {BROWSER_TIMEOUT:?}; stderr in {}",
                stderr_path.display()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    // A connection the browser opened just before exiting may still sit in the backlog.
    thread::sleep(Duration::from_millis(500));
    assert!(
        status.success(),
        "chromium ({label}) failed with {status}; stderr:\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    Run {
        stdout: std::fs::read_to_string(&stdout_path).expect("read chromium stdout"),
        requests: proxy.requests(),
    }
}

// ---------------------------------------------------------------------------------------
// A realistic release: what `airlock package` writes for the demo fraud detector.

const FEATURES: [&str; 12] = [
    "amount",
    "age",
    "account_age_days",
    "hour",
    "distance_km",
    "merchant_risk",
    "tx_last_24h",
    "avg_amount_30d",
    "foreign",
    "online",
    "chargebacks",
    "device_new",
];

fn card(version: &str, auc: f64, accuracy: f64, loss: f64, hidden: [usize; 2]) -> ModelCard {
    let widths = vec![FEATURES.len(), hidden[0], hidden[1], 1];
    let tensors = widths
        .windows(2)
        .enumerate()
        .flat_map(|(i, w)| {
            [
                TensorSpec {
                    name: format!("layers.{i}.bias"),
                    dtype: "F32".into(),
                    shape: vec![w[1]],
                },
                TensorSpec {
                    name: format!("layers.{i}.weight"),
                    dtype: "F32".into(),
                    shape: vec![w[1], w[0]],
                },
            ]
        })
        .collect();
    let epochs = (1..=12)
        .map(|e| {
            let t = e as f64;
            EpochMetrics {
                epoch: e,
                train_loss: 0.22 + 0.45 * (-t / 3.0).exp(),
                train_accuracy: 0.90 + 0.004 * t,
                validation_loss: 0.24 + 0.40 * (-t / 3.2).exp() + 0.002 * t,
                validation_accuracy: 0.89 + 0.004 * t,
                seconds: 1.7,
            }
        })
        .collect();
    // A smooth concave curve with about the given AUC: tpr = fpr^k has AUC 1/(k+1).
    let k = 1.0 / auc - 1.0;
    let roc_curve = (0..=100)
        .map(|i| {
            let fpr = f64::from(i) / 100.0;
            RocPoint {
                fpr,
                tpr: fpr.powf(k),
            }
        })
        .collect();
    ModelCard {
        schema_version: 1,
        name: "fraud-detector".into(),
        version: version.into(),
        intended_use: Some(
            "Score card transactions for the fraud team's manual review queue. Not for \
             automatic declines."
                .into(),
        ),
        architecture: Architecture {
            kind: "mlp".into(),
            layer_widths: widths,
            activation: "relu".into(),
            tensors,
        },
        inputs: FEATURES
            .iter()
            .map(|f| InputFeature {
                name: (*f).into(),
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
            accuracy,
            loss,
            holdout_rows: 3000,
            positive_rate: 0.0813,
        },
        training: TrainingSummary {
            epochs,
            roc_curve,
            split_rows: [14000, 3000, 3000],
        },        configuration: None,
        evaluation: None,
    }
}

fn leak_report(model_sha: &str, data_sha: &str, membership_auc: f64) -> LeakReport {
    let layer = |id: &str, name: &str, parameters: serde_json::Value, counts: serde_json::Value| {
        LeakLayer {
            id: id.into(),
            name: name.into(),
            verdict: Verdict::Pass,
            parameters: serde_json::from_value(parameters).expect("parameters map"),
            counts: serde_json::from_value(counts).expect("counts map"),
            findings: vec![],
            error: None,
        }
    };
    LeakReport {
        schema_version: 1,
        verdict: Verdict::Pass,
        inputs: vec![
            ReportInput {
                role: "checkpoint".into(),
                name: "checkpoint.safetensors".into(),
                sha256: "3c".repeat(32),
            },
            ReportInput {
                role: "training-data".into(),
                name: "transactions.csv".into(),
                sha256: data_sha.into(),
            },
            ReportInput {
                role: "model".into(),
                name: "model.safetensors".into(),
                sha256: model_sha.into(),
            },
        ],
        layers: vec![
            layer(
                "L0",
                "structure",
                json!({"declared_tensors": 6}),
                json!({"checkpoint_tensors": 18, "released_tensors": 6, "dropped_tensors": 12}),
            ),
            layer(
                "L1",
                "pii-patterns",
                json!({"min_run_bytes": 8, "kinds": "email, card, ssn, iban, phone"}),
                json!({"strings_checked": 31, "runs_carved": 4, "hits": 0}),
            ),
            layer(
                "L2",
                "exact-records",
                json!({"min_text_bytes": 8, "window": 4, "dtypes": "f32, f16, bf16"}),
                json!({"text_values": 100000, "numeric_rows": 20000, "candidates": 3, "verified": 0}),
            ),
            layer(
                "L3",
                "membership-inference",
                json!({"max_membership_auc": 0.6, "max_membership_advantage": 0.15}),
                json!({"membership_auc": membership_auc, "membership_advantage": 0.031, "members": 3000, "non_members": 3000}),
            ),
        ],
    }
}

fn statement(version: &str, model_sha: &str) -> Statement<ReleasePredicate> {
    Statement {
        type_: airlock_schemas::STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: "model.safetensors".into(),
            digest: [("sha256".to_owned(), model_sha.to_owned())]
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        }],
        predicate_type: airlock_schemas::RELEASE_PREDICATE_TYPE.into(),
        predicate: ReleasePredicate {
            model_name: "fraud-detector".into(),
            model_version: version.into(),
            pipeline_sha256: "5e".repeat(32),
            training_record_sha256: "7a".repeat(32),
            leak_verdict: Verdict::Pass,
            git_commit: Some("4f2c1e9a7b3d5f60818293a4b5c6d7e8f9012345".into()),
            model_shards: ShardDigests {
                length: 12_632,
                shard_size: 64 << 20,
                sha256: vec![model_sha.to_owned()],
            },
        },
    }
}

fn provenance(data_sha: &str, builder: &str) -> serde_json::Value {
    json!({
        "buildDefinition": {
            "buildType": "https://airlock.dev/build/train-and-package/v1",
            "externalParameters": {"pipeline": {"name": "fraud-detector", "sha256": "5e".repeat(32)}},
            "internalParameters": {"seed": 42, "backend": "flex", "device": "cpu", "epochs": 12, "batch_size": 256},
            "resolvedDependencies": [
                {"name": "training-record:training-record.json", "digest": {"sha256": "7a".repeat(32)}},
                {"name": "training-data:transactions.csv", "digest": {"sha256": data_sha}},
                {"name": "source", "digest": {"gitCommit": "4f2c1e9a7b3d5f60818293a4b5c6d7e8f9012345"}},
            ],
        },
        "runDetails": {
            "builder": {"id": format!("https://airlock.dev/builder/key/{builder}"), "version": {"airlock": "0.1.0"}},
            "metadata": {"startedOn": "2025-06-01T09:12:03Z", "finishedOn": "2025-06-01T09:12:31Z"},
        },
    })
}

fn checks() -> Vec<Check> {
    [
        ("bundle files", "6 files present"),
        ("statement signature", "signed by ci-builder (builder)"),
        (
            "statement.json matches the signed payload",
            "identical bytes",
        ),
        (
            "statement type",
            "in-toto Statement v1, airlock release predicate",
        ),
        ("statement subjects", "3 subjects"),
        ("model digest", "sha256 matches, 1 shard"),
        ("subject digest", "model-card.json, leak-report.json match"),
        ("leak verdict", "pass (L0 pass, L1 pass, L2 pass, L3 pass)"),
        ("provenance", "SLSA v1, signed by ci-builder"),
    ]
    .into_iter()
    .map(|(name, detail)| Check {
        name,
        ok: true,
        detail: detail.into(),
    })
    .collect()
}

fn approvals() -> ApprovalSummary {
    ApprovalSummary {
        required: 2,
        approvals: 1,
        rejected: false,
        decisions: vec![
            DecisionStatus {
                file: "a1b2c3.dsse.json".into(),
                keyid: Some("a1b2c3".repeat(10) + "a1b2"),
                key_name: Some("officer-dana".into()),
                officer: Some("Dana Whitfield".into()),
                decision: Some(Decision::Approve),
                reason: Some("Metrics and leak checks reviewed; <b>fine</b> for the pilot.".into()),
                time: Some("2025-06-02T10:15:00Z".into()),
                expires: Some("2025-09-02T10:15:00Z".into()),
                counts: true,
                why: "valid approval by a trusted officer key".into(),
            },
            DecisionStatus {
                file: "ffee99.dsse.json".into(),
                keyid: Some("ffee99".repeat(10) + "ffee"),
                key_name: None,
                officer: Some("Sam Ortega".into()),
                decision: Some(Decision::Approve),
                reason: Some("ok".into()),
                time: Some("2025-06-02T11:00:00Z".into()),
                expires: None,
                counts: false,
                why: "signed by a key that is not an officer key in the trust policy".into(),
            },
        ],
    }
}

#[test]
fn review_page_renders_in_chromium_without_a_single_request() {
    let work = tempfile::tempdir().expect("work dir");
    let model_sha = "9d".repeat(32);
    let builder_id = "b0".repeat(32);

    let new_card = card("1.1.0", 0.9312, 0.9207, 0.2214, [64, 32]);
    let new_report = leak_report(&model_sha, &"d4".repeat(32), 0.512);
    let new_statement = statement("1.1.0", &model_sha);
    let new_provenance = provenance(&"d4".repeat(32), &builder_id);
    let old_card = card("1.0.0", 0.9188, 0.9150, 0.2391, [32, 16]);
    let old_report = leak_report(&"8e".repeat(32), &"c3".repeat(32), 0.523);
    let old_provenance = provenance(&"c3".repeat(32), &builder_id);
    let checks = checks();
    let approvals = approvals();
    let bundle = PathBuf::from("releases/fraud-detector-1.1.0-20250601T091231Z");
    let files = [
        ("model.safetensors", model_sha.clone()),
        ("model-card.json", "11".repeat(32)),
        ("leak-report.json", "22".repeat(32)),
        ("statement.json", "33".repeat(32)),
        ("statement.dsse.json", "44".repeat(32)),
        ("provenance.dsse.json", "55".repeat(32)),
        ("approvals/a1b2c3.dsse.json", "66".repeat(32)),
        ("approvals/ffee99.dsse.json", "77".repeat(32)),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_owned(), s))
    .collect();
    let input = ReviewInput {
        bundle: &bundle,
        card: &new_card,
        report: &new_report,
        statement: Some(&new_statement),
        provenance: Some(&new_provenance),
        files,
        checks: &checks,
        builder: Some(("ci-builder".into(), builder_id.clone())),
        approvals: &approvals,
        previous: Some(Previous {
            bundle: Path::new("releases/fraud-detector-1.0.0-20250501T080000Z"),
            card: &old_card,
            report: &old_report,
            provenance: Some(&old_provenance),
            verified: true,
        }),
        demo: true,
        trust: None,
    };
    let html = render_html(&input);
    let text = render_text(&input);
    println!("{text}");
    let page = work.path().join("review.html");
    std::fs::write(&page, &html).expect("write review.html");

    // A request to a browser service domain is only excusable if the page cannot have
    // caused it.
    for domain in BROWSER_SERVICE_DOMAINS {
        assert!(!html.contains(domain), "the page names {domain}");
    }

    // Negative control: a page that does fetch something must be caught, or the zero below
    // proves nothing.
    let leaky = work.path().join("leaky.html");
    std::fs::write(
        &leaky,
        "<!DOCTYPE html><html><head><title>leaky</title></head><body><p>leaky</p>\
         <img src=\"http://example.invalid/x.png\"></body></html>",
    )
    .expect("write leaky.html");
    let control = run_chromium(&leaky, work.path(), "control", &["--dump-dom".into()]);
    println!("negative control requests: {:?}", control.requests);
    assert!(
        control
            .page_requests()
            .iter()
            .any(|r| r.ends_with(" example.invalid")),
        "the negative control's <img> did not reach the counting proxy: the no-request check \
         cannot fail, so it proves nothing (requests seen: {:?})",
        control.requests
    );

    // The DOM as the browser built it.
    let dom_run = run_chromium(&page, work.path(), "dom", &["--dump-dom".into()]);
    let dom = &dom_run.stdout;
    std::fs::write(work.path().join("review.dom.html"), dom).expect("write dom");

    let png = work.path().join("review.png");
    let shot = run_chromium(
        &page,
        work.path(),
        "screenshot",
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,4000".into(),
        ],
    );

    for run in [&dom_run, &shot] {
        println!("review page run: background requests {:?}", run.requests);
        assert!(
            run.page_requests().is_empty(),
            "loading the review page sent requests: {:?}",
            run.page_requests()
        );
    }

    // Screenshot: keep it where a person can look at it.
    let size = std::fs::metadata(&png).expect("screenshot written").len();
    assert!(size > 10 * 1024, "screenshot is only {size} bytes");
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("review_browser");
    std::fs::create_dir_all(&keep).expect("create keep dir");
    std::fs::copy(&png, keep.join("review.png")).expect("keep screenshot");
    std::fs::write(keep.join("review.html"), &html).expect("keep page");
    println!(
        "screenshot: {} ({size} bytes); page: {}",
        keep.join("review.png").display(),
        keep.join("review.html").display()
    );

    // Charts, with one point per epoch and per ROC point.
    let svg = |id: &str| -> &str {
        let start = dom
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("no svg {id} in the DOM"));
        let end = dom[start..].find("</svg>").expect("svg closed") + start;
        &dom[start..end]
    };
    let loss = svg("loss-chart");
    assert!(loss.contains("<title"), "loss chart has a title");
    assert_eq!(loss.matches("<polyline").count(), 2);
    assert_eq!(loss.matches("class=\"pt train\"").count(), 12);
    assert_eq!(loss.matches("class=\"pt validation\"").count(), 12);
    let roc = svg("roc-chart");
    assert!(roc.contains("ROC curve (AUC 0.9312)"));
    assert_eq!(roc.matches("class=\"pt roc\"").count(), 101);

    // One row per leak layer, each with its verdict.
    for id in ["L0", "L1", "L2", "L3"] {
        let at = dom
            .find(&format!("<tr data-layer=\"{id}\""))
            .unwrap_or_else(|| panic!("no row for leak layer {id}"));
        let row = &dom[at..at + dom[at..].find("</tr>").expect("row end")];
        assert!(
            row.contains("class=\"verdict pass\"") && row.contains(">Pass<"),
            "layer {id}: {row}"
        );
    }

    // The approvals table with both decisions, one of which counts.
    let at = dom
        .find("<table id=\"approvals\"")
        .expect("approvals table");
    let table = &dom[at..at + dom[at..].find("</table>").expect("table end")];
    assert_eq!(table.matches("data-decision=\"approve\"").count(), 2);
    assert_eq!(table.matches("data-counts=\"true\"").count(), 1);
    assert!(table.contains("Dana Whitfield") && table.contains("Sam Ortega"));
    assert!(table.contains("&lt;b&gt;fine&lt;/b&gt;"), "reason escaped");
    assert!(dom.contains("1 of 2 required approvals"));
    assert!(dom.contains("Ready to approve"));
    assert!(dom.contains("id=\"demo-ribbon\""));
    assert!(dom.contains("id=\"changes\""));
    assert!(!dom.contains("<script"));
}
