//! The audit log speaks first and cannot lose its tail.
//!
//! An audit log that cannot be written refuses a publish before a single byte reaches the
//! registry or SageMaker, and `airlock run` finds out before training and the approval
//! gate. The registry witnesses the log: a log cut back to an older, validly signed head is
//! caught by `audit verify --registry` and refused by the next publish, and a release whose
//! `start` entry is not in the registry's copy of the log is not pulled.

use std::process::Output;

use crate::helpers::Release;
use crate::moto::{Moto, REGION};
use crate::pipeline_run::{run, signed_sandbox};
use crate::publish::{approve, second_release, setup, stderr};

const BUCKET: &str = "airlock-releases";
const IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airlock-serve:1";

pub(crate) fn publish_to(
    r: &Release,
    to: &str,
    bundle: &str,
    log: &str,
    env: &[(String, String)],
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "publish",
        bundle,
        "--to",
        to,
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        log,
        "--key",
        "keys/publisher.key",
    ];
    args.extend_from_slice(extra);
    r.sb.airlock_env(&args, env)
}

/// A regular file where the log's folder should be, and a folder where the log should be:
/// neither can take an entry (root ignores file modes, so modes would prove nothing).
fn unusable_logs(r: &Release) -> [&'static str; 2] {
    r.sb.write("not-a-folder", "a regular file\n");
    std::fs::create_dir_all(r.sb.join("a-folder.log")).expect("mkdir");
    ["not-a-folder/audit.log", "a-folder.log"]
}

#[test]
fn an_unusable_audit_log_refuses_an_s3_and_sagemaker_publish_before_any_write() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET, REGION);
    let r = setup("[\"eu-west-1\"]");
    r.sb.write(
        "residency.toml",
        "[registry]\nregions = [\"eu-west-1\"]\n[sagemaker]\nregions = [\"eu-west-1\"]\n",
    );
    approve(&r);
    let to = format!("s3://{BUCKET}/prod");
    for log in unusable_logs(&r) {
        moto.start_recording();
        let out = publish_to(
            &r,
            &to,
            "bundle",
            log,
            &moto.env(),
            &["--sagemaker", "--image", IMAGE],
        );
        let requests = moto.stop_recording();
        assert_eq!(out.status.code(), Some(1), "{log}: {}", stderr(&out));
        assert!(stderr(&out).contains(log), "names {log}: {}", stderr(&out));
        let writes: Vec<_> = requests
            .iter()
            .filter(|(m, _)| m == "PUT" || m == "POST" || m == "DELETE")
            .collect();
        assert!(
            writes.is_empty(),
            "{log}: nothing may be sent before the log has said so: {writes:#?}"
        );
    }
    assert!(moto.list(BUCKET).is_empty(), "{:?}", moto.list(BUCKET));
    let groups = moto
        .block(moto.sagemaker().list_model_package_groups().send())
        .expect("groups");
    assert!(groups.model_package_group_summary_list().is_empty());
}

#[test]
fn an_unusable_audit_log_refuses_a_file_publish_with_nothing_written_and_a_new_folder_is_made() {
    let r = setup("[\"local\"]");
    approve(&r);
    let reg = tempfile::tempdir().expect("dir");
    let root = reg.path().join("registry");
    let to = format!("file://{}", root.display());
    for log in unusable_logs(&r) {
        let out = publish_to(&r, &to, "bundle", log, &[], &[]);
        assert_eq!(out.status.code(), Some(1), "{log}: {}", stderr(&out));
        assert!(stderr(&out).contains(log), "names {log}: {}", stderr(&out));
        assert!(!root.exists(), "{log}: nothing may reach the registry");
    }

    // A log whose folder does not exist yet, as a new user's pipeline names it: the folder
    // is made, and the first entry, written before any upload, announces what leaves.
    let out = publish_to(&r, &to, "bundle", "logs/2026/audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(r.sb.join("logs/2026/audit.log")).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let start: serde_json::Value = serde_json::from_str(lines[0]).expect("entry");
    assert_eq!(start["action"], "start");
    assert_eq!(start["outcome"], "started");
    assert_eq!(start["destination"], to.as_str());
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("models/fraud-detector/1.0.0/release.json")).expect("index"),
    )
    .expect("json");
    assert_eq!(
        start["artifacts"], index["files"],
        "the start entry names every digest that leaves"
    );
    assert_eq!(index["audit"]["log"], "audit.log");
    assert_eq!(index["audit"]["seq"], 1);
    assert_eq!(
        index["audit"]["entry_sha256"].as_str(),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(lines[0])).as_str())
    );
    let second: serde_json::Value = serde_json::from_str(lines[1]).expect("entry");
    assert_eq!(
        (second["action"].as_str(), second["outcome"].as_str()),
        (Some("publish"), Some("ok"))
    );
    r.sb.ok(&[
        "audit",
        "verify",
        "logs/2026/audit.log",
        "--trust",
        "trust.toml",
        "--registry",
        &to,
    ]);
    let table = r.sb.ok(&["audit", "show", "logs/2026/audit.log"]);
    assert!(
        table.contains("start") && table.contains("publish"),
        "{table}"
    );
}

