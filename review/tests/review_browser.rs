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
    Architecture, BinaryCardMetrics, CardMetrics, Decision, EpochMetrics, InputFeature, LeakLayer,
    LeakReport, ModelCard, ModelOutput, ReleasePredicate, ReportInput, RocPoint, ShardDigests,
    Statement, Subject, TensorSpec, TrainingSummary, Verdict,
};
use airlock_schemas::{
    BootstrapInfo, Calibration, CalibrationBin, CardConfiguration, CardDataFile, CardSource,
    Confusion, EstimatedMetric, Evaluation, Finding, Hyperparameters, MlpSpec, ModelSpec,
    OptimizerKind, OptimizerSpec, SubgroupRow, SubgroupTable,
};
use airlock_schemas::{
    CnnArchitecture, CnnSpec, ConvBlock, ImageInput, MulticlassCardMetrics, RegressionCardMetrics,
    ResidualBin, TaskSpec,
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
// Layout at 1280 px: a harness page loads the review page (unchanged, with its own CSP) in a
// 1280 px wide frame and measures it. The review page runs no script; only the harness does.

/// The harness: `__PAGE__` is the review page's file name (same folder).
const HARNESS: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>layout harness</title>
<style>body { margin: 0 } iframe { width: 1280px; height: 2400px; border: 0; display: block }</style>
<script>
function measure() {
  const out = {};
  try {
    const d = document.getElementById('page').contentDocument;
    const root = d.documentElement;
    const main = d.querySelector('main');
    const mr = main.getBoundingClientRect();
    const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
      (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ').join('.') : '');
    out.viewport = [d.defaultView.innerWidth, root.clientWidth];
    out.document = [root.scrollWidth, root.clientWidth];
    out.main = [mr.left, mr.right];
    out.tables = [...d.querySelectorAll('table')].map(t => ({
      name: name(t) + (t.dataset.column ? '[' + t.dataset.column + ']' : ''),
      container: [t.parentElement.scrollWidth, t.parentElement.clientWidth],
      table: [t.scrollWidth, t.clientWidth],
      right: t.getBoundingClientRect().right,
    }));
    // Every box inside <main> stays inside it, and no box's content spills out of it.
    // Inside a chart only the <svg> box counts: its shapes are drawn in its own coordinates.
    const svgNs = 'http://www.w3.org/2000/svg';
    const all = [...main.querySelectorAll('*')].filter(e => e.namespaceURI !== svgNs || e.localName === 'svg');
    out.outside = all.filter(e => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && (r.right > mr.right + 0.5 || r.left < mr.left - 0.5);
    }).map(name).slice(0, 40);
    out.spilling = all.filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
      .map(e => name(e) + ' ' + e.scrollWidth + '>' + e.clientWidth).slice(0, 40);
    out.sections = [...main.querySelectorAll('section')].map(e => e.id);
    const summary = d.getElementById('change-summary');
    out.summary_top = summary ? summary.getBoundingClientRect().top : null;
    // The measured L3 values of both releases, and where their cells end.
    out.l3 = [...d.querySelectorAll('#summary-leaks tr')]
      .filter(r => r.textContent.includes('membership'))
      .map(r => ({ text: [...r.cells].map(c => c.textContent), right: Math.max(...[...r.cells].map(c => c.getBoundingClientRect().right)) }));
    out.measured = [...d.querySelectorAll('#membership-measured strong')].map(e => ({ text: e.textContent, right: e.getBoundingClientRect().right }));
    out.intervals = [...d.querySelectorAll('td.interval')].filter(c => /\d – \d/.test(c.textContent)).length;
    out.clinical = [...d.querySelectorAll('#clinical-metrics tr[data-metric]')].map(r => r.dataset.metric);
    out.subgroup_tables = d.querySelectorAll('table.subgroups').length;
    out.calibration_points = d.querySelectorAll('#calibration-chart circle.calibration').length;
    // Each confusion-matrix table: where it ends, its rows, and how many of its counts
    // wrap onto a second line (a count cut in two is misread).
    const lines = e => { const r = d.createRange(); r.selectNodeContents(e); return new Set([...r.getClientRects()].map(q => Math.round(q.top))).size; };
    out.matrices = [...d.querySelectorAll('table.confusion')].map(t => ({
      right: t.getBoundingClientRect().right,
      rows: t.tBodies[0].rows.length,
      counts: t.querySelectorAll('tbody td.num').length,
      wrapped: [...t.querySelectorAll('td.num')].filter(c => c.textContent.length > 0 && lines(c) > 1).length,
    }));
    const residual = d.getElementById('residual-chart');
    out.residual = residual ? { right: residual.getBoundingClientRect().right, width: residual.getBoundingClientRect().width, points: residual.querySelectorAll('circle.residual').length } : null;
  } catch (e) { out.error = String(e); }
  document.getElementById('result').textContent = JSON.stringify(out);
}
</script></head><body>
<pre id="result">not measured</pre>
<iframe id="page" src="__PAGE__" onload="measure()"></iframe>
</body></html>
"#;

/// Load `page` at 1280 px through the harness and return the measurements.
fn layout(page: &Path, work: &Path, label: &str) -> serde_json::Value {
    let harness = work.join(format!("{label}.harness.html"));
    let file = page
        .file_name()
        .and_then(|n| n.to_str())
        .expect("page file name");
    assert_eq!(
        page.parent(),
        Some(work),
        "the harness loads the page from its own folder"
    );
    std::fs::write(&harness, HARNESS.replace("__PAGE__", file)).expect("write harness");
    let run = run_chromium(
        &harness,
        work,
        label,
        &[
            "--dump-dom".into(),
            // The harness reads the framed page's layout; both are local files.
            "--allow-file-access-from-files".into(),
            "--window-size=1280,2400".into(),
        ],
    );
    assert!(
        run.page_requests().is_empty(),
        "{label}: loading the page sent requests: {:?}",
        run.page_requests()
    );
    let start = run
        .stdout
        .find("<pre id=\"result\">")
        .expect("result element")
        + 17;
    let end = run.stdout[start..].find("</pre>").expect("result end") + start;
    let json = run.stdout[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let m: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{label}: harness result is not JSON ({e}): {json}"));
    assert!(m.get("error").is_none(), "{label}: harness failed: {m}");
    assert_eq!(
        m["viewport"][0], 1280,
        "{label}: the frame is not 1280 px wide: {m}"
    );
    m
}

fn pair(v: &serde_json::Value) -> (f64, f64) {
    (
        v[0].as_f64().expect("number"),
        v[1].as_f64().expect("number"),
    )
}

/// Everything that overflows horizontally at 1280 px, in words (empty: it all fits).
fn overflow(m: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let (sw, cw) = pair(&m["document"]);
    if sw > cw {
        problems.push(format!("the document scrolls sideways ({sw} > {cw})"));
    }
    let right = pair(&m["main"]).1;
    for t in m["tables"].as_array().expect("tables") {
        let name = t["name"].as_str().unwrap_or_default();
        let (sw, cw) = pair(&t["container"]);
        if sw > cw {
            problems.push(format!("{name}: its container overflows ({sw} > {cw})"));
        }
        let (sw, cw) = pair(&t["table"]);
        if sw > cw {
            problems.push(format!("{name}: its content overflows ({sw} > {cw})"));
        }
        if t["right"].as_f64().expect("right") > right + 0.5 {
            problems.push(format!("{name}: ends right of the page's column"));
        }
    }
    for key in ["outside", "spilling"] {
        for e in m[key].as_array().expect(key) {
            problems.push(format!("{key}: {}", e.as_str().unwrap_or_default()));
        }
    }
    problems
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
                train_accuracy: Some(0.90 + 0.004 * t),
                validation_loss: 0.24 + 0.40 * (-t / 3.2).exp() + 0.002 * t,
                validation_accuracy: Some(0.89 + 0.004 * t),
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
        onprem_only: false,
        intended_use: Some(
            "Score card transactions for the fraud team's manual review queue. Not for \
             automatic declines."
                .into(),
        ),
        architecture: Architecture {
            kind: "mlp".into(),
            cnn: None,
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
        metrics: CardMetrics::Binary(BinaryCardMetrics {
            roc_auc: auc,
            accuracy,
            loss,
            holdout_rows: 3000,
            positive_rate: 0.0813,
        }),
        training: TrainingSummary {
            epochs,
            roc_curve,
            split_rows: [14000, 3000, 3000],
        },
        configuration: Some(configuration(version, hidden)),
        evaluation: Some(evaluation(auc, accuracy)),
    }
}

/// The training configuration `airlock package` records in the card: release 1.1.0 trains
/// 20 epochs instead of 12 on a larger extract, swaps a feature, and was allowed from a
/// dirty work tree.
fn configuration(version: &str, hidden: [usize; 2]) -> CardConfiguration {
    let second = version != "1.0.0";
    let mut features: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
    if second {
        features[11] = "device_fingerprint_changed_within_last_30_days".into();
    }
    CardConfiguration {
        hyperparameters: Hyperparameters {
            task: Default::default(),
            model: ModelSpec::Mlp(MlpSpec {
                hidden: hidden.to_vec(),
                dropout: 0.1,
            }),
            features,
            label: "fraud".into(),
            optimizer: OptimizerSpec {
                kind: OptimizerKind::Adam,
                learning_rate: 0.001,
                weight_decay: 0.0001,
            },
            epochs: if second { 20 } else { 12 },
            batch_size: 256,
        },
        seed: 42,
        split_fractions: [0.7, 0.15, 0.15],
        data: vec![CardDataFile {
            name: "transactions-2025-06-01-full-extract-from-the-core-banking-warehouse.csv".into(),
            sha256: if second { "d4" } else { "c3" }.repeat(32),
            rows: if second { 24_000 } else { 20_000 },
        }],
        source: CardSource {
            git_commit: Some("4f2c1e9a7b3d5f60818293a4b5c6d7e8f9012345".into()),
            git_dirty: Some(second),
            uncommitted_allowed: second,
        },
    }
}

fn metric(name: &str, value: f64, half: f64) -> EstimatedMetric {
    EstimatedMetric {
        name: name.into(),
        value: Some(value),
        low: Some(value - half),
        high: Some(value + half),
    }
}

/// The holdout evaluation with intervals, a calibration curve and subgroup tables.
fn evaluation(auc: f64, accuracy: f64) -> Evaluation {
    let group = |group: &str, rows: u64, positives: u64, auc: f64| SubgroupRow {
        group: group.into(),
        rows,
        positives,
        roc_auc: Some(auc),
        accuracy: 0.95,
        sensitivity: Some(0.81),
        specificity: Some(0.97),
    };
    Evaluation {
        threshold: 0.5,
        bootstrap: BootstrapInfo {
            resamples: 1000,
            confidence: 0.95,
            seed: 42,
        },
        confusion: Confusion {
            true_positives: 198,
            false_positives: 66,
            true_negatives: 2690,
            false_negatives: 46,
        },
        metrics: vec![
            metric("roc_auc", auc, 0.011),
            metric("accuracy", accuracy, 0.009),
            metric("sensitivity", 0.8115, 0.048),
            metric("specificity", 0.9760, 0.006),
            metric("ppv", 0.7500, 0.052),
            metric("npv", 0.9832, 0.005),
            metric("brier", 0.0561, 0.004),
        ],
        calibration: Calibration {
            bins: (0..10u32)
                .map(|i| {
                    let lower = f64::from(i) / 10.0;
                    let rows = [2410u64, 180, 90, 60, 45, 40, 0, 35, 50, 90][i as usize];
                    CalibrationBin {
                        lower,
                        upper: lower + 0.1,
                        rows,
                        mean_predicted: (rows > 0).then_some(lower + 0.05),
                        observed_rate: (rows > 0).then_some(lower + 0.03),
                    }
                })
                .collect(),
            expected_calibration_error: 0.0214,
        },
        subgroups: vec![
            SubgroupTable {
                column: "age".into(),
                bands: Some(vec![30.0, 45.0, 60.0]),
                min_group_rows: 20,
                groups: vec![
                    group("under 30", 610, 61, 0.9211),
                    group("30–44", 930, 72, 0.9302),
                    group("45–59", 880, 65, 0.9350),
                    group("≥ 60", 580, 46, 0.9120),
                ],
                suppressed_groups: 0,
            },
            SubgroupTable {
                column: "site_identifier_of_the_originating_branch_office".into(),
                bands: None,
                min_group_rows: 20,
                groups: vec![
                    group(
                        "north-east-regional-processing-centre-0001",
                        1500,
                        120,
                        0.93,
                    ),
                    group(
                        "south-west-regional-processing-centre-0002",
                        1488,
                        119,
                        0.929,
                    ),
                ],
                suppressed_groups: 3,
            },
        ],
    }
}

fn leak_report(
    model_sha: &str,
    data_sha: &str,
    membership_auc: f64,
    membership_advantage: f64,
) -> LeakReport {
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
                json!({"min_printable_run": 8, "kinds": ["email", "card", "ssn", "iban", "phone", "mrn", "nhs-number", "date-of-birth", "postcode"]}),
                json!({"bytes_scanned": 12_632, "findings": 0}),
            ),
            layer(
                "L2",
                "exact-records",
                json!({"min_text_len": 8, "numeric_window": 4, "encodings": ["f32", "f16", "bf16"], "numeric_forms": ["raw", "standardized"]}),
                json!({"records": 20000, "text_patterns": 100000, "numeric_windows": 240000, "numeric_skipped_low_information": 31, "bytes_scanned": 12_632, "findings": 0}),
            ),
            layer(
                "L3",
                "membership-inference",
                json!({"attack": "loss-threshold", "max_auc": 0.6, "max_advantage": 0.15}),
                json!({"auc": membership_auc, "advantage": membership_advantage, "members": 3000, "non_members": 3000, "rmia_auc": 0.51, "rmia_tpr_at_1pct_fpr": 0.012, "rmia_tpr_at_0_1pct_fpr": 0.001, "findings": 0}),
            ),
            layer(
                "L4",
                "reproducibility",
                json!({"reproduce": true, "backend": "flex", "deterministic": true}),
                json!({"identical": true, "reproduced": true, "largest_difference": 0.0, "findings": 0}),
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
            privacy: None,
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
        (
            "leak verdict",
            "pass (L0 pass, L1 pass, L2 pass, L3 pass, L4 pass)",
        ),
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
    let new_report = leak_report(&model_sha, &"d4".repeat(32), 0.512, 0.031);
    let new_statement = statement("1.1.0", &model_sha);
    let new_provenance = provenance(&"d4".repeat(32), &builder_id);
    let old_card = card("1.0.0", 0.9188, 0.9150, 0.2391, [32, 16]);
    let old_report = leak_report(&"8e".repeat(32), &"c3".repeat(32), 0.5234, 0.0467);
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
            "--window-size=1280,2400".into(),
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
    for id in ["L0", "L1", "L2", "L3", "L4"] {
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
    assert!(
        dom.contains("data-item=\"Epochs\""),
        "the epochs change is in the summary"
    );
    assert!(dom.contains("10 other items unchanged"));
    assert!(
        dom.contains("id=\"source-warning\""),
        "the dirty, allowed tree is flagged"
    );

    // At 1280 px: nothing overflows, the change summary is the first section and above the
    // fold, and the measured L3 values of both releases are on screen.
    let m = layout(&page, work.path(), "layout");
    println!("layout at 1280 px: {m}");
    let problems = overflow(&m);
    assert!(
        problems.is_empty(),
        "the review page overflows at 1280 px:\n{}",
        problems.join("\n")
    );
    assert!(m["tables"].as_array().expect("tables").len() >= 15, "{m}");
    assert_eq!(m["sections"][0], "change-summary", "{m}");
    let top = m["summary_top"].as_f64().expect("summary top");
    assert!(
        top < 720.0,
        "the change summary starts {top} px down, below the fold"
    );
    let l3 = m["l3"].as_array().expect("l3 rows");
    for want in [
        ["L3 membership AUC", "0.5234", "0.5120", "at most 0.6000"],
        [
            "L3 membership advantage",
            "0.0467",
            "0.0310",
            "at most 0.1500",
        ],
    ] {
        let row = l3
            .iter()
            .find(|r| r["text"][0] == want[0])
            .unwrap_or_else(|| panic!("no {} row: {l3:?}", want[0]));
        assert_eq!(row["text"], json!(want), "{row}");
        assert!(
            row["right"].as_f64().expect("right") <= 1280.0,
            "{row} is off-screen"
        );
    }
    let measured = m["measured"].as_array().expect("measured");
    assert_eq!(measured.len(), 2, "{m}");
    assert_eq!(measured[0]["text"], "0.5120");
    assert_eq!(measured[1]["text"], "0.0310");
    for v in measured {
        assert!(
            v["right"].as_f64().expect("right") <= 1280.0,
            "{v} is off-screen"
        );
    }
    // Intervals: 7 metrics × 2 releases in the summary, 2 in the metrics, 7 clinical.
    assert_eq!(m["intervals"], 23, "{m}");
    assert_eq!(
        m["clinical"],
        json!([
            "roc_auc",
            "accuracy",
            "sensitivity",
            "specificity",
            "ppv",
            "npv",
            "brier"
        ])
    );
    assert_eq!(m["subgroup_tables"], 2);
    assert_eq!(m["calibration_points"], 9, "the empty bin is omitted");

    // A leak report with long findings fits too.
    let mut failing = new_report.clone();
    failing.verdict = Verdict::Fail;
    for (layer, kind) in [(1, "email"), (2, "exact-record-text")] {
        let l = &mut failing.layers[layer];
        l.verdict = Verdict::Fail;
        l.counts.insert("findings".into(), json!(3));
        for i in 0..3u64 {
            l.findings.push(Finding {
                kind: kind.into(),
                location: format!(
                    "model.safetensors tensor \"encoder.layers.0.self_attention.query_key_value_projection_weight_{i}\" at byte {}",
                    1_234_567 + i
                ),
                record: Some(18_000 + i),
                column: Some("customer_primary_contact_email_address_as_entered_at_onboarding".into()),
            });
        }
    }
    // A column name from a wide extract, 200 characters without a break opportunity: the page
    // must fit whatever a bundle names (and the control below shows it would not, unaided).
    failing.layers[2].findings[0].column = Some(format!(
        "legacy_crm_export_{}",
        "customer_primary_contact_email_address_".repeat(5)
    ));
    let failing_input = ReviewInput {
        report: &failing,
        previous: None,
        ..input.clone()
    };
    let failing_page = work.path().join("failing.html");
    std::fs::write(&failing_page, render_html(&failing_input)).expect("write failing.html");
    let m = layout(&failing_page, work.path(), "layout-findings");
    let problems = overflow(&m);
    assert!(
        problems.is_empty(),
        "the page with findings overflows at 1280 px:\n{}",
        problems.join("\n")
    );

    // Negative control: the same pages without the fit rules overflow, so the checks above
    // can fail.
    let unfit = |html: &str| {
        let start = html.find("/* fit:").expect("fit rules start");
        let end = html.find("/* end fit */").expect("fit rules end");
        format!("{}{}", &html[..start], &html[end..])
    };
    let control = work.path().join("unfit.html");
    std::fs::write(&control, unfit(&render_html(&failing_input))).expect("write unfit.html");
    let m = layout(&control, work.path(), "layout-control");
    let problems = overflow(&m);
    println!("without the fit rules: {problems:?}");
    assert!(
        !problems.is_empty(),
        "without its fit rules the page still measured as fitting: the overflow check proves \
         nothing"
    );
}

// ---------------------------------------------------------------------------------------
// Other tasks: a 64-class CNN's confusion matrix and a regression's residual plot at 1280 px.

/// A multi-class CNN on 3 × 64 × 64 scans with `k` classes, every count on its diagonal
/// four digits wide (the widest a count may be and stay on one line).
fn multiclass_card(k: usize) -> ModelCard {
    let mut c = card("2.0.0", 0.5, 0.5, 0.5, [64, 32]);
    let input = ImageInput {
        channels: 3,
        height: 64,
        width: 64,
    };
    let block = |channels: usize| ConvBlock {
        channels,
        kernel: 3,
        stride: 1,
        padding: 1,
        pool: Some(2),
        batch_norm: false,
    };
    c.architecture.kind = "cnn".into();
    c.architecture.cnn = Some(CnnArchitecture {
        input,
        conv: vec![block(16), block(32), block(64)],
        input_normalization: true,
    });
    c.architecture.layer_widths = vec![4096, 64, k];
    c.inputs = Vec::new();
    let classes: Vec<String> = (0..k)
        .map(|i| format!("finding-category-of-the-scan-{i:02}"))
        .collect();
    c.output = ModelOutput {
        label: "finding".into(),
        classes: classes.clone(),
        transform: "softmax".into(),
    };
    let confusion: Vec<Vec<u64>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| match (i, j) {
                    _ if i == j => 9_876,
                    // The first class is never confused: its recall and precision are 100.
                    (0, _) | (_, 0) => 0,
                    _ => ((i * 7 + j * 3) % 23) as u64,
                })
                .collect()
        })
        .collect();
    c.metrics = CardMetrics::Multiclass(MulticlassCardMetrics {
        loss: 0.4321,
        accuracy: 0.93,
        macro_f1: 0.91,
        holdout_rows: confusion.iter().flatten().sum(),
        confusion,
    });
    c.training.roc_curve = Vec::new();
    c.evaluation = None;
    let cfg = c.configuration.as_mut().expect("configuration");
    cfg.hyperparameters.task = TaskSpec::Multiclass { classes };
    cfg.hyperparameters.model = ModelSpec::Cnn(CnnSpec {
        input,
        conv: vec![block(16), block(32), block(64)],
        hidden: vec![64],
        dropout: 0.2,
    });
    cfg.hyperparameters.features = Vec::new();
    c
}

