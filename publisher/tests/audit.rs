//! The audit log: written entries verify; any deletion, reordering, edit or torn line is
//! caught and the entry named.

use std::path::{Path, PathBuf};

use airlock_publisher::audit::{AuditLog, Chain, NewEntry, append, head_path, verify};
use airlock_schemas::AuditAction;
use airlock_trust::Trust;
use airlock_trust::keys::{Signer, generate};

struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
    trust: Trust,
    signer: Signer,
}

fn entry(i: usize) -> NewEntry {
    NewEntry {
        action: if i % 3 == 2 {
            AuditAction::Refuse
        } else {
            AuditAction::Publish
        },
        artifacts: [("model.safetensors".to_owned(), format!("{i:064x}"))]
            .into_iter()
            .collect(),
        destination: format!("file:///registry/{i}"),
        verified_region: Some("eu-west-1".into()),
        approvals: vec!["ab".repeat(32)],
        trust_policy_sha256: "1".repeat(64),
        residency_policy_sha256: "2".repeat(64),
        outcome: if i % 3 == 2 {
            "region us-east-1 not allowed".into()
        } else {
            "ok".into()
        },
    }
}

fn log_with(n: usize) -> Log {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = generate(&dir.path().join("publisher")).expect("keygen");
    generate(&dir.path().join("officer")).expect("keygen");
    std::fs::write(
        dir.path().join("trust.toml"),
        "approvals_required = 1\n[[keys]]\nname = \"pub\"\nrole = \"publisher\"\npublic_key = \"publisher.pub\"\n\
         [[keys]]\nname = \"o\"\nrole = \"officer\"\npublic_key = \"officer.pub\"\n",
    )
    .expect("write");
    let trust = Trust::load(&dir.path().join("trust.toml")).expect("trust");
    let signer = Signer::load(&k.private_key).expect("key");
    let path = dir.path().join("audit.log");
    for i in 0..n {
        append(&path, entry(i), &signer).expect("append");
    }
    Log {
        _dir: dir,
        path,
        trust,
        signer,
    }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(p: &Path, l: &[String]) {
    std::fs::write(p, l.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write");
}

fn fails(log: &Log, expect: &str) {
    let err = verify(&log.path, &log.trust)
        .expect_err("must not verify")
        .to_string();
    assert!(err.contains(expect), "expected {expect:?} in: {err}");
}

#[test]
fn written_log_verifies() {
    let log = log_with(6);
    let entries = verify(&log.path, &log.trust).expect("verifies");
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[2].action, AuditAction::Refuse);
    assert!(head_path(&log.path).is_file());
}

#[test]
fn deleting_any_entry_is_caught_and_named() {
    for k in 0..6 {
        let log = log_with(6);
        let mut l = lines(&log.path);
        l.remove(k);
        write_lines(&log.path, &l);
        let expect = if k == 5 {
            "covers 6 entries but the log has 5".to_owned()
        } else {
            format!("line {}", k + 1)
        };
        fails(&log, &expect);
    }
}

#[test]
fn reordering_entries_is_caught() {
    let log = log_with(6);
    let mut l = lines(&log.path);
    l.swap(2, 3);
    write_lines(&log.path, &l);
    fails(&log, "line 3");
}

#[test]
fn editing_any_entry_is_caught_and_named() {
    for k in 0..6 {
        let log = log_with(6);
        let mut l = lines(&log.path);
        l[k] = l[k].replace("eu-west-1", "eu-west-2");
        write_lines(&log.path, &l);
        let expect = if k == 5 {
            "entry 6 (the last) differs".to_owned()
        } else {
            format!("entry {} (line {})", k + 2, k + 2)
        };
        fails(&log, &expect);
    }
}

#[test]
fn a_torn_last_line_is_detected_and_nothing_is_appended() {
    let log = log_with(3);
    let text = std::fs::read_to_string(&log.path).expect("read");
    std::fs::write(&log.path, &text[..text.len() - 20]).expect("truncate");
    fails(&log, "entry 3 (line 3) is torn");
    let err = append(&log.path, entry(9), &log.signer)
        .expect_err("refuses")
        .to_string();
    assert!(err.contains("torn"), "{err}");
}

#[test]
fn a_head_signed_by_another_key_fails() {
    let log = log_with(2);
    let other = log_with(2);
    std::fs::copy(head_path(&other.path), head_path(&log.path)).expect("copy");
    fails(&log, "signed head");
}

#[test]
fn two_writers_cannot_append_at_once() {
    let log = log_with(1);
    let held = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&log.path)
        .expect("open");
    held.lock().expect("lock");
    let err = append(&log.path, entry(1), &log.signer)
        .expect_err("busy")
        .to_string();
    assert!(err.contains("in use by another airlock process"), "{err}");
    held.unlock().expect("unlock");
    append(&log.path, entry(1), &log.signer).expect("appends once free");
    assert_eq!(verify(&log.path, &log.trust).expect("verifies").len(), 2);
}