#[test]
fn airlock_run_checks_the_audit_log_and_residency_before_training_and_the_gate() {
    let reg = tempfile::tempdir().expect("dir");
    let publish = |log: &str| {
        format!(
            "\n[publish]\nregistry = \"file://{}\"\nresidency = \"../residency.toml\"\n\
             key = \"../keys/publisher.key\"\naudit_log = \"{log}\"\n\
             stage_for_review = false\n",
            reg.path().display()
        )
    };
    let sb = signed_sandbox(
        500,
        &[("epochs = 3", "epochs = 1")],
        1,
        &publish("../not-a-folder/audit.log"),
    );
    sb.write("not-a-folder", "a regular file\n");
    sb.write("residency.toml", "[registry]\nregions = [\"local\"]\n");
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not-a-folder/audit.log"), "{err}");
    assert!(err.contains("not put to the officers"), "{err}");
    assert!(
        !err.contains("== gate") && !err.contains("waiting for approval"),
        "{err}"
    );
    assert!(!sb.join("runs").exists(), "nothing was trained");

    // A registry the residency policy does not allow: exit 7, before training too.
    let text = std::fs::read_to_string(sb.join("pipelines/fraud-detector.toml")).expect("read");
    sb.write(
        "pipelines/fraud-detector.toml",
        &text.replace("../not-a-folder/audit.log", "../audit/audit.log"),
    );
    sb.write("residency.toml", "[registry]\nregions = [\"eu-west-1\"]\n");
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 7, "{err}");
    assert!(!err.contains("== gate"), "{err}");
    assert!(!sb.join("runs").exists(), "nothing was trained");

    // Everything in order: the run goes on to the gate, and nothing was written to the log.
    sb.write("residency.toml", "[registry]\nregions = [\"local\"]\n");
    let (code, _, err) = run(&sb, &[], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("== publish pre-flight"), "{err}");
    assert!(
        !sb.join("audit/audit.log").exists(),
        "the check appends nothing"
    );
    assert!(sb.join("audit").is_dir(), "the log's folder is made");
}

fn read(r: &Release, p: &str) -> Vec<u8> {
    std::fs::read(r.sb.join(p)).expect("read")
}

fn write(r: &Release, p: &str, b: &[u8]) {
    std::fs::write(r.sb.join(p), b).expect("write");
}

const HEAD: &str = "audit.log.head.dsse.json";
const CHECKPOINT: &str = "audit.log.checkpoint";

