//! `airlock burst --local`: SageMaker's side of the training contract, played on this
//! machine as SageMaker's own local mode does. Each job gets one folder per host laid out
//! as `/opt/ml` (config, the `train` channel downloaded from S3, `model/`, `output/`), one
//! `airlock burst container train` process per host (the image's entrypoint, the same
//! binary), and on success the first host's `model/` packed as `model.tar.gz` and put
//! where SageMaker puts it, `<output path>/<job>/output/model.tar.gz`. What the job
//! records of its artifact (the digest the container prints) is kept here, on-prem,
//! where no one who can write the bucket can reach it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use airlock_schemas::IoError;

use crate::container::{HOSTS_ENV, SM_ROOT_ENV};
use crate::plan::JobPlan;
use crate::{BurstError, DATA_FILE, PIPELINE_FILE, STATEMENT_FILE};

/// Set for containers run by local mode (they do not tag a SageMaker job).
pub const LOCAL_ENV: &str = "AIRLOCK_BURST_LOCAL";

/// A job running as local processes.
#[derive(Debug)]
pub struct LocalJob {
    /// The job's folder.
    pub dir: PathBuf,
    hosts: Vec<Child>,
    done: Vec<Option<bool>>,
}

/// How a local job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEnd {
    /// Every host exited 0: the first host's model folder and the digest it printed.
    Completed {
        /// `algo-1/model`.
        model: PathBuf,
        /// The digest of the model folder, as the container printed it.
        run_sha256: String,
    },
    /// A host failed: its `output/failure`, or its exit status.
    Failed(String),
}

fn host_dir(job: &Path, i: usize) -> PathBuf {
    job.join(format!("algo-{}", i + 1))
}

/// Lay out the hosts' folders under `root/<job name>` and start one container per host.
/// `channel` holds the export as downloaded from S3.
pub fn start(
    airlock: &Path,
    root: &Path,
    job: &JobPlan,
    arn: &str,
    channel: &Path,
) -> Result<LocalJob, BurstError> {
    let dir = root.join(&job.name);
    let n = job.instance_count as usize;
    let hosts: Vec<String> = (0..n).map(|i| format!("algo-{}", i + 1)).collect();
    // The first host listens for the others on a port free now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| BurstError::Failed(format!("no free loopback port for the hosts: {e}")))?
        .port();
    let addresses = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{h}=127.0.0.1:{}", if i == 0 { port } else { 0 }))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::with_capacity(n);
    for (i, host) in hosts.iter().enumerate() {
        let h = host_dir(&dir, i);
        let config = h.join("input/config");
        let train = h.join("input/data/train");
        for d in [&config, &train, &h.join("model"), &h.join("output")] {
            std::fs::create_dir_all(d).map_err(IoError::at("create", d))?;
        }
        let write = |p: PathBuf, bytes: Vec<u8>| -> Result<(), BurstError> {
            std::fs::write(&p, bytes).map_err(|e| IoError::new("write", &p, e).into())
        };
        write(
            config.join("hyperparameters.json"),
            airlock_trust::pretty(&job.hyperparameters),
        )?;
        write(
            config.join("resourceconfig.json"),
            airlock_trust::pretty(&serde_json::json!({
                "current_host": host,
                "hosts": hosts,
                "network_interface_name": "lo",
            })),
        )?;
        for f in [DATA_FILE, PIPELINE_FILE, STATEMENT_FILE] {
            let (from, to) = (channel.join(f), train.join(f));
            std::fs::copy(&from, &to).map_err(IoError::at("write", &to))?;
        }
        let out = |name: &str| -> Result<std::fs::File, BurstError> {
            let p = h.join(name);
            std::fs::File::create(&p).map_err(|e| IoError::new("create", &p, e).into())
        };
        let child = Command::new(airlock)
            .args(["burst", "container", "train"])
            .env(SM_ROOT_ENV, &h)
            .env("TRAINING_JOB_NAME", &job.name)
            .env("TRAINING_JOB_ARN", arn)
            .env(HOSTS_ENV, &addresses)
            .env(LOCAL_ENV, "1")
            .stdin(Stdio::null())
            .stdout(if i == 0 {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(out("container.log")?)
            .spawn()
            .map_err(|e| BurstError::Failed(format!("cannot start {}: {e}", airlock.display())))?;
        children.push(child);
    }
    Ok(LocalJob {
        dir,
        done: vec![None; children.len()],
        hosts: children,
    })
}

impl LocalJob {
    /// `None` while a host runs; how the job ended once every host has.
    pub fn poll(&mut self) -> Result<Option<LocalEnd>, BurstError> {
        let mut down = false;
        for (i, child) in self.hosts.iter_mut().enumerate() {
            if self.done[i].is_none()
                && let Some(status) = child
                    .try_wait()
                    .map_err(|e| BurstError::Failed(format!("host algo-{}: {e}", i + 1)))?
            {
                self.done[i] = Some(status.success());
                down |= !status.success();
            }
        }
        if down {
            // One host down stops the job: the others would wait for it.
            self.stop();
        }
        if self.done.iter().any(Option::is_none) {
            return Ok(None);
        }
        if let Some(i) = self.done.iter().position(|d| *d == Some(false)) {
            let h = host_dir(&self.dir, i);
            let why = std::fs::read_to_string(h.join("output/failure"))
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("host algo-{} exited with an error", i + 1));
            return Ok(Some(LocalEnd::Failed(why.chars().take(1024).collect())));
        }
        let h = host_dir(&self.dir, 0);
        // What the first host printed, read from its pipe: nothing on disk stands in for it.
        let mut printed = String::new();
        if let Some(mut out) = self.hosts[0].stdout.take() {
            use std::io::Read as _;
            let _ = (&mut out).take(1 << 16).read_to_string(&mut printed);
        }
        let run_sha256 = printed
            .lines()
            .filter_map(|l| serde_json::from_str::<BTreeMap<String, String>>(l).ok())
            .find_map(|m| m.get("run_sha256").cloned())
            .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| BurstError::Failed("the first host printed no run digest".to_owned()))?;
        Ok(Some(LocalEnd::Completed {
            model: h.join("model"),
            run_sha256,
        }))
    }

    /// Stop every host still running.
    pub fn stop(&mut self) {
        for (i, child) in self.hosts.iter_mut().enumerate() {
            if self.done[i].is_none() {
                let _ = child.kill();
                let _ = child.wait();
                self.done[i] = Some(false);
            }
        }
    }

    /// The hosts' process ids (for an interrupted burst's cleanup).
    pub fn pids(&self) -> Vec<u32> {
        self.hosts.iter().map(Child::id).collect()
    }
}

/// `dir`'s files as SageMaker packs a model folder: `model.tar.gz`, the files at its top.
pub fn pack(dir: &Path) -> Result<Vec<u8>, BurstError> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    // A link planted in the folder is never followed out of it.
    tar.follow_symlinks(false);
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(IoError::at("read", dir))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(IoError::at("read", &path))?;
        if !meta.file_type().is_file()
            || !crate::sync::RUN_FILES.contains(&name.to_string_lossy().as_ref())
        {
            return Err(BurstError::Refused(format!(
                "{} is not a run's file: the model folder is not packed",
                path.display()
            )));
        }
        tar.append_path_with_name(&path, &name)
            .map_err(IoError::at("pack", &path))?;
    }
    let gz = tar.into_inner().map_err(IoError::at("pack", dir))?;
    gz.finish().map_err(|e| IoError::new("pack", dir, e).into())
}
