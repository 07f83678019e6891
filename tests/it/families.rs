//! Issue 15: every model family and task runs end to end (`airlock run`: train, package,
//! gate, publish; then pull, serve, one prediction), and a training image or row planted in
//! a model's weights is refused by L2, whatever the family.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::helpers::{Release, Sandbox, csv_rows, rewrite_safetensors};

const SCAN_PIPELINE: &str = include_str!("../../pipelines/scan-triage.toml");
const AMOUNT_PIPELINE: &str = include_str!("../../pipelines/transaction-amount.toml");

/// A sandbox laid out as the repository (`pipelines/NAME`, `data/`), with `pipeline`'s text.
fn sandbox_with(name: &str, pipeline: &str) -> Sandbox {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.join("pipelines")).expect("mkdir");
    sb.write(&format!("pipelines/{name}"), pipeline);
    sb
}

/// `airlock run` of a DEMO pipeline: returns the bundle path.
fn run_demo(sb: &Sandbox, name: &str) -> String {
    sb.ok(&["run", &format!("pipelines/{name}"), "--no-progress"])
        .trim()
        .to_owned()
}

/// Pulls `model` from the DEMO registry, serves it on loopback and POSTs `body`.
fn pull_serve_predict(sb: &Sandbox, model: &str, ctype: &str, body: &[u8]) -> serde_json::Value {
    let registry = format!("file://{}/registry/models/{model}", sb.path().display());
    sb.ok(&[
        "pull",
        &registry,
        "--trust",
        "demo/trust.toml",
        "--out",
        "served",
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "serve",
            "--model-dir",
            "served",
            "--trust",
            "demo/trust.toml",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .current_dir(sb.path())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let addr = listening(&mut child);
    let answer = post(&addr, ctype, body);
    let _ = child.kill();
    let _ = child.wait();
    answer
}

/// Reads serve's stderr up to its `listening on http://ADDR` line.
fn listening(child: &mut Child) -> String {
    let mut err = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = err.read(&mut byte).expect("read stderr");
        assert!(n == 1, "serve exited: {}", String::from_utf8_lossy(&seen));
        seen.push(byte[0]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(line) = text.lines().find(|l| l.starts_with("listening on "))
            && text.ends_with('\n')
        {
            return line["listening on http://".len()..].trim().to_owned();
        }
    }
}

fn post(addr: &str, ctype: &str, body: &[u8]) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST /invocations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("body");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let json = resp.split("\r\n\r\n").nth(1).expect("body");
    serde_json::from_str(json).expect("json answer")
}

/// The leak report of a refused package, after checking the refusal names `layers`.
fn refused_report(r: &Release, layers: &[&str]) -> serde_json::Value {
    let out = r.package("run", "bundle");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    for l in layers {
        assert!(err.contains(l), "{l} not named: {err}");
    }
    assert!(!r.sb.join("bundle").exists());
    let text = std::fs::read_to_string(r.sb.join("bundle.leak-report.json")).expect("report");
    serde_json::from_str(&text).expect("json")
}

/// Scan-triage (a multi-class CNN on images) from `airlock run` to a served prediction: the
/// card says CNN and softmax, the review's metrics are a confusion matrix, and serve answers
/// a PNG with one probability per class.
#[test]
fn scan_triage_cnn_runs_end_to_end_and_answers_an_image() {
    let sb = sandbox_with(
        "scan-triage.toml",
        &SCAN_PIPELINE.replace("epochs = 8", "epochs = 4"),
    );
    sb.ok(&[
        "demo-data",
        "--kind",
        "scans",
        "--rows",
        "800",
        "--seed",
        "3",
        "--out",
        "data/scans",
    ]);
    let bundle = run_demo(&sb, "scan-triage.toml");
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.join(&bundle).join("model-card.json")).expect("card"),
    )
    .expect("json");
    assert_eq!(card["architecture"]["kind"], "cnn");
    assert_eq!(card["output"]["transform"], "softmax");
    assert_eq!(card["output"]["classes"][2], "mass");
    let confusion = card["metrics"]["confusion"].as_array().expect("confusion");
    assert_eq!(confusion.len(), 3);
    // Batch norm ships folded: no running statistics, no aggregate tensor (no padding).
    let names: Vec<&str> = card["architecture"]["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("norm") && !n.starts_with("input.")),
        "{names:?}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.join(&bundle).join("leak-report.json")).expect("report"),
    )
    .expect("json");
    let l2 = &report["layers"][2];
    assert!(
        l2["counts"]["pixel_windows_indexed"]
            .as_u64()
            .expect("indexed")
            > 10_000,
        "{l2}"
    );
    let png = std::fs::read(sb.join("data/scans/images/scan-00001.png")).expect("png");
    let answer = pull_serve_predict(&sb, "scan-triage", "application/x-image", &png);
    let p = &answer["predictions"][0];
    let probs = p["probabilities"].as_object().expect("probabilities");
    let sum: f64 = probs.values().map(|v| v.as_f64().expect("number")).sum();
    assert!((sum - 1.0).abs() < 1e-4, "{p}");
    assert!(["clear", "nodule", "mass"].contains(&p["class"].as_str().expect("class")));
}

