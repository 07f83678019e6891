//! The training container's side of SageMaker's contract (`airlock burst container train`,
//! the training image's entrypoint).
//!
//! SageMaker (or `airlock burst --local`, playing SageMaker on one machine) lays out
//! `/opt/ml`: `input/config/hyperparameters.json` (every value a string),
//! `input/config/resourceconfig.json` (`current_host`, `hosts`), and the `train` channel in
//! `input/data/train/` (the export: `data.parquet`, `pipeline.toml`, `export.dsse.json`).
//! The container trains the export's pipeline with the hyperparameters applied, on every
//! host listed (data-parallel when there are several), and the first host writes the run
//! to `model/` with `burst.json`, the job's own account of what it trained on and with.
//! A failure's reason goes to `output/failure`, as SageMaker asks.
//!
//! What the job records of its artifact is the digest of `model/`'s files
//! ([`run_digest`]): the container prints it and, on SageMaker, tags its own training job
//! with it, so a model artifact replaced in S3 afterwards no longer matches.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use airlock_schemas::{IoError, PipelineSpec};
use serde::{Deserialize, Serialize};

use crate::{BurstError, DATA_FILE, PIPELINE_FILE, STATEMENT_FILE, sha256_hex};

/// Where SageMaker mounts the container's files; `AIRLOCK_SM_ROOT` overrides it (local
/// mode gives each host its own).
pub const SM_ROOT: &str = "/opt/ml";
/// Environment variable overriding [`SM_ROOT`].
pub const SM_ROOT_ENV: &str = "AIRLOCK_SM_ROOT";
/// Local mode's host addresses (`algo-1=127.0.0.1:40001,algo-2=127.0.0.1:0`); on
/// SageMaker the host names resolve in the cluster's network.
pub const HOSTS_ENV: &str = "AIRLOCK_HOSTS";
/// The port the first host listens on for the others (data-parallel training).
pub const COLLECTIVE_PORT: u16 = 7070;
/// The job's own account in `model/`.
pub const JOB_FILE: &str = "burst.json";
/// The hyperparameters a burst may set (every other key is refused). Not the seed: it also
/// draws the on-prem splits, whose holdout must stay the rows the export left out.
pub const HYPERPARAMETERS: [&str; 5] = [
    "learning_rate",
    "weight_decay",
    "epochs",
    "batch_size",
    "dropout",
];

/// `burst.json`: what the job trained, on what, with what, by the job's own account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobReport {
    /// The training job's name (`TRAINING_JOB_NAME`).
    pub job_name: String,
    /// Its ARN (`TRAINING_JOB_ARN`).
    pub job_arn: String,
    /// The hyperparameters it was given, as given.
    pub hyperparameters: BTreeMap<String, String>,
    /// Hosts that trained (data-parallel when more than one).
    pub hosts: u32,
    /// SHA-256 of the export statement's envelope file in the channel.
    pub export_statement_file_sha256: String,
    /// SHA-256 of the export's data file the job read.
    pub export_data_sha256: String,
    /// SHA-256 of the export's pipeline file the job trained.
    pub export_pipeline_sha256: String,
    /// The run's files (every file of `model/` but this one) → SHA-256.
    pub files: BTreeMap<String, String>,
}

/// SageMaker's `resourceconfig.json` (only the fields read; SageMaker writes more).
#[derive(Debug, Clone, Deserialize)]
struct ResourceConfig {
    current_host: String,
    hosts: Vec<String>,
}

/// The digest a job records of its artifact: SHA-256 over the sorted `name sha256` lines
/// of every file in the model directory (`burst.json` included).
pub fn run_digest(files: &BTreeMap<String, String>) -> String {
    let lines: String = files.iter().map(|(n, d)| format!("{n} {d}\n")).collect();
    sha256_hex(lines.as_bytes())
}

