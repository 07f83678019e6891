//! The release as officers live it (issue 14's done-when test): a whole non-DEMO flow with
//! keys generated per test, three officers on separate working folders that share nothing
//! with CI but the registry and the trust policy with its public keys.

use std::path::Path;

use crate::helpers::Sandbox;
use crate::pipeline_run::{demo_sandbox, edit_pipeline, run};

const OFFICERS: [&str; 3] = ["alice", "bob", "carol"];

/// Copy the trust policy and every public key from CI's folder into `to` (what travels to
/// officers and the cloud team).
fn share_trust(ci: &Sandbox, to: &Sandbox) {
    std::fs::create_dir_all(to.join("keys")).expect("mkdir");
    std::fs::copy(ci.join("trust.toml"), to.join("trust.toml")).expect("copy trust");
    for k in ["builder", "publisher"].iter().chain(OFFICERS.iter()) {
        let f = format!("keys/{k}.pub");
        std::fs::copy(ci.join(&f), to.join(&f)).expect("copy pub");
    }
}

/// `airlock` in `sb`: (exit code, stdout, stderr).
fn cmd(sb: &Sandbox, args: &[&str]) -> (i32, String, String) {
    let out = sb.airlock(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An officer's folder: their own key pair, generated there; the public key goes to CI.
fn officer(ci: &Sandbox, name: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.ok(&["keygen", "--out", &format!("keys/{name}")]);
    std::fs::create_dir_all(ci.join("keys")).expect("mkdir");
    std::fs::copy(
        sb.join(&format!("keys/{name}.pub")),
        ci.join(&format!("keys/{name}.pub")),
    )
    .expect("send the public key to CI");
    sb
}

/// `review` of the staged release, then `verb` with `--to` the registry: the decision's
/// stdout ("k of n now").
fn review_and_decide(
    o: &Sandbox,
    name: &str,
    reg: &str,
    version: &str,
    verb: &str,
    reason: &str,
) -> String {
    let uri = format!("{reg}/review/fraud-detector@{version}");
    let (code, _, err) = cmd(
        o,
        &[
            "review",
            &uri,
            "--trust",
            "trust.toml",
            "--out",
            "review.html",
        ],
    );
    assert_eq!(code, 0, "{name} reviews {uri}: {err}");
    let local = format!("fraud-detector-{version}");
    assert!(o.join(&local).join("model.safetensors").is_file(), "{err}");
    assert!(
        err.contains(&format!("bundle: {}", o.join(&local).display())) || err.contains(&local),
        "{err}"
    );
    decide(o, name, reg, version, verb, reason)
}

fn decide(o: &Sandbox, name: &str, reg: &str, version: &str, verb: &str, reason: &str) -> String {
    let local = format!("fraud-detector-{version}");
    let key = format!("keys/{name}.key");
    let officer = format!("{} (officer)", name.to_uppercase());
    let (code, out, err) = cmd(
        o,
        &[
            verb,
            &local,
            "--trust",
            "trust.toml",
            "--key",
            &key,
            "--name",
            &officer,
            "--reason",
            reason,
            "--to",
            reg,
        ],
    );
    assert_eq!(code, 0, "{name} {verb}s: {err}");
    assert!(err.contains("sent to the approvals inbox: "), "{err}");
    out
}

/// Registry files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(r) = p.strip_prefix(root) {
                out.push(r.to_string_lossy().into_owned());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn three_officers_approve_and_reject_through_the_registry_inbox() {
    let ci = demo_sandbox(2000);
    let registry_dir = tempfile::tempdir().expect("registry");
    let reg = format!("file://{}", registry_dir.path().display());
    for k in ["builder", "publisher"] {
        ci.ok(&["keygen", "--out", &format!("keys/{k}")]);
    }
    let officers: Vec<Sandbox> = OFFICERS.iter().map(|n| officer(&ci, n)).collect();
    let mut trust = "approvals_required = 2\n\
        [[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
        [[keys]]\nname = \"cd\"\nrole = \"publisher\"\npublic_key = \"keys/publisher.pub\"\n"
        .to_owned();
    for n in OFFICERS {
        trust.push_str(&format!(
            "[[keys]]\nname = \"{n}\"\nrole = \"officer\"\npublic_key = \"keys/{n}.pub\"\n"
        ));
    }
    ci.write("trust.toml", &trust);
    for o in &officers {
        share_trust(&ci, o);
    }
    ci.write("residency.toml", "[registry]\nregions = [\"local\"]\n");
    edit_pipeline(&ci, "epochs = 3", "epochs = 2");
    edit_pipeline(&ci, "[release]\n", "[release]\nallow_uncommitted = true\n");
    let text = std::fs::read_to_string(ci.join("pipelines/fraud-detector.toml")).expect("read");
    ci.write(
        "pipelines/fraud-detector.toml",
        &format!(
            "{text}\n[signing]\ntrust = \"../trust.toml\"\nbuilder_key = \"../keys/builder.key\"\n\
             [publish]\nregistry = \"{reg}\"\nresidency = \"../residency.toml\"\n\
             key = \"../keys/publisher.key\"\naudit_log = \"../audit.log\"\n"
        ),
    );
    let short = |n: &str| {
        let key = airlock_trust::keys::load_public_key(&ci.join(&format!("keys/{n}.pub")))
            .expect("read pub");
        airlock_trust::keys::key_id(&key)[..12].to_owned()
    };

    // CI: trained, packaged, signed, staged for review; waits (6) naming the undecided.
    let (code, bundle, err) = run(&ci, &[], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("staged for review"), "{err}");
    assert!(
        err.contains(&format!(
            "not decided: alice (key {}), bob (key {}), carol (key {})",
            short("alice"),
            short("bob"),
            short("carol")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("airlock review {reg}/review/fraud-detector@1.0.0")),
        "{err}"
    );
    let reg_files = files(registry_dir.path());
    assert!(
        reg_files.contains(&"review/fraud-detector/1.0.0/release.json".to_owned()),
        "{reg_files:?}"
    );
    assert!(
        !reg_files.iter().any(|f| f.starts_with("models/")),
        "staging is not a release: {reg_files:?}"
    );
    let log = std::fs::read_to_string(ci.join("audit.log")).expect("audit log");
    assert!(
        log.contains("\"stage\"") && log.contains("staged for review"),
        "{log}"
    );
    // A pull of the staged release finds nothing to pull: staging is not a release.
    let cloud = Sandbox::new();
    share_trust(&ci, &cloud);
    let (code, _, err) = cmd(
        &cloud,
        &[
            "pull",
            &format!("{reg}/models/fraud-detector@1.0.0"),
            "--trust",
            "trust.toml",
            "--out",
            "model",
        ],
    );
    assert_ne!(code, 0, "{err}");
    // Rerun without decisions: staging is idempotent (nothing new in the log).
    let (code, _, err) = run(&ci, &[], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("(already there)"), "{err}");
    assert_eq!(
        std::fs::read_to_string(ci.join("audit.log")).expect("log"),
        log
    );

    // Officers 1 and 2, each in their own folder: review from the registry, approve --to.
    let out = review_and_decide(
        &officers[0],
        "alice",
        &reg,
        "1.0.0",
        "approve",
        "card and leak report reviewed",
    );
    assert_eq!(out.trim(), "1 of 2 now");
    let out = review_and_decide(
        &officers[1],
        "bob",
        &reg,
        "1.0.0",
        "approve",
        "metrics reviewed",
    );
    assert_eq!(out.trim(), "2 of 2 now: approved");
    // Nothing of the bundle was overwritten: only the inbox grew.
    let after = files(registry_dir.path());
    assert_eq!(
        after.len(),
        reg_files.len() + 2,
        "{reg_files:?} → {after:?}"
    );

    // CI's rerun gathers the inbox and publishes; the release carries the approvals.
    let (code, out, err) = run(&ci, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, bundle);
    assert!(
        err.contains("inbox: gathered the decision of ALICE (officer)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(ci.join(&bundle).join("approvals"))
            .expect("approvals")
            .count(),
        2
    );
    let index = std::fs::read_to_string(
        registry_dir
            .path()
            .join("models/fraud-detector/1.0.0/release.json"),
    )
    .expect("published index");
    let parsed: serde_json::Value = serde_json::from_str(&index).expect("index");
    let files = parsed["files"].as_object().expect("files");
    assert_eq!(
        files.keys().filter(|k| k.starts_with("approvals/")).count(),
        2,
        "{index}"
    );
    // The cloud team pulls it: verified with the two approvals.
    let (code, _, err) = cmd(
        &cloud,
        &[
            "pull",
            &format!("{reg}/models/fraud-detector@1.0.0"),
            "--trust",
            "trust.toml",
            "--out",
            "model",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 approvals"), "{err}");

    // Version 1.1.0: the run waits; officer 3 rejects through the inbox; the run exits 8.
    edit_pipeline(&ci, "version = \"1.0.0\"", "version = \"1.1.0\"");
    let (code, bundle2, err) = run(&ci, &[], &[]);
    assert_eq!(code, 6, "{err}");
    let out = review_and_decide(
        &officers[2],
        "carol",
        &reg,
        "1.1.0",
        "reject",
        "recall on the over-70 band is too low",
    );
    assert!(
        out.starts_with("0 of 2 now, and the rejection by CAROL (officer) (key carol"),
        "{out}"
    );
    let (code, _, err) = run(&ci, &[], &[]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains(&format!(
            "rejected by an officer: CAROL (officer) (key carol {}) rejected it: \"recall on the over-70 band is too low\"",
            short("carol")
        )),
        "{err}"
    );
    assert!(err.contains("the officer decides again"), "{err}");
    assert!(
        !registry_dir
            .path()
            .join("models/fraud-detector/1.1.0")
            .exists()
    );
    // CI's verify with the inbox says the same, exit 8.
    let (code, _, err) = cmd(
        &ci,
        &[
            "verify",
            &bundle2,
            "--trust",
            "trust.toml",
            "--require-approvals",
            "--inbox",
            &reg,
        ],
    );
    assert_eq!(code, 8, "{err}");

    // Officer 3 approves again with the same key: her approval replaces her rejection. One
    // approval of two is not a release: the run is back to waiting (6), naming who has not
    // decided; nothing is published until a second officer approves.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = decide(
        &officers[2],
        "carol",
        &reg,
        "1.1.0",
        "approve",
        "recall re-checked on the holdout",
    );
    assert_eq!(out.trim(), "1 of 2 now");
    let (code, _, err) = run(&ci, &[], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains(&format!(
            "not decided: alice (key {}), bob (key {})",
            short("alice"),
            short("bob")
        )),
        "{err}"
    );
    assert!(
        !registry_dir
            .path()
            .join("models/fraud-detector/1.1.0")
            .exists()
    );
}

/// `airlock publish` of `bundle` to `to` (exit status asserted).
fn publish_bundle(r: &crate::helpers::Release, bundle: &str, to: &str) {
    let out = r.sb.airlock(&[
        "publish",
        bundle,
        "--to",
        to,
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        "audit.log",
        "--key",
        "keys/publisher.key",
    ]);
    assert!(out.status.success(), "{}", crate::publish::stderr(&out));
}

/// `review URI` verifies what it fetches and reads the inbox strictly; `verify --inbox`
/// reports a decision copied from another release and does not count it; staging to a
/// destination the residency policy refuses stages nothing and is on record.
#[test]
fn review_fetch_and_the_inbox_refuse_what_does_not_belong() {
    use crate::publish::{approve, second_release, setup, stderr};
    let r = setup("[\"local\"]");
    approve(&r);
    let reg_dir = r.sb.join("registry");
    let reg = format!("file://{}", reg_dir.display());
    publish_bundle(&r, "bundle", &reg);
    let uri = format!("{reg}/models/fraud-detector@1.0.0");
    let review = |out: &str| {
        r.sb.airlock(&[
            "review",
            &uri,
            "--trust",
            "trust.toml",
            "--out",
            "review.html",
            "--bundle-out",
            out,
        ])
    };
    let o = review("fetched");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(r.sb.join("fetched/approvals"))
            .expect("dir")
            .count(),
        1
    );
    // Again into the same folder: an earlier fetch of the same release is replaced.
    let o = review("fetched");
    assert!(o.status.success(), "{}", stderr(&o));
    // ...but not when it holds a decision neither the release nor the inbox has (one
    // recorded without --to, not yet sent): a new fetch would delete it.
    let unsent =
        r.sb.join("fetched/approvals")
            .join(format!("{}.dsse.json", "ab".repeat(32)));
    std::fs::write(&unsent, b"{}").expect("write");
    let o = review("fetched");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("neither the release nor the registry's inbox holds"),
        "{}",
        stderr(&o)
    );
    assert!(unsent.exists(), "the unsent decision was deleted");
    std::fs::remove_file(&unsent).expect("rm");
    // A folder holding something else is refused.
    std::fs::create_dir_all(r.sb.join("mine")).expect("mkdir");
    std::fs::write(r.sb.join("mine/notes.txt"), b"mine").expect("write");
    let o = review("mine");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not empty and not an earlier fetch"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(r.sb.join("mine/notes.txt")).expect("kept"),
        b"mine"
    );

    // The inbox: a misnamed object, an over-size one and a decision copied from another
    // release (Alice's approval of 1.1.0, filed under her key id for 1.0.0).
    second_release(&r, "bundle2");
    let alice = airlock_trust::keys::key_id(
        &airlock_trust::keys::load_public_key(&r.sb.join("keys/alice.pub")).expect("pub"),
    );
    let inbox = reg_dir.join("review/fraud-detector/1.0.0/approvals");
    std::fs::create_dir_all(&inbox).expect("mkdir");
    std::fs::write(inbox.join("notes.txt"), b"x").expect("write");
    std::fs::write(
        inbox.join(format!("{}.dsse.json", "ab".repeat(32))),
        vec![b' '; 70_000],
    )
    .expect("write");
    std::fs::copy(
        r.sb.join(&format!("bundle2/approvals/{alice}.dsse.json")),
        inbox.join(format!("{alice}.dsse.json")),
    )
    .expect("copy");
    let o = review("fetched2");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("inbox: skipped notes.txt: not named"), "{err}");
    assert!(err.contains("more than the 65536"), "{err}");
    let written: Vec<String> = std::fs::read_dir(r.sb.join("fetched2/approvals"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        written,
        vec![format!("{alice}.dsse.json")],
        "only well-named, bounded objects"
    );
    // verify --inbox on CI's bundle: the copied decision is reported and does not count
    // (Alice's own approval in the bundle still does).
    let o = r.sb.airlock(&[
        "verify",
        "bundle",
        "--trust",
        "trust.toml",
        "--require-approvals",
        "--inbox",
        &reg,
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "ignored approve by Alice (inbox/{alice}.dsse.json): decides on a different release"
        )),
        "{err}"
    );
    // Nothing of the bundle was written by verify.
    assert_eq!(
        std::fs::read_dir(r.sb.join("bundle/approvals"))
            .expect("dir")
            .count(),
        1
    );

    // A registry that lies (a flipped byte in the model's blob): nothing is installed.
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(reg_dir.join("models/fraud-detector/1.0.0/release.json")).expect("index"),
    )
    .expect("json");
    let blob = reg_dir.join(format!(
        "blobs/sha256/{}",
        index["files"]["model.safetensors"].as_str().expect("model")
    ));
    let mut b = std::fs::read(&blob).expect("blob");
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&blob, b).expect("write");
    let o = review("fetched3");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!r.sb.join("fetched3").exists());

    // Staging where residency does not allow: refused and recorded, nothing staged.
    r.sb.write(
        "residency-eu.toml",
        "[registry]\nregions = [\"eu-west-1\"]\n",
    );
    let other = r.sb.join("registry-b");
    let err = airlock_publisher::inbox::stage(&airlock_publisher::publish::PublishOptions {
        bundle: r.sb.join("bundle2"),
        to: format!("file://{}", other.display()),
        trust: r.sb.join("trust.toml"),
        residency: r.sb.join("residency-eu.toml"),
        audit_log: r.sb.join("audit.log"),
        key: r.sb.join("keys/publisher.key"),
        threads: 2,
        aws: airlock_publisher::aws::AwsOptions::default(),
        sagemaker: None,
        deploy_only: false,
        run_dir: None,
    })
    .expect_err("residency refuses");
    assert!(
        matches!(
            err,
            airlock_publisher::publish::PublishError::ResidencyRefused { .. }
        ),
        "{err}"
    );
    assert!(!other.join("review").exists(), "nothing staged");
    let log = std::fs::read_to_string(r.sb.join("audit.log")).expect("log");
    assert!(
        log.lines().last().is_some_and(|l| l.contains("\"refuse\"")),
        "{log}"
    );
}
