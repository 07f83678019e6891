use crate::helpers::{Sandbox, tensors};

/// Small and quick: enough rows for every split to hold both classes.
const QUICK: &[(&str, &str)] = &[("epochs = 12", "epochs = 3")];

fn record(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("training-record.json")).expect("record");
    serde_json::from_str(&text).expect("record is JSON")
}

#[test]
fn train_writes_a_complete_run_directory() {
    let sb = Sandbox::new();
    let data = sb.demo_data(6000, 1);
    let p = sb.pipeline("p.toml", &data, QUICK);
    let stdout = sb.ok(&["train", p.to_str().expect("utf-8"), "--out", "run"]);
    assert_eq!(stdout.trim(), "run", "train prints the run directory");

    let run = sb.join("run");
    for f in [
        "checkpoint.safetensors",
        "preprocess.json",
        "training-record.json",
        "train.log",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let names: Vec<String> = tensors(&run.join("checkpoint.safetensors"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    // Parameters and Adam's moments, as a real trainer checkpoints them.
    assert!(names.contains(&"layers.0.weight".to_owned()), "{names:?}");
    assert!(names.contains(&"layers.2.bias".to_owned()), "{names:?}");
    assert!(
        names.contains(&"optimizer.layers.0.weight.exp_avg_sq".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        names.len(),
        3 * 2 * 3,
        "3 layers × (weight, bias) × (param, exp_avg, exp_avg_sq)"
    );

    let r = record(&run);
    assert_eq!(r["model_name"], "fraud-detector");
    assert_eq!(r["dataset"]["files"][0]["rows"], 6000);
    assert_eq!(
        r["dataset"]["files"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(r["splits"]["train"], 4200);
    assert_eq!(r["splits"]["validation"], 900);
    assert_eq!(r["splits"]["holdout"], 900);
    assert_eq!(r["backend"]["name"], "flex");
    assert_eq!(r["backend"]["device"], "cpu");
    assert_eq!(r["epochs"].as_array().map(Vec::len), Some(3));
    let auc = r["holdout"]["roc_auc"].as_f64().expect("auc");
    assert!(
        auc > 0.75,
        "even 3 epochs on 4200 rows learn something: {auc}"
    );
    assert!(
        r["pipeline"]["sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );

    let pre: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("preprocess.json")).expect("read"))
            .expect("json");
    assert_eq!(pre["features"].as_array().map(Vec::len), Some(12));
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    let sb = Sandbox::new();
    let data = sb.demo_data(3000, 2);
    let p = sb.pipeline("p.toml", &data, QUICK);
    let p2 = sb.pipeline("p2.toml", &data, &[QUICK[0], ("seed = 42", "seed = 43")]);
    let p = p.to_str().expect("utf-8");
    sb.ok(&["train", p, "--out", "a", "--no-progress"]);
    sb.ok(&["train", p, "--out", "b", "--no-progress"]);
    sb.ok(&[
        "train",
        p2.to_str().expect("utf-8"),
        "--out",
        "c",
        "--no-progress",
    ]);
    let a = tensors(&sb.join("a/checkpoint.safetensors"));
    let b = tensors(&sb.join("b/checkpoint.safetensors"));
    let c = tensors(&sb.join("c/checkpoint.safetensors"));
    assert!(
        a == b,
        "same seed, same backend: weights and optimizer state must be identical"
    );
    assert!(a != c, "a different seed must give different weights");
}

#[test]
fn predict_rebuilds_the_model_from_the_run_directory() {
    let sb = Sandbox::new();
    let data = sb.demo_data(3000, 3);
    let p = sb.pipeline("p.toml", &data, QUICK);
    sb.ok(&["train", p.to_str().expect("utf-8"), "--out", "run"]);
    let out = sb.ok(&[
        "predict",
        "--run",
        "run",
        "--input",
        data.to_str().expect("utf-8"),
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("probability"));
    let probs: Vec<f64> = lines
        .map(|l| l.parse().expect("a number per line"))
        .collect();
    assert_eq!(probs.len(), 3000);
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    // The scores separate the classes as well as training said they do.
    let labels: Vec<bool> = std::fs::read_to_string(&data)
        .expect("read")
        .lines()
        .skip(1)
        .map(|l| l.ends_with(",1"))
        .collect();
    let (mut pos, mut neg): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for (p, y) in probs.iter().zip(&labels) {
        if *y { pos.push(*p) } else { neg.push(*p) }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&pos) > mean(&neg) + 0.2, "fraud rows score higher");
}

#[test]
fn cuda_device_without_cuda_fails_clearly() {
    let sb = Sandbox::new();
    let data = sb.demo_data(1000, 4);
    let p = sb.pipeline("p.toml", &data, QUICK);
    let p = p.to_str().expect("utf-8");
    let out = sb.airlock(&["train", p, "--out", "run", "--device", "cuda:0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "cuda") && out.status.success() {
        // Built with CUDA on a machine with a GPU: the run must really be a CUDA run.
        assert_eq!(record(&sb.join("run"))["backend"]["name"], "cuda");
        return;
    }
    assert_eq!(out.status.code(), Some(3), "{err}");
    if cfg!(feature = "cuda") {
        assert!(err.contains("device cuda:0 is not available"), "{err}");
    } else {
        assert!(
            err.contains("cuda:0") && err.contains("--features cuda"),
            "{err}"
        );
    }
    assert!(!sb.join("run").exists());
    let err = sb.fails(&["train", p, "--device", "tpu"], 3);
    assert!(err.contains("unknown device \"tpu\""), "{err}");
}

/// Each bad input: exit code 3, a message naming the problem, and no run directory
/// (nor a staging directory) left behind.
fn refused(sb: &Sandbox, pipeline: &std::path::Path, expect: &[&str]) {
    let before = sb.entries();
    let err = sb.fails(
        &["train", pipeline.to_str().expect("utf-8"), "--out", "run"],
        3,
    );
    for e in expect {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(sb.entries(), before, "nothing may be left behind");
}

#[test]
fn missing_data_file_is_refused() {
    let sb = Sandbox::new();
    let p = sb.pipeline("p.toml", &sb.join("nope.csv"), &[]);
    refused(
        &sb,
        &p,
        &["cannot read data file", "nope.csv", "No such file"],
    );
}

#[test]
fn missing_label_column_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(300, 5);
    let p = sb.pipeline(
        "p.toml",
        &data,
        &[("label = \"fraud\"", "label = \"is_fraud\"")],
    );
    refused(&sb, &p, &["no label column \"is_fraud\""]);
}

#[test]
fn non_numeric_value_is_refused_naming_row_and_column() {
    let sb = Sandbox::new();
    let data = sb.demo_data(300, 6);
    let text = std::fs::read_to_string(&data).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Row 7 (line 8): replace the amount (column 10) with text.
    let mut cells: Vec<String> = lines[7].split(',').map(str::to_owned).collect();
    cells[9] = "twelve".into();
    lines[7] = cells.join(",");
    std::fs::write(&data, lines.join("\n") + "\n").expect("write");
    let p = sb.pipeline("p.toml", &data, &[]);
    refused(
        &sb,
        &p,
        &["row 7", "line 8", "column \"amount\"", "not a number"],
    );
    let err = sb.fails(&["train", p.to_str().expect("utf-8")], 3);
    assert!(
        !err.contains("twelve"),
        "a cell's content is never echoed: {err}"
    );
}

#[test]
fn csv_with_zero_data_rows_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(10, 7);
    let header = std::fs::read_to_string(&data)
        .expect("read")
        .lines()
        .next()
        .expect("header")
        .to_owned();
    std::fs::write(&data, header + "\n").expect("write");
    let p = sb.pipeline("p.toml", &data, &[]);
    refused(&sb, &p, &["has no data rows"]);
}

#[test]
fn pipeline_with_unknown_key_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(10, 8);
    let p = sb.pipeline(
        "p.toml",
        &data,
        &[("[training]", "[training]\nlearning_rat = 0.1")],
    );
    refused(
        &sb,
        &p,
        &[
            "invalid pipeline file",
            "unknown field `learning_rat`",
            "line",
        ],
    );
}

#[test]
fn identifier_listed_as_feature_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(10, 9);
    let p = sb.pipeline(
        "p.toml",
        &data,
        &[("    \"amount\",", "    \"amount\",\n    \"ssn\",")],
    );
    refused(&sb, &p, &["column \"ssn\"", "identifiers", "features"]);
}

#[test]
fn existing_run_directory_is_never_overwritten() {
    let sb = Sandbox::new();
    let data = sb.demo_data(10, 10);
    let p = sb.pipeline("p.toml", &data, &[]);
    sb.write("run", "");
    std::fs::remove_file(sb.join("run")).expect("rm");
    std::fs::create_dir(sb.join("run")).expect("mkdir");
    sb.write("run/keep.txt", "precious");
    let err = sb.fails(&["train", p.to_str().expect("utf-8"), "--out", "run"], 3);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(sb.join("run/keep.txt")).expect("kept"),
        "precious"
    );
}

#[test]
fn demo_data_is_deterministic_for_a_seed() {
    let sb = Sandbox::new();
    sb.ok(&[
        "demo-data",
        "--rows",
        "200",
        "--seed",
        "11",
        "--out",
        "a.csv",
    ]);
    sb.ok(&[
        "demo-data",
        "--rows",
        "200",
        "--seed",
        "11",
        "--out",
        "b.csv",
    ]);
    sb.ok(&[
        "demo-data",
        "--rows",
        "200",
        "--seed",
        "12",
        "--out",
        "c.csv",
    ]);
    let read = |n: &str| std::fs::read(sb.join(n)).expect("read");
    assert_eq!(read("a.csv"), read("b.csv"));
    assert_ne!(read("a.csv"), read("c.csv"));
    let text = String::from_utf8(read("a.csv")).expect("utf-8");
    assert_eq!(text.lines().count(), 201);
    assert!(
        text.lines()
            .next()
            .is_some_and(|h| h.contains("card_number") && h.ends_with("fraud"))
    );
}

#[test]
fn help_lists_the_working_commands_and_exit_codes() {
    let sb = Sandbox::new();
    let out = sb.ok(&["--help"]);
    for cmd in [
        "demo-data",
        "train",
        "predict",
        "Exit codes",
        "invalid input",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
    sb.fails(&["train"], 2);
}

/// What `make release-model` does on a fresh machine: the shipped pipeline on the default
/// demo data must reach the issue's floor of 0.85 holdout ROC AUC.
#[test]
fn shipped_pipeline_on_default_demo_data_reaches_auc_floor() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.join("pipelines")).expect("mkdir");
    sb.write(
        "pipelines/fraud-detector.toml",
        crate::helpers::FRAUD_PIPELINE,
    );
    // The Makefile's defaults: 50k rows, seed 7, at the path the pipeline names.
    sb.ok(&[
        "demo-data",
        "--rows",
        "50000",
        "--seed",
        "7",
        "--out",
        "data/transactions.csv",
    ]);
    let run = sb.ok(&["train", "pipelines/fraud-detector.toml"]);
    let run = sb.join(run.trim());
    assert!(
        run.starts_with(sb.join("runs")),
        "default run directory under runs/: {}",
        run.display()
    );
    let r = record(&run);
    let auc = r["holdout"]["roc_auc"].as_f64().expect("auc");
    assert!(auc >= 0.85, "holdout ROC AUC {auc} below the 0.85 floor");
    assert_eq!(r["epochs"].as_array().map(Vec::len), Some(12));
}

/// The shipped pipeline's subgroups line, for edits.
const SUBGROUPS: &str = r#"subgroups = [{ column = "age", bands = [30, 45, 60] }, "is_foreign"]"#;

#[test]
fn train_records_the_holdout_evaluation_with_intervals_and_subgroups() {
    let sb = Sandbox::new();
    let data = sb.demo_data(6000, 1);
    let p = sb.pipeline("p.toml", &data, QUICK);
    sb.ok(&["train", p.to_str().expect("utf-8"), "--out", "run"]);
    let r = record(&sb.join("run"));
    let e = &r["evaluation"];
    assert_eq!(e["threshold"], 0.5);
    assert_eq!(e["bootstrap"]["resamples"], 1000);
    assert_eq!(e["bootstrap"]["seed"], 42);
    let c = &e["confusion"];
    let total: u64 = [
        "true_positives",
        "false_positives",
        "true_negatives",
        "false_negatives",
    ]
    .iter()
    .map(|k| c[k].as_u64().expect("count"))
    .sum();
    assert_eq!(total, 900, "the confusion counts are the holdout's rows");
    let names: Vec<&str> = e["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "roc_auc",
            "accuracy",
            "sensitivity",
            "specificity",
            "ppv",
            "npv",
            "brier"
        ]
    );
    for m in e["metrics"].as_array().expect("metrics") {
        let (v, l, h) = (
            m["value"].as_f64().expect("value"),
            m["low"].as_f64().expect("low"),
            m["high"].as_f64().expect("high"),
        );
        assert!(l <= v && v <= h && h - l < 0.5, "{m}");
    }
    // The AUC is the record's holdout AUC (logits and probabilities order alike).
    let auc = e["metrics"][0]["value"].as_f64().expect("auc");
    assert!((auc - r["holdout"]["roc_auc"].as_f64().expect("auc")).abs() < 1e-6);
    assert_eq!(e["calibration"]["bins"].as_array().map(Vec::len), Some(10));

    let tables = e["subgroups"].as_array().expect("subgroups");
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[0]["column"], "age");
    let bands: Vec<&str> = tables[0]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["group"].as_str().expect("label"))
        .collect();
    assert_eq!(bands, ["< 30", "30–44", "45–59", "≥ 60"]);
    let rows: u64 = tables[0]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["rows"].as_u64().expect("rows"))
        .sum();
    assert_eq!(rows, 900, "every holdout row has an age band");
    assert_eq!(tables[1]["column"], "is_foreign");
    let log = std::fs::read_to_string(sb.join("run/train.log")).expect("log");
    assert!(
        log.contains("evaluation at threshold 0.5: sensitivity"),
        "{log}"
    );
}

