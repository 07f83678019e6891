//! `make bench`: training throughput (images/s) of scan-triage's CNN (pipelines/
//! scan-triage.toml: three conv blocks, two with batch norm, max-pooling, 576→32→3 dense,
//! dropout 0.1, Adam, batch 64) on synthetic 64×64 scans (`airlock demo-data --kind
//! scans`), per CPU backend, through the full trainer (`airlock train`'s code path). With
//! `AIRLOCK_BENCH_TORCH=<python>`, runs `benches/torch_cnn.py` on the same PNG files,
//! batch size and thread count, and prints the ratio.
//!
//! Both time the training steps only: the images are decoded and normalized before the
//! clock starts (airlock's `train_seconds`; the script does the same).
//!
//! Usage: cargo bench --bench train_cnn [-- SCANS [EPOCHS]]

use std::path::Path;
use std::process::Command;

use airlock_infer::Backend;
use airlock_model::{Description, Role};
use airlock_schemas::PipelineSpec;
use airlock_trainer::{TrainOptions, train_pipeline};

const PIPELINE: &str = include_str!("../pipelines/scan-triage.toml");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let scans: usize = args.first().map_or(Ok(3000), |s| s.parse())?;
    let epochs: usize = args.get(1).map_or(Ok(2), |s| s.parse())?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("scans");
    let written = airlock_model::demo::write_scans(&data, scans, 7)?;
    let manifest = written.manifest.to_str().ok_or("non-UTF-8 temp path")?;
    let pipeline_text = PIPELINE
        .replace("../data/scans/manifest.csv", manifest)
        .replace("epochs = 8", &format!("epochs = {epochs}"));
    let pipeline = dir.path().join("scan-triage.toml");
    std::fs::write(&pipeline, &pipeline_text)?;
    let spec = PipelineSpec::from_toml_str(&pipeline_text, &pipeline)?;
    let description = Description::new(&spec.model, &spec.task, 0)?;
    let parameters: usize = description
        .trained()
        .iter()
        .filter(|d| d.role == Role::Parameter)
        .map(|d| d.len())
        .sum();

    println!(
        "scan-triage CNN 1×64×64 → conv5·8·bn → conv3·16·bn → conv3·16 (pool 2 each) → 32 → 3, \
         {parameters} parameters, batch {}, Adam; {scans} scans ({} train), {epochs} epochs, \
         RAYON_NUM_THREADS={threads}",
        spec.training.batch_size,
        (scans as f64 * spec.splits.train).round()
    );
    let mut default_ips = 0.0f64;
    for backend in [Backend::Flex, Backend::NdArray] {
        let run = train_pipeline(&TrainOptions {
            pipeline: pipeline.clone(),
            out: Some(dir.path().join(format!("run-{backend}"))),
            device: Some("cpu".into()),
            cpu_backend: Some(backend),
            progress: false,
            hosts: None,
        })?;
        let ips = run.record.train_rows_per_second;
        let default = backend == Backend::DEFAULT_CPU;
        if default {
            default_ips = ips;
        }
        println!(
            "airlock train  backend={:<8} {:>8.0} images/s   (holdout accuracy {:.3}){}",
            backend.name(),
            ips,
            run.record.holdout.accuracy().unwrap_or(f64::NAN),
            if default { "  <- default" } else { "" }
        );
    }

    match std::env::var("AIRLOCK_BENCH_TORCH") {
        Ok(python) => {
            let torch = run_torch(&python, manifest, epochs, &spec, parameters)?;
            println!("pytorch (same CNN, scans, batch, threads) {torch:>8.0} images/s");
            println!("ratio airlock/pytorch: {:.2}x", default_ips / torch);
        }
        Err(_) => println!(
            "(set AIRLOCK_BENCH_TORCH=<python with torch and pillow> to compare with PyTorch; \
             `make bench-torch` does)"
        ),
    }
    Ok(())
}

/// Runs benches/torch_cnn.py and returns its images/s, after checking that it built a
/// network with as many parameters as the pipeline declares (the same architecture).
fn run_torch(
    python: &str,
    manifest: &str,
    epochs: usize,
    spec: &PipelineSpec,
    parameters: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_cnn.py");
    let out = Command::new(python)
        .arg(&script)
        .args(["--manifest", manifest])
        .args(["--epochs", &epochs.to_string()])
        .args(["--batch-size", &spec.training.batch_size.to_string()])
        .args(["--train", &spec.splits.train.to_string()])
        .args(["--lr", &spec.optimizer.learning_rate.to_string()])
        .args(["--weight-decay", &spec.optimizer.weight_decay.to_string()])
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
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("torch_cnn.py printed no {key}"))
    };
    let torch_parameters = value("parameters=")?;
    if torch_parameters != parameters as f64 {
        return Err(format!(
            "torch_cnn.py built {torch_parameters} parameters, the pipeline declares {parameters}: \
             the architectures differ"
        )
        .into());
    }
    for l in stdout.lines().filter(|l| !l.contains('=')) {
        println!("{l}");
    }
    Ok(value("images_per_second=")?)
}
