//! Issue 12, items 1, 2 and 8: a bundle is exactly what `verify` accounts for; every key's
//! revocation and validity window bind every role in every command; rejections never
//! expire; a policy must ask for approvals; signed JSON is read strictly; trust files that
//! others may write are refused.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use airlock_testkit::Kit;

use crate::helpers::{Release, Sandbox};
use crate::moto::{Moto, REGION};
use crate::publish::{approve, setup, stderr};

const BUCKET: &str = "airlock-releases";
const INDEX: &str = "registry/models/fraud-detector/1.0.0/release.json";

fn key_id(r: &Release, name: &str) -> String {
    let k =
        airlock_trust::keys::load_public_key(&r.sb.join(&format!("keys/{name}.pub"))).expect("pub");
    airlock_trust::keys::key_id(&k)
}

fn file_registry(r: &Release) -> String {
    format!("file://{}", r.sb.join("registry").display())
}

fn publish_with(
    r: &Release,
    bundle: &str,
    to: &str,
    trust: &str,
    env: &[(String, String)],
) -> Output {
    r.sb.airlock_env(
        &[
            "publish",
            bundle,
            "--to",
            to,
            "--trust",
            trust,
            "--residency",
            "residency.toml",
            "--audit-log",
            "audit.log",
            "--key",
            "keys/publisher.key",
        ],
        env,
    )
}

fn expect(o: &Output, code: i32, why: &str, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{what}: {}", stderr(o));
    assert!(
        stderr(o).contains(why),
        "{what}: expected {why:?} in: {}",
        stderr(o)
    );
}

/// Copy a bundle (regular files and the approvals folder) to `to`.
fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("approvals")).expect("mkdir");
    for e in std::fs::read_dir(from)
        .expect("read bundle")
        .map(Result::unwrap)
    {
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
    for e in std::fs::read_dir(from.join("approvals"))
        .expect("read approvals")
        .map(Result::unwrap)
    {
        std::fs::copy(e.path(), to.join("approvals").join(e.file_name())).expect("copy");
    }
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().expect("run mkfifo");
    assert!(ok.success());
}

