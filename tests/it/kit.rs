//! The test kit stands in for `airlock package` in the tests about verification and
//! officers' decisions: its bundle must keep the shape of a packaged one.

use std::collections::BTreeSet;
use std::path::Path;

use airlock_testkit::Kit;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::helpers::{Release, tensors};

/// Every member path of a JSON document (`.a.b`; array elements as `[]`), leaving out the
/// members of the maps under `skip` (their keys are data, not shape).
fn shape(v: &serde_json::Value, at: &str, skip: &[&str], out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) if !skip.iter().any(|s| at.ends_with(s)) => {
            for (k, x) in m {
                let p = format!("{at}.{k}");
                out.insert(p.clone());
                shape(x, &p, skip, out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                shape(x, &format!("{at}[]"), skip, out);
            }
        }
        _ => {}
    }
}

fn doc_shape(bytes: &[u8], skip: &[&str]) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).expect("json");
    let mut out = BTreeSet::new();
    shape(&v, "", skip, &mut out);
    out
}

fn file_shape(bundle: &Path, name: &str, skip: &[&str]) -> BTreeSet<String> {
    doc_shape(&std::fs::read(bundle.join(name)).expect("read"), skip)
}

/// The shape of a DSSE envelope's payload.
fn payload_shape(bundle: &Path, name: &str) -> BTreeSet<String> {
    let env: airlock_schemas::Envelope =
        serde_json::from_slice(&std::fs::read(bundle.join(name)).expect("read")).expect("dsse");
    doc_shape(&STANDARD.decode(&env.payload).expect("base64"), &[])
        .into_iter()
        // A git commit is among the dependencies only when the pipeline is in a repository.
        .filter(|p| !p.contains("gitCommit"))
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_kit_bundle_has_the_shape_of_a_packaged_one() {
    let r = Release::new(2000, &[("epochs = 12", "epochs = 2")]);
    let out = r.package("run", "packaged");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packaged = r.sb.join("packaged");
    let kit = Kit::builder().build_in(&r.sb.join("kit"));
    let made = kit.bundle.clone();

    assert_eq!(entries(&made), entries(&packaged));
    // The same tensors (names, shapes), the same metadata.
    let layout = |p: &Path| -> Vec<(String, Vec<usize>)> {
        tensors(&p.join("model.safetensors"))
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect()
    };
    assert_eq!(layout(&made), layout(&packaged));
    let meta = |p: &Path| {
        let bytes = std::fs::read(p.join("model.safetensors")).expect("model");
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
        m.metadata().clone()
    };
    assert_eq!(meta(&made), meta(&packaged));
    // The same documents, member for member (a leak layer's parameters and counts are the
    // check's figures).
    for (name, skip) in [
        ("model-card.json", &[][..]),
        ("leak-report.json", &[".parameters", ".counts"][..]),
        ("statement.json", &[][..]),
        ("statement.dsse.json", &[][..]),
        ("provenance.dsse.json", &[][..]),
    ] {
        assert_eq!(
            file_shape(&made, name, skip),
            file_shape(&packaged, name, skip),
            "{name}"
        );
    }
    assert_eq!(
        payload_shape(&made, "provenance.dsse.json"),
        payload_shape(&packaged, "provenance.dsse.json")
    );
    // Both verify, the kit's through the CLI too.
    assert!(kit.verify().ok(), "{:#?}", kit.verify().checks);
    let out =
        r.sb.airlock(&["verify", "kit/bundle", "--trust", "kit/trust.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(r.verify("packaged").status.success());
}
