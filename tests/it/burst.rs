//! Cloud burst: the data export (policy, k-anonymity, L1/L2 scans, signature) and the
//! officers' decisions on it.

use crate::helpers::{Sandbox, csv_rows};

/// The demo policy: age in four bands, the ZIP's first digit, foreign or not; k = 5.
const POLICY: &str = r#"
[export]
k = 5
sample_fraction = 0.5
seed = 7
quasi_identifiers = [
    { column = "age", bands = [30, 45, 60] },
    { column = "zip", prefix = 1 },
    { column = "is_foreign" },
]
"#;

/// Demo data, the fraud pipeline on it, a builder and an officer key and their policy.
fn setup(rows: usize) -> Sandbox {
    let sb = Sandbox::new();
    let data = sb.demo_data(rows, 11);
    sb.pipeline("p.toml", &data, &[]);
    sb.write("export.toml", POLICY);
    sb.ok(&["keygen", "--out", "keys/builder"]);
    sb.ok(&["keygen", "--out", "keys/officer"]);
    sb.write(
        "trust.toml",
        "approvals_required = 1\n[[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
         [[keys]]\nname = \"officer\"\nrole = \"officer\"\npublic_key = \"keys/officer.pub\"\n",
    );
    sb
}

fn export_args<'a>(policy: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "export",
        "p.toml",
        "--policy",
        policy,
        "--out",
        out,
        "--trust",
        "trust.toml",
        "--key",
        "keys/builder.key",
    ]
}

/// The officer approves the export in `export/`.
fn approve_export(sb: &Sandbox, reason: &str) {
    sb.ok(&[
        "export",
        "approve",
        "export",
        "--trust",
        "trust.toml",
        "--key",
        "keys/officer.key",
        "--name",
        "Officer",
        "--reason",
        reason,
    ]);
}

fn verify_json(sb: &Sandbox, dir: &str) -> (Option<i32>, serde_json::Value) {
    let out = sb.airlock(&["export", "verify", dir, "--trust", "trust.toml", "--json"]);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), doc)
}