#[test]
fn verify_refuses_every_entry_outside_the_closed_set() {
    let r = setup("[\"local\"]");
    approve(&r);
    assert!(r.verify("bundle").status.success());
    let alice = format!("{}.dsse.json", key_id(&r, "alice"));
    let csv = r.data.clone();
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, String)> = vec![
        (
            "training data copied under approvals/",
            Box::new({
                let csv = csv.clone();
                move |b: &Path| {
                    std::fs::copy(&csv, b.join("approvals/transactions.csv")).expect("copy");
                }
            }),
            "\"approvals/transactions.csv\"".into(),
        ),
        (
            "training data named like a decision file",
            Box::new({
                let csv = csv.clone();
                move |b: &Path| {
                    std::fs::copy(
                        &csv,
                        b.join(format!("approvals/{}.dsse.json", "0".repeat(64))),
                    )
                    .expect("copy");
                }
            }),
            "is not a DSSE envelope".into(),
        ),
        (
            "a symlink to a file outside",
            Box::new({
                let csv = csv.clone();
                move |b: &Path| {
                    std::os::unix::fs::symlink(&csv, b.join("approvals/data.csv")).expect("ln");
                }
            }),
            "a symbolic link".into(),
        ),
        (
            "a decision file replaced by a symlink",
            Box::new({
                let alice = alice.clone();
                move |b: &Path| {
                    let real = b.with_extension("alice.json");
                    std::fs::rename(b.join("approvals").join(&alice), &real).expect("mv");
                    std::os::unix::fs::symlink(&real, b.join("approvals").join(&alice))
                        .expect("ln");
                }
            }),
            "a symbolic link, not a file".into(),
        ),
        (
            "the model replaced by a symlink",
            Box::new(|b: &Path| {
                let real = b.with_extension("model");
                std::fs::rename(b.join("model.safetensors"), &real).expect("mv");
                std::os::unix::fs::symlink(&real, b.join("model.safetensors")).expect("ln");
            }),
            "model.safetensors (a symbolic link, not a file)".into(),
        ),
        (
            "a subdirectory under approvals/",
            Box::new(|b: &Path| {
                std::fs::create_dir(b.join("approvals/more")).expect("mkdir");
                std::fs::write(b.join("approvals/more/x"), "x").expect("write");
            }),
            "\"approvals/more\" (a directory".into(),
        ),
        (
            "a FIFO under approvals/",
            Box::new(|b: &Path| mkfifo(&b.join("approvals/pipe"))),
            "\"approvals/pipe\" (a FIFO".into(),
        ),
        (
            "an extra top-level file",
            Box::new(|b: &Path| std::fs::write(b.join("notes.txt"), "hi").expect("write")),
            "\"notes.txt\" (a file)".into(),
        ),
        (
            "a hidden top-level file",
            Box::new(|b: &Path| std::fs::write(b.join(".DS_Store"), "x").expect("write")),
            "\".DS_Store\"".into(),
        ),
        (
            "approvals is a file",
            Box::new(|b: &Path| {
                std::fs::remove_dir_all(b.join("approvals")).expect("rm");
                std::fs::write(b.join("approvals"), "x").expect("write");
            }),
            "approvals (a file, not a directory)".into(),
        ),
        (
            "a decision file named after another key",
            Box::new({
                let alice = alice.clone();
                move |b: &Path| {
                    std::fs::rename(
                        b.join("approvals").join(&alice),
                        b.join(format!("approvals/{}.dsse.json", "a".repeat(64))),
                    )
                    .expect("mv");
                }
            }),
            "not the key it is named after".into(),
        ),
    ];
    for (i, (what, edit, why)) in cases.iter().enumerate() {
        let b = r.sb.join(&format!("case{i}"));
        copy_bundle(&r.sb.join("bundle"), &b);
        assert!(
            r.verify(&format!("case{i}")).status.success(),
            "{what}: the copy verifies before the edit"
        );
        edit(&b);
        let out = r.verify(&format!("case{i}"));
        expect(&out, 4, why, what);
        assert!(stderr(&out).contains("FAIL bundle files"), "{what}");
        // And it is never published.
        let out = publish_with(
            &r,
            &format!("case{i}"),
            &file_registry(&r),
            "trust.toml",
            &[],
        );
        expect(&out, 4, "it does not verify (bundle files", what);
        assert!(!r.sb.join("registry").exists(), "{what}: nothing published");
    }
}

