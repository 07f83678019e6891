//! `airlock sbom`: the CycloneDX 1.6 ML-BOM of a packaged, approved release, checked with
//! the official schema (cyclonedx-python-lib's strict validator), for the training data it
//! must never carry, for reproducibility, and refused on a bundle that does not verify.

use std::path::Path;
use std::process::Command;

use airlock_testkit::Kit;

use crate::helpers::{Release, Sandbox, csv_rows, test_python};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Validate `bom` with tests/independent/check_cyclonedx.py; panics with its errors.
fn validate(bom: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/check_cyclonedx.py");
    let out = Command::new(test_python())
        .arg(&script)
        .arg(bom)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "not valid CycloneDX 1.6:\n{}",
        stderr(&out)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("valid CycloneDX 1.6"), "{said}");
}

fn sha256_file(p: &Path) -> String {
    airlock_trust::shards::sha256_hex(&std::fs::read(p).expect("read"))
}

#[test]
fn sbom_of_a_packaged_release_validates_names_its_data_by_digest_only_and_is_reproducible() {
    let r = Release::new(2000, &[("epochs = 12", "epochs = 2")]);
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    r.sb.ok(&[
        "approve",
        "bundle",
        "--trust",
        "trust.toml",
        "--key",
        "keys/officer.key",
        "--name",
        "Officer",
        "--reason",
        "reviewed the card and the leak report",
    ]);
    r.sb.ok(&["sbom", "bundle", "--trust", "trust.toml", "-o", "bom.json"]);
    let bom_path = r.sb.join("bom.json");
    validate(&bom_path);

    // Two runs, file and standard output: the same bytes.
    let written = std::fs::read(&bom_path).expect("read bom");
    let printed = r.sb.ok(&["sbom", "bundle", "--trust", "trust.toml"]);
    assert_eq!(printed.as_bytes(), written.as_slice());
    r.sb.ok(&[
        "sbom",
        "bundle",
        "--trust",
        "trust.toml",
        "-o",
        "again.json",
    ]);
    assert_eq!(
        std::fs::read(r.sb.join("again.json")).expect("read"),
        written
    );

    let text = String::from_utf8(written.clone()).expect("utf-8");
    let bom: serde_json::Value = serde_json::from_slice(&written).expect("json");
    // The training data, by its file name and digest, linked from the model.
    let data_sha = sha256_file(&r.data);
    let data = &bom["components"][0];
    assert_eq!(data["type"], "data");
    assert_eq!(data["name"], "data.csv");
    assert_eq!(data["hashes"][0]["content"], data_sha.as_str());
    let dataset_ref = format!("dataset:sha256:{data_sha}");
    assert_eq!(data["bom-ref"], dataset_ref.as_str());
    let model = &bom["metadata"]["component"];
    assert_eq!(model["type"], "machine-learning-model");
    assert_eq!(
        bom["dependencies"][0]["dependsOn"],
        serde_json::json!([dataset_ref])
    );
    assert_eq!(
        model["hashes"][0]["content"],
        sha256_file(&r.sb.join("bundle/model.safetensors")).as_str()
    );
    // The release's build time (its signed provenance), not the time the BOM was written.
    let env: airlock_schemas::Envelope = serde_json::from_slice(
        &std::fs::read(r.sb.join("bundle/provenance.dsse.json")).expect("read"),
    )
    .expect("dsse");
    use base64::Engine as _;
    let prov: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(&env.payload)
            .expect("base64"),
    )
    .expect("provenance");
    assert_eq!(
        bom["metadata"]["timestamp"],
        prov["predicate"]["runDetails"]["metadata"]["finishedOn"]
    );
    let props: Vec<(&str, &str)> = model["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name"),
                p["value"].as_str().expect("value"),
            )
        })
        .collect();
    let stmt_sha = sha256_file(&r.sb.join("bundle/statement.json"));
    for want in [
        ("airlock:statement:sha256", stmt_sha.as_str()),
        ("airlock:leak:verdict", "pass"),
        ("airlock:leak:L2", "pass"),
        ("airlock:signature:builder:name", "ci"),
        ("airlock:approvals:status", "approved"),
        ("airlock:approval:name", "officer"),
    ] {
        assert!(props.contains(&want), "{want:?} not in {props:?}");
    }
    assert_eq!(
        bom["annotations"][0]["annotator"]["individual"]["name"],
        "officer"
    );

    // Not one identifier of the training data, nor the path it was read from.
    let (header, rows) = csv_rows(&r.data);
    let identifiers = ["full_name", "email", "card_number", "ssn", "iban", "phone"];
    let mut checked = 0;
    for col in identifiers {
        let i = header
            .iter()
            .position(|h| h == col)
            .unwrap_or_else(|| panic!("no column {col}"));
        for row in &rows {
            assert!(
                !text.contains(&row[i]),
                "{col} value of the training data in the BOM"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, identifiers.len() * rows.len());
    for row in rows.iter().take(50) {
        let record = row.join(",");
        assert!(!text.contains(&record), "a training record in the BOM");
    }
    let data_dir = r.data.parent().expect("dir").to_str().expect("utf-8");
    assert!(
        !text.contains(data_dir),
        "the data's on-prem path in the BOM"
    );

    // A byte changed in a signed document: refused, the BOM written before left as it was.
    let card = r.sb.join("bundle/model-card.json");
    let mut bytes = std::fs::read(&card).expect("read card");
    let at = bytes.iter().position(|&b| b == b'1').expect("a digit");
    bytes[at] = b'2';
    std::fs::write(&card, bytes).expect("write card");
    let err = r.sb.fails(
        &["sbom", "bundle", "--trust", "trust.toml", "-o", "bom.json"],
        4,
    );
    assert!(err.contains("FAIL"), "{err}");
    assert_eq!(std::fs::read(&bom_path).expect("read"), written);
}

#[test]
fn a_tampered_bundle_gets_no_bom_and_a_trust_policy_is_required() {
    let sb = Sandbox::new();
    let kit = Kit::builder().build_in(sb.path());
    kit.flip_byte("model.safetensors", None);
    let out = sb.airlock(&["sbom", "bundle", "--trust", "trust.toml", "-o", "bom.json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    assert!(!sb.join("bom.json").exists());
    // Nothing on standard output either, and no temporary file left behind.
    let out = sb.airlock(&["sbom", "bundle", "--trust", "trust.toml"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(sb.entries(), ["bundle", "keys", "trust.toml"]);
    // Without a trust policy there is no key to check the signature with: a usage error.
    let err = sb.fails(&["sbom", "bundle"], 2);
    assert!(err.contains("--trust"), "{err}");
}

#[test]
fn a_kit_release_bom_validates_against_the_official_schema() {
    // A second shape (no decision yet, a card with the evaluation), validated too.
    let sb = Sandbox::new();
    let _kit = Kit::builder().build_in(sb.path());
    sb.ok(&["sbom", "bundle", "--trust", "trust.toml", "-o", "bom.json"]);
    validate(&sb.join("bom.json"));
}