/// A regression on the transactions with 20 residual bins.
fn regression_card() -> ModelCard {
    let mut c = card("2.0.0", 0.5, 0.5, 0.5, [64, 32]);
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
        loss: 1_530.0,
        rmse: 39.1,
        mae: 22.4,
        r2: 0.71,
        residuals: (0..20u32)
            .map(|i| {
                let p = 15.0 * f64::from(i).powf(1.6) + 4.0;
                ResidualBin {
                    rows: 150,
                    predicted: p,
                    mean_residual: 6.0 - 0.05 * p,
                    rms_residual: 8.0 + 0.2 * p,
                }
            })
            .collect(),
        holdout_rows: 3000,
    });
    c.training.roc_curve = Vec::new();
    c.evaluation = None;
    let cfg = c.configuration.as_mut().expect("configuration");
    cfg.hyperparameters.task = TaskSpec::Regression;
    cfg.hyperparameters.label = "amount".into();
    c
}

#[test]
fn a_64_class_confusion_matrix_and_a_residual_plot_fit_at_1280_px() {
    let work = tempfile::tempdir().expect("work dir");
    let old_card = card("1.1.0", 0.9312, 0.9207, 0.2214, [64, 32]);
    let report = leak_report(&"9d".repeat(32), &"d4".repeat(32), 0.512, 0.031);
    let statement = statement("2.0.0", &"9d".repeat(32));
    let checks = checks();
    let approvals = approvals();
    let new_card = multiclass_card(64);
    let bundle = PathBuf::from("releases/scan-triage-2.0.0");
    let input = ReviewInput {
        bundle: &bundle,
        card: &new_card,
        report: &report,
        statement: Some(&statement),
        provenance: None,
        files: vec![("model.safetensors".into(), "9d".repeat(32))],
        checks: &checks,
        builder: Some(("ci-builder".into(), "b0".repeat(32))),
        approvals: &approvals,
        previous: Some(Previous {
            bundle: Path::new("releases/fraud-detector-1.1.0"),
            card: &old_card,
            report: &report,
            provenance: None,
            verified: true,
        }),
        demo: false,
        trust: None,
    };
    let html = render_html(&input);
    assert!(
        html.contains("<td class=\"num margin\">100</td>"),
        "the never-confused class's recall is measured at its widest"
    );
    let page = work.path().join("multiclass.html");
    std::fs::write(&page, &html).expect("write multiclass.html");
    let m = layout(&page, work.path(), "layout-multiclass");
    let problems = overflow(&m);
    assert!(
        problems.is_empty(),
        "the 64-class page overflows at 1280 px:\n{}",
        problems.join("\n")
    );
    let right = pair(&m["main"]).1;
    let tables = m["matrices"].as_array().expect("matrices");
    assert_eq!(tables.len(), 2, "{m}");
    for t in tables {
        assert_eq!(t["rows"], 64, "{t}");
        // 32 predicted classes of 64 true ones, plus the recall column in the last table.
        assert!(t["counts"].as_u64().expect("counts") >= 32 * 64, "{t}");
        assert!(t["right"].as_f64().expect("right") <= right + 0.5, "{t}");
        assert_eq!(t["wrapped"], 0, "a count of the matrix wraps: {t}");
    }
    // Negative control: at twice the type the counts no longer fit on one line, so the
    // wrap check above can fail.
    let big = html.replace(
        "table.confusion.tiny { font-size: 0.58rem;",
        "table.confusion.tiny { font-size: 1.4rem;",
    );
    assert_ne!(big, html, "the control changed nothing");
    let control = work.path().join("multiclass-big.html");
    std::fs::write(&control, big).expect("write control");
    let m = layout(&control, work.path(), "layout-multiclass-control");
    let wrapped: u64 = m["matrices"]
        .as_array()
        .expect("matrices")
        .iter()
        .map(|t| t["wrapped"].as_u64().expect("wrapped"))
        .sum();
    assert!(wrapped > 0, "the control's counts did not wrap: {m}");

    // The regression's page: the residual plot beside the loss chart, inside the page.
    let new_card = regression_card();
    let input = ReviewInput {
        card: &new_card,
        previous: None,
        ..input
    };
    let page = work.path().join("regression.html");
    std::fs::write(&page, render_html(&input)).expect("write regression.html");
    let m = layout(&page, work.path(), "layout-regression");
    let problems = overflow(&m);
    assert!(
        problems.is_empty(),
        "the regression page overflows at 1280 px:\n{}",
        problems.join("\n")
    );
    let residual = &m["residual"];
    assert_eq!(residual["points"], 20, "{m}");
    assert!(residual["width"].as_f64().expect("width") >= 320.0, "{m}");
    assert!(
        residual["right"].as_f64().expect("right") <= right + 0.5,
        "{m}"
    );
}
