//! L1's health identifiers and the site's medical record number patterns, end to end: the
//! pipeline's `[leak] mrn_patterns` reach the packager, which refuses a run whose
//! checkpoint carries a record number or an NHS number, naming kinds and places only; and
//! a pattern that would match ordinary text is refused when the pipeline is loaded.

use crate::helpers::{Release, Sandbox, rewrite_safetensors};

const MRN_PIPELINE: &[(&str, &str)] = &[
    ("epochs = 12", "epochs = 4"),
    (
        "max_membership_advantage = 0.15",
        "max_membership_advantage = 0.15\nmrn_patterns = [\"MRN[0-9]{8}\"]",
    ),
];

#[test]
fn record_and_nhs_numbers_in_a_checkpoint_are_refused_by_kind() {
    let r = Release::new(3000, MRN_PIPELINE);
    let (mrn, nhs) = ("MRN12345678", "943 476 5919");
    rewrite_safetensors(&r.run.join("checkpoint.safetensors"), |_, m| {
        m.insert("note".into(), format!("ward {mrn}, nhs {nhs}"));
    });
    let out = r.package("run", "bundle");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(!r.sb.join("bundle").exists(), "no bundle may be written");
    let text = std::fs::read_to_string(r.sb.join("bundle.leak-report.json")).expect("report");
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    let l1 = report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["id"] == "L1")
        .expect("L1");
    assert_eq!(l1["verdict"], "fail", "{l1}");
    let kinds: Vec<&str> = l1["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"mrn"), "{kinds:?}");
    assert!(kinds.contains(&"nhs-number"), "{kinds:?}");
    assert!(
        l1["parameters"]["patterns"]
            .as_array()
            .expect("patterns")
            .iter()
            .any(|p| p == "mrn (1 site pattern(s))"),
        "{l1}"
    );
    for v in [mrn, nhs] {
        assert!(!text.contains(v), "the report must not hold {v}");
        assert!(!err.contains(v), "stderr must not hold {v}");
    }
}

#[test]
fn an_mrn_pattern_matching_ordinary_text_is_refused_at_pipeline_load() {
    let sb = Sandbox::new();
    let data = sb.demo_data(200, 3);
    let p = sb.pipeline(
        "p.toml",
        &data,
        &[(
            "max_membership_advantage = 0.15",
            "max_membership_advantage = 0.15\nmrn_patterns = [\"[0-9]{8}\"]",
        )],
    );
    let err = sb.fails(
        &[
            "train",
            p.to_str().expect("utf-8"),
            "--out",
            "run",
            "--no-progress",
        ],
        3,
    );
    assert!(
        err.contains("leak.mrn_patterns[0]") && err.contains("matches too broadly"),
        "{err}"
    );
    assert!(!sb.join("run").exists(), "no run may be started");
}
