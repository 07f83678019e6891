//! `make bench`: training throughput of the fraud-detector MLP (12→64→32→1, batch 256,
//! Adam) on 100k rows, per CPU backend, through the full trainer (`airlock train`'s code
//! path). With `AIRLOCK_BENCH_TORCH=<python>`, runs `benches/torch_mlp.py` on the same
//! data, batch size and thread count, and prints the ratio.
//!
//! Usage: cargo bench --bench train_throughput [-- ROWS [EPOCHS]]

use std::path::Path;
use std::process::Command;

use airlock_infer::Backend;
use airlock_trainer::{TrainOptions, train_pipeline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rows: usize = args.first().map_or(Ok(100_000), |s| s.parse())?;
    let epochs: usize = args.get(1).map_or(Ok(5), |s| s.parse())?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("transactions.csv");
    airlock_model::demo::write_demo_csv(&data, rows, 7)?;
    let pipeline_text = include_str!("../pipelines/fraud-detector.toml")
        .replace(
            "../data/transactions.csv",
            data.to_str().ok_or("non-UTF-8 temp path")?,
        )
        .replace("epochs = 12", &format!("epochs = {epochs}"));
    let pipeline = dir.path().join("fraud-detector.toml");
    std::fs::write(&pipeline, pipeline_text)?;

    println!(
        "fraud-detector MLP 12→64→32→1, batch 256, Adam; {rows} rows ({} train), {epochs} epochs, RAYON_NUM_THREADS={threads}",
        (rows as f64 * 0.7).round()
    );
    let mut best = 0.0f64;
    for backend in [Backend::Flex, Backend::NdArray] {
        let run = train_pipeline(&TrainOptions {
            pipeline: pipeline.clone(),
            out: Some(dir.path().join(format!("run-{backend}"))),
            device: Some("cpu".into()),
            cpu_backend: Some(backend),
            progress: false,
            hosts: None,
        })?;
        let rps = run.record.train_rows_per_second;
        if backend == Backend::DEFAULT_CPU {
            best = rps;
        }
        println!(
            "airlock train  backend={:<8} {:>10.0} rows/s   (holdout AUC {:.4}){}",
            backend.name(),
            rps,
            run.record.holdout.binary().map_or(f64::NAN, |b| b.roc_auc),
            if backend == Backend::DEFAULT_CPU {
                "  <- default"
            } else {
                ""
            }
        );
    }

    if let Ok(python) = std::env::var("AIRLOCK_BENCH_TORCH") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_mlp.py");
        let out = Command::new(&python)
            .arg(&script)
            .args(["--data", data.to_str().ok_or("non-UTF-8 temp path")?])
            .args(["--epochs", &epochs.to_string()])
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{python} {}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let torch = stdout
            .lines()
            .find_map(|l| l.strip_prefix("rows_per_second="))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or("torch_mlp.py printed no rows_per_second=")?;
        for l in stdout
            .lines()
            .filter(|l| !l.starts_with("rows_per_second="))
        {
            println!("{l}");
        }
        println!("pytorch (same MLP, data, batch, threads) {torch:>10.0} rows/s");
        println!("ratio airlock/pytorch: {:.2}x", best / torch);
    } else {
        println!(
            "(set AIRLOCK_BENCH_TORCH=<python with torch> to compare with PyTorch; `make bench-torch` does)"
        );
    }
    Ok(())
}
