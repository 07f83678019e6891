//! The audit log as an RFC 9162 Merkle tree with signed C2SP checkpoints.
//!
//! Every entry's inclusion proof and every pair of sizes' consistency proof verify in
//! airlock and in an independent Python verifier written from the RFC; a release carries
//! its `start` entry's proof, which pull checks and keeps for `verify`/`serve`; the
//! registry's checkpoint history refuses a log that was cut back or forked, even with
//! validly signed heads and checkpoints and the registry's copy of the log removed.

use std::path::Path;

use crate::helpers::Release;
use crate::publish::{approve, second_release, setup, stderr};

/// A publish to `to` with the shared test log (`audit.log`).
fn publish_to(r: &Release, to: &str, bundle: &str) -> std::process::Output {
    crate::audit::publish_to(r, to, bundle, "audit.log", &[], &[])
}

const FILES: [&str; 3] = [
    "audit.log",
    "audit.log.head.dsse.json",
    "audit.log.checkpoint",
];

fn snapshot(r: &Release) -> Vec<Vec<u8>> {
    FILES
        .iter()
        .map(|f| std::fs::read(r.sb.join(f)).expect("read"))
        .collect()
}

fn restore(r: &Release, s: &[Vec<u8>]) {
    for (f, b) in FILES.iter().zip(s) {
        std::fs::write(r.sb.join(f), b).expect("write");
    }
}

fn python(r: &Release, args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/check_merkle.py");
    std::process::Command::new(crate::helpers::test_python())
        .arg(script)
        .args(args)
        .current_dir(r.sb.join(""))
        .output()
        .expect("run python")
}

fn verify_args<'a>(proofs: &'a [String], log: Option<&'a str>) -> Vec<&'a str> {
    let mut a = vec!["audit", "verify"];
    a.extend(log);
    a.extend(["--trust", "trust.toml"]);
    for p in proofs {
        a.extend(["--proof", p.as_str()]);
    }
    a
}

