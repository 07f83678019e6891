//! `airlock publish` to a file registry, and `airlock audit verify/show` on the log it writes.

use crate::helpers::Release;

/// A packaged bundle, a 1-of-1 officer policy with a publisher key, and a residency policy.
pub fn setup(regions: &str) -> Release {
    let r = Release::new(2000, &[("epochs = 12", "epochs = 3")]);
    for k in ["alice", "publisher"] {
        r.sb.ok(&["keygen", "--out", &format!("keys/{k}")]);
    }
    r.sb.write(
        "trust.toml",
        "approvals_required = 1\n\
         [[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
         [[keys]]\nname = \"alice\"\nrole = \"officer\"\npublic_key = \"keys/alice.pub\"\n\
         [[keys]]\nname = \"cd\"\nrole = \"publisher\"\npublic_key = \"keys/publisher.pub\"\n",
    );
    r.sb.write(
        "residency.toml",
        &format!("[registry]\nregions = {regions}\n"),
    );
    assert!(r.package("run", "bundle").status.success());
    r
}

/// Release 1.1.0 of the same pipeline, packaged into `out` and approved by alice.
pub fn second_release(r: &Release, out: &str) {
    let p2 = r.sb.pipeline(
        "p2.toml",
        &r.data,
        &[
            ("epochs = 12", "epochs = 3"),
            ("version = \"1.0.0\"", "version = \"1.1.0\""),
        ],
    );
    r.sb.ok(&[
        "train",
        p2.to_str().expect("utf-8"),
        "--out",
        "run2",
        "--no-progress",
    ]);
    assert!(r.package("run2", out).status.success());
    r.sb.ok(&[
        "approve",
        out,
        "--trust",
        "trust.toml",
        "--key",
        "keys/alice.key",
        "--name",
        "Alice",
        "--reason",
        "ok",
    ]);
}

pub fn approve(r: &Release) {
    r.sb.ok(&[
        "approve",
        "bundle",
        "--trust",
        "trust.toml",
        "--key",
        "keys/alice.key",
        "--name",
        "Alice",
        "--reason",
        "ok",
    ]);
}

fn publish(r: &Release) -> std::process::Output {
    let to = format!("file://{}", r.sb.join("registry").display());
    r.sb.airlock(&[
        "publish",
        "bundle",
        "--to",
        &to,
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        "audit.log",
        "--key",
        "keys/publisher.key",
    ])
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn approved_bundle_is_published_once_and_logged() {
    let r = setup("[\"local\"]");
    approve(&r);
    let out = publish(&r);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploaded 7 blobs"),
        "6 bundle files and 1 approval: {}",
        stderr(&out)
    );
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.sb.join("registry/models/fraud-detector/1.0.0/release.json"))
            .expect("index"),
    )
    .expect("json");
    for (name, sha) in index["files"].as_object().expect("files") {
        let blob = std::fs::read(r.sb.join(&format!(
            "registry/blobs/sha256/{}",
            sha.as_str().expect("sha")
        )))
        .expect("blob");
        let local = std::fs::read(r.sb.join("bundle").join(name)).expect("bundle file");
        assert_eq!(blob, local, "{name}");
    }
    // Again: nothing to upload.
    let out = publish(&r);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploaded 0 blobs (0 bytes), 7 already present"),
        "{}",
        stderr(&out)
    );
    // The log verifies offline, with public keys only, and a copy sits in the registry.
    let v =
        r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    // Each publish: its `start` entry before the first byte, then its outcome.
    assert!(v.contains("4 entries"), "{v}");
    let table = r.sb.ok(&["audit", "show", "audit.log"]);
    assert!(
        table.contains("publish") && table.contains("local"),
        "{table}"
    );
    assert!(
        r.sb.join("registry/audit/audit.log.head.dsse.json")
            .is_file()
    );
    // An edited entry is named.
    let log = std::fs::read_to_string(r.sb.join("audit.log")).expect("log");
    std::fs::write(r.sb.join("audit.log"), log.replacen("\"ok\"", "\"OK\"", 1)).expect("write");
    let err = r.sb.fails(
        &["audit", "verify", "audit.log", "--trust", "trust.toml"],
        4,
    );
    assert!(err.contains("entry 2"), "{err}");
}

#[test]
fn unapproved_bundle_is_refused_and_the_refusal_logged() {
    let r = setup("[\"local\"]");
    let out = publish(&r);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 of 1 required officer approvals"),
        "{}",
        stderr(&out)
    );
    assert!(
        !r.sb.join("registry").exists(),
        "nothing may reach the registry"
    );
    let table = r.sb.ok(&["audit", "show", "audit.log"]);
    assert!(table.contains("refuse"), "{table}");
    r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
}