/// A regression on the transactions (the amount) from `airlock run` to a served value.
#[test]
fn transaction_amount_regression_runs_end_to_end_and_answers_a_value() {
    let sb = sandbox_with(
        "transaction-amount.toml",
        &AMOUNT_PIPELINE.replace("epochs = 12", "epochs = 3"),
    );
    sb.ok(&[
        "demo-data",
        "--rows",
        "3000",
        "--seed",
        "7",
        "--out",
        "data/transactions.csv",
    ]);
    let bundle = run_demo(&sb, "transaction-amount.toml");
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.join(&bundle).join("model-card.json")).expect("card"),
    )
    .expect("json");
    assert_eq!(card["output"]["transform"], "identity");
    let m = &card["metrics"];
    assert!(m["rmse"].as_f64().expect("rmse") > 0.0, "{m}");
    assert!(
        m["r2"].as_f64().expect("r2") > 0.0,
        "a model that learned something: {m}"
    );
    assert!(!m["residuals"].as_array().expect("residuals").is_empty());
    let sample = include_bytes!("../../pipelines/transaction-amount.sample.csv");
    let answer = pull_serve_predict(&sb, "transaction-amount", "text/csv", sample);
    let preds = answer["predictions"].as_array().expect("predictions");
    assert_eq!(preds.len(), 2);
    assert!(preds[0]["value"].as_f64().expect("value").is_finite());
}

/// MLP: training rows planted in a declared weight (not an extra tensor, so L0 has nothing
/// to say) are found by L2, in the checkpoint and in the released model.
#[test]
fn mlp_with_training_rows_planted_in_its_weights_is_refused_by_l2() {
    let r = Release::new(3000, &[("epochs = 12", "epochs = 2")]);
    let (header, rows) = csv_rows(&r.data);
    let cols: Vec<usize> = airlock_model::demo::DEMO_FEATURES
        .iter()
        .map(|c| header.iter().position(|h| h == c).expect("column"))
        .collect();
    let mut raw = Vec::new();
    for row in rows.iter().skip(200).take(2) {
        for &c in &cols {
            raw.extend(row[c].parse::<f32>().expect("number").to_le_bytes());
        }
    }
    // layers.1.weight is [32, 64]: not folded, so it ships as trained.
    rewrite_safetensors(&r.run.join("checkpoint.safetensors"), |t, _| {
        let w = &mut t.get_mut("layers.1.weight").expect("weight").1;
        w[400..400 + raw.len()].copy_from_slice(&raw);
    });
    let report = refused_report(&r, &["L2"]);
    assert_eq!(
        report["layers"][0]["verdict"], "pass",
        "L0 sees declared tensors only"
    );
    let findings = report["layers"][2]["findings"]
        .as_array()
        .expect("findings");
    assert!(
        findings.iter().any(|f| f["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("model.safetensors tensor \"layers.1.weight\""))),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| (200..202).contains(&f["record"].as_u64().unwrap_or(0)))
    );
}

/// CNN: a training image's pixels (scaled to [0, 1], f32) planted in a convolution kernel
/// that ships unfolded are found by L2 as image pixels, naming the image.
#[test]
fn cnn_with_a_training_image_planted_in_its_weights_is_refused_by_l2() {
    let sb = sandbox_with(
        "scan-triage.toml",
        &SCAN_PIPELINE.replace("epochs = 8", "epochs = 1"),
    );
    sb.ok(&[
        "demo-data",
        "--kind",
        "scans",
        "--rows",
        "200",
        "--seed",
        "4",
        "--out",
        "data/scans",
    ]);
    sb.ok(&[
        "train",
        "pipelines/scan-triage.toml",
        "--out",
        "run",
        "--no-progress",
    ]);
    sb.ok(&["keygen", "--out", "keys/builder"]);
    let image = decode(&sb.join("data/scans/images/scan-00007.png"));
    // 64 pixels of row 30 of the image (the body, not the black border), as x / 255.
    let planted: Vec<u8> = image[30 * 64..31 * 64]
        .iter()
        .flat_map(|&v| (f32::from(v) / 255.0).to_le_bytes())
        .collect();
    // conv.2 has no batch norm: its kernel ships as trained ([16, 16, 3, 3]).
    rewrite_safetensors(&sb.join("run/checkpoint.safetensors"), |t, _| {
        let w = &mut t.get_mut("conv.2.weight").expect("kernel").1;
        w[64..64 + planted.len()].copy_from_slice(&planted);
    });
    let out = sb.airlock(&[
        "package",
        "--run",
        "run",
        "--key",
        "keys/builder.key",
        "--out",
        "bundle",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("L2"), "{err}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.join("bundle.leak-report.json")).expect("report"),
    )
    .expect("json");
    let l2 = &report["layers"][2];
    let f = l2["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["kind"] == "image-pixels (f32, scaled)")
        .unwrap_or_else(|| panic!("no image finding: {l2}"));
    assert_eq!(f["record"], 6, "scan-00007 is image 6: {f}");
    // Nothing of the patient in the report: the manifest's identifiers never appear.
    let manifest = std::fs::read_to_string(sb.join("data/scans/manifest.csv")).expect("manifest");
    let mrn = manifest
        .lines()
        .nth(7)
        .and_then(|l| l.split(',').nth(3))
        .expect("mrn");
    assert!(!report.to_string().contains(mrn));
}

/// Grayscale pixels of a PNG, through airlock's own decoder.
fn decode(path: &Path) -> Vec<u8> {
    let shape = airlock_schemas::ImageInput {
        channels: 1,
        height: 64,
        width: 64,
    };
    airlock_model::decode_image(&std::fs::read(path).expect("png"), &shape).expect("decode")
}
