//! `airlock publish` to S3 and SageMaker on a real moto server (tests/moto_server.py).

use sha2::{Digest, Sha256};

use crate::helpers::Release;
use crate::moto::{Moto, REGION};
use crate::publish::{approve, second_release, setup, stderr};

pub const BUCKET: &str = "airlock-releases";

/// A packaged bundle with residency allowing `regions` for the registry and SageMaker.
pub fn s3_setup(regions: &str) -> Release {
    let r = setup(regions);
    r.sb.write(
        "residency.toml",
        &format!("[registry]\nregions = {regions}\n\n[sagemaker]\nregions = {regions}\n"),
    );
    r
}

pub fn publish(r: &Release, moto: &Moto, bundle: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "publish",
        bundle,
        "--to",
        "s3://airlock-releases/prod",
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        "audit.log",
        "--key",
        "keys/publisher.key",
    ];
    args.extend_from_slice(extra);
    r.sb.airlock_env(&args, &moto.env())
}

fn writes(requests: &[(String, String)]) -> Vec<&(String, String)> {
    requests
        .iter()
        .filter(|(m, _)| m == "PUT" || m == "POST" || m == "DELETE")
        .collect()
}

#[test]
fn s3_publish_puts_every_object_and_republishing_uploads_nothing() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET, REGION);
    let r = s3_setup("[\"eu-west-1\"]");
    approve(&r);
    let out = publish(&r, &moto, "bundle", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploaded 7 blobs"),
        "{}",
        stderr(&out)
    );

    let index = moto
        .get(BUCKET, "prod/models/fraud-detector/1.0.0/release.json")
        .expect("the release index");
    let index: serde_json::Value = serde_json::from_slice(&index).expect("json");
    let files = index["files"].as_object().expect("files");
    assert_eq!(files.len(), 7);
    for (name, sha) in files {
        let sha = sha.as_str().expect("sha");
        let blob = moto
            .get(BUCKET, &format!("prod/blobs/sha256/{sha}"))
            .unwrap_or_else(|| panic!("blob of {name}"));
        assert_eq!(hex::encode(Sha256::digest(&blob)), sha, "{name}");
        let local = std::fs::read(r.sb.join("bundle").join(name)).expect("bundle file");
        assert_eq!(blob, local, "{name}");
    }
    let keys: Vec<String> = moto.list(BUCKET).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&"prod/audit/audit.log".to_owned()),
        "{keys:?}"
    );
    assert!(keys.contains(&"prod/audit/audit.log.head.dsse.json".to_owned()));

    // Again: the server sees no write but the audit log's own copy.
    moto.start_recording();
    let out = publish(&r, &moto, "bundle", &[]);
    let requests = moto.stop_recording();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploaded 0 blobs (0 bytes), 7 already present"),
        "{}",
        stderr(&out)
    );
    assert!(!requests.is_empty(), "the recorder saw nothing");
    let w = writes(&requests);
    assert!(
        w.iter().all(|(_, url)| url.contains("/prod/audit/")),
        "only the audit log may be written again: {w:#?}"
    );
    // The log, its head, and its new checkpoint (into the history and as the latest).
    assert_eq!(w.len(), 4, "{w:#?}");
    assert!(
        w.iter()
            .any(|(_, url)| url.contains("/prod/audit/audit.log.checkpoints/")),
        "{w:#?}"
    );
    let v =
        r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    // Each publish: its `start` entry before the first byte, then its outcome.
    assert!(v.contains("4 entries"), "{v}");
}

#[test]
fn s3_bucket_in_a_disallowed_region_gets_no_put_and_the_refusal_is_logged() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET, "us-west-2");
    let r = s3_setup("[\"eu-west-1\", \"eu-central-1\"]");
    approve(&r);
    moto.start_recording();
    let out = publish(&r, &moto, "bundle", &[]);
    let requests = moto.stop_recording();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("region \"us-west-2\""),
        "{}",
        stderr(&out)
    );
    assert!(
        requests
            .iter()
            .any(|(m, u)| m == "GET" && u.contains("location")),
        "the bucket was asked where it is: {requests:#?}"
    );
    assert!(writes(&requests).is_empty(), "{requests:#?}");
    assert!(moto.list(BUCKET).is_empty());
    let log = std::fs::read_to_string(r.sb.join("audit.log")).expect("log");
    assert!(
        log.contains("\"refuse\"") && log.contains("us-west-2"),
        "{log}"
    );
    r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
}

const IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airlock-serve:1";
const ROLE: &str = "arn:aws:iam::123456789012:role/airlock-serving";

pub fn deploy_args() -> Vec<&'static str> {
    vec![
        "--deploy",
        "fraud-scoring",
        "--image",
        IMAGE,
        "--role",
        ROLE,
        "--deploy-timeout",
        "60",
    ]
}