#[test]
fn a_log_cut_back_to_an_older_signed_head_is_caught_by_the_registry_and_not_continued() {
    let reg = tempfile::tempdir().expect("dir");
    let to = format!("file://{}", reg.path().display());
    let r = setup("[\"local\"]");
    approve(&r);
    second_release(&r, "bundle2");
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (old_log, old_head, old_cp) = (read(&r, "audit.log"), read(&r, HEAD), read(&r, CHECKPOINT));
    let out = publish_to(&r, &to, "bundle2", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (full_log, full_head, full_cp) =
        (read(&r, "audit.log"), read(&r, HEAD), read(&r, CHECKPOINT));
    let ok = r.sb.ok(&[
        "audit",
        "verify",
        "audit.log",
        "--trust",
        "trust.toml",
        "--registry",
        &to,
    ]);
    assert!(ok.contains("2 release(s) recorded in it"), "{ok}");

    // The attack: the last entries deleted with the head, an older signed head (and
    // checkpoint) put back.
    write(&r, "audit.log", &old_log);
    write(&r, HEAD, &old_head);
    write(&r, CHECKPOINT, &old_cp);
    // Offline, the log alone cannot tell: that is what the registry's witness is for.
    r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    let err = r.sb.fails(
        &[
            "audit",
            "verify",
            "audit.log",
            "--trust",
            "trust.toml",
            "--registry",
            &to,
        ],
        4,
    );
    assert!(
        err.contains("the log has only 2 entries") && err.contains("fraud-detector 1.1.0"),
        "{err}"
    );
    assert!(err.contains("registry's copy of the signed head"), "{err}");

    // Nor does the next publish continue from the cut log: refused, nothing appended.
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entries were deleted") && stderr(&out).contains("nothing was sent"),
        "{}",
        stderr(&out)
    );
    assert_eq!(read(&r, "audit.log"), old_log, "nothing was appended");

    // An entry added without the publisher key is not signed over by the next append.
    write(&r, "audit.log", &full_log);
    write(&r, HEAD, &full_head);
    write(&r, CHECKPOINT, &full_cp);
    let mut forged = String::from_utf8(full_log.clone()).expect("utf-8");
    let last = forged.lines().last().expect("entry").to_owned();
    let mut e: serde_json::Value = serde_json::from_str(&last).expect("entry");
    e["seq"] = 5.into();
    e["prev"] = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&last)).into();
    forged.push_str(&format!("{}\n", serde_json::to_string(&e).expect("json")));
    write(&r, "audit.log", forged.as_bytes());
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("covers 4 entries but the log has 5"),
        "{}",
        stderr(&out)
    );

    // The whole log: it verifies against the registry and takes new entries again.
    write(&r, "audit.log", &full_log);
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    r.sb.ok(&[
        "audit",
        "verify",
        "audit.log",
        "--trust",
        "trust.toml",
        "--registry",
        &to,
    ]);
    // A registry whose copy of the head was removed is no witness.
    let head_copy = reg.path().join("audit").join(HEAD);
    let kept = std::fs::read(&head_copy).expect("head copy");
    std::fs::remove_file(&head_copy).expect("rm");
    let err = r.sb.fails(
        &[
            "audit",
            "verify",
            "audit.log",
            "--trust",
            "trust.toml",
            "--registry",
            &to,
        ],
        4,
    );
    assert!(err.contains("no copy of its signed head"), "{err}");
    std::fs::write(&head_copy, kept).expect("restore");
    // A log the registry never saw is named as such.
    let err = r.sb.fails(
        &[
            "audit",
            "verify",
            "audit.log",
            "--trust",
            "trust.toml",
            "--registry",
            &format!("file://{}", r.sb.join("empty-registry").display()),
        ],
        4,
    );
    assert!(err.contains("holds no copy of audit log"), "{err}");
}

