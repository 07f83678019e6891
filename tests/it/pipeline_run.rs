//! `airlock run` (what `make release-model` runs): the DEMO flow and the approval gate.

use crate::helpers::{FRAUD_PIPELINE, Sandbox};

/// A sandbox with the shipped pipeline (3 epochs) and `rows` rows of demo data.
pub fn demo_sandbox(rows: usize) -> Sandbox {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.join("pipelines")).expect("mkdir");
    sb.write(
        "pipelines/fraud-detector.toml",
        &FRAUD_PIPELINE.replace("epochs = 12", "epochs = 3"),
    );
    sb.ok(&[
        "demo-data",
        "--rows",
        &rows.to_string(),
        "--seed",
        "7",
        "--out",
        "data/transactions.csv",
    ]);
    sb
}

#[test]
fn demo_pipeline_runs_through_with_demo_approvals_marked_demo() {
    let sb = demo_sandbox(3000);
    let bundle = sb.ok(&["run", "pipelines/fraud-detector.toml", "--no-progress"]);
    let bundle = bundle.trim();
    assert!(
        bundle.starts_with("releases/fraud-detector-1.0.0-DEMO-"),
        "{bundle}"
    );
    let approvals: Vec<_> = std::fs::read_dir(sb.join(bundle).join("approvals"))
        .expect("approvals")
        .collect();
    assert_eq!(approvals.len(), 2, "two demo officers approved");
    for a in approvals {
        let text = std::fs::read_to_string(a.expect("entry").path()).expect("read");
        let env: airlock_schemas::Envelope = serde_json::from_str(&text).expect("envelope");
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(env.payload)
            .expect("b64");
        let payload = String::from_utf8(payload).expect("utf-8");
        assert!(
            payload.contains("(DEMO)") && payload.contains("DEMO auto-approval"),
            "{payload}"
        );
    }
    let policy = std::fs::read_to_string(sb.join("demo/trust.toml")).expect("demo policy");
    assert!(policy.contains("DEMO trust policy"));
    let runs: Vec<String> = std::fs::read_dir(sb.join("runs"))
        .expect("runs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(runs.iter().all(|r| r.contains("-DEMO-")), "{runs:?}");
    let out = sb.airlock(&[
        "verify",
        bundle,
        "--trust",
        "demo/trust.toml",
        "--require-approvals",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pipeline_with_real_keys_stops_at_the_approval_gate() {
    let sb = demo_sandbox(2000);
    for k in ["builder", "alice", "bob"] {
        sb.ok(&["keygen", "--out", &format!("keys/{k}")]);
    }
    sb.write(
        "trust.toml",
        "approvals_required = 1\n[[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
         [[keys]]\nname = \"alice\"\nrole = \"officer\"\npublic_key = \"keys/alice.pub\"\n\
         [[keys]]\nname = \"bob\"\nrole = \"officer\"\npublic_key = \"keys/bob.pub\"\n",
    );
    let text = std::fs::read_to_string(sb.join("pipelines/fraud-detector.toml")).expect("read");
    let text = crate::helpers::allow_uncommitted(&text);
    sb.write(
        "pipelines/fraud-detector.toml",
        &format!(
            "{text}\n[signing]\ntrust = \"../trust.toml\"\nbuilder_key = \"../keys/builder.key\"\n"
        ),
    );
    let out = sb.airlock(&["run", "pipelines/fraud-detector.toml", "--no-progress"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(6),
        "waiting for approval has its own exit code: {err}"
    );
    let bundle = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        bundle.starts_with("releases/fraud-detector-1.0.0-") && !bundle.contains("DEMO"),
        "{bundle}"
    );
    assert!(
        err.contains(&format!(
            "airlock approve {bundle} --trust ../trust.toml --key <officer.key>"
        )) || err.contains(&format!(
            "airlock approve {bundle} --trust pipelines/../trust.toml --key <officer.key>"
        )),
        "names the officer's exact command: {err}"
    );
    // No automatic approval, no demo keys: auto-approval cannot happen for real keys.
    assert_eq!(
        std::fs::read_dir(sb.join(&bundle).join("approvals"))
            .expect("dir")
            .count(),
        0
    );
    assert!(!sb.join("demo").exists());
    assert!(
        !sb.join("registry").exists(),
        "nothing is published before approval"
    );
    assert!(!err.contains("DEMO"), "{err}");
    // An officer approves; the gate opens.
    sb.ok(&[
        "approve",
        &bundle,
        "--trust",
        "trust.toml",
        "--key",
        "keys/alice.key",
        "--name",
        "Alice",
        "--reason",
        "ok",
    ]);
    let out = sb.airlock(&[
        "verify",
        &bundle,
        "--trust",
        "trust.toml",
        "--require-approvals",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sandbox whose pipeline signs with real keys: builder, officers alice and bob (`k` of
/// them required), a publisher; `extra` is appended to the pipeline after `[signing]`.
pub fn signed_sandbox(rows: usize, edits: &[(&str, &str)], k: usize, extra: &str) -> Sandbox {
    let sb = demo_sandbox(rows);
    for k in ["builder", "alice", "bob", "publisher"] {
        sb.ok(&["keygen", "--out", &format!("keys/{k}")]);
    }
    sb.write(
        "trust.toml",
        &format!(
            "approvals_required = {k}\n\
             [[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
             [[keys]]\nname = \"alice\"\nrole = \"officer\"\npublic_key = \"keys/alice.pub\"\n\
             [[keys]]\nname = \"bob\"\nrole = \"officer\"\npublic_key = \"keys/bob.pub\"\n\
             [[keys]]\nname = \"cd\"\nrole = \"publisher\"\npublic_key = \"keys/publisher.pub\"\n"
        ),
    );
    let mut text = std::fs::read_to_string(sb.join("pipelines/fraud-detector.toml")).expect("read");
    for (from, to) in edits {
        assert!(text.contains(from), "pipeline has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    let text = crate::helpers::allow_uncommitted(&text);
    sb.write(
        "pipelines/fraud-detector.toml",
        &format!(
            "{text}\n[signing]\ntrust = \"../trust.toml\"\nbuilder_key = \"../keys/builder.key\"\n{extra}"
        ),
    );
    sb
}

/// Replace `from` by `to` in the sandbox's pipeline.
pub fn edit_pipeline(sb: &Sandbox, from: &str, to: &str) {
    let p = "pipelines/fraud-detector.toml";
    let text = std::fs::read_to_string(sb.join(p)).expect("read");
    assert!(text.contains(from), "pipeline has no {from:?}");
    sb.write(p, &text.replacen(from, to, 1));
}

/// `airlock run` of the sandbox's pipeline: (exit code, stdout, stderr).
pub fn run(sb: &Sandbox, env: &[(String, String)], extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["run", "pipelines/fraud-detector.toml", "--no-progress"];
    args.extend(extra);
    let out = sb.airlock_env(&args, env);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An officer's approval of `bundle`.
pub fn approve_as(sb: &Sandbox, officer: &str, bundle: &str) {
    sb.ok(&[
        "approve",
        bundle,
        "--trust",
        "trust.toml",
        "--key",
        &format!("keys/{officer}.key"),
        "--name",
        officer,
        "--reason",
        "reviewed",
    ]);
}

fn ran(err: &str, stage: &str) -> bool {
    err.contains(&format!("== {stage} ")) && !err.contains(&format!("== {stage}: skipped"))
}

pub fn skipped(err: &str, stage: &str) -> bool {
    err.contains(&format!("== {stage}: skipped, inputs unchanged"))
}

/// Completed-stage records of `stage`.
pub fn records(sb: &Sandbox, stage: &str) -> usize {
    std::fs::read_dir(sb.join(".airlock/stages")).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{stage}-"))
            })
        })
        .count()
    })
}

fn file_publish(dir: &str) -> String {
    format!(
        "\n[publish]\nregistry = \"file://{dir}\"\nresidency = \"../residency.toml\"\n\
         key = \"../keys/publisher.key\"\naudit_log = \"../audit.log\"\n"
    )
}

#[test]
fn stages_rerun_only_when_their_inputs_change() {
    let tmp = tempfile::tempdir().expect("tmp");
    let reg_a = tmp.path().join("a");
    let reg_b = tmp.path().join("b");
    let sb = signed_sandbox(
        2000,
        &[("epochs = 3", "epochs = 2")],
        1,
        &file_publish(reg_a.to_str().expect("utf-8")),
    );
    sb.write("residency.toml", "[registry]\nregions = [\"local\"]\n");

    // First run: everything up to the gate, then exit 6 with the officers' commands.
    let (code, bundle, err) = run(&sb, &[], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(ran(&err, "train") && ran(&err, "package"), "{err}");
    assert!(
        err.contains(&format!(
            "airlock approve {bundle} --trust pipelines/../trust.toml"
        )),
        "{err}"
    );
    assert!(err.contains("airlock run pipelines/fraud-detector.toml` again"));
    // Again without approval: still waiting, nothing redone.
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(skipped(&err, "train") && skipped(&err, "package"), "{err}");

    approve_as(&sb, "alice", &bundle);
    let (code, out, err) = run(&sb, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, bundle);
    assert!(skipped(&err, "train") && skipped(&err, "package"), "{err}");
    assert!(ran(&err, "publish"), "{err}");
    assert!(
        err.contains("deploy   not configured") && err.contains("audit entries written: 2"),
        "{err}"
    );
    assert!(
        reg_a
            .join("models/fraud-detector/1.0.0/release.json")
            .exists()
    );

    // Nothing changed: nothing runs, nothing leaves.
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 0, "{err}");
    for s in ["train", "package", "publish"] {
        assert!(skipped(&err, s), "{s}: {err}");
    }
    assert!(
        err.contains("left the premises on this run: nothing"),
        "{err}"
    );

    // Only the destination changed: only publish runs.
    edit_pipeline(
        &sb,
        &format!("file://{}", reg_a.display()),
        &format!("file://{}", reg_b.display()),
    );
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(skipped(&err, "train") && skipped(&err, "package"), "{err}");
    assert!(ran(&err, "publish"), "{err}");
    assert!(
        reg_b
            .join("models/fraud-detector/1.0.0/release.json")
            .exists()
    );
    sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);

    // --from reruns a stage whose inputs did not change; --until stops after one.
    let (code, out, err) = run(&sb, &[], &["--from", "package", "--until", "package"]);
    assert_eq!(code, 0, "{err}");
    assert!(skipped(&err, "train") && ran(&err, "package"), "{err}");
    assert!(!err.contains("== gate"), "{err}");
    assert_eq!(out, bundle, "same inputs, same place");
    // The bundle it replaced, approval and all, is moved aside, never deleted.
    let stale: Vec<_> = std::fs::read_dir(sb.join("releases"))
        .expect("releases")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".stale-"))
        .collect();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(
        std::fs::read_dir(stale[0].join("approvals"))
            .expect("approvals")
            .count(),
        1
    );

    // One hyperparameter changed: train and everything after it run again, and the new
    // release waits for its own approval.
    edit_pipeline(&sb, "learning_rate = 0.003", "learning_rate = 0.004");
    let (code, out, err) = run(&sb, &[], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(ran(&err, "train") && ran(&err, "package"), "{err}");
    assert_ne!(out, bundle);
    // Approved, it goes on to publish, which refuses to overwrite 1.0.0 with other weights.
    approve_as(&sb, "alice", &out);
    let (code, _, err) = run(&sb, &[], &[]);
    assert_ne!(code, 0, "{err}");
    assert!(skipped(&err, "train") && skipped(&err, "package"), "{err}");
    assert!(ran(&err, "publish"), "{err}");
    assert!(
        err.contains(
            "already holds fraud-detector 1.0.0 with different content; publish a new version"
        ),
        "{err}"
    );
    assert_eq!(
        records(&sb, "publish"),
        2,
        "the refused publish is not recorded"
    );
    sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);

    // Misuse.
    let (code, _, err) = run(&sb, &[], &["--from", "publish", "--until", "train"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--from publish comes after --until train"),
        "{err}"
    );
    let (code, _, err) = run(&sb, &[], &["--from", "nowhere"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn publish_section_without_signing_is_refused_before_anything_runs() {
    let sb = demo_sandbox(500);
    let text = std::fs::read_to_string(sb.join("pipelines/fraud-detector.toml")).expect("read");
    sb.write(
        "pipelines/fraud-detector.toml",
        &format!("{text}\n{}", file_publish("/tmp/airlock-never")),
    );
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("[publish] needs [signing]"), "{err}");
    assert!(!sb.join("runs").exists() && !sb.join("demo").exists());
}

#[test]
fn a_second_run_in_the_same_work_directory_is_refused() {
    let sb = demo_sandbox(500);
    std::fs::create_dir_all(sb.join(".airlock")).expect("mkdir");
    let lock = std::fs::File::create(sb.join(".airlock/lock")).expect("lock file");
    lock.try_lock()
        .expect("take the lock, as a running airlock would");
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another `airlock run` is using"), "{err}");
    assert!(!sb.join("runs").exists(), "nothing ran");
    drop(lock);
    let (code, _, err) = run(&sb, &[], &["--until", "train"]);
    assert_eq!(code, 0, "{err}");
}

/// Issue 12 item 3: what `make release-model` does (the shipped pipeline unchanged, 50,000
/// DEMO rows of seed 7) passes every grammar and every leak scan, of the model and of every
/// signed document, approval, index and audit entry, with zero findings; a second publish
/// (scanning the audit log it wrote) passes too.
#[test]
fn shipped_demo_release_has_no_false_alarm() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.join("pipelines")).expect("mkdir");
    sb.write("pipelines/fraud-detector.toml", FRAUD_PIPELINE);
    let bundle = sb.ok(&["run", "pipelines/fraud-detector.toml", "--no-progress"]);
    let bundle = sb.join(bundle.trim());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("leak-report.json")).expect("report"))
            .expect("json");
    for l in report["layers"].as_array().expect("layers") {
        assert_eq!(l["verdict"], "pass", "{l}");
        assert_eq!(l["counts"]["findings"], 0, "{l}");
    }
    assert_eq!(report["layers"][2]["counts"]["records"], 50_000);
    assert!(
        report["layers"][2]["counts"]["identifier_values_digits"]
            .as_u64()
            .is_some_and(|n| n > 100_000),
        "cards, SSNs and phones are searched for as digits: {}",
        report["layers"][2]
    );
    assert!(
        sb.join("registry/models/fraud-detector/1.0.0/release.json")
            .is_file()
    );
    let (code, _, err) = run(&sb, &[], &["--from", "publish"]);
    assert_eq!(code, 0, "{err}");
}