#[test]
fn sagemaker_gets_approved_packages_only_and_the_endpoint_follows_each_release() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET, REGION);
    let r = s3_setup("[\"eu-west-1\"]");
    let sm = moto.sagemaker();

    // Not approved: refused, and SageMaker never hears of it.
    let out = publish(&r, &moto, "bundle", &deploy_args());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let groups = moto
        .block(sm.list_model_package_groups().send())
        .expect("list groups");
    assert!(groups.model_package_group_summary_list().is_empty());
    assert!(moto.list(BUCKET).is_empty());

    // Approved: published, registered Approved with the statement digest, deployed.
    approve(&r);
    let out = publish(&r, &moto, "bundle", &deploy_args());
    assert!(out.status.success(), "{}", stderr(&out));
    let pkgs = moto
        .block(
            sm.list_model_packages()
                .model_package_group_name("fraud-detector")
                .send(),
        )
        .expect("list packages");
    assert_eq!(pkgs.model_package_summary_list().len(), 1);
    let arn = pkgs.model_package_summary_list()[0]
        .model_package_arn()
        .expect("arn")
        .to_owned();
    let d = moto
        .block(sm.describe_model_package().model_package_name(&arn).send())
        .expect("describe package");
    assert_eq!(
        d.model_approval_status().map(|s| s.as_str()),
        Some("Approved")
    );
    let statement = std::fs::read(r.sb.join("bundle/statement.json")).expect("statement");
    let meta = d.customer_metadata_properties().expect("metadata");
    assert_eq!(
        meta.get("airlock:statement-sha256").map(String::as_str),
        Some(hex::encode(Sha256::digest(&statement)).as_str())
    );
    let alice = std::fs::read_dir(r.sb.join("bundle/approvals"))
        .expect("approvals")
        .next()
        .expect("one approval")
        .expect("entry")
        .file_name()
        .to_string_lossy()
        .trim_end_matches(".dsse.json")
        .to_owned();
    assert_eq!(meta.get("airlock:approver-1"), Some(&alice), "{meta:?}");
    let ep = moto
        .block(sm.describe_endpoint().endpoint_name("fraud-scoring").send())
        .expect("endpoint");
    assert_eq!(ep.endpoint_status().map(|s| s.as_str()), Some("InService"));
    let first_config = ep.endpoint_config_name().expect("config").to_owned();
    // The model's data is the bundle, by file name, in the registry's bucket.
    let keys: Vec<String> = moto.list(BUCKET).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&"prod/models/fraud-detector/1.0.0/bundle/model.safetensors".to_owned()),
        "{keys:?}"
    );

    // A second release updates the same endpoint, and waits for it.
    second_release(&r, "bundle2");
    let out = publish(&r, &moto, "bundle2", &deploy_args());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("updating endpoint fraud-scoring"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("is Updating; waiting"),
        "{}",
        stderr(&out)
    );
    let ep = moto
        .block(sm.describe_endpoint().endpoint_name("fraud-scoring").send())
        .expect("endpoint");
    assert_eq!(ep.endpoint_status().map(|s| s.as_str()), Some("InService"));
    assert_ne!(ep.endpoint_config_name(), Some(first_config.as_str()));
    let pkgs = moto
        .block(
            sm.list_model_packages()
                .model_package_group_name("fraud-detector")
                .send(),
        )
        .expect("list packages");
    assert_eq!(pkgs.model_package_summary_list().len(), 2);

    // Refusal, publish, registration and deploy of each release, all in a log that verifies.
    let v =
        r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    // The refusal; then per release a `start` entry before the first byte to each of the
    // registry, the model package group and the endpoint, each followed by its outcome.
    assert!(v.contains("13 entries"), "{v}");
    let table = r.sb.ok(&["audit", "show", "audit.log"]);
    assert_eq!(table.matches("deploy").count(), 2, "{table}");
}

/// An approved release whose model is about 204 MiB (a 12→7300→7300→1 MLP, one epoch).
fn big_release() -> Release {
    let r = Release::new(
        400,
        &[
            ("hidden = [64, 32]", "hidden = [7300, 7300]"),
            ("epochs = 12", "epochs = 1"),
        ],
    );
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
    r.sb.write("residency.toml", "[registry]\nregions = [\"eu-west-1\"]\n");
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    approve(&r);
    let len = std::fs::metadata(r.sb.join("bundle/model.safetensors"))
        .expect("model")
        .len();
    assert!(len >= 200 << 20, "the model is only {len} bytes");
    r
}

/// Slow, small parts, so that the upload is still going when something is killed.
const SLOW: [&str; 4] = ["--part-size", "5", "--upload-concurrency", "2"];

