//! The mapping, on test-kit bundles (signed as `airlock package` signs, without training).

use airlock_testkit::Kit;
use serde_json::Value;

use super::*;

fn options(kit: &Kit) -> Options {
    Options {
        bundle: kit.bundle.clone(),
        trust: kit.trust_file.clone(),
        threads: 2,
    }
}

fn bom_of(kit: &Kit) -> Value {
    let bytes = write_bom(&options(kit)).expect("the kit's bundle verifies");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Every `(name, value)` property of `v`, in order.
fn props(v: &Value) -> Vec<(String, String)> {
    v["properties"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn prop<'a>(props: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    props
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_serial_number_is_a_uuid_v8_of_the_statement_digest() {
    let sha = "10081d6f473ae29280e4d4e55507b3488e30d47e9aefa57cea0eb95f3a1e1638";
    assert_eq!(
        mapping::serial_number(sha),
        "urn:uuid:10081d6f-473a-8292-80e4-d4e55507b348"
    );
    // The variant's two top bits are 10 whatever the digest's nibble was.
    for (nibble, want) in [('0', '8'), ('7', 'b'), ('c', '8'), ('f', 'b')] {
        let mut s = "ab".repeat(32);
        s.replace_range(16..17, &nibble.to_string());
        let serial = mapping::serial_number(&s);
        assert_eq!(serial.chars().nth(9 + 19), Some(want), "{serial}");
        assert_eq!(serial.chars().nth(9 + 14), Some('8'), "{serial}");
    }
}

#[test]
fn the_model_its_files_signer_leak_verdict_and_approvals_are_mapped() {
    let kit = Kit::builder().build();
    kit.approve("alice");
    let bom = bom_of(&kit);
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.6");
    let v = kit.verify();
    let statement_sha = sha256_hex(&v.statement_bytes);
    assert_eq!(bom["serialNumber"], mapping::serial_number(&statement_sha));
    let model = &bom["metadata"]["component"];
    assert_eq!(model["type"], "machine-learning-model");
    assert_eq!(model["bom-ref"], "model:fraud-detector@1.0.0");
    assert_eq!(model["name"], "fraud-detector");
    assert_eq!(model["version"], "1.0.0");
    assert_eq!(
        model["hashes"],
        serde_json::json!([{"alg": "SHA-256", "content": kit.model_sha256()}])
    );
    let tools = &bom["metadata"]["tools"]["components"][0];
    assert_eq!(tools["name"], "airlock");
    assert_eq!(tools["version"], env!("CARGO_PKG_VERSION"));

    // Every file of the bundle, with the digest verification computed.
    let files: Vec<(String, String)> = model["components"]
        .as_array()
        .expect("files")
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "file");
            (
                c["name"].as_str().expect("name").to_owned(),
                c["hashes"][0]["content"].as_str().expect("sha").to_owned(),
            )
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "leak-report.json",
            "model-card.json",
            "model.safetensors",
            "provenance.dsse.json",
            "statement.dsse.json",
            "statement.json"
        ]
    );
    for (name, sha) in &files {
        let bytes = std::fs::read(kit.bundle.join(name)).expect("read");
        assert_eq!(&sha256_hex(&bytes), sha, "{name}");
    }

    let p = props(model);
    assert_eq!(
        prop(&p, "airlock:statement:sha256"),
        [statement_sha.as_str()]
    );
    assert_eq!(
        prop(&p, "airlock:signature:builder:key-id"),
        [kit.key_id("builder").as_str()]
    );
    assert_eq!(prop(&p, "airlock:signature:builder:name"), ["ci"]);
    assert_eq!(prop(&p, "airlock:leak:verdict"), ["pass"]);
    for l in ["L0", "L1", "L2", "L3", "L4"] {
        assert_eq!(prop(&p, &format!("airlock:leak:{l}")), ["pass"], "{l}");
    }
    assert_eq!(prop(&p, "airlock:approvals:required"), ["1"]);
    assert_eq!(prop(&p, "airlock:approvals:counted"), ["1"]);
    assert_eq!(prop(&p, "airlock:approvals:status"), ["approved"]);
    assert_eq!(
        prop(&p, "airlock:approval:key-id"),
        [kit.key_id("alice").as_str()]
    );
    assert_eq!(prop(&p, "airlock:approval:name"), ["alice"]);

    // The decision as an annotation by the officer, and its envelope by digest.
    let ann = &bom["annotations"][0];
    assert_eq!(ann["annotator"]["individual"]["name"], "alice");
    assert_eq!(
        ann["subjects"],
        serde_json::json!(["model:fraud-detector@1.0.0"])
    );
    let refs = model["externalReferences"].as_array().expect("refs");
    let decision = format!("approvals/{}.dsse.json", kit.key_id("alice"));
    let r = refs
        .iter()
        .find(|r| r["url"] == decision.as_str())
        .expect("the decision is referenced");
    assert_eq!(r["type"], "attestation");
    assert_eq!(
        r["hashes"][0]["content"],
        sha256_hex(&std::fs::read(kit.bundle.join(&decision)).expect("read"))
    );
}

