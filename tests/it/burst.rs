//! Cloud burst: the data export (policy, k-anonymity, L1/L2 scans, signature) and the
//! officers' decisions on it.

use crate::helpers::{Sandbox, csv_rows};

/// The demo policy: age in four bands, the ZIP's first digit, foreign or not; k = 5.
const POLICY: &str = r#"
[export]
k = 5
sample_fraction = 0.5
seed = 7
quasi_identifiers = [
    { column = "age", bands = [30, 45, 60] },
    { column = "zip", prefix = 1 },
    { column = "is_foreign" },
]
"#;

/// Demo data, the fraud pipeline on it, a builder and an officer key and their policy.
fn setup(rows: usize) -> Sandbox {
    let sb = Sandbox::new();
    let data = sb.demo_data(rows, 11);
    sb.pipeline("p.toml", &data, &[]);
    sb.write("export.toml", POLICY);
    sb.ok(&["keygen", "--out", "keys/builder"]);
    sb.ok(&["keygen", "--out", "keys/officer"]);
    sb.write(
        "trust.toml",
        "approvals_required = 1\n[[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
         [[keys]]\nname = \"officer\"\nrole = \"officer\"\npublic_key = \"keys/officer.pub\"\n",
    );
    sb
}

fn export_args<'a>(policy: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "export",
        "p.toml",
        "--policy",
        policy,
        "--out",
        out,
        "--trust",
        "trust.toml",
        "--key",
        "keys/builder.key",
    ]
}

fn verify_json(sb: &Sandbox, dir: &str) -> (Option<i32>, serde_json::Value) {
    let out = sb.airlock(&["export", "verify", dir, "--trust", "trust.toml", "--json"]);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), doc)
}