/// The files of `dir` (regular files only, no folders or links) → SHA-256.
pub fn digest_files(dir: &Path) -> Result<BTreeMap<String, String>, BurstError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(IoError::at("read", dir))? {
        let entry = entry.map_err(IoError::at("read", dir))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(IoError::at("read", &path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !ty.is_file() {
            return Err(BurstError::Invalid {
                path,
                message: "a run holds regular files only".to_owned(),
            });
        }
        let bytes = std::fs::read(&path).map_err(IoError::at("read", &path))?;
        out.insert(name, sha256_hex(&bytes));
    }
    Ok(out)
}

fn invalid(path: &Path, message: impl Into<String>) -> BurstError {
    BurstError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Read `hyperparameters.json`: string values of known keys only.
fn read_hyperparameters(path: &Path) -> Result<BTreeMap<String, String>, BurstError> {
    let bytes = std::fs::read(path).map_err(IoError::at("read", path))?;
    let hp: BTreeMap<String, String> = airlock_schemas::strict_json::from_slice(&bytes)
        .map_err(|e| invalid(path, format!("not an object of strings: {e}")))?;
    if let Some(k) = hp.keys().find(|k| !HYPERPARAMETERS.contains(&k.as_str())) {
        return Err(invalid(
            path,
            format!(
                "hyperparameter {k:?} is not one a burst sets ({})",
                HYPERPARAMETERS.join(", ")
            ),
        ));
    }
    Ok(hp)
}

/// `spec` with `hp` applied.
pub fn apply_hyperparameters(
    spec: &mut PipelineSpec,
    hp: &BTreeMap<String, String>,
) -> Result<(), String> {
    fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("hyperparameter {k}: {v:?} is not a number of its kind"))
    }
    for (k, v) in hp {
        match k.as_str() {
            "learning_rate" => spec.optimizer.learning_rate = num(k, v)?,
            "weight_decay" => spec.optimizer.weight_decay = num(k, v)?,
            "epochs" => spec.training.epochs = num(k, v)?,
            "batch_size" => spec.training.batch_size = num(k, v)?,
            "dropout" => match &mut spec.model {
                airlock_schemas::ModelSpec::Mlp(m) => m.dropout = num(k, v)?,
                airlock_schemas::ModelSpec::Cnn(c) => c.dropout = num(k, v)?,
            },
            _ => return Err(format!("hyperparameter {k:?} is not one a burst sets")),
        }
    }
    spec.validate()
}