#[test]
fn destination_outside_the_residency_policy_is_refused_before_any_byte() {
    let r = setup("[\"eu-west-1\", \"eu-central-1\"]");
    approve(&r);
    let out = publish(&r);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("region \"local\""),
        "{}",
        stderr(&out)
    );
    assert!(
        !r.sb.join("registry").exists(),
        "nothing may reach the registry"
    );
    let log = std::fs::read_to_string(r.sb.join("audit.log")).expect("log");
    assert!(
        log.contains("\"refuse\"") && log.contains("residency policy"),
        "{log}"
    );
}

/// Issue 12 item 3: publish scans what it would send (approvals with their officer names
/// and reasons, the index, the audit entries) for the training data before anything is
/// sent. A card number of the training data written with dots, or an SSN without its
/// dashes, in an approval reason refuses the publish: exit 5, nothing in the registry, the
/// refusal in the audit log, and the value nowhere in the messages.
#[test]
fn approval_reason_with_training_data_is_refused_with_nothing_sent() {
    let r = setup("[\"local\"]");
    let (header, rows) = crate::helpers::csv_rows(&r.data);
    let col = |c: &str| header.iter().position(|h| h == c).expect("column");
    let card = rows[11][col("card_number")].clone();
    let dotted: Vec<&str> = card
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    let dotted = dotted.join(".");
    let ssn = rows[12][col("ssn")].replace('-', "");
    for (reason, secret) in [
        (format!("checked card {dotted} by phone"), dotted.clone()),
        (format!("customer {ssn} asked for it"), ssn.clone()),
    ] {
        r.sb.ok(&[
            "approve",
            "bundle",
            "--trust",
            "trust.toml",
            "--key",
            "keys/alice.key",
            "--name",
            "Alice",
            "--reason",
            &reason,
        ]);
        let out = publish(&r);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(
            err.contains("PII or training data") && err.contains("approvals/"),
            "{err}"
        );
        assert!(!err.contains(&secret), "the value is echoed: {err}");
        assert!(
            !r.sb.join("registry").exists(),
            "nothing may be sent to the registry"
        );
        let log = std::fs::read_to_string(r.sb.join("audit.log")).expect("audit log");
        let last: serde_json::Value =
            serde_json::from_str(log.lines().last().expect("an entry")).expect("json");
        assert_eq!(last["action"], "refuse");
        assert!(
            last["outcome"]
                .as_str()
                .is_some_and(|o| o.contains("leak scan") && o.contains("digits only")),
            "{last}"
        );
        assert!(!log.contains(&secret));
    }
    // Without a run to scan against (the pointer beside the bundle gone), publish refuses:
    // fail closed.
    approve(&r);
    std::fs::rename(r.sb.join("bundle.run.json"), r.sb.join("moved.json")).expect("mv");
    let out = publish(&r);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("--run RUN_DIR"), "{}", stderr(&out));
    assert!(!r.sb.join("registry").exists());
    // A pointer to another run (not the one the signed statement names) is refused too.
    std::fs::write(
        r.sb.join("bundle.run.json"),
        format!(
            "{{\"run_dir\": {:?}}}",
            r.sb.join("elsewhere").display().to_string()
        ),
    )
    .expect("write");
    std::fs::create_dir(r.sb.join("elsewhere")).expect("mkdir");
    for f in ["training-record.json", "preprocess.json", "pipeline.toml"] {
        std::fs::copy(r.run.join(f), r.sb.join("elsewhere").join(f)).expect("copy");
    }
    let mut rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.sb.join("elsewhere/training-record.json")).expect("read"),
    )
    .expect("json");
    rec["seed"] = 7.into();
    std::fs::write(
        r.sb.join("elsewhere/training-record.json"),
        serde_json::to_string_pretty(&rec).expect("json"),
    )
    .expect("write");
    let out = publish(&r);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("not the run"), "{}", stderr(&out));
    assert!(!r.sb.join("registry").exists());
    // With the right run named explicitly, a clean approval publishes.
    let to = format!("file://{}", r.sb.join("registry").display());
    let out = r.sb.airlock(&[
        "publish",
        "bundle",
        "--to",
        &to,
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        "audit.log",
        "--key",
        "keys/publisher.key",
        "--run",
        "run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}