#[test]
fn an_export_is_deidentified_k_anonymous_trainable_and_needs_an_officer() {
    let sb = setup(3000);
    sb.ok(&export_args("export.toml", "export"));
    let (code, doc) = verify_json(&sb, "export");
    assert_eq!(code, Some(4), "not approved yet: {doc}");
    let e = &doc["export"];
    assert_eq!(e["rows"]["source"], 3000);
    assert_eq!(
        e["rows"]["eligible"], 2100,
        "only the training split is eligible"
    );
    assert_eq!(e["rows"]["sampled"], 1050);
    let exported = e["rows"]["exported"].as_u64().expect("rows");
    assert!(exported > 900 && exported <= 1050, "{e}");
    assert!(e["k_achieved"].as_u64().expect("k") >= 5);
    let columns: Vec<&str> = e["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    for gone in ["full_name", "email", "card_number", "ssn", "iban", "phone"] {
        assert!(!columns.contains(&gone), "{gone} was exported");
    }
    assert!(columns.contains(&"age") && columns.contains(&"zip"));
    assert_eq!(
        e["dropped"],
        serde_json::json!(["full_name", "email", "card_number", "ssn", "iban", "phone"])
    );
    assert!(
        e["scans"]
            .as_array()
            .expect("scans")
            .iter()
            .all(|s| s["verdict"] == "pass")
    );

    // Independently of airlock's scans: no identifier value of any row (of 5 bytes or
    // more) is anywhere in what leaves.
    let (header, rows) = csv_rows(&sb.join("data.csv"));
    let exported_bytes = [
        std::fs::read(sb.join("export/data.parquet")).expect("parquet"),
        std::fs::read(sb.join("export/pipeline.toml")).expect("pipeline"),
    ]
    .concat();
    for col in [
        "full_name",
        "email",
        "card_number",
        "ssn",
        "iban",
        "phone",
        "zip",
    ] {
        let i = header.iter().position(|h| h == col).expect("column");
        for row in &rows {
            let v = row[i].as_bytes();
            assert!(
                v.len() < 5 || !exported_bytes.windows(v.len()).any(|w| w == v),
                "a {col} value is in the export"
            );
        }
    }

    // A builder key never approves; an officer does, and then it verifies.
    let out = sb.airlock(&[
        "export",
        "approve",
        "export",
        "--trust",
        "trust.toml",
        "--key",
        "keys/builder.key",
        "--name",
        "CI",
        "--reason",
        "self-approval",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    approve_export(&sb, "k = 5, identifiers dropped");
    let (code, doc) = verify_json(&sb, "export");
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["approved"], true);

    // The cloud side trains on it as it is.
    sb.ok(&[
        "train",
        "export/pipeline.toml",
        "--out",
        "cloud-run",
        "--no-progress",
    ]);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.join("cloud-run/training-record.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(
        record["dataset"]["files"][0]["rows"], exported,
        "{}",
        record["dataset"]
    );
}

#[test]
fn an_export_whose_generalization_keeps_identifier_values_is_refused_and_leaves_nothing() {
    let sb = setup(1000);
    // Ages are 2 digits: a prefix of 2 keeps them whole (and k = 2 holds).
    sb.write(
        "whole-age.toml",
        &POLICY
            .replace("bands = [30, 45, 60]", "prefix = 2")
            .replace("k = 5", "k = 2")
            .replace("{ column = \"zip\", prefix = 1 },", ""),
    );
    let before = sb.entries();
    let err = sb.fails(&export_args("whole-age.toml", "export"), 5);
    assert!(err.contains("L2") && err.contains("age"), "{err}");
    assert_eq!(sb.entries(), before, "nothing is left behind");
}

#[test]
fn an_export_that_cannot_reach_k_is_refused() {
    let sb = setup(1000);
    sb.write(
        "fine.toml",
        &POLICY
            .replace("k = 5", "k = 50")
            .replace("prefix = 1", "prefix = 3"),
    );
    let err = sb.fails(&export_args("fine.toml", "export"), 5);
    assert!(err.contains("k = 50"), "{err}");
    assert!(!sb.join("export").exists());
}

#[test]
fn export_policies_are_parsed_strictly() {
    let sb = setup(300);
    for (name, policy, says) in [
        (
            "raw-id.toml",
            POLICY.replace("{ column = \"zip\", prefix = 1 }", "{ column = \"zip\" }"),
            "identifier column",
        ),
        (
            "feature.toml",
            POLICY.replace(
                "{ column = \"is_foreign\" }",
                "{ column = \"is_foreign\", prefix = 1 }",
            ),
            "model input",
        ),
        (
            "unknown.toml",
            POLICY.replace("seed = 7", "seed = 7\nsuppress = false"),
            "unknown field",
        ),
        (
            "no-column.toml",
            POLICY.replace("is_foreign", "nationality"),
            "not an identifier",
        ),
        ("k1.toml", POLICY.replace("k = 5", "k = 1"), "k must be"),
    ] {
        sb.write(name, &policy);
        let err = sb.fails(&export_args(name, "export"), 3);
        assert!(err.contains(says), "{name}: {err}");
    }
}

#[test]
fn a_tampered_or_rejected_export_does_not_verify() {
    let sb = setup(3000);
    sb.ok(&export_args("export.toml", "export"));
    approve_export(&sb, "ok");
    assert_eq!(verify_json(&sb, "export").0, Some(0));

    // One byte of the data changed.
    let path = sb.join("export/data.parquet");
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let out = sb.airlock(&["export", "verify", "export", "--trust", "trust.toml"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the file the builder signed"));
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).expect("write");

    // An extra file rides along.
    sb.write("export/notes.txt", "x");
    assert_eq!(verify_json(&sb, "export").0, Some(4));
    std::fs::remove_file(sb.join("export/notes.txt")).expect("rm");

    // A later rejection by the officer blocks it.
    sb.ok(&[
        "export",
        "reject",
        "export",
        "--trust",
        "trust.toml",
        "--key",
        "keys/officer.key",
        "--name",
        "Officer",
        "--reason",
        "changed my mind",
    ]);
    let (code, doc) = verify_json(&sb, "export");
    assert_eq!(code, Some(4), "{doc}");
    assert_eq!(doc["rejections"].as_array().map(Vec::len), Some(1));
}

/// The `[burst]` section the burst tests append to the pipeline (before the export is
/// made: an export names its pipeline's digest).
fn burst_section(sweep: &str) -> String {
    format!(
        "\n[burst]\ndestination = \"s3://airlock-burst/fraud\"\nrole = \"arn:aws:iam::123456789012:role/airlock-training\"\nimage = \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/airlock-train:1\"\npoll_seconds = 1\n{sweep}"
    )
}

/// An approved export of a pipeline with `[burst]`, a publisher key, a residency policy
/// allowing `regions` for exports, and moto with the burst's bucket.
fn burst_setup(sweep: &str, regions: &str) -> (Sandbox, crate::moto::Moto) {
    let sb = Sandbox::new();
    let data = sb.demo_data(3000, 11);
    let p = sb.pipeline("p.toml", &data, &[("epochs = 12", "epochs = 4")]);
    let text = std::fs::read_to_string(&p).expect("pipeline") + &burst_section(sweep);
    std::fs::write(&p, text).expect("write pipeline");
    sb.write("export.toml", POLICY);
    for k in ["builder", "officer", "publisher"] {
        sb.ok(&["keygen", "--out", &format!("keys/{k}")]);
    }
    sb.write(
        "trust.toml",
        "approvals_required = 1\n[[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
         [[keys]]\nname = \"officer\"\nrole = \"officer\"\npublic_key = \"keys/officer.pub\"\n\
         [[keys]]\nname = \"publisher\"\nrole = \"publisher\"\npublic_key = \"keys/publisher.pub\"\n",
    );
    sb.write(
        "residency.toml",
        &format!("[registry]\nregions = [\"eu-west-1\"]\n\n[export]\nregions = {regions}\n"),
    );
    sb.ok(&export_args("export.toml", "export"));
    approve_export(&sb, "k = 5");
    let moto = crate::moto::Moto::start();
    moto.create_bucket("airlock-burst", crate::moto::REGION);
    (sb, moto)
}

fn burst_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "burst",
        "p.toml",
        "--export",
        "export",
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--key",
        "keys/publisher.key",
        "--audit-log",
        "audit.log",
    ];
    v.extend_from_slice(extra);
    v
}