#[test]
fn a_subgroup_column_missing_from_the_data_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(300, 5);
    let p = sb.pipeline("p.toml", &data, &[(SUBGROUPS, r#"subgroups = ["site"]"#)]);
    refused(&sb, &p, &["no subgroup column \"site\""]);
}

#[test]
fn a_subgroup_column_with_too_many_values_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(2000, 5);
    let p = sb.pipeline(
        "p.toml",
        &data,
        &[
            ("epochs = 12", "epochs = 1"),
            (SUBGROUPS, r#"subgroups = ["amount"]"#),
        ],
    );
    refused(
        &sb,
        &p,
        &[
            "subgroup column \"amount\" has more than 64 distinct values in the holdout",
            "band it",
        ],
    );
}

#[test]
fn an_unbanded_identifier_as_subgroup_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(300, 5);
    let p = sb.pipeline("p.toml", &data, &[(SUBGROUPS, r#"subgroups = ["zip"]"#)]);
    refused(
        &sb,
        &p,
        &["\"zip\" is listed in data.identifiers", "band it"],
    );
}

#[test]
fn demo_scans_are_an_image_folder_deterministic_for_a_seed() {
    let sb = Sandbox::new();
    let scans = |out: &str, seed: &str| {
        let args = [
            "demo-data",
            "--kind",
            "scans",
            "--rows",
            "25",
            "--seed",
            seed,
            "--out",
            out,
        ];
        sb.ok(&args);
    };
    scans("a", "5");
    scans("b", "5");
    scans("c", "6");
    let read = |p: &str| std::fs::read(sb.join(p)).expect("read");
    for f in [
        "manifest.csv",
        "images/scan-00001.png",
        "images/scan-00025.png",
    ] {
        assert_eq!(read(&format!("a/{f}")), read(&format!("b/{f}")), "{f}");
    }
    assert_ne!(
        read("a/images/scan-00001.png"),
        read("c/images/scan-00001.png")
    );
    let (header, rows) = crate::helpers::csv_rows(&sb.join("a/manifest.csv"));
    assert_eq!(
        header,
        [
            "file",
            "finding",
            "patient_name",
            "mrn",
            "birth_date",
            "sex",
            "age",
            "site"
        ]
    );
    assert_eq!(rows.len(), 25);
    assert!(
        rows.iter()
            .all(|r| r[3].starts_with("MRN-") && r[3].len() == 11)
    );
    // Transactions stay the default kind, and need a file to write.
    let err = sb.fails(&["demo-data", "--rows", "10"], 3);
    assert!(err.contains("--out FILE.csv is required"), "{err}");
}
