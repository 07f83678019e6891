//! The audit log: written entries verify; any deletion, reordering, edit or torn line is
//! caught and the entry named.

use std::path::{Path, PathBuf};

use airlock_packager::Trust;
use airlock_packager::keys::{Signer, generate};
use airlock_publisher::audit::{NewEntry, append, head_path, verify};

struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
    trust: Trust,
    signer: Signer,
}

fn entry(i: usize) -> NewEntry {
    NewEntry {
        action: if i % 3 == 2 {
            "refuse".into()
        } else {
            "publish".into()
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
    assert_eq!(entries[2].action, "refuse");
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
