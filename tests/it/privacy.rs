//! The DP-SGD accountant against an independent implementation: Opacus's RDP analysis,
//! on a grid of sampling rates, noise multipliers, steps and δ (within 1 %).

use std::io::Write;
use std::path::Path;

use airlock_model::privacy::{default_orders, epsilon};

#[test]
fn the_accountant_agrees_with_opacus_within_one_percent() {
    let mut cases = Vec::new();
    for q in [0.001, 0.004_267, 0.01, 0.05, 0.2, 1.0] {
        for sigma in [0.6, 0.8, 1.1, 2.0, 5.0] {
            for steps in [1u64, 100, 1000, 20_000] {
                for delta in [1e-5, 1e-7] {
                    let (eps, order) = epsilon(q, sigma, steps, delta).expect("epsilon");
                    cases.push(serde_json::json!({
                        "q": q, "sigma": sigma, "steps": steps, "delta": delta,
                        "epsilon": eps, "order": order,
                    }));
                }
            }
        }
    }
    let request = serde_json::json!({"orders": default_orders(), "cases": cases});
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/check_accountant.py");
    let mut child = std::process::Command::new(crate::helpers::test_python())
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("\"ok\": false"))
        .collect();
    assert!(
        out.status.success(),
        "{}\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("summary")).expect("json");
    eprintln!("accountant vs Opacus: {summary}");
    assert_eq!(summary["cases"], cases.len(), "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
}

/// The fraud pipeline made differentially private (ε = 3, with a one-run audit).
const DP: &[(&str, &str)] = &[
    ("epochs = 12", "epochs = 4"),
    ("dropout = 0.1", "dropout = 0.0"),
    (
        "[leak]",
        "[privacy]\nmode = \"dp-sgd\"\ntarget_epsilon = 3.0\n[privacy.audit]\ncanaries = 400\n\n[leak]",
    ),
];

#[test]
fn dp_release_signs_its_epsilon_shows_it_to_the_officer_and_refuses_a_forged_claim() {
    let r = crate::helpers::Release::new(6000, DP);
    // The secret that seeded the noise stays in the run, readable by its owner only.
    let secret = r.run.join("dp-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("dp-secret")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", crate::publish::stderr(&out));
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(r.sb.join(p)).expect(p)).expect("json")
    };
    let p = read("bundle/statement.json")["predicate"]["privacy"].clone();
    let eps = p["epsilon"].as_f64().expect("epsilon is signed");
    assert!((2.9..=3.0).contains(&eps), "{p}");
    assert_eq!(p["mechanism"], "dp-sgd");
    assert_eq!(
        p["epsilon_per_epoch"].as_array().expect("per epoch").len(),
        4
    );
    let audit = &p["audit"];
    assert_eq!(audit["canaries"], 400, "{p}");
    assert!(
        audit["epsilon_lower_bound"].as_f64().expect("bound") <= eps,
        "{p}"
    );
    // Nothing of the secret leaves but its digest.
    let text = std::fs::read_to_string(&secret).expect("secret");
    for f in ["statement.json", "leak-report.json", "model-card.json"] {
        let doc = std::fs::read_to_string(r.sb.join("bundle").join(f)).expect(f);
        assert!(!doc.contains(text.trim()), "{f} holds the noise secret");
    }
    let l4 = &read("bundle/leak-report.json")["layers"][4];
    assert_eq!(l4["counts"]["reproduced"], true, "{l4}");
    assert_eq!(l4["counts"]["epsilon"], p["epsilon"], "{l4}");

    let v = r.verify("bundle");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        crate::publish::stderr(&v)
    );
    assert!(v.status.success(), "{said}");
    assert!(said.contains("differential privacy"), "{said}");
    let summary = r.sb.ok(&[
        "review",
        "bundle",
        "--trust",
        "trust.toml",
        "--out",
        "review.html",
    ]);
    assert!(
        summary.contains("privacy:      ε = 2.9") || summary.contains("privacy:      ε = 3.0"),
        "{summary}"
    );
    let html = std::fs::read_to_string(r.sb.join("review.html")).expect("page");
    assert!(html.contains("id=\"privacy\""), "the page shows ε");
    assert!(
        html.contains("Differential privacy: ε = "),
        "the page shows ε"
    );
    assert!(
        html.contains("data-reproduced=\"true\"") && html.contains("RMIA (L3): AUC 0."),
        "the page shows the replay and RMIA"
    );

    // A record that claims a smaller ε than its pipeline gives is refused (L4).
    let record_path = r.run.join("training-record.json");
    let original = std::fs::read_to_string(&record_path).expect("record");
    let mut record: serde_json::Value = serde_json::from_str(&original).expect("json");
    record["privacy"]["epsilon"] = serde_json::json!(0.5);
    std::fs::write(
        &record_path,
        serde_json::to_string_pretty(&record).expect("json"),
    )
    .expect("write");
    let out = r.package("run", "forged");
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        crate::publish::stderr(&out)
    );
    let report = read("forged.leak-report.json");
    let kinds: Vec<&str> = report["layers"][4]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["privacy-claim-differs"], "{report}");
    std::fs::write(&record_path, &original).expect("restore");

    // Another secret (a run whose noise someone else chose) does not match the record's
    // digest of it, and the run is refused before any check.
    std::fs::write(&secret, format!("{}\n", "ab".repeat(32))).expect("write");
    let out = r.package("run", "other-secret");
    assert!(!out.status.success());
    assert!(
        crate::publish::stderr(&out)
            .contains("dp-secret is not the secret the training record names"),
        "{}",
        crate::publish::stderr(&out)
    );
    std::fs::write(&secret, &text).expect("restore");
}

#[test]
fn dp_release_without_the_replay_is_refused() {
    // The guarantee holds for what DP-SGD trains; only the replay shows that it trained
    // these weights, so `reproduce = false` cannot sign an ε.
    let mut edits = DP.to_vec();
    edits.push((
        "max_membership_advantage = 0.15",
        "max_membership_advantage = 0.15\nreproduce = false",
    ));
    let r = crate::helpers::Release::new(3000, &edits);
    let out = r.package("run", "bundle");
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        crate::publish::stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.sb.join("bundle.leak-report.json")).expect("report"),
    )
    .expect("json");
    let l4 = &report["layers"][4];
    assert!(
        l4["error"]
            .as_str()
            .is_some_and(|e| e.contains("needs the replay")),
        "{l4}"
    );
}