#[test]
fn s3_publish_of_a_bundle_with_an_extra_entry_sends_no_put() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET, REGION);
    let r = setup("[\"eu-west-1\"]");
    approve(&r);
    let b = r.sb.join("bundle");
    type Step<'a> = Box<dyn Fn() + 'a>;
    let extra: [(&str, Step<'_>, Step<'_>); 3] = [
        (
            "a copy of the training CSV under approvals/",
            Box::new(|| {
                std::fs::copy(&r.data, b.join("approvals/transactions.csv")).expect("copy");
            }),
            Box::new(|| std::fs::remove_file(b.join("approvals/transactions.csv")).expect("rm")),
        ),
        (
            "a symlink to the training CSV",
            Box::new(|| {
                std::os::unix::fs::symlink(&r.data, b.join("approvals/t.csv")).expect("ln");
            }),
            Box::new(|| std::fs::remove_file(b.join("approvals/t.csv")).expect("rm")),
        ),
        (
            "a subdirectory holding the training CSV",
            Box::new(|| {
                std::fs::create_dir(b.join("approvals/d")).expect("mkdir");
                std::fs::copy(&r.data, b.join("approvals/d/t.csv")).expect("copy");
            }),
            Box::new(|| std::fs::remove_dir_all(b.join("approvals/d")).expect("rm")),
        ),
    ];
    for (what, add, remove) in &extra {
        add();
        moto.start_recording();
        let out = publish_with(
            &r,
            "bundle",
            "s3://airlock-releases/prod",
            "trust.toml",
            &moto.env(),
        );
        let requests = moto.stop_recording();
        expect(&out, 4, "not part of a bundle", what);
        let writes: Vec<_> = requests
            .iter()
            .filter(|(m, _)| m == "PUT" || m == "POST" || m == "DELETE")
            .collect();
        assert!(writes.is_empty(), "{what}: {writes:#?}");
        assert!(moto.list(BUCKET).is_empty(), "{what}");
        remove();
    }
    // Without the extra entry the same bundle publishes, and the index names only the
    // closed set.
    let out = publish_with(
        &r,
        "bundle",
        "s3://airlock-releases/prod",
        "trust.toml",
        &moto.env(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let index = moto
        .get(BUCKET, "prod/models/fraud-detector/1.0.0/release.json")
        .expect("index");
    let index: serde_json::Value = serde_json::from_slice(&index).expect("json");
    let names: Vec<&String> = index["files"].as_object().expect("files").keys().collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| airlock_trust::bundle::is_closed_set_name(n)),
        "{names:?}"
    );
}