#[test]
fn an_unknown_action_is_not_an_entry() {
    let log = log_with(2);
    let l = lines(&log.path);
    write_lines(
        &log.path,
        &[l[0].replace("\"publish\"", "\"exfiltrate\""), l[1].clone()],
    );
    fails(&log, "entry at line 1 is not a valid audit entry");
}

#[test]
fn a_missing_folder_is_made_and_no_empty_log_is_left_behind() {
    let log = log_with(0);
    let path = log.path.with_file_name("new/deeper/audit.log");
    let mut opened = AuditLog::open(&path).expect("opens");
    assert!(path.parent().expect("dir").is_dir(), "the folder is made");
    assert!(!path.exists(), "the log itself waits for its first entry");
    opened
        .check_head(&log.trust)
        .expect("a new log has no head");
    opened.append(entry(0), &log.signer).expect("append");
    drop(opened);
    assert_eq!(verify(&path, &log.trust).expect("verifies").len(), 1);
}

#[test]
fn a_log_that_cannot_be_a_log_is_refused_when_opened() {
    let log = log_with(1);
    let file_as_folder = log.path.join("audit.log");
    let err = AuditLog::open(&file_as_folder)
        .expect_err("its folder is a file")
        .to_string();
    assert!(err.contains(&file_as_folder.display().to_string()), "{err}");
    let dir = log.path.with_file_name("a-folder.log");
    std::fs::create_dir(&dir).expect("mkdir");
    let err = AuditLog::open(&dir).expect_err("a folder").to_string();
    assert!(err.contains("a-folder.log"), "{err}");
}

#[test]
fn an_open_log_holds_its_lock_until_dropped() {
    let log = log_with(1);
    let held = AuditLog::open(&log.path).expect("open");
    let err = append(&log.path, entry(1), &log.signer)
        .expect_err("busy")
        .to_string();
    assert!(err.contains("in use by another airlock process"), "{err}");
    drop(held);
    append(&log.path, entry(1), &log.signer).expect("appends once free");
}

#[test]
fn a_head_that_does_not_name_the_last_entry_refuses_appending() {
    // An entry appended without the key: the next append must not sign over it.
    let log = log_with(3);
    let mut l = lines(&log.path);
    l.pop();
    let head3 = std::fs::read(head_path(&log.path)).expect("head");
    write_lines(&log.path, &l);
    let opened = AuditLog::open(&log.path).expect("chains");
    let err = opened
        .check_head(&log.trust)
        .expect_err("head is ahead")
        .to_string();
    assert!(err.contains("covers 3 entries but the log has 2"), "{err}");
    drop(opened);
    // A log deleted with its head left behind is not started afresh.
    std::fs::remove_file(&log.path).expect("rm");
    std::fs::write(head_path(&log.path), head3).expect("head");
    let err = AuditLog::open(&log.path)
        .expect_err("head without log")
        .to_string();
    assert!(
        err.contains("the log is missing but its signed head"),
        "{err}"
    );
}

