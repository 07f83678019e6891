//! `airlock publish` to S3 and SageMaker on a real moto server (tests/moto_server.py).

use sha2::{Digest, Sha256};

use crate::helpers::Release;
use crate::moto::{Moto, REGION};
use crate::publish::{approve, setup, stderr};

const BUCKET: &str = "airlock-releases";

/// A packaged bundle with residency allowing `regions` for the registry and SageMaker.
fn s3_setup(regions: &str) -> Release {
    let r = setup(regions);
    r.sb.write(
        "residency.toml",
        &format!("[registry]\nregions = {regions}\n\n[sagemaker]\nregions = {regions}\n"),
    );
    r
}

fn publish(r: &Release, moto: &Moto, bundle: &str, extra: &[&str]) -> std::process::Output {
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
    assert_eq!(w.len(), 2, "{w:#?}");
    let v =
        r.sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    assert!(v.contains("2 entries"), "{v}");
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