/// Bursts whose state is still kept (not yet released).
fn burst_states(sb: &Sandbox) -> usize {
    std::fs::read_dir(sb.join(".airlock/bursts")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

fn audit_actions(sb: &Sandbox) -> Vec<(String, String)> {
    std::fs::read_to_string(sb.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("entry");
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_local_burst_sweeps_syncs_back_verified_releases_everything_and_its_run_packages() {
    let (sb, moto) = burst_setup(
        "[burst.sweep]\nmethod = \"grid\"\nmax_parallel = 2\n[burst.sweep.parameters]\nlearning_rate = [0.001, 0.01]\ninstance_count = [1, 2]\n",
        "[\"eu-west-1\"]",
    );
    let out = sb.airlock_env(&burst_args(&["--local", "--out", "burst-run"]), &moto.env());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    let jobs = summary["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 4, "{summary}");
    assert_eq!(
        jobs.iter().filter(|j| j["instance_count"] == 2).count(),
        2,
        "{summary}"
    );
    assert!(
        jobs.iter().all(|j| j["outcome"] == "completed"),
        "{summary}"
    );
    let best = jobs
        .iter()
        .min_by(|a, b| {
            a["validation_loss"]
                .as_f64()
                .partial_cmp(&b["validation_loss"].as_f64())
                .expect("finite")
        })
        .expect("a job");
    assert_eq!(summary["chosen"], best["name"]);
    // Everything the burst put in the bucket is gone, and it says so in the audit log.
    assert!(
        moto.list("airlock-burst").is_empty(),
        "{:?}",
        moto.list("airlock-burst")
    );
    let actions = audit_actions(&sb);
    let count = |a: &str| actions.iter().filter(|(x, _)| x == a).count();
    assert_eq!(count("export"), 2, "{actions:?}");
    assert_eq!(count("training-job"), 8, "{actions:?}");
    assert_eq!(count("sync-back"), 4, "{actions:?}");
    assert_eq!(count("release"), 1, "{actions:?}");
    sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);

    // The run names the burst, and packages as any other: leak checks against the full
    // on-prem data.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.join("burst-run/training-record.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(record["burst"]["job"]["name"], summary["chosen"]);
    assert_eq!(record["burst"]["jobs"].as_array().map(Vec::len), Some(4));
    assert_eq!(record["dataset"]["files"][0]["rows"], 3000);
    sb.ok(&[
        "package",
        "--run",
        "burst-run",
        "--key",
        "keys/builder.key",
        "--out",
        "bundle",
    ]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.join("bundle/leak-report.json")).expect("report"))
            .expect("json");
    assert_eq!(report["verdict"], "pass", "{report}");
}

#[test]
fn a_burst_to_a_region_the_export_list_does_not_allow_sends_nothing() {
    let (sb, moto) = burst_setup("", "[\"eu-central-1\"]");
    let out = sb.airlock_env(&burst_args(&["--local"]), &moto.env());
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(moto.list("airlock-burst").is_empty());
    let actions = audit_actions(&sb);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(actions[0].1.starts_with("refused"), "{actions:?}");
}

#[test]
fn a_burst_whose_jobs_fail_leaves_nothing_behind() {
    // A batch of 0 rows: the container refuses the hyperparameters, the job fails.
    let (sb, moto) = burst_setup(
        "[burst.sweep]\nmethod = \"grid\"\n[burst.sweep.parameters]\nbatch_size = [0]\n",
        "[\"eu-west-1\"]",
    );
    let out = sb.airlock_env(&burst_args(&["--local", "--out", "burst-run"]), &moto.env());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no job's artifact came back verified"),
        "{stderr}"
    );
    assert!(moto.list("airlock-burst").is_empty());
    assert!(!sb.join("burst-run").exists());
    assert_eq!(burst_states(&sb), 0, "a released burst leaves no state");
    let actions = audit_actions(&sb);
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "training-job" && o.starts_with("failed")),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "release" && o.starts_with("ok")),
        "{actions:?}"
    );
}