#[test]
fn pull_refuses_a_release_whose_start_entry_is_not_in_the_registrys_audit_copy() {
    let reg = tempfile::tempdir().expect("dir");
    let root = reg.path().to_owned();
    let to = format!("file://{}", root.display());
    let r = setup("[\"local\"]");
    approve(&r);
    second_release(&r, "bundle2");
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = |k: &str| std::fs::read(root.join("audit").join(k)).expect("audit copy");
    let (old_log, old_head) = (copy("audit.log"), copy(HEAD));
    let out = publish_to(&r, &to, "bundle2", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (new_log, new_head) = (copy("audit.log"), copy(HEAD));
    let pull = |version: &str, out: &str| {
        r.sb.airlock(&[
            "pull",
            &format!("{to}/models/fraud-detector@{version}"),
            "--trust",
            "trust.toml",
            "--out",
            out,
        ])
    };
    let refused = |o: &Output, why: &str| {
        assert_eq!(o.status.code(), Some(4), "{}", stderr(o));
        assert!(stderr(o).contains(why), "expected {why:?}: {}", stderr(o));
    };

    // The registry's audit copy rolled back to before 1.1.0 was published.
    std::fs::write(root.join("audit/audit.log"), &old_log).expect("write");
    std::fs::write(root.join("audit").join(HEAD), &old_head).expect("write");
    refused(&pull("1.1.0", "m110"), "the publish was not recorded");
    assert!(!r.sb.join("m110").exists());
    let o = pull("1.0.0", "m100");
    assert!(o.status.success(), "1.0.0 is on record: {}", stderr(&o));

    // The copy without its head, and a copy whose entries were cut under a current head.
    std::fs::write(root.join("audit/audit.log"), &new_log).expect("write");
    std::fs::remove_file(root.join("audit").join(HEAD)).expect("rm");
    refused(&pull("1.1.0", "m110"), "holds no signed audit head");
    std::fs::write(root.join("audit").join(HEAD), &new_head).expect("write");
    std::fs::write(root.join("audit/audit.log"), &old_log).expect("write");
    refused(&pull("1.1.0", "m110"), "entries were deleted");
    std::fs::write(root.join("audit/audit.log"), &new_log).expect("write");

    // An index pointing at another release's entry.
    let idx = root.join("models/fraud-detector/1.1.0/release.json");
    let original = std::fs::read(&idx).expect("index");
    let mut index: serde_json::Value = serde_json::from_slice(&original).expect("json");
    index["audit"]["seq"] = 1.into();
    let first = String::from_utf8(new_log.clone()).expect("utf-8");
    let first = first.lines().next().expect("entry");
    index["audit"]["entry_sha256"] =
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(first)).into();
    std::fs::write(&idx, serde_json::to_vec(&index).expect("json")).expect("write");
    refused(
        &pull("1.1.0", "m110"),
        "not the start of this release's publish",
    );
    std::fs::write(&idx, &original).expect("write");
    let o = pull("1.1.0", "m110");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_index_from_before_the_witness_is_refused_by_pull_and_rewritten_by_a_republish() {
    let reg = tempfile::tempdir().expect("dir");
    let to = format!("file://{}", reg.path().display());
    let r = setup("[\"local\"]");
    approve(&r);
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let idx = reg.path().join("models/fraud-detector/1.0.0/release.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&idx).expect("index")).expect("json");
    index.as_object_mut().expect("object").remove("audit");
    std::fs::write(&idx, serde_json::to_vec(&index).expect("json")).expect("write");
    let pull = || {
        r.sb.airlock(&[
            "pull",
            &format!("{to}/models/fraud-detector@1.0.0"),
            "--trust",
            "trust.toml",
            "--out",
            "served",
        ])
    };
    let o = pull();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!r.sb.join("served").exists());
    // The same files published again: the index is written anew, with this publish's entry.
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&idx).expect("index")).expect("json");
    assert_eq!(index["audit"]["seq"], 3, "{index}");
    let o = pull();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The log's entries as JSON values.
fn entries_of(r: &Release, log: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(r.sb.join(log))
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect()
}

/// The rows of `audit show`'s table (the header first), without the footnote.
fn rows(table: &str) -> Vec<&str> {
    table.lines().filter(|l| !l.starts_with('*')).collect()
}