#[test]
fn every_proof_verifies_here_and_independently_and_releases_carry_theirs() {
    let reg = tempfile::tempdir().expect("dir");
    let to = format!("file://{}", reg.path().display());
    let r = setup("[\"local\"]");
    approve(&r);
    second_release(&r, "bundle2");
    for b in ["bundle", "bundle2", "bundle", "bundle2"] {
        let out = publish_to(&r, &to, b);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let n = std::fs::read_to_string(r.sb.join("audit.log"))
        .expect("log")
        .lines()
        .count();
    assert!(n >= 4, "{n} entries");
    let ok =
        r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    assert!(
        ok.contains(&format!("checkpoint: {n} entries, Merkle root")),
        "{ok}"
    );

    // Every entry's inclusion proof and every size's consistency proof.
    let mut proofs = Vec::new();
    for seq in 1..=n {
        let json =
            r.sb.ok(&["audit", "prove", "audit.log", "--entry", &seq.to_string()]);
        let name = format!("inclusion-{seq}.json");
        r.sb.write(&name, &json);
        proofs.push(name);
    }
    for from in 0..=n {
        let json = r.sb.ok(&[
            "audit",
            "consistency",
            "audit.log",
            "--from",
            &from.to_string(),
        ]);
        let name = format!("consistency-{from}.json");
        r.sb.write(&name, &json);
        proofs.push(name);
    }
    let ok = r.sb.ok(&verify_args(&proofs, Some("audit.log")));
    assert_eq!(ok.matches("verified inclusion-").count(), n, "{ok}");
    assert_eq!(ok.matches("verified consistency-").count(), n + 1, "{ok}");
    // Offline, with the trust policy alone.
    r.sb.ok(&verify_args(&proofs, None));
    // The independent verifier, from the RFC's definitions (and the log's MTH recomputed).
    let mut args = vec!["--pubkey", "keys/publisher.pub", "--log", "audit.log"];
    args.extend(proofs.iter().map(String::as_str));
    let out = python(&r, &args);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("ok ").count(),
        2 * n + 1,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A proof with one hash changed, or another entry slipped in, is refused by both.
    let good = std::fs::read_to_string(r.sb.join("inclusion-2.json")).expect("proof");
    let mut p: serde_json::Value = serde_json::from_str(&good).expect("json");
    let first = p["hashes"][0].as_str().expect("hash").to_owned();
    let flipped = format!(
        "{}{}",
        if first.starts_with('0') { "1" } else { "0" },
        &first[1..]
    );
    p["hashes"][0] = flipped.into();
    r.sb.write("bad-hash.json", &p.to_string());
    let mut p: serde_json::Value = serde_json::from_str(&good).expect("json");
    let entry = p["entry"].as_str().expect("entry").to_owned();
    let edited = entry.replacen("\"destination\":\"", "\"destination\":\"x", 1);
    assert_ne!(edited, entry);
    p["entry"] = edited.into();
    r.sb.write("bad-entry.json", &p.to_string());
    for bad in ["bad-hash.json", "bad-entry.json"] {
        let err = r.sb.fails(&verify_args(&[bad.to_owned()], None), 4);
        assert!(err.contains("FAIL"), "{err}");
        let out = python(&r, &["--pubkey", "keys/publisher.pub", bad]);
        assert!(!out.status.success(), "python accepted {bad}");
    }
    // Signed by a key the trust policy does not list as a publisher: refused.
    let p = std::fs::read_to_string(r.sb.join("inclusion-1.json")).expect("proof");
    r.sb.ok(&["keygen", "--out", "keys/mallory"]);
    let trust = std::fs::read_to_string(r.sb.join("trust.toml")).expect("trust");
    r.sb.write(
        "other-trust.toml",
        &trust.replace("keys/publisher.pub", "keys/mallory.pub"),
    );
    r.sb.write("p1.json", &p);
    let err = r.sb.fails(
        &[
            "audit",
            "verify",
            "--trust",
            "other-trust.toml",
            "--proof",
            "p1.json",
        ],
        4,
    );
    assert!(err.contains("no signature on the checkpoint"), "{err}");

    // The release index carries its start entry's proof; pull checks it and keeps it in
    // the bundle, where `verify` checks it again; an edited copy is refused.
    let index =
        std::fs::read_to_string(reg.path().join("models/fraud-detector/1.0.0/release.json"))
            .expect("index");
    let index: serde_json::Value = serde_json::from_str(&index).expect("json");
    assert_eq!(index["transparency"]["seq"], index["audit"]["seq"]);
    r.sb.ok(&[
        "pull",
        &format!("{to}/models/fraud-detector@1.0.0"),
        "--trust",
        "trust.toml",
        "--out",
        "pulled",
    ]);
    let kept = r.sb.join("pulled/transparency.json");
    assert!(kept.is_file(), "pull keeps the proof with the bundle");
    r.sb.ok(&["verify", "pulled", "--trust", "trust.toml"]);
    // serve admits the pulled release with its proof...
    let server = crate::serve::launch(&r.sb, "pulled", &[], None).expect("serve starts");
    drop(server);
    let text = std::fs::read_to_string(&kept).expect("transparency.json");
    let mut t: serde_json::Value = serde_json::from_str(&text).expect("json");
    t["hashes"] = serde_json::json!(["00".repeat(32)]);
    std::fs::write(&kept, t.to_string()).expect("write");
    let err =
        r.sb.fails(&["verify", "pulled", "--trust", "trust.toml"], 4);
    assert!(
        err.contains("publish on record") || err.contains("transparency"),
        "{err}"
    );
    // ...and refuses it once its proof was edited.
    let refused = crate::serve::launch(&r.sb, "pulled", &[], None).map(drop);
    let why = refused.expect_err("serve refuses an edited proof");
    assert!(
        why.contains("publish on record") || why.contains("transparency"),
        "{why}"
    );

    // An index whose proof was edited in the registry is refused by pull.
    let key = reg.path().join("models/fraud-detector/1.1.0/release.json");
    let text = std::fs::read_to_string(&key).expect("index");
    let mut i: serde_json::Value = serde_json::from_str(&text).expect("json");
    i["transparency"]["hashes"] = serde_json::json!(["11".repeat(32)]);
    std::fs::write(&key, serde_json::to_string_pretty(&i).expect("json")).expect("write");
    let err = r.sb.fails(
        &[
            "pull",
            &format!("{to}/models/fraud-detector@1.1.0"),
            "--trust",
            "trust.toml",
            "--out",
            "pulled2",
        ],
        4,
    );
    assert!(err.contains("inclusion proof"), "{err}");
    assert!(!r.sb.join("pulled2").exists());
}

#[test]
fn a_cut_or_forked_log_is_refused_by_the_registrys_checkpoint_history() {
    let reg = tempfile::tempdir().expect("dir");
    let other = tempfile::tempdir().expect("dir");
    let to = format!("file://{}", reg.path().display());
    let to_other = format!("file://{}", other.path().display());
    let r = setup("[\"local\"]");
    approve(&r);
    second_release(&r, "bundle2");
    let out = publish_to(&r, &to, "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    let before = snapshot(&r);
    let out = publish_to(&r, &to, "bundle2");
    assert!(out.status.success(), "{}", stderr(&out));
    let full = snapshot(&r);
    let history = reg.path().join("audit/audit.log.checkpoints");
    // One checkpoint for each time the registry's copy of the log was brought up to date.
    assert!(std::fs::read_dir(&history).expect("history").count() >= 2);
    let registry_verify = |r: &Release| {
        r.sb.airlock_env(
            &[
                "audit",
                "verify",
                "audit.log",
                "--trust",
                "trust.toml",
                "--registry",
                &to,
            ],
            &[],
        )
    };
    let out = registry_verify(&r);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signed checkpoint(s) of its history"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A fork: from the earlier state, the log goes on elsewhere (validly signed all along).
    restore(&r, &before);
    let out = publish_to(&r, &to_other, "bundle2");
    assert!(out.status.success(), "{}", stderr(&out));
    r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    // Whoever forked it also removes the registry's copy of the log and of its head: the
    // checkpoint history alone refuses it, at audit verify and at publish.
    for f in ["audit.log", "audit.log.head.dsse.json"] {
        std::fs::remove_file(reg.path().join("audit").join(f)).expect("rm");
    }
    let out = registry_verify(&r);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("forked or rewritten"),
        "{}",
        stderr(&out)
    );
    let log_before = std::fs::read(r.sb.join("audit.log")).expect("log");
    let out = publish_to(&r, &to, "bundle");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("forked or rewritten"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(r.sb.join("audit.log")).expect("log"),
        log_before
    );

    // Cut back to the earlier, validly signed state: refused as truncated.
    restore(&r, &before);
    let out = registry_verify(&r);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
    let out = publish_to(&r, &to, "bundle");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));

    // An entry edited in place: the log itself refuses (chain, checkpoint root).
    restore(&r, &full);
    let text = String::from_utf8(full[0].clone()).expect("utf-8");
    let edited = text.replacen("\"outcome\":\"ok\"", "\"outcome\":\"ok!\"", 1);
    assert_ne!(edited, text);
    std::fs::write(r.sb.join("audit.log"), edited).expect("write");
    let out = registry_verify(&r);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = publish_to(&r, &to, "bundle");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not chain"), "{}", stderr(&out));

    // The whole log again: the registry's history vouches for it and it goes on.
    restore(&r, &full);
    let out = publish_to(&r, &to, "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
}