/// Start a burst whose one job trains long, and wait until it has sent its export and
/// started its job (its state names the job). The caller waits for the child.
#[allow(clippy::zombie_processes)]
fn start_long_burst(sb: &Sandbox, moto: &crate::moto::Moto) -> std::process::Child {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(burst_args(&["--local"]))
        .current_dir(sb.path())
        .envs(moto.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start airlock burst");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let started = std::fs::read_dir(sb.join(".airlock/bursts")).is_ok_and(|d| {
            d.filter_map(Result::ok).any(|e| {
                e.path().extension().is_some_and(|x| x == "json")
                    && std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains("-1\""))
            })
        });
        if started && !moto.list("airlock-burst").is_empty() {
            return child;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the burst did not start its job");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const LONG_SWEEP: &str =
    "[burst.sweep]\nmethod = \"grid\"\n[burst.sweep.parameters]\nepochs = [2000]\n";

#[test]
fn ctrl_c_stops_a_burst_and_releases_what_it_made() {
    let (sb, moto) = burst_setup(LONG_SWEEP, "[\"eu-west-1\"]");
    let mut child = start_long_burst(&sb, &moto);
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert!(!status.success());
    assert!(
        moto.list("airlock-burst").is_empty(),
        "{:?}",
        moto.list("airlock-burst")
    );
    assert_eq!(burst_states(&sb), 0);
    let actions = audit_actions(&sb);
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "release" && o.starts_with("ok")),
        "{actions:?}"
    );
}

