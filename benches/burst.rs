//! `make bench`: issue 18's figures.
//!
//! 1. Export throughput: `airlock export` of the burst pipeline's demo data (1M rows by
//!    default) under the shipped export policy, end to end: reading the CSV, the training
//!    split, sampling, generalization, k-anonymity, the Parquet file, the L1 and L2 scans
//!    against the full data, signing. Reading the data alone is timed too, so what the
//!    de-identification and the scans cost is visible.
//! 2. Local-mode training throughput: the training container (`airlock burst container
//!    train`, the image's entrypoint) on the export, one host against two hosts
//!    (data-parallel on 127.0.0.1), the same epochs, on this machine's cores (each of the two
//!    hosts gets half of them).
//!
//! Usage: cargo bench --bench burst [-- ROWS [EPOCHS]]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

fn pipeline(dir: &Path, data: &Path, epochs: usize) -> Result<PathBuf> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/fraud-detector-burst.toml"
    ))?
    .replace(
        "source = \"../data/transactions.csv\"",
        &format!("source = {:?}", data.display().to_string()),
    )
    .replace("epochs = 12", &format!("epochs = {epochs}"));
    let p = dir.join("p.toml");
    std::fs::write(&p, text)?;
    Ok(p)
}

fn keys(dir: &Path) -> Result<()> {
    airlock_trust::keys::generate(&dir.join("builder"))?;
    airlock_trust::keys::generate(&dir.join("officer"))?;
    std::fs::write(
        dir.join("trust.toml"),
        "approvals_required = 1\n[[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"builder.pub\"\n\
         [[keys]]\nname = \"officer\"\nrole = \"officer\"\npublic_key = \"officer.pub\"\n",
    )?;
    Ok(())
}

/// The container on `root`'s export with `hosts` hosts; seconds of the slowest host.
fn train(root: &Path, export: &Path, hosts: usize, threads: usize) -> Result<f64> {
    let names: Vec<String> = (1..=hosts).map(|i| format!("algo-{i}")).collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addresses = names
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{h}=127.0.0.1:{}", if i == 0 { port } else { 0 }))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let start = Instant::now();
    for host in &names {
        let h = root.join(format!("{hosts}-{host}"));
        let config = h.join("input/config");
        let train = h.join("input/data/train");
        std::fs::create_dir_all(&config)?;
        std::fs::create_dir_all(&train)?;
        for f in ["data.parquet", "pipeline.toml", "export.dsse.json"] {
            std::fs::copy(export.join(f), train.join(f))?;
        }
        std::fs::write(config.join("hyperparameters.json"), "{}")?;
        std::fs::write(
            config.join("resourceconfig.json"),
            serde_json::to_vec(&serde_json::json!({"current_host": host, "hosts": names}))?,
        )?;
        children.push(
            Command::new(AIRLOCK)
                .args(["burst", "container", "train"])
                .env("AIRLOCK_SM_ROOT", &h)
                .env("AIRLOCK_HOSTS", &addresses)
                .env("AIRLOCK_BURST_LOCAL", "1")
                .env("TRAINING_JOB_NAME", "bench")
                .env("RAYON_NUM_THREADS", threads.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()?,
        );
    }
    for mut c in children {
        if !c.wait()?.success() {
            return Err(format!("a host of the {hosts}-host job failed").into());
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rows: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let epochs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("transactions.csv");
    airlock_model::demo::write_demo_csv(&data, rows, 42)?;
    let p = pipeline(dir.path(), &data, epochs)?;
    keys(dir.path())?;
    let spec = airlock_schemas::PipelineSpec::load(&p)?;

    let t = Instant::now();
    let loaded = airlock_model::load_dataset(&spec, &data, true)?;
    let read = t.elapsed().as_secs_f64();
    drop(loaded);
    let t = Instant::now();
    let s = airlock_burst::export(&airlock_burst::ExportOptions {
        pipeline: p.clone(),
        policy: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/pipelines/fraud-detector-burst.export.toml"
        )),
        out: dir.path().join("export"),
        trust: dir.path().join("trust.toml"),
        key: dir.path().join("builder.key"),
        threads: cores,
    })?;
    let export = t.elapsed().as_secs_f64();
    let r = &s.predicate.rows;
    println!("issue 18: cloud burst ({cores} cores)");
    println!(
        "  export of {rows} rows: {export:.2} s, {:.0} source rows/s ({} exported, k = {} achieved, {} classes; L1 + L2 scans included)",
        rows as f64 / export,
        r.exported,
        s.predicate.k_achieved,
        s.predicate.classes
    );
    println!(
        "    of which reading the data alone: {read:.2} s; sampling, generalization, k-anonymity, Parquet, scans and signing: {:.2} s",
        export - read
    );

    let trained = r.exported as f64 * spec.splits.train * epochs as f64;
    let one = train(dir.path(), &dir.path().join("export"), 1, cores)?;
    match train(
        dir.path(),
        &dir.path().join("export"),
        2,
        (cores / 2).max(1),
    ) {
        Ok(two) => {
            println!(
                "  local-mode training, {epochs} epochs on the export: 1 host ({cores} threads) {one:.2} s = {:.0} rows/s; 2 hosts ({} threads each) {two:.2} s = {:.0} rows/s ({:.2}x)",
                trained / one,
                (cores / 2).max(1),
                trained / two,
                one / two
            );
        }
        Err(e) => println!(
            "  local-mode training: 1 host {one:.2} s = {:.0} rows/s; 2 hosts: {e}",
            trained / one
        ),
    }
    Ok(())
}