/// The hosts' addresses, in `rc.hosts` order: from [`HOSTS_ENV`] in local mode, else each
/// host name resolved, with [`COLLECTIVE_PORT`].
fn host_addresses(rc: &ResourceConfig) -> Result<Vec<SocketAddr>, String> {
    let given: BTreeMap<String, String> = std::env::var(HOSTS_ENV)
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(h, a)| (h.to_owned(), a.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    rc.hosts
        .iter()
        .map(|h| {
            let target = given
                .get(h)
                .cloned()
                .unwrap_or_else(|| format!("{h}:{COLLECTIVE_PORT}"));
            target
                .to_socket_addrs()
                .map_err(|e| format!("host {h}: {e}"))?
                .next()
                .ok_or_else(|| format!("host {h} resolves to no address"))
        })
        .collect()
}

/// What the container did.
#[derive(Debug, Clone)]
pub struct ContainerOutcome {
    /// This host's rank (0 writes the model).
    pub rank: usize,
    /// The digest of `model/` ([`run_digest`]); on other hosts, none.
    pub run_sha256: Option<String>,
}

/// The entrypoint: train on the channel under `root` and write `model/` (first host) or
/// `output/failure`.
pub fn run_container(root: &Path) -> Result<ContainerOutcome, BurstError> {
    let out = train_in(root);
    if let Err(e) = &out {
        let dir = root.join("output");
        let _ = std::fs::create_dir_all(&dir);
        let mut why = e.to_string();
        why.truncate(1024);
        let _ = std::fs::write(dir.join("failure"), why);
    }
    out
}

fn train_in(root: &Path) -> Result<ContainerOutcome, BurstError> {
    let config = root.join("input/config");
    let hp = read_hyperparameters(&config.join("hyperparameters.json"))?;
    let rc_path = config.join("resourceconfig.json");
    let rc: ResourceConfig =
        serde_json::from_slice(&std::fs::read(&rc_path).map_err(IoError::at("read", &rc_path))?)
            .map_err(|e| invalid(&rc_path, format!("not SageMaker's resource config: {e}")))?;
    let rank = rc
        .hosts
        .iter()
        .position(|h| *h == rc.current_host)
        .ok_or_else(|| invalid(&rc_path, "current_host is not one of hosts"))?;
    if rc.hosts.is_empty() || rc.hosts.len() > 64 {
        return Err(invalid(&rc_path, "1 to 64 hosts"));
    }
    let channel = root.join("input/data/train");
    let pipeline = channel.join(PIPELINE_FILE);
    let mut spec = PipelineSpec::load(&pipeline).map_err(|e| invalid(&pipeline, e.to_string()))?;
    apply_hyperparameters(&mut spec, &hp).map_err(|e| invalid(&pipeline, e))?;
    let data = channel.join(DATA_FILE);
    spec.data.source = std::path::absolute(&data).map_err(IoError::at("resolve", &data))?;
    let work = tempfile::Builder::new()
        .prefix("airlock-burst-")
        .tempdir()
        .map_err(IoError::at(
            "create a work folder in",
            &std::env::temp_dir(),
        ))?;
    let work_pipeline = work.path().join(PIPELINE_FILE);
    let text = toml::to_string(&spec).map_err(|e| BurstError::Failed(e.to_string()))?;
    std::fs::write(&work_pipeline, text).map_err(IoError::at("write", &work_pipeline))?;
    let hosts = if rc.hosts.len() > 1 {
        let addresses = host_addresses(&rc).map_err(|e| invalid(&rc_path, e))?;
        Some(airlock_trainer::HostGroup {
            addresses,
            rank,
            timeout: std::time::Duration::from_secs(120),
        })
    } else {
        None
    };
    let run = work.path().join("run");
    airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
        pipeline: work_pipeline,
        out: Some(run.clone()),
        device: None,
        cpu_backend: None,
        progress: false,
        hosts,
    })
    .map_err(|e| BurstError::Failed(format!("training failed: {e}")))?;
    if rank != 0 {
        return Ok(ContainerOutcome {
            rank,
            run_sha256: None,
        });
    }
    let model = root.join("model");
    std::fs::create_dir_all(&model).map_err(IoError::at("create", &model))?;
    let files = digest_files(&run)?;
    for name in files.keys() {
        let (from, to) = (run.join(name), model.join(name));
        std::fs::copy(&from, &to).map_err(IoError::at("write", &to))?;
    }
    let read_digest = |p: PathBuf| -> Result<String, BurstError> {
        Ok(sha256_hex(
            &std::fs::read(&p).map_err(IoError::at("read", &p))?,
        ))
    };
    let report = JobReport {
        job_name: std::env::var("TRAINING_JOB_NAME").unwrap_or_default(),
        job_arn: std::env::var("TRAINING_JOB_ARN").unwrap_or_default(),
        hyperparameters: hp,
        hosts: rc.hosts.len() as u32,
        export_statement_file_sha256: read_digest(channel.join(STATEMENT_FILE))?,
        export_data_sha256: read_digest(data)?,
        export_pipeline_sha256: read_digest(pipeline.clone())?,
        files,
    };
    let path = model.join(JOB_FILE);
    std::fs::write(&path, airlock_trust::pretty(&report)).map_err(IoError::at("write", &path))?;
    Ok(ContainerOutcome {
        rank,
        run_sha256: Some(run_digest(&digest_files(&model)?)),
    })
}
