//! `airlock run` (what `make release-model` runs): the DEMO flow and the approval gate.

use crate::helpers::{FRAUD_PIPELINE, Sandbox};

fn demo_sandbox(rows: usize) -> Sandbox {
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