#[test]
fn pull_refuses_an_index_naming_anything_outside_the_closed_set() {
    let r = setup("[\"local\"]");
    approve(&r);
    let out = publish_with(&r, "bundle", &file_registry(&r), "trust.toml", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let original = std::fs::read(r.sb.join(INDEX)).expect("index");
    let uri = format!("{}/models/fraud-detector@1.0.0", file_registry(&r));
    let model_sha = {
        let v: serde_json::Value = serde_json::from_slice(&original).expect("json");
        v["files"]["model.safetensors"]
            .as_str()
            .expect("sha")
            .to_owned()
    };
    for extra in [
        "approvals/transactions.csv",
        "transactions.csv",
        "approvals/x/y.dsse.json",
        "approvals/AAAA.dsse.json",
        "../outside",
    ] {
        let mut v: serde_json::Value = serde_json::from_slice(&original).expect("json");
        v["files"]
            .as_object_mut()
            .expect("files")
            .insert(extra.to_owned(), model_sha.clone().into());
        std::fs::write(r.sb.join(INDEX), serde_json::to_vec(&v).expect("json")).expect("write");
        let out =
            r.sb.airlock(&["pull", &uri, "--trust", "trust.toml", "--out", "served"]);
        expect(&out, 4, "not part of a bundle", extra);
        assert!(stderr(&out).contains("nothing was downloaded"), "{extra}");
        assert!(!r.sb.join("served").exists(), "{extra}");
    }
    std::fs::write(r.sb.join(INDEX), &original).expect("restore");
    let out =
        r.sb.airlock(&["pull", &uri, "--trust", "trust.toml", "--out", "served"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut installed: Vec<String> = Vec::new();
    for e in std::fs::read_dir(r.sb.join("served"))
        .expect("served")
        .map(Result::unwrap)
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n == "approvals" {
            for a in std::fs::read_dir(e.path())
                .expect("approvals")
                .map(Result::unwrap)
            {
                installed.push(format!("approvals/{}", a.file_name().to_string_lossy()));
            }
        } else {
            installed.push(n);
        }
    }
    // The closed set, and the publish's inclusion proof pull checked and kept.
    assert_eq!(installed.len(), 8, "{installed:?}");
    assert!(
        installed.iter().all(|n| {
            airlock_trust::bundle::is_closed_set_name(n)
                || n == airlock_trust::bundle::TRANSPARENCY_FILE
        }),
        "{installed:?}"
    );
}

/// `trust.toml` of [`setup`] with `edit` applied, written as `name`.
fn trust_variant(r: &Release, name: &str, edit: &dyn Fn(&str) -> String) -> String {
    let base = std::fs::read_to_string(r.sb.join("trust.toml")).expect("trust");
    r.sb.write(name, &edit(&base));
    name.to_owned()
}

fn revoke(id: String) -> impl Fn(&str) -> String {
    move |p: &str| {
        p.replacen(
            "approvals_required = 1\n",
            &format!("approvals_required = 1\nrevoked = [\"{id}\"]\n"),
            1,
        )
    }
}

/// A window line added to the key named `key`.
fn window(key: &'static str, line: &'static str) -> impl Fn(&str) -> String {
    move |p: &str| {
        p.replacen(
            &format!("name = \"{key}\"\n"),
            &format!("name = \"{key}\"\n{line}\n"),
            1,
        )
    }
}

/// `airlock serve` must refuse to start: it exits (with 4) instead of listening.
fn serve_refuses(r: &Release, trust: &str, why: &str, what: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "serve",
            "--model-dir",
            "served",
            "--trust",
            trust,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(r.sb.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: serve started with a trust policy that must refuse it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    expect(&out, 4, why, what);
}

#[test]
fn every_keys_revocation_and_window_bind_every_role_in_every_command() {
    let r = setup("[\"local\"]");
    approve(&r);
    let reg = file_registry(&r);
    let out = publish_with(&r, "bundle", &reg, "trust.toml", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let uri = format!("{reg}/models/fraud-detector@1.0.0");
    r.sb.ok(&["pull", &uri, "--trust", "trust.toml", "--out", "served"]);
    r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    let past = "not_after = \"2001-01-01T00:00:00Z\"";
    let future = "not_before = \"2999-01-01T00:00:00Z\"";

    // Builder: verify, the approval gate, publish, pull and serve all refuse.
    for (t, why) in [
        (
            trust_variant(&r, "b-revoked.toml", &revoke(key_id(&r, "builder"))),
            "revoked",
        ),
        (
            trust_variant(&r, "b-expired.toml", &window("ci", past)),
            "expired at",
        ),
        (
            trust_variant(&r, "b-future.toml", &window("ci", future)),
            "not valid before",
        ),
    ] {
        expect(
            &r.sb.airlock(&["verify", "bundle", "--trust", &t]),
            4,
            why,
            &format!("verify {t}"),
        );
        expect(
            &r.sb
                .airlock(&["verify", "bundle", "--trust", &t, "--require-approvals"]),
            4,
            why,
            &format!("gate {t}"),
        );
        expect(
            &publish_with(&r, "bundle", &reg, &t, &[]),
            4,
            "does not verify",
            &format!("publish {t}"),
        );
        expect(
            &r.sb
                .airlock(&["pull", &uri, "--trust", &t, "--out", "other"]),
            4,
            why,
            &format!("pull {t}"),
        );
        assert!(!r.sb.join("other").exists());
        serve_refuses(&r, &t, "the bundle does not verify", &format!("serve {t}"));
    }

    // Officer: the approval stops counting everywhere, and the key records nothing new.
    for (t, why) in [
        (
            trust_variant(&r, "o-revoked.toml", &revoke(key_id(&r, "alice"))),
            "revoked",
        ),
        (
            trust_variant(&r, "o-expired.toml", &window("alice", past)),
            "expired at",
        ),
        (
            trust_variant(&r, "o-future.toml", &window("alice", future)),
            "not valid before",
        ),
    ] {
        expect(
            &r.sb
                .airlock(&["verify", "bundle", "--trust", &t, "--require-approvals"]),
            // Pending now: exit 6 (issue 14).
            6,
            why,
            &format!("gate {t}"),
        );
        expect(
            &publish_with(&r, "bundle", &reg, &t, &[]),
            4,
            "0 of 1 required officer approvals",
            &format!("publish {t}"),
        );
        expect(
            &r.sb
                .airlock(&["pull", &uri, "--trust", &t, "--out", "other"]),
            4,
            "0 of 1 required officer approvals",
            &format!("pull {t}"),
        );
        serve_refuses(
            &r,
            &t,
            "0 of 1 required officer approvals",
            &format!("serve {t}"),
        );
        expect(
            &r.sb.airlock(&[
                "approve",
                "bundle",
                "--trust",
                &t,
                "--key",
                "keys/alice.key",
                "--name",
                "Alice",
                "--reason",
                "again",
            ]),
            3,
            why,
            &format!("approve {t}"),
        );
    }

    // Publisher: publish refuses the key, and audit verify refuses what it signed.
    for (t, why) in [
        (
            trust_variant(&r, "p-revoked.toml", &revoke(key_id(&r, "publisher"))),
            "revoked",
        ),
        (
            trust_variant(&r, "p-expired.toml", &window("cd", past)),
            "expired at",
        ),
        (
            trust_variant(&r, "p-future.toml", &window("cd", future)),
            "not valid before",
        ),
    ] {
        expect(
            &publish_with(&r, "bundle", &reg, &t, &[]),
            3,
            why,
            &format!("publish {t}"),
        );
        expect(
            &r.sb
                .airlock(&["audit", "verify", "audit.log", "--trust", &t]),
            4,
            why,
            &format!("audit verify {t}"),
        );
    }
    // Nothing above changed what the untouched policy accepts.
    r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    r.sb.ok(&[
        "verify",
        "served",
        "--trust",
        "trust.toml",
        "--require-approvals",
    ]);
}

/// A sandbox holding a test-kit bundle (signed as `airlock package` signs, no training),
/// its keys and a trust policy: builder ci, `officers`, `k` of them required. For the tests
/// that are about decisions and trust files, not about the model.
fn kit(officers: &[&str], k: u32) -> (Sandbox, Kit) {
    let sb = Sandbox::new();
    let kit = Kit::builder()
        .officers(officers)
        .approvals_required(k)
        .build_in(sb.path());
    (sb, kit)
}

fn verify(sb: &Sandbox) -> Output {
    sb.airlock(&["verify", "bundle", "--trust", "trust.toml"])
}

/// A 1-of-2 policy (alice, bob) for the decision tests.
fn two_officers() -> (Sandbox, Kit) {
    kit(&["alice", "bob"], 1)
}

fn decide(sb: &Sandbox, verb: &str, who: &str, extra: &[&str]) -> Output {
    let key = format!("keys/{who}.key");
    let mut args = vec![
        verb,
        "bundle",
        "--trust",
        "trust.toml",
        "--key",
        &key,
        "--name",
        who,
        "--reason",
        "r",
    ];
    args.extend_from_slice(extra);
    sb.airlock(&args)
}

fn gate(sb: &Sandbox) -> Output {
    sb.airlock(&[
        "verify",
        "bundle",
        "--trust",
        "trust.toml",
        "--require-approvals",
    ])
}

#[test]
fn a_rejection_cannot_expire() {
    let (sb, kit) = two_officers();
    // The CLI refuses the flag.
    let out = decide(&sb, "reject", "alice", &["--expires", "30d"]);
    expect(&out, 2, "a rejection cannot expire", "reject --expires");
    assert!(
        !sb.join("bundle/approvals").exists()
            || std::fs::read_dir(sb.join("bundle/approvals"))
                .expect("dir")
                .next()
                .is_none()
    );
    // A rejection that carries an expiry (signed by the officer's key by other means)
    // blocks even after that time.
    assert!(decide(&sb, "approve", "bob", &[]).status.success());
    assert!(
        decide(&sb, "approve", "alice", &["--expires", "1s"])
            .status
            .success()
    );
    let file = kit.decision_file("alice");
    let env: airlock_schemas::Envelope =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("envelope");
    let payload = String::from_utf8(STANDARD.decode(&env.payload).expect("b64")).expect("utf-8");
    assert!(payload.contains("\"expires\": \"20"), "{payload}");
    let payload = payload.replace("\"decision\": \"approve\"", "\"decision\": \"reject\"");
    let alice = airlock_trust::keys::Signer::load(&kit.key("alice").private_key).expect("key");
    let forged = airlock_trust::dsse::sign(&env.payload_type, payload.as_bytes(), &alice);
    std::fs::write(&file, serde_json::to_vec(&forged).expect("json")).expect("write");
    std::thread::sleep(Duration::from_millis(2100));
    let out = gate(&sb);
    // A rejection blocks: exit 8 (issue 14).
    expect(&out, 8, "valid rejection", "an expired rejection");
}

#[test]
fn a_policy_that_asks_for_no_approvals_is_refused() {
    let (sb, _kit) = kit(&["alice"], 1);
    let p = std::fs::read_to_string(sb.join("trust.toml")).expect("trust");
    sb.write(
        "zero.toml",
        &p.replacen("approvals_required = 1", "approvals_required = 0", 1),
    );
    sb.write("none.toml", &p.replacen("approvals_required = 1\n", "", 1));
    for t in ["zero.toml", "none.toml"] {
        let out = sb.airlock(&["verify", "bundle", "--trust", t]);
        expect(&out, 3, "approvals_required is 0", t);
        assert!(stderr(&out).contains(t), "{}", stderr(&out));
    }
}

/// Insert `member` (`"key": value,`) right after the first `{` of `json`.
fn duplicate_first(json: &str, member: &str) -> String {
    json.replacen('{', &format!("{{{member}"), 1)
}

#[test]
fn signed_json_with_a_duplicate_key_is_refused() {
    let r = setup("[\"local\"]");
    approve(&r);
    let reg = file_registry(&r);
    assert!(
        publish_with(&r, "bundle", &reg, "trust.toml", &[])
            .status
            .success()
    );
    let alice = format!("{}.dsse.json", key_id(&r, "alice"));

    // The envelope of the statement, the approval envelope, and the statement itself
    // re-signed by the builder key with a member given twice (serde_json keeps the last).
    let builder = airlock_trust::keys::Signer::load(&r.key).expect("builder");
    let statement = std::fs::read_to_string(r.sb.join("bundle/statement.json")).expect("st");
    let twice = statement.replacen(
        "\"model_version\":",
        "\"model_version\": \"6.6.6\",\n    \"model_version\":",
        1,
    );
    assert_ne!(twice, statement);
    let signed = airlock_trust::dsse::sign(
        airlock_schemas::IN_TOTO_PAYLOAD_TYPE,
        twice.as_bytes(),
        &builder,
    );
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "statement envelope",
            Box::new(|b: &Path| {
                let p = b.join("statement.dsse.json");
                let t = std::fs::read_to_string(&p).expect("read");
                std::fs::write(&p, duplicate_first(&t, "\"payloadType\": \"text/plain\","))
                    .expect("write");
            }),
            "duplicate key \"payloadType\"",
        ),
        (
            "approval envelope",
            Box::new({
                let alice = alice.clone();
                move |b: &Path| {
                    let p = b.join("approvals").join(&alice);
                    let t = std::fs::read_to_string(&p).expect("read");
                    std::fs::write(&p, duplicate_first(&t, "\"payload\": \"e30=\","))
                        .expect("write");
                }
            }),
            "duplicate key \"payload\"",
        ),
        (
            "statement signed with a duplicate",
            Box::new(move |b: &Path| {
                std::fs::write(b.join("statement.json"), &twice).expect("write");
                std::fs::write(
                    b.join("statement.dsse.json"),
                    serde_json::to_vec_pretty(&signed).expect("json"),
                )
                .expect("write");
            }),
            "duplicate key \"model_version\" in the object at $.predicate",
        ),
    ];
    for (i, (what, edit, why)) in cases.iter().enumerate() {
        let b = r.sb.join(&format!("dup{i}"));
        copy_bundle(&r.sb.join("bundle"), &b);
        edit(&b);
        expect(
            &r.sb
                .airlock(&["verify", &format!("dup{i}"), "--trust", "trust.toml"]),
            4,
            why,
            what,
        );
    }

    // A release index with a duplicate member.
    let index = std::fs::read_to_string(r.sb.join(INDEX)).expect("index");
    std::fs::write(
        r.sb.join(INDEX),
        duplicate_first(&index, "\"version\": \"9.9.9\","),
    )
    .expect("write");
    let uri = format!("{reg}/models/fraud-detector@1.0.0");
    let out =
        r.sb.airlock(&["pull", &uri, "--trust", "trust.toml", "--out", "served"]);
    expect(&out, 4, "duplicate key \"version\"", "index");
    assert!(!r.sb.join("served").exists());
}

#[cfg(unix)]
#[test]
fn trust_files_and_folders_writable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (sb, _kit) = kit(&["alice"], 1);
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    for (path, open, why) in [
        ("trust.toml", 0o666, "trust policy"),
        ("trust.toml", 0o620, "trust policy"),
        ("keys/alice.pub", 0o664, "public key"),
        ("keys/builder.pub", 0o646, "public key"),
        ("keys", 0o777, "the folder"),
        ("", 0o770, "the folder"),
    ] {
        let p = sb.join(path);
        let before = mode(&p);
        chmod(&p, open);
        let out = verify(&sb);
        expect(&out, 3, "writable by group or others", path);
        assert!(stderr(&out).contains(why), "{path}: {}", stderr(&out));
        // Paths are named as given: the policy is `trust.toml` in the current folder.
        let named = if path.is_empty() {
            "the folder . holding trust policy trust.toml"
        } else {
            path
        };
        assert!(stderr(&out).contains(named), "{path}: {}", stderr(&out));
        chmod(&p, before);
        assert!(verify(&sb).status.success(), "{path} restored");
    }
}

/// A well-formed envelope named after some key id passes the closed set, but carries
/// anything at all (here the training data, hex-encoded so no scanner recognizes it). Only
/// the approvals that count may leave: it stays on the premises, and the published index
/// and blobs are exactly the signed files and the counted approval.
#[test]
fn a_decision_file_that_does_not_count_never_leaves() {
    let r = setup("[\"local\"]");
    approve(&r);
    let csv = std::fs::read(&r.data).expect("data");
    let hexed: String = csv.iter().map(|b| format!("{b:02x}")).collect();
    let stranger = "ab".repeat(32);
    let envelope = serde_json::json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": STANDARD.encode(hexed.as_bytes()),
        "signatures": [{"keyid": stranger, "sig": STANDARD.encode([0u8; 64])}],
    });
    let junk = r.sb.join(&format!("bundle/approvals/{stranger}.dsse.json"));
    std::fs::write(&junk, serde_json::to_vec(&envelope).expect("json")).expect("write");
    let out = publish_with(&r, "bundle", &file_registry(&r), "trust.toml", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.sb.join(INDEX)).expect("index")).expect("json");
    let names: Vec<&String> = index["files"].as_object().expect("files").keys().collect();
    let alice = format!("approvals/{}.dsse.json", key_id(&r, "alice"));
    assert!(names.iter().any(|n| **n == alice), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains(&stranger)),
        "a decision that does not count was published: {names:?}"
    );
    assert_eq!(names.len(), 7, "{names:?}");
    let junk_sha = airlock_trust::shards::sha256_hex(&std::fs::read(&junk).expect("junk"));
    let blobs = r.sb.join("registry/blobs/sha256");
    assert!(blobs.is_dir(), "{}", blobs.display());
    assert!(
        !blobs.join(&junk_sha).exists(),
        "the junk decision's bytes reached the registry"
    );
}
