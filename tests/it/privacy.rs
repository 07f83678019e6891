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