#[test]
fn a_killed_burst_is_found_and_released_by_cleanup() {
    let (sb, moto) = burst_setup(LONG_SWEEP, "[\"eu-west-1\"]");
    let mut child = start_long_burst(&sb, &moto);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert!(
        !moto.list("airlock-burst").is_empty(),
        "the export is still in the bucket"
    );
    assert_eq!(burst_states(&sb), 1);
    // The job's host outlived the burst that started it.
    let state = std::fs::read_dir(sb.join(".airlock/bursts"))
        .expect("state dir")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("state");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path()).expect("read")).expect("json");
    let pid = state["jobs"][0][1][0].as_u64().expect("a host pid");
    let running = |pid: u64| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.windows(9).any(|w| w == b"container"))
    };
    assert!(running(pid), "{state}");
    let out = sb.airlock_env(
        &[
            "burst",
            "--cleanup",
            "--trust",
            "trust.toml",
            "--residency",
            "residency.toml",
            "--key",
            "keys/publisher.key",
            "--audit-log",
            "audit.log",
        ],
        &moto.env(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let released: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(released.as_array().map(Vec::len), Some(1), "{released}");
    assert!(moto.list("airlock-burst").is_empty());
    assert_eq!(burst_states(&sb), 0);
    let actions = audit_actions(&sb);
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "release" && o.contains("interrupted burst")),
        "{actions:?}"
    );
    sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    // The host orphaned by the kill was stopped too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while running(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "host {pid} still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Play SageMaker's data plane for the one training job `airlock burst` creates on moto
/// (moto records jobs but runs nothing): read the job as CreateTrainingJob left it, lay
/// out /opt/ml from the channel in the bucket, run the training image's entrypoint (which
/// tags its own job with its artifact's digest), and put `model.tar.gz` where SageMaker
/// would. With `tamper`, the artifact put in the bucket is not the one the job wrote.
fn play_sagemaker(sb: &Sandbox, moto: &crate::moto::Moto, tamper: bool) -> serde_json::Value {
    let sm = moto.sagemaker();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let name = loop {
        let jobs = moto
            .block(sm.list_training_jobs().send())
            .expect("list training jobs");
        if let Some(j) = jobs.training_job_summaries().first() {
            break j.training_job_name().unwrap_or_default().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no training job was created"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let d = moto
        .block(sm.describe_training_job().training_job_name(&name).send())
        .expect("describe");
    let channel = d.input_data_config()[0]
        .data_source()
        .and_then(|s| s.s3_data_source())
        .and_then(|s| s.s3_uri())
        .map(str::to_owned)
        .expect("train channel");
    let prefix = channel.strip_prefix("s3://airlock-burst/").expect("bucket");
    let root = sb.join("opt-ml");
    let train = root.join("input/data/train");
    std::fs::create_dir_all(&train).expect("mkdir");
    std::fs::create_dir_all(root.join("input/config")).expect("mkdir");
    for f in ["data.parquet", "pipeline.toml", "export.dsse.json"] {
        let bytes = moto
            .get("airlock-burst", &format!("{prefix}{f}"))
            .expect("channel file");
        std::fs::write(train.join(f), bytes).expect("write");
    }
    let hp: std::collections::BTreeMap<String, String> = d
        .hyper_parameters()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    std::fs::write(
        root.join("input/config/hyperparameters.json"),
        serde_json::to_vec(&hp).expect("json"),
    )
    .expect("write");
    std::fs::write(
        root.join("input/config/resourceconfig.json"),
        r#"{"current_host":"algo-1","hosts":["algo-1"]}"#,
    )
    .expect("write");
    let mut env = moto.env();
    env.push(("AIRLOCK_SM_ROOT".into(), root.display().to_string()));
    env.push(("TRAINING_JOB_NAME".into(), name.clone()));
    env.push((
        "TRAINING_JOB_ARN".into(),
        d.training_job_arn().unwrap_or_default().to_owned(),
    ));
    let out = sb.airlock_env(&["burst", "container", "train"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if tamper {
        let log = root.join("model/train.log");
        let mut text = std::fs::read_to_string(&log).expect("log");
        text.push_str("one more line\n");
        std::fs::write(&log, text).expect("write");
    }
    let artifact = d
        .model_artifacts()
        .and_then(|m| m.s3_model_artifacts())
        .expect("artifact path")
        .strip_prefix("s3://airlock-burst/")
        .expect("bucket")
        .to_owned();
    let bytes = airlock_burst::local::pack(&root.join("model")).expect("pack");
    let s3 = moto.s3(crate::moto::REGION);
    moto.block(
        s3.put_object()
            .bucket("airlock-burst")
            .key(&artifact)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send(),
    )
    .expect("put artifact");
    serde_json::json!({
        "name": name,
        "hyperparameters": hp,
        "instance_count": d.resource_config().and_then(|r| r.instance_count()),
    })
}

fn sagemaker_burst(
    tamper: bool,
) -> (
    Sandbox,
    crate::moto::Moto,
    std::process::Output,
    serde_json::Value,
) {
    let (sb, moto) = burst_setup(
        "[burst.sweep]\nmethod = \"grid\"\n[burst.sweep.parameters]\nlearning_rate = [0.002]\n",
        "[\"eu-west-1\"]",
    );
    // The burst looks at its job every 20 s: time for the stand-in to play SageMaker.
    let p = sb.join("p.toml");
    let text = std::fs::read_to_string(&p)
        .expect("read")
        .replace("poll_seconds = 1", "poll_seconds = 20");
    std::fs::write(&p, text).expect("write");
    std::fs::remove_dir_all(sb.join("export")).expect("rm export");
    sb.ok(&export_args("export.toml", "export"));
    approve_export(&sb, "k = 5");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(burst_args(&["--out", "burst-run"]))
        .current_dir(sb.path())
        .envs(moto.env())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start airlock burst");
    let job = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        play_sagemaker(&sb, &moto, tamper)
    }));
    let out = child.wait_with_output().expect("wait");
    let job = job.unwrap_or_else(|p| std::panic::resume_unwind(p));
    (sb, moto, out, job)
}

#[test]
fn a_sagemaker_burst_creates_the_job_and_keeps_its_verified_artifact() {
    let (sb, moto, out, job) = sagemaker_burst(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        job["hyperparameters"],
        serde_json::json!({"learning_rate": "0.002"})
    );
    assert_eq!(job["instance_count"], 1);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["chosen"], job["name"]);
    assert!(
        moto.list("airlock-burst").is_empty(),
        "{:?}",
        moto.list("airlock-burst")
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.join("burst-run/training-record.json")).expect("record"),
    )
    .expect("json");
    assert!(
        record["burst"]["job"]["arn"]
            .as_str()
            .is_some_and(|a| a.contains(":training-job/")),
        "{}",
        record["burst"]
    );
}

