//! `airlock pull` from file and S3 registries: the happy path, and every way a registry can
//! lie (flipped byte, swapped index, removed approval, foreign signer, rollback).

use crate::helpers::Release;
use crate::moto::{Moto, REGION};
use crate::publish::{approve, second_release, setup, stderr};

/// Two approved releases (1.0.0 in `bundle`, 1.1.0 in `bundle2`), published to `to`.
fn two_releases(to: &str, env: &[(String, String)]) -> Release {
    let r = setup("[\"local\", \"eu-west-1\"]");
    approve(&r);
    second_release(&r, "bundle2");
    for b in ["bundle", "bundle2"] {
        let out = r.sb.airlock_env(
            &[
                "publish",
                b,
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
            ],
            env,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    r
}

fn pull(
    r: &Release,
    uri: &str,
    out: &str,
    env: &[(String, String)],
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["pull", uri, "--trust", "trust.toml", "--out", out];
    args.extend_from_slice(extra);
    r.sb.airlock_env(&args, env)
}

fn refused(o: &std::process::Output, why: &str) {
    assert_eq!(o.status.code(), Some(4), "{}", stderr(o));
    assert!(stderr(o).contains(why), "expected {why:?}: {}", stderr(o));
}

fn version_in(r: &Release, dir: &str) -> String {
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.sb.join(dir).join("statement.json")).expect("statement"),
    )
    .expect("json");
    st["predicate"]["model_version"]
        .as_str()
        .expect("version")
        .to_owned()
}

/// Every refusal leaves `dir` as it was: absent, or holding what it held.
fn no_model(r: &Release, dir: &str) {
    assert!(!r.sb.join(dir).exists(), "{dir} must not exist");
    let leftovers: Vec<_> = std::fs::read_dir(r.sb.path())
        .expect("sandbox")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".pull-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The refusals common to both registries. `tamper(key, edit)` rewrites an object.
fn refusals(
    r: &Release,
    base: &str,
    env: &[(String, String)],
    get: &dyn Fn(&str) -> Vec<u8>,
    put: &dyn Fn(&str, Vec<u8>),
) {
    let uri1 = format!("{base}/models/fraud-detector@1.0.0");
    let idx1 = "models/fraud-detector/1.0.0/release.json";
    let idx2 = "models/fraud-detector/1.1.0/release.json";
    let index1 = get(idx1);
    let parsed: serde_json::Value = serde_json::from_slice(&index1).expect("index");
    let model_key = format!(
        "blobs/sha256/{}",
        parsed["files"]["model.safetensors"].as_str().expect("sha")
    );

    // A byte flipped in the model blob.
    let model = get(&model_key);
    let mut flipped = model.clone();
    let at = flipped.len() - 1000;
    flipped[at] ^= 0x01;
    put(&model_key, flipped);
    refused(&pull(r, &uri1, "flip", env, &[]), "does not verify");
    no_model(r, "flip");
    put(&model_key, model);

    // 1.1.0's index filed as 1.0.0's.
    put(idx1, get(idx2));
    refused(
        &pull(r, &uri1, "swap", env, &[]),
        "describes fraud-detector 1.1.0",
    );
    no_model(r, "swap");
    let mut forged: serde_json::Value = serde_json::from_slice(&get(idx2)).expect("index");
    forged["version"] = "1.0.0".into();
    put(idx1, serde_json::to_vec(&forged).expect("json"));
    refused(
        &pull(r, &uri1, "swap", env, &[]),
        "signed statement is for fraud-detector 1.1.0",
    );
    no_model(r, "swap");

    // The approval removed from the index.
    let mut stripped = parsed.clone();
    stripped["files"]
        .as_object_mut()
        .expect("files")
        .retain(|k, _| !k.starts_with("approvals/"));
    put(idx1, serde_json::to_vec(&stripped).expect("json"));
    // Refused before the model is fetched: as an index that no longer names the files its
    // `start` entry recorded, or (where the entry named none) for want of the approval.
    let o = pull(r, &uri1, "unapproved", env, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not the start of this release's publish; nothing was downloaded")
            || stderr(&o)
                .contains("0 of 1 required officer approvals; the model was not downloaded"),
        "{}",
        stderr(&o)
    );
    no_model(r, "unapproved");
    put(idx1, index1.clone());

    // An index whose audit entry is not in the registry's copy of the log.
    let mut unlogged = parsed.clone();
    unlogged["audit"]["seq"] = 999.into();
    put(idx1, serde_json::to_vec(&unlogged).expect("json"));
    refused(
        &pull(r, &uri1, "unlogged", env, &[]),
        "the publish was not recorded; nothing was downloaded",
    );
    no_model(r, "unlogged");
    put(idx1, index1);

    // A builder outside the trust policy.
    r.sb.ok(&["keygen", "--out", "keys/other"]);
    let trust = std::fs::read_to_string(r.sb.join("trust.toml")).expect("trust");
    r.sb.write(
        "trust-other.toml",
        &trust.replace("keys/builder.pub", "keys/other.pub"),
    );
    let o = r.sb.airlock_env(
        &[
            "pull",
            &uri1,
            "--trust",
            "trust-other.toml",
            "--out",
            "foreign",
        ],
        env,
    );
    refused(&o, "does not verify");
    no_model(r, "foreign");

    // The newest approved release without a version; then no rollback without the flag.
    let out = pull(
        r,
        &format!("{base}/models/fraud-detector"),
        "model",
        env,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(version_in(r, "model"), "1.1.0");
    r.sb.ok(&[
        "verify",
        "model",
        "--trust",
        "trust.toml",
        "--require-approvals",
    ]);
    refused(&pull(r, &uri1, "model", env, &[]), "--allow-downgrade");
    assert_eq!(
        version_in(r, "model"),
        "1.1.0",
        "a refused pull leaves DIR as it was"
    );
    let out = pull(r, &uri1, "model", env, &["--allow-downgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(version_in(r, "model"), "1.0.0");
    for f in ["model.safetensors", "statement.json", "statement.dsse.json"] {
        assert_eq!(
            std::fs::read(r.sb.join("model").join(f)).expect("pulled"),
            std::fs::read(r.sb.join("bundle").join(f)).expect("bundle"),
            "{f}"
        );
    }
}

#[test]
fn pull_from_a_file_registry_verifies_everything_before_installing() {
    let sb_reg = tempfile::tempdir().expect("dir");
    let base = format!("file://{}", sb_reg.path().display());
    let r = two_releases(&base, &[]);
    let root = sb_reg.path().to_owned();
    refusals(
        &r,
        &base,
        &[],
        &|k| std::fs::read(root.join(k)).expect("read registry file"),
        &|k, b| std::fs::write(root.join(k), b).expect("write registry file"),
    );
    // A missing release is a clear error, not a refusal.
    let o = pull(
        &r,
        &format!("{base}/models/fraud-detector@9.9.9"),
        "none",
        &[],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    no_model(&r, "none");
}

#[test]
fn pull_from_s3_verifies_everything_before_installing() {
    let moto = Moto::start();
    moto.create_bucket("airlock-releases", REGION);
    let env = moto.env();
    let base = "s3://airlock-releases/prod";
    let r = two_releases(base, &env);
    refusals(
        &r,
        base,
        &env,
        &|k| {
            moto.get("airlock-releases", &format!("prod/{k}"))
                .expect("object")
        },
        &|k, b| moto.put("airlock-releases", &format!("prod/{k}"), b),
    );
}