#[test]
fn an_older_head_passes_alone_but_is_not_a_point_of_the_longer_log() {
    let log = log_with(6);
    let full = std::fs::read_to_string(&log.path).expect("read");
    let chain = Chain::parse(&full).expect("chain");
    let cut = Chain::parse(
        &full
            .lines()
            .take(4)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .expect("prefix");
    let (_, h6) = chain.at(6).expect("entry 6");
    let (_, h4) = chain.at(4).expect("entry 4");
    assert!(cut.missing_point(4, h4, "witness").is_none());
    let why = cut.missing_point(6, h6, "witness").expect("cut");
    assert!(why.contains("only 4 entries"), "{why}");
    let why = chain.missing_point(4, h6, "witness").expect("other entry");
    assert!(why.contains("entry 4 of the log differs"), "{why}");
}

/// A trust policy with a publisher, an officer and an aggregator key, and both signers.
fn mixed() -> (tempfile::TempDir, Trust, Signer, Signer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = generate(&dir.path().join("publisher")).expect("keygen");
    let a = generate(&dir.path().join("aggregator")).expect("keygen");
    generate(&dir.path().join("officer")).expect("keygen");
    std::fs::write(
        dir.path().join("trust.toml"),
        "approvals_required = 1\n[[keys]]\nname = \"pub\"\nrole = \"publisher\"\npublic_key = \"publisher.pub\"\n\
         [[keys]]\nname = \"o\"\nrole = \"officer\"\npublic_key = \"officer.pub\"\n\
         [[keys]]\nname = \"agg\"\nrole = \"aggregator\"\npublic_key = \"aggregator.pub\"\n",
    )
    .expect("write");
    let trust = Trust::load(&dir.path().join("trust.toml")).expect("trust");
    let ps = Signer::load(&p.private_key).expect("key");
    let asg = Signer::load(&a.private_key).expect("key");
    (dir, trust, ps, asg)
}

fn federated(i: usize) -> NewEntry {
    NewEntry {
        action: AuditAction::FederatedUpdate,
        outcome: format!("ok: round {i} update"),
        ..entry(i)
    }
}

/// An aggregator key keeps a federation's log and nothing else: its entries verify; a
/// release entry it writes (say, a forged `publish` naming the publisher as actor) fails,
/// and a publisher key cannot write into its log, nor it into a release log.
#[test]
fn aggregator_and_publisher_keys_keep_separate_logs() {
    let (dir, trust, publisher, aggregator) = mixed();
    let fed = dir.path().join("federation.log");
    append(&fed, federated(0), &aggregator).expect("append");
    append(&fed, federated(1), &aggregator).expect("append");
    verify(&fed, &trust).expect("a federation's log verifies");

    // A release entry signed by the aggregator key.
    let forged = dir.path().join("forged.log");
    append(&forged, federated(0), &aggregator).expect("append");
    append(&forged, entry(0), &aggregator).expect("append");
    let err = verify(&forged, &trust).expect_err("must fail").to_string();
    // A log with a release entry is a release log: only a publisher key may sign its head.
    assert!(
        err.contains("expected a signature by the publisher key"),
        "{err}"
    );

    // The publisher's side: a log whose head an aggregator signed is not continued.
    let log = AuditLog::open(&fed).expect("open");
    let err = log.check_head(&trust).expect_err("must fail").to_string();
    assert!(err.contains("never both"), "{err}");
    drop(log);
    // A release log is not continued by an aggregator.
    let rel = dir.path().join("release.log");
    append(&rel, entry(0), &publisher).expect("append");
    verify(&rel, &trust).expect("a release log verifies");
    let log = AuditLog::open(&rel).expect("open");
    let err = log
        .check_head_as(&trust, airlock_schemas::KeyRole::Aggregator)
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("never both"), "{err}");
    drop(log);
    // A federated entry signed by the publisher in a federation's log fails.
    let mixed_log = dir.path().join("mixed.log");
    append(&mixed_log, federated(0), &publisher).expect("append");
    let err = verify(&mixed_log, &trust)
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("head") || err.contains("aggregator"), "{err}");
}