#[test]
fn the_model_card_carries_task_architecture_io_metrics_and_considerations() {
    let kit = Kit::builder().build();
    let bom = bom_of(&kit);
    let card = &bom["metadata"]["component"]["modelCard"];
    let params = &card["modelParameters"];
    assert_eq!(params["approach"]["type"], "supervised");
    assert_eq!(params["task"], "binary-classification");
    assert_eq!(params["architectureFamily"], "multilayer perceptron");
    assert_eq!(
        params["modelArchitecture"],
        "mlp: dense layers [12, 64, 32, 1], relu"
    );
    let inputs = params["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 12);
    assert_eq!(inputs[0]["format"], "amount: float32");
    assert!(
        params["outputs"][0]["format"]
            .as_str()
            .expect("output")
            .starts_with("fraud: probability of class \"1\" (sigmoid)"),
        "{}",
        params["outputs"]
    );
    let metrics = card["quantitativeAnalysis"]["performanceMetrics"]
        .as_array()
        .expect("metrics");
    let roc = metrics
        .iter()
        .find(|m| m["type"] == "roc_auc")
        .expect("roc_auc");
    let written: airlock_schemas::ModelCard =
        serde_json::from_slice(&std::fs::read(kit.bundle.join(MODEL_CARD_FILE)).expect("read"))
            .expect("card");
    let want = written.metrics.binary().expect("binary").roc_auc;
    assert_eq!(roc["value"], format!("{want}"));
    assert!(
        roc["slice"]
            .as_str()
            .expect("slice")
            .starts_with("holdout, ")
    );
    let c = &card["considerations"];
    let leak = c["ethicalConsiderations"][0]["mitigationStrategy"]
        .as_str()
        .expect("leak");
    assert!(leak.contains("L0 structure pass"), "{leak}");
    assert!(leak.contains("L3 membership-inference pass"), "{leak}");
    // No approval yet: the BOM says so rather than refusing.
    let p = props(&bom["metadata"]["component"]);
    assert_eq!(prop(&p, "airlock:approvals:status"), ["pending"]);
    assert!(bom.get("annotations").is_none(), "{bom}");
}

#[test]
fn datasets_are_named_by_digest_and_linked_from_the_model() {
    let kit = Kit::builder().build();
    let bom = bom_of(&kit);
    // The kit's card records its data file (as a packaged card does), with its rows.
    let card: airlock_schemas::ModelCard =
        serde_json::from_slice(&std::fs::read(kit.bundle.join(MODEL_CARD_FILE)).expect("read"))
            .expect("card");
    let data = card.configuration.expect("configuration").data;
    assert!(!data.is_empty());
    let comps = bom["components"].as_array().expect("components");
    assert_eq!(comps.len(), data.len());
    for (c, d) in comps.iter().zip(&data) {
        let r = format!("dataset:sha256:{}", d.sha256);
        assert_eq!(c["type"], "data");
        assert_eq!(c["bom-ref"], r.as_str());
        assert_eq!(c["name"], d.name.as_str());
        assert_eq!(c["hashes"][0]["content"], d.sha256.as_str());
        assert_eq!(c["data"][0]["type"], "dataset");
        let p = props(c);
        assert_eq!(prop(&p, "airlock:data:rows"), [d.rows.to_string().as_str()]);
        // Described, never carried: no contents, no URL to the data.
        assert!(c["data"][0].get("contents").is_none(), "{c}");
    }
    let refs: Vec<String> = data
        .iter()
        .map(|d| format!("dataset:sha256:{}", d.sha256))
        .collect();
    assert_eq!(
        bom["dependencies"][0],
        serde_json::json!({"ref": "model:fraud-detector@1.0.0", "dependsOn": refs})
    );
    assert_eq!(
        bom["metadata"]["component"]["modelCard"]["modelParameters"]["datasets"],
        Value::Array(refs.iter().map(|r| serde_json::json!({"ref": r})).collect())
    );
}

#[test]
fn the_timestamp_is_the_signed_build_time_and_two_runs_give_the_same_bytes() {
    let at = time::macros::datetime!(2026-03-04 05:06:07 UTC);
    let kit = Kit::builder().finished_on(at).build();
    kit.approve("alice");
    let a = write_bom(&options(&kit)).expect("verifies");
    let b = write_bom(&options(&kit)).expect("verifies");
    assert_eq!(a, b);
    let bom: Value = serde_json::from_slice(&a).expect("json");
    assert_eq!(bom["metadata"]["timestamp"], "2026-03-04T05:06:07Z");
}

#[test]
fn a_bundle_that_does_not_verify_gets_no_bom() {
    let kit = Kit::builder().build();
    kit.flip_byte(airlock_trust::MODEL_FILE, None);
    match write_bom(&options(&kit)) {
        Err(SbomError::DoesNotVerify { checks, .. }) => {
            assert!(checks.iter().any(|c| !c.ok), "{checks:?}");
        }
        other => panic!("expected DoesNotVerify, got {other:?}"),
    }
    let failing = Kit::builder().failing_layer("L2").build();
    assert!(matches!(
        write_bom(&options(&failing)),
        Err(SbomError::DoesNotVerify { .. })
    ));
    let mut opts = options(&kit);
    opts.bundle = kit.root().join("nothing-here");
    assert!(matches!(write_bom(&opts), Err(SbomError::NotABundle(_))));
}