#[test]
fn audit_show_prints_whole_outcomes_the_release_and_the_officers_and_verify_names_the_key() {
    let reg = tempfile::tempdir().expect("dir");
    let to = format!("file://{}", reg.path().display());
    let r = setup("[\"local\"]");
    approve(&r);
    second_release(&r, "bundle2");
    let out = publish_to(&r, &to, "bundle", "audit.log", &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A refusal, with a long outcome: the residency policy no longer allows the registry.
    r.sb.write("residency.toml", "[registry]\nregions = [\"eu-west-1\"]\n");
    let out = publish_to(&r, &to, "bundle2", "audit.log", &[], &[]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // New entries record the release they are about, as signed.
    let entries = entries_of(&r, "audit.log");
    let versions: Vec<_> = entries
        .iter()
        .map(|e| (e["model"].as_str(), e["version"].as_str()))
        .collect();
    assert_eq!(
        versions,
        [
            (Some("fraud-detector"), Some("1.0.0")),
            (Some("fraud-detector"), Some("1.0.0")),
            (Some("fraud-detector"), Some("1.1.0")),
        ]
    );
    let refusal = entries[2]["outcome"].as_str().expect("outcome").to_owned();
    assert!(
        refusal.starts_with("refused: ") && refusal.len() > 40,
        "{refusal}"
    );
    let alice = entries[0]["approvals"][0]
        .as_str()
        .expect("approval")
        .to_owned();
    let publisher = entries[0]["actor"].as_str().expect("actor").to_owned();

    // The table: the whole outcome, last; every column aligned on its header.
    let table = r.sb.ok(&["audit", "show", "audit.log"]);
    let lines = rows(&table);
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].trim_end().ends_with("outcome"), "{table}");
    for header in [
        "model",
        "version",
        "approvers",
        "publisher",
        "destination",
        "outcome",
    ] {
        let col = lines[0].find(header).expect("header");
        for row in &lines[1..] {
            assert!(
                row.is_char_boundary(col)
                    && row[..col].ends_with("  ")
                    && !row[col..].starts_with(' '),
                "{header} starts at column {col} in every row:\n{table}"
            );
        }
    }
    let outcome_col = lines[0].find("outcome").expect("header");
    assert_eq!(&lines[3][outcome_col..], refusal, "{table}");
    for (row, version) in lines[1..].iter().zip(["1.0.0", "1.0.0", "1.1.0"]) {
        assert!(row.contains(&format!("fraud-detector  {version}")), "{row}");
        assert!(row.contains(&alice[..12]) && !row.contains(&alice), "{row}");
        assert!(row.contains(&publisher[..12]), "{row}");
        assert!(row.contains(&to), "{row}");
    }

    // With the trust policy: the officers and the publisher by name.
    let named =
        r.sb.ok(&["audit", "show", "audit.log", "--trust", "trust.toml"]);
    for row in &rows(&named)[1..] {
        assert!(row.contains("  alice  ") && row.contains("  cd  "), "{row}");
        assert!(!row.contains(&alice[..12]), "{row}");
    }

    // --json: one object per line, the entry and what was derived from it.
    let json = r.sb.ok(&[
        "audit",
        "show",
        "audit.log",
        "--trust",
        "trust.toml",
        "--json",
    ]);
    let shown: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(shown.len(), 3, "{json}");
    assert_eq!(shown[2]["outcome"].as_str(), Some(refusal.as_str()));
    assert_eq!(shown[2]["model"], "fraud-detector");
    assert_eq!(shown[2]["version"], "1.1.0");
    assert_eq!(shown[2]["release_source"], "recorded");
    assert_eq!(shown[2]["approver_names"], serde_json::json!(["alice"]));
    assert_eq!(shown[2]["approvals"], serde_json::json!([alice]));
    assert_eq!(shown[2]["publisher_name"], "cd");
    assert_eq!(shown[2]["seq"], 3);

    // verify names the key that signed the head.
    let ok =
        r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    assert!(
        ok.contains(&format!(
            "verified: 3 entries, head (entry 3) signed by publisher key \"cd\" ({publisher})"
        )),
        "{ok}"
    );
    // Against a policy with another publisher key it fails, naming the key it expected.
    let ops = r.sb.ok(&["keygen", "--out", "keys/ops"]).trim().to_owned();
    r.sb.write(
        "trust-ops.toml",
        "approvals_required = 1\n\
         [[keys]]\nname = \"alice\"\nrole = \"officer\"\npublic_key = \"keys/alice.pub\"\n\
         [[keys]]\nname = \"ops\"\nrole = \"publisher\"\npublic_key = \"keys/ops.pub\"\n",
    );
    let err = r.sb.fails(
        &["audit", "verify", "audit.log", "--trust", "trust-ops.toml"],
        4,
    );
    assert!(
        err.contains(&format!(
            "expected a signature by the publisher key \"ops\" ({ops})"
        )),
        "{err}"
    );

    // A log is the writer's word until it verifies: a control character in an outcome
    // reaches the terminal escaped, in the table, in --json and in verify's refusal.
    let mut forged = entries[2].clone();
    forged["outcome"] = "ok\u{1b}[1A\u{1b}[2K\rok: InService\u{9b}0m\u{202e}".into();
    let text = std::fs::read_to_string(r.sb.join("audit.log")).expect("log");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[2] = serde_json::to_string(&forged).expect("json");
    write(
        &r,
        "audit.log",
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    let raw = |s: &str| s.contains(['\u{1b}', '\r', '\u{9b}', '\u{202e}']);
    let table = r.sb.ok(&["audit", "show", "audit.log"]);
    assert!(!raw(&table), "{table:?}");
    assert!(
        table.contains("ok\\u{1b}[1A\\u{1b}[2K\\rok: InService\\u{9b}0m\\u{202e}"),
        "{table}"
    );
    let json = r.sb.ok(&["audit", "show", "audit.log", "--json"]);
    assert!(!raw(&json), "{json:?}");
    let last: serde_json::Value =
        serde_json::from_str(json.lines().last().expect("line")).expect("json");
    assert_eq!(last["outcome"], forged["outcome"], "escaped, not altered");
    let err = r.sb.fails(
        &["audit", "verify", "audit.log", "--trust", "trust.toml"],
        4,
    );
    assert!(err.contains("entry 3 (the last) differs"), "{err}");
}