#[test]
fn an_export_is_deidentified_k_anonymous_trainable_and_needs_an_officer() {
    let sb = setup(3000);
    sb.ok(&export_args("export.toml", "export"));
    let (code, doc) = verify_json(&sb, "export");
    assert_eq!(code, Some(4), "not approved yet: {doc}");
    let e = &doc["export"];
    assert_eq!(e["rows"]["source"], 3000);
    assert_eq!(
        e["rows"]["eligible"], 2100,
        "only the training split is eligible"
    );
    assert_eq!(e["rows"]["sampled"], 1050);
    let exported = e["rows"]["exported"].as_u64().expect("rows");
    assert!(exported > 900 && exported <= 1050, "{e}");
    assert!(e["k_achieved"].as_u64().expect("k") >= 5);
    let columns: Vec<&str> = e["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    for gone in ["full_name", "email", "card_number", "ssn", "iban", "phone"] {
        assert!(!columns.contains(&gone), "{gone} was exported");
    }
    assert!(columns.contains(&"age") && columns.contains(&"zip"));
    assert_eq!(
        e["dropped"],
        serde_json::json!(["full_name", "email", "card_number", "ssn", "iban", "phone"])
    );
    assert!(
        e["scans"]
            .as_array()
            .expect("scans")
            .iter()
            .all(|s| s["verdict"] == "pass")
    );

    // Independently of airlock's scans: no identifier value of any row (of 5 bytes or
    // more) is anywhere in what leaves.
    let (header, rows) = csv_rows(&sb.join("data.csv"));
    let exported_bytes = [
        std::fs::read(sb.join("export/data.parquet")).expect("parquet"),
        std::fs::read(sb.join("export/pipeline.toml")).expect("pipeline"),
    ]
    .concat();
    for col in [
        "full_name",
        "email",
        "card_number",
        "ssn",
        "iban",
        "phone",
        "zip",
    ] {
        let i = header.iter().position(|h| h == col).expect("column");
        for row in &rows {
            let v = row[i].as_bytes();
            assert!(
                v.len() < 5 || !exported_bytes.windows(v.len()).any(|w| w == v),
                "a {col} value is in the export"
            );
        }
    }

    // A builder key never approves; an officer does, and then it verifies.
    let out = sb.airlock(&[
        "export",
        "approve",
        "export",
        "--trust",
        "trust.toml",
        "--key",
        "keys/builder.key",
        "--name",
        "CI",
        "--reason",
        "self-approval",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sb.ok(&[
        "export",
        "approve",
        "export",
        "--trust",
        "trust.toml",
        "--key",
        "keys/officer.key",
        "--name",
        "Officer",
        "--reason",
        "k = 5, identifiers dropped",
    ]);
    let (code, doc) = verify_json(&sb, "export");
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["approved"], true);

    // The cloud side trains on it as it is.
    sb.ok(&[
        "train",
        "export/pipeline.toml",
        "--out",
        "cloud-run",
        "--no-progress",
    ]);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.join("cloud-run/training-record.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(
        record["dataset"]["files"][0]["rows"], exported,
        "{}",
        record["dataset"]
    );
}

#[test]
fn an_export_whose_generalization_keeps_identifier_values_is_refused_and_leaves_nothing() {
    let sb = setup(1000);
    // Ages are 2 digits: a prefix of 2 keeps them whole (and k = 2 holds).
    sb.write(
        "whole-age.toml",
        &POLICY
            .replace("bands = [30, 45, 60]", "prefix = 2")
            .replace("k = 5", "k = 2")
            .replace("{ column = \"zip\", prefix = 1 },", ""),
    );
    let before = sb.entries();
    let err = sb.fails(&export_args("whole-age.toml", "export"), 5);
    assert!(err.contains("L2") && err.contains("age"), "{err}");
    assert_eq!(sb.entries(), before, "nothing is left behind");
}

#[test]
fn an_export_that_cannot_reach_k_is_refused() {
    let sb = setup(1000);
    sb.write(
        "fine.toml",
        &POLICY
            .replace("k = 5", "k = 50")
            .replace("prefix = 1", "prefix = 3"),
    );
    let err = sb.fails(&export_args("fine.toml", "export"), 5);
    assert!(err.contains("k = 50"), "{err}");
    assert!(!sb.join("export").exists());
}

#[test]
fn export_policies_are_parsed_strictly() {
    let sb = setup(300);
    for (name, policy, says) in [
        (
            "raw-id.toml",
            POLICY.replace("{ column = \"zip\", prefix = 1 }", "{ column = \"zip\" }"),
            "identifier column",
        ),
        (
            "feature.toml",
            POLICY.replace(
                "{ column = \"is_foreign\" }",
                "{ column = \"is_foreign\", prefix = 1 }",
            ),
            "model input",
        ),
        (
            "unknown.toml",
            POLICY.replace("seed = 7", "seed = 7\nsuppress = false"),
            "unknown field",
        ),
        (
            "no-column.toml",
            POLICY.replace("is_foreign", "nationality"),
            "not an identifier",
        ),
        ("k1.toml", POLICY.replace("k = 5", "k = 1"), "k must be"),
    ] {
        sb.write(name, &policy);
        let err = sb.fails(&export_args(name, "export"), 3);
        assert!(err.contains(says), "{name}: {err}");
    }
}

#[test]
fn a_tampered_or_rejected_export_does_not_verify() {
    let sb = setup(3000);
    sb.ok(&export_args("export.toml", "export"));
    sb.ok(&[
        "export",
        "approve",
        "export",
        "--trust",
        "trust.toml",
        "--key",
        "keys/officer.key",
        "--name",
        "Officer",
        "--reason",
        "ok",
    ]);
    assert_eq!(verify_json(&sb, "export").0, Some(0));

    // One byte of the data changed.
    let path = sb.join("export/data.parquet");
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let out = sb.airlock(&["export", "verify", "export", "--trust", "trust.toml"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the file the builder signed"));
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).expect("write");

    // An extra file rides along.
    sb.write("export/notes.txt", "x");
    assert_eq!(verify_json(&sb, "export").0, Some(4));
    std::fs::remove_file(sb.join("export/notes.txt")).expect("rm");

    // A later rejection by the officer blocks it.
    sb.ok(&[
        "export",
        "reject",
        "export",
        "--trust",
        "trust.toml",
        "--key",
        "keys/officer.key",
        "--name",
        "Officer",
        "--reason",
        "changed my mind",
    ]);
    let (code, doc) = verify_json(&sb, "export");
    assert_eq!(code, Some(4), "{doc}");
    assert_eq!(doc["rejections"].as_array().map(Vec::len), Some(1));
}