fn spawn_publish(r: &Release, moto: &Moto) -> std::process::Child {
    let mut args = vec![
        "publish",
        "bundle",
        "--to",
        "s3://airlock-releases/prod",
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        "audit.log",
        "--key",
        "keys/publisher.key",
    ];
    args.extend_from_slice(&SLOW);
    std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(&args)
        .current_dir(r.sb.path())
        .envs(moto.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start airlock publish")
}

/// Wait until the server holds an unfinished multipart upload with at least `parts` parts.
fn wait_for_parts(moto: &Moto, child: &mut std::process::Child, parts: usize) -> usize {
    let s3 = moto.s3(REGION);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let n = moto.block(async {
            let up = match s3.list_multipart_uploads().bucket(BUCKET).send().await {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("list uploads: {e:?}");
                    return None;
                }
            };
            let u = up.uploads().first()?;
            let parts = s3
                .list_parts()
                .bucket(BUCKET)
                .key(u.key()?)
                .upload_id(u.upload_id()?)
                .send()
                .await;
            let parts = match parts {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("list parts: {e:?}");
                    return None;
                }
            };
            Some(parts.parts().len())
        });
        if let Some(n) = n
            && n >= parts
        {
            return n;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("airlock publish ended ({status}) before {parts} parts were stored: {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn index_visible(moto: &Moto) -> bool {
    moto.get(BUCKET, "prod/models/fraud-detector/1.0.0/release.json")
        .is_some()
}

/// The published model reads back with the signed digest.
fn assert_model_published(r: &Release, moto: &Moto) {
    let index: serde_json::Value = serde_json::from_slice(
        &moto
            .get(BUCKET, "prod/models/fraud-detector/1.0.0/release.json")
            .expect("index"),
    )
    .expect("json");
    let sha = index["files"]["model.safetensors"]
        .as_str()
        .expect("model sha")
        .to_owned();
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.sb.join("bundle/statement.json")).expect("st"))
            .expect("json");
    let signed = statement["subject"]
        .as_array()
        .expect("subjects")
        .iter()
        .find(|s| s["name"] == "model.safetensors")
        .expect("model subject")["digest"]["sha256"]
        .as_str()
        .expect("digest")
        .to_owned();
    assert_eq!(sha, signed);
    let blob = moto
        .get(BUCKET, &format!("prod/blobs/sha256/{sha}"))
        .expect("model blob");
    assert_eq!(hex::encode(Sha256::digest(&blob)), sha);
}

#[test]
fn interrupted_200_mib_uploads_leave_no_index_and_the_rerun_completes() {
    let r = big_release();
    let mut moto = Moto::start();
    moto.create_bucket(BUCKET, REGION);

    // 1. The publisher dies mid-upload: nothing is visible, and the rerun resumes.
    let mut child = spawn_publish(&r, &moto);
    let stored = wait_for_parts(&moto, &mut child, 4);
    child.kill().expect("kill airlock");
    let _ = child.wait();
    assert!(
        !index_visible(&moto),
        "a half-done publish must not be visible"
    );
    let out = r.sb.airlock_env(
        &[
            &[
                "publish",
                "bundle",
                "--to",
                "s3://airlock-releases/prod",
                "--trust",
                "trust.toml",
                "--residency",
                "residency.toml",
                "--audit-log",
                "audit.log",
                "--key",
                "keys/publisher.key",
            ][..],
            &SLOW[..],
        ]
        .concat(),
        &moto.env(),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming an interrupted upload"), "{err}");
    let sent: u64 = err
        .split("blobs (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("bytes sent");
    let len = std::fs::metadata(r.sb.join("bundle/model.safetensors"))
        .expect("model")
        .len();
    assert!(
        sent <= len - (stored as u64 - 2) * (5 << 20),
        "the parts already stored ({stored}) must not be sent again: sent {sent} of {len}"
    );
    assert_model_published(&r, &moto);

    // 2. The server dies mid-upload: the publish fails cleanly and says so in the log; on a
    //    server that comes back (empty: moto keeps nothing), the rerun completes.
    let port = moto.port;
    moto.kill();
    let mut moto = Moto::start_on(port);
    moto.create_bucket(BUCKET, REGION);
    let mut child = spawn_publish(&r, &moto);
    wait_for_parts(&moto, &mut child, 4);
    moto.kill();
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("model.safetensors") || err.contains("blobs/sha256"),
        "{err}"
    );
    let log = std::fs::read_to_string(r.sb.join("audit.log")).expect("log");
    assert!(log.contains("no release index written"), "{log}");
    let moto = Moto::start_on(port);
    moto.create_bucket(BUCKET, REGION);
    assert!(!index_visible(&moto));
    let out = publish(&r, &moto, "bundle", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_model_published(&r, &moto);
    r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
}
