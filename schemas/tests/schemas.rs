//! The checked-in JSON Schemas must match the Rust types.

use std::path::PathBuf;

#[test]
fn checked_in_json_schemas_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var_os("AIRLOCK_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (stem, schema) in airlock_schemas::json_schemas() {
        let path = dir.join(format!("{stem}.schema.json"));
        let want = serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n";
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::write(&path, &want).expect("write schema");
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schemas (run `make schemas` and commit the result): {stale:?}"
    );
}

#[test]
fn pipeline_rejects_unknown_keys() {
    let text = include_str!("../../pipelines/fraud-detector.toml")
        .replace("[training]", "[training]\nlearning_rat = 0.1");
    let err = airlock_schemas::PipelineSpec::from_toml_str(&text, "p.toml".as_ref())
        .expect_err("unknown key must be refused");
    let msg = err.to_string();
    assert!(msg.contains("learning_rat"), "{msg}");
}

#[test]
fn shipped_pipeline_is_valid() {
    let text = include_str!("../../pipelines/fraud-detector.toml");
    airlock_schemas::PipelineSpec::from_toml_str(text, "p.toml".as_ref()).expect("valid");
}