#[test]
fn an_artifact_replaced_in_the_bucket_is_refused_at_sync_back() {
    let (sb, moto, out, _) = sagemaker_burst(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is not what job"), "{stderr}");
    assert!(!sb.join("burst-run").exists());
    assert!(moto.list("airlock-burst").is_empty());
    let actions = audit_actions(&sb);
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "sync-back" && o.starts_with("refused")),
        "{actions:?}"
    );
}

#[test]
fn cleanup_refuses_a_state_that_is_not_a_bursts_own() {
    let sb = setup(300);
    std::fs::create_dir_all(sb.join(".airlock/bursts")).expect("mkdir");
    for (name, state) in [
        (
            "root",
            r#"{"id":"x-1","destination":"s3://acme-registry","prefix":"","local":false,"jobs":[],"region":""}"#,
        ),
        (
            "escape",
            r#"{"id":"../../etc","destination":"s3://b/p/../../etc","prefix":"p/../../etc","local":false,"jobs":[],"region":""}"#,
        ),
        (
            "other-job",
            r#"{"id":"m-1","destination":"s3://b/p/m-1","prefix":"p/m-1","local":false,"jobs":[["someone-elses-job",[]]],"region":""}"#,
        ),
    ] {
        let path = sb.join(&format!(".airlock/bursts/{name}.json"));
        std::fs::write(&path, state).expect("write");
        let err = sb.fails(
            &[
                "burst",
                "--cleanup",
                "--trust",
                "trust.toml",
                "--residency",
                "trust.toml",
                "--key",
                "keys/builder.key",
                "--audit-log",
                "audit.log",
            ],
            3,
        );
        assert!(err.contains("refused"), "{name}: {err}");
        std::fs::remove_file(&path).expect("rm");
    }
    assert!(
        !sb.join("audit.log").exists(),
        "nothing was released or logged"
    );
}
