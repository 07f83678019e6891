//! `make bench`: issue 16's figures. DP-SGD training throughput and utility of the
//! fraud-detector MLP at ε = 1, 3 and 8 (and without DP), through the full trainer; with
//! `AIRLOCK_BENCH_TORCH=<python>` whose environment has Opacus, `benches/opacus_dp.py` on
//! the same data, batch size, clipping norm, δ and epochs, side by side. Then what the
//! packager's L4 replay and L3's RMIA reference models cost on the same run.
//!
//! Usage: cargo bench --bench train_dp [-- ROWS [EPOCHS]]

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use airlock_trainer::{TrainOptions, train_pipeline};

static STEPS: Mutex<Vec<(f64, String)>> = Mutex::new(Vec::new());

fn note(at: f64, what: &str) {
    STEPS.lock().expect("steps").push((at, what.to_owned()));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rows: usize = args.first().map_or(Ok(50_000), |s| s.parse())?;
    let epochs: usize = args.get(1).map_or(Ok(5), |s| s.parse())?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("transactions.csv");
    airlock_model::demo::write_demo_csv(&data, rows, 7)?;
    let base = include_str!("../pipelines/fraud-detector-dp.toml")
        .replace(
            "../data/transactions.csv",
            data.to_str().ok_or("non-UTF-8 temp path")?,
        )
        .replace("epochs = 12", &format!("epochs = {epochs}"));
    println!(
        "DP-SGD: fraud-detector MLP 12→64→32→1, expected batch 256 (Poisson), clipping 1.0, Adam; {rows} rows ({} train), {epochs} epochs, RAYON_NUM_THREADS={threads}",
        (rows as f64 * 0.7).round()
    );
    let python = std::env::var("AIRLOCK_BENCH_TORCH").ok().filter(|p| {
        Command::new(p)
            .args(["-c", "import opacus"])
            .status()
            .is_ok_and(|s| s.success())
    });
    let mut dp_run = None;
    for eps in [None, Some(1.0), Some(3.0), Some(8.0)] {
        let text = match eps {
            Some(e) => base.replace("target_epsilon = 3.0", &format!("target_epsilon = {e:.1}")),
            None => {
                let (head, _) = base.split_once("[privacy]").ok_or("no [privacy]")?;
                format!("{head}[leak]\n")
            }
        };
        let name = eps.map_or("none".to_owned(), |e| format!("{e}"));
        let pipeline = dir.path().join(format!("dp-{name}.toml"));
        std::fs::write(&pipeline, text)?;
        let out = dir.path().join(format!("run-{name}"));
        let run = train_pipeline(&TrainOptions {
            pipeline: pipeline.clone(),
            out: Some(out.clone()),
            device: Some("cpu".into()),
            cpu_backend: None,
            progress: false,
            hosts: None,
        })?;
        let auc = run.record.holdout.binary().map_or(f64::NAN, |b| b.roc_auc);
        let (label, sigma) = match &run.record.privacy {
            Some(p) => (
                format!("ε = {:.2} (δ = {:.0e})", p.epsilon, p.delta),
                p.noise_multiplier,
            ),
            None => ("no DP".to_owned(), 0.0),
        };
        println!(
            "airlock train   {label:<22} σ = {sigma:<6.3} {:>9.0} rows/s   holdout AUC {auc:.4}",
            run.record.train_rows_per_second
        );
        if let (Some(py), Some(e)) = (&python, eps) {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/opacus_dp.py");
            let o = Command::new(py)
                .arg(&script)
                .args(["--data", data.to_str().ok_or("non-UTF-8 temp path")?])
                .args(["--epochs", &epochs.to_string()])
                .args(["--epsilon", &e.to_string()])
                .args([
                    "--delta",
                    &run.record
                        .privacy
                        .as_ref()
                        .map_or(1e-6, |p| p.delta)
                        .to_string(),
                ])
                .output()?;
            if !o.status.success() {
                return Err(format!("opacus_dp.py: {}", String::from_utf8_lossy(&o.stderr)).into());
            }
            let text = String::from_utf8_lossy(&o.stdout);
            let field = |k: &str| -> f64 {
                text.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(f64::NAN)
            };
            let rps = field("rows_per_second=");
            println!(
                "opacus          ε = {:<18.2} σ = {:<6.3} {rps:>9.0} rows/s   holdout AUC {:.4}   airlock/opacus {:.2}x",
                field("epsilon="),
                field("sigma="),
                field("auc="),
                run.record.train_rows_per_second / rps
            );
        }
        if eps == Some(3.0) {
            dp_run = Some(out);
        }
    }
    if python.is_none() {
        println!(
            "(opacus: set AIRLOCK_BENCH_TORCH to a python with torch and opacus; `make bench-torch` installs them)"
        );
    }

    // The packager's cost: L4's replay and RMIA's reference models, on the ε = 3 run.
    let run_dir = dp_run.ok_or("no DP run")?;
    let key = dir.path().join("builder");
    let signer = airlock_trust::keys::generate(&key)?;
    drop(signer);
    let started = std::time::Instant::now();
    airlock_packager::package(&airlock_packager::PackageOptions {
        run_dir,
        key: key.with_extension("key"),
        out: dir.path().join("bundle"),
        threads: std::thread::available_parallelism().map_or(2, usize::from),
        progress: Some(note),
    })?;
    let total = started.elapsed().as_secs_f64();
    let seconds = |needle: &str| -> f64 {
        STEPS
            .lock()
            .expect("steps")
            .iter()
            .find_map(|(_, s)| {
                s.split_once(needle)
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(f64::NAN)
    };
    let (replay, rmia) = (
        seconds("the replay trained in "),
        seconds("reference models trained in "),
    );
    println!(
        "airlock package (ε = 3 run): {total:.1} s in all; L4 replay {replay:.1} s, RMIA's 2 reference models {rmia:.1} s, the other checks and signing {:.1} s",
        total - replay - rmia
    );
    Ok(())
}
