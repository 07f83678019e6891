//! `airlock burst PIPELINE.toml`: the approved export out to S3, training jobs on it (a
//! sweep's, bounded in parallel), their artifacts back and verified, the best one written
//! as an on-prem run, and every cloud resource released, whatever happens. Each step is
//! an entry of the residency audit log, signed by a publisher key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use airlock_publisher::audit::{AuditLog, NewEntry};
use airlock_publisher::aws::{Aws, AwsOptions};
use airlock_publisher::registry::Registry;
use airlock_publisher::s3::S3Registry;
use airlock_schemas::{
    AuditAction, BurstSpec, DestinationRule, IoError, KeyRole, PipelineSpec, ResidencyPolicy,
};
use airlock_trust::Trust;
use airlock_trust::keys::Signer;
use serde::{Deserialize, Serialize};

use crate::local::{LocalEnd, LocalJob};
use crate::plan::{JobPlan, plan};
use crate::sagemaker::{SageMakerJob, SmEnd};
use crate::sync::{Expected, Synced, unpack, verify_artifact};
use crate::{BurstError, DATA_FILE, PIPELINE_FILE, STATEMENT_FILE, VerifiedExport, sha256_hex};

/// Largest model artifact downloaded.
const MAX_ARTIFACT: usize = 8 << 30;

/// What `airlock burst` is given.
#[derive(Debug, Clone)]
pub struct BurstOptions {
    /// The on-prem pipeline (with a `[burst]` section).
    pub pipeline: PathBuf,
    /// The approved export.
    pub export: PathBuf,
    /// Trust policy: builder, officers, the publisher key.
    pub trust: PathBuf,
    /// Residency policy (its `export` list decides where the export may go).
    pub residency: PathBuf,
    /// The publisher's private key (signs the audit log).
    pub key: PathBuf,
    /// The residency audit log.
    pub audit_log: PathBuf,
    /// Where bursts keep their state and local-mode hosts (`.airlock/bursts`).
    pub work: PathBuf,
    /// Run the jobs here, as SageMaker's local mode does, instead of on SageMaker.
    pub local: bool,
    /// The `airlock` binary local mode starts as each host's container.
    pub airlock: PathBuf,
    /// AWS settings.
    pub aws: AwsOptions,
    /// Set (by Ctrl-C) to stop: running jobs are stopped and everything released.
    pub interrupted: Arc<AtomicBool>,
}

/// One job's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobOutcome {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Hyperparameters sent.
    pub hyperparameters: BTreeMap<String, String>,
    /// Hosts.
    pub instance_count: u32,
    /// `completed`, `failed: why` or `refused: why` (sync-back), `stopped`.
    pub outcome: String,
    /// Its final validation loss, when its artifact verified.
    pub validation_loss: Option<f64>,
    /// The digest the job recorded of its artifact, when it completed.
    pub artifact_sha256: Option<String>,
    /// Seconds it ran.
    pub seconds: f64,
}

/// What a burst did.
#[derive(Debug, Clone, Serialize)]
pub struct BurstSummary {
    /// The burst's id (its S3 prefix and state folder).
    pub id: String,
    /// Every job.
    pub jobs: Vec<JobOutcome>,
    /// The job kept (lowest validation loss).
    pub chosen: String,
    /// How it was chosen: `single`, `grid` or `random`.
    pub selection: String,
    /// SHA-256 of the approved export's statement.
    pub export_statement_sha256: String,
    /// SHA-256 of the export's data.
    pub export_data_sha256: String,
    /// The verified artifact of the chosen job, unpacked (for the caller to write the
    /// on-prem run from).
    pub artifact: PathBuf,
    /// S3 objects deleted when the burst released its resources.
    pub released_objects: usize,
}

/// What an interrupted burst left, for `airlock burst --cleanup`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstState {
    /// The burst's id.
    pub id: String,
    /// `s3://bucket/prefix` of the destination.
    pub destination: String,
    /// The S3 prefix under it that holds everything of this burst.
    pub prefix: String,
    /// Local mode or SageMaker.
    pub local: bool,
    /// Jobs started (SageMaker names; local: names and host process ids).
    pub jobs: Vec<(String, Vec<u32>)>,
    /// Region the SageMaker jobs run in.
    pub region: String,
}

impl BurstState {
    fn save(&self, path: &Path) -> Result<(), BurstError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(IoError::at("write", dir))?;
        std::io::Write::write_all(&mut tmp, &airlock_trust::pretty(self))
            .map_err(IoError::at("write", path))?;
        tmp.persist(path)
            .map_err(|e| IoError::new("write", path, e.error))?;
        Ok(())
    }
}

/// Create `dir` (and its parents) readable and writable by this user only, and refuse one
/// that others may write: a burst's state and local hosts' folders are trusted input later.
fn private_dir(dir: &Path) -> Result<(), BurstError> {
    std::fs::create_dir_all(dir).map_err(IoError::at("create", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(IoError::at("restrict", dir))?;
    }
    airlock_trust::keys::check_not_writable_by_others(dir, "burst state folder")?;
    Ok(())
}

/// A burst's id: the model's name, the UTC time and a random suffix (letters, digits, `-`).
fn is_burst_id(id: &str) -> bool {
    (1..=63).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl BurstState {
    /// What `--cleanup` acts on must be a burst's own: its id's grammar, its prefix ending
    /// in its id (never the bucket's root), its jobs named after it.
    fn check(&self) -> Result<(), String> {
        if !is_burst_id(&self.id) {
            return Err("its id is not a burst's".to_owned());
        }
        let (_, dest_prefix) = airlock_publisher::s3::parse_uri(&self.destination)
            .ok_or("its destination is not s3://bucket[/prefix]")?;
        let own = self.prefix == self.id || self.prefix.ends_with(&format!("/{}", self.id));
        if self.prefix != dest_prefix || !own {
            return Err("its prefix is not its destination's, ending in its id".to_owned());
        }
        let job_ok = |name: &str| {
            name.strip_prefix(&format!("{}-", self.id))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if self.jobs.iter().any(|(name, _)| !job_ok(name)) {
            return Err("a job it names is not one of its own".to_owned());
        }
        Ok(())
    }
}

/// The audit log with what every burst entry repeats.
struct Audit {
    log: AuditLog,
    signer: Signer,
    trust_sha256: String,
    residency_sha256: String,
    approvals: Vec<String>,
    region: Option<String>,
}

impl Audit {
    fn record(
        &mut self,
        action: AuditAction,
        artifacts: BTreeMap<String, String>,
        destination: String,
        outcome: String,
    ) -> Result<(), BurstError> {
        self.log
            .append(
                NewEntry {
                    action,
                    artifacts,
                    destination,
                    verified_region: self.region.clone(),
                    approvals: self.approvals.clone(),
                    trust_policy_sha256: self.trust_sha256.clone(),
                    residency_policy_sha256: self.residency_sha256.clone(),
                    outcome,
                },
                &self.signer,
            )
            .map_err(|e| BurstError::Failed(format!("audit log: {e}")))?;
        Ok(())
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> BurstError {
    BurstError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Everything checked before a byte leaves.
struct Ready {
    spec: BurstSpec,
    export: VerifiedExport,
    audit: Audit,
    rule: DestinationRule,
    bucket: String,
    prefix: String,
}

fn prepare(o: &BurstOptions) -> Result<Ready, BurstError> {
    let spec = PipelineSpec::load(&o.pipeline).map_err(|e| invalid(&o.pipeline, e.to_string()))?;
    let burst = spec
        .burst
        .clone()
        .ok_or_else(|| invalid(&o.pipeline, "has no [burst] section"))?;
    let trust = Trust::load(&o.trust)?;
    let export = crate::verify_export(&o.export, &trust)?;
    if let Some(why) = export.why_not() {
        return Err(BurstError::Unverified {
            dir: o.export.clone(),
            why: format!("not approved: {why}"),
        });
    }
    let pipeline_bytes = std::fs::read(&o.pipeline).map_err(IoError::at("read", &o.pipeline))?;
    if sha256_hex(&pipeline_bytes) != export.predicate.pipeline_sha256 {
        return Err(BurstError::Unverified {
            dir: o.export.clone(),
            why: format!(
                "it was made for another version of {} (the pipeline's SHA-256 differs from the export's)",
                o.pipeline.display()
            ),
        });
    }
    airlock_trust::keys::check_not_writable_by_others(&o.residency, "residency policy")?;
    let residency_bytes = std::fs::read(&o.residency).map_err(IoError::at("read", &o.residency))?;
    let residency: ResidencyPolicy = toml::from_str(&String::from_utf8_lossy(&residency_bytes))
        .map_err(|e| invalid(&o.residency, e.to_string()))?;
    let rule = residency.export.clone().ok_or_else(|| {
        invalid(
            &o.residency,
            "has no [export] list: no export may leave (add the regions bursts may use)",
        )
    })?;
    let signer = Signer::load(&o.key)?;
    let now = time::OffsetDateTime::now_utc();
    trust
        .usable_key(signer.key_id(), KeyRole::Publisher, now, now)
        .map_err(|why| invalid(&o.key, format!("not a usable publisher key: {why}")))?;
    let mut log = AuditLog::open(&o.audit_log).map_err(|e| BurstError::Failed(e.to_string()))?;
    log.check_head_as(&trust, KeyRole::Publisher)
        .map_err(|e| BurstError::Failed(format!("audit log: {e}")))?;
    log.name_model(
        &export.predicate.model_name,
        &export.predicate.model_version,
    );
    let (bucket, prefix) = airlock_publisher::s3::parse_uri(&burst.destination)
        .ok_or_else(|| invalid(&o.pipeline, "burst.destination is not s3://bucket[/prefix]"))?;
    Ok(Ready {
        audit: Audit {
            log,
            signer,
            trust_sha256: trust.sha256.clone(),
            residency_sha256: sha256_hex(&residency_bytes),
            approvals: export.approvals.clone(),
            region: None,
        },
        spec: burst,
        export,
        rule,
        bucket,
        prefix,
    })
}

/// The export's files and digests.
fn export_files(export: &VerifiedExport) -> BTreeMap<String, String> {
    [
        (DATA_FILE, export.data_sha256.clone()),
        (PIPELINE_FILE, export.pipeline_sha256.clone()),
        (STATEMENT_FILE, sha256_hex(&export.statement_file)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The burst's id: the model's name and the UTC time.
fn burst_id(model: &str) -> String {
    let t = time::OffsetDateTime::now_utc();
    let model: String = model.chars().take(32).collect();
    // Two bursts of a model started in the same second must not share a prefix.
    let mut suffix = [0u8; 3];
    let _ = getrandom::fill(&mut suffix);
    format!(
        "{model}-{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        hex::encode(suffix)
    )
}

/// Run the burst. Resources are released on every path out (success, failure, Ctrl-C).
pub fn burst(o: &BurstOptions) -> Result<BurstSummary, BurstError> {
    let mut r = prepare(o)?;
    let aws = Aws::load(o.aws.clone()).map_err(|e| BurstError::Failed(e.to_string()))?;
    let id = burst_id(&r.export.predicate.model_name);
    let prefix = if r.prefix.is_empty() {
        id.clone()
    } else {
        format!("{}/{id}", r.prefix)
    };
    let store = S3Registry::new(aws.clone(), r.bucket.clone(), prefix.clone());
    let destination = format!("s3://{}/{prefix}", r.bucket);
    // Residency, before any byte: where the bucket is, by its own word.
    let loc = store
        .location(&r.rule.accounts)
        .map_err(|e| BurstError::Failed(format!("locating {destination}: {e}")))?;
    let account_ok = r.rule.accounts.is_empty()
        || loc
            .account
            .as_ref()
            .is_some_and(|a| r.rule.accounts.contains(a));
    r.audit.region = Some(loc.region.clone());
    if !r.rule.regions.contains(&loc.region) || !account_ok {
        let why = format!(
            "the bucket is in region {:?}{}, which the residency policy does not allow for exports (allowed: {:?})",
            loc.region,
            loc.account
                .map(|a| format!(", account {a}"))
                .unwrap_or_default(),
            r.rule.regions
        );
        r.audit.record(
            AuditAction::Export,
            export_files(&r.export),
            destination.clone(),
            format!("refused: {why}"),
        )?;
        return Err(BurstError::ResidencyRefused { destination, why });
    }
    let state_dir = o.work.join(&id);
    private_dir(&o.work)?;
    private_dir(&state_dir)?;
    let mut state = BurstState {
        id: id.clone(),
        destination: destination.clone(),
        prefix: prefix.clone(),
        local: o.local,
        jobs: Vec::new(),
        region: aws.region(),
    };
    let state_path = o.work.join(format!("{id}.json"));
    state.save(&state_path)?;
    let mut run = Burst {
        o,
        spec: &r.spec,
        export: &r.export,
        audit: &mut r.audit,
        store: &store,
        aws: &aws,
        id: &id,
        destination: &destination,
        state_dir: &state_dir,
        state: &mut state,
        state_path: &state_path,
    };
    let result = run.run();
    let released = run.release();
    if released.is_ok() {
        // Released: nothing is left to clean up (the local hosts' folders go too, unless
        // the kept artifact is still to be written as a run).
        let _ = std::fs::remove_file(&state_path);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&state_dir);
        }
    }
    match (result, released) {
        (Ok(mut summary), Ok(n)) => {
            summary.released_objects = n;
            Ok(summary)
        }
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    }
}

/// A burst in progress.
struct Burst<'a> {
    o: &'a BurstOptions,
    spec: &'a BurstSpec,
    export: &'a VerifiedExport,
    audit: &'a mut Audit,
    store: &'a S3Registry,
    aws: &'a Aws,
    id: &'a str,
    destination: &'a str,
    state_dir: &'a Path,
    state: &'a mut BurstState,
    state_path: &'a Path,
}

/// A job started: its plan, ARN, engine handle and start time.
type Started = (JobPlan, String, Running, Instant);

/// A job started, on either engine.
enum Running {
    Local(LocalJob),
    SageMaker(SageMakerJob),
}

impl Burst<'_> {
    fn run(&mut self) -> Result<BurstSummary, BurstError> {
        self.upload_export()?;
        let jobs = plan(self.spec, self.id);
        let parallel = self.spec.sweep.as_ref().map_or(1, |s| s.max_parallel) as usize;
        eprintln!(
            "burst {}: {} job(s), {} at a time, on {}",
            self.id,
            jobs.len(),
            parallel,
            if self.o.local {
                "this machine (local mode)"
            } else {
                "SageMaker"
            }
        );
        let channel = self.download_channel()?;
        let mut pending: std::collections::VecDeque<JobPlan> = jobs.into_iter().collect();
        let mut running: Vec<Started> = Vec::new();
        let mut outcomes: Vec<(JobOutcome, Option<Synced>)> = Vec::new();
        let step = self.schedule(
            &mut pending,
            &mut running,
            &mut outcomes,
            parallel,
            &channel,
        );
        if step.is_err() {
            // Whatever went wrong, nothing keeps running (or billing) after the burst.
            for (_, _, r, _) in running.drain(..) {
                self.stop(r);
            }
        }
        step?;
        self.choose(outcomes)
    }

    /// Start jobs as slots free up, poll the running ones, finish the ended ones, until
    /// every job has ended (or the burst is interrupted).
    fn schedule(
        &mut self,
        pending: &mut std::collections::VecDeque<JobPlan>,
        running: &mut Vec<Started>,
        outcomes: &mut Vec<(JobOutcome, Option<Synced>)>,
        parallel: usize,
        channel: &Path,
    ) -> Result<(), BurstError> {
        let every = if self.o.local {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(self.spec.poll_seconds)
        };
        while !pending.is_empty() || !running.is_empty() {
            while running.len() < parallel
                && let Some(job) = pending.pop_front()
            {
                let (arn, r) = self.start(&job, channel)?;
                running.push((job, arn, r, Instant::now()));
            }
            // Wait a poll interval, in slices, so Ctrl-C is answered at once.
            let waited = Instant::now();
            while waited.elapsed() < every {
                if self.o.interrupted.load(Ordering::SeqCst) {
                    return Err(BurstError::Failed(
                        "interrupted: running jobs were stopped and the burst's resources released"
                            .into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100).min(every));
            }
            let mut jobs = std::mem::take(running).into_iter();
            while let Some((job, arn, mut r, started)) = jobs.next() {
                match self.poll(&job, &arn, &mut r) {
                    Ok(None) => running.push((job, arn, r, started)),
                    Ok(Some(done)) => match self.finish(&job, &arn, done, started) {
                        Ok(o) => outcomes.push(o),
                        Err(e) => {
                            running.extend(jobs);
                            return Err(e);
                        }
                    },
                    Err(e) => {
                        // Still running as far as anyone knows: the caller stops them all.
                        running.push((job, arn, r, started));
                        running.extend(jobs);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    fn upload_export(&mut self) -> Result<(), BurstError> {
        let files = export_files(self.export);
        let rows = self.export.predicate.rows.exported;
        self.audit.record(
            AuditAction::Export,
            files.clone(),
            self.destination.to_owned(),
            format!(
                "started: {rows} de-identified rows (k = {}) leave for training",
                self.export.predicate.k_achieved
            ),
        )?;
        for name in files.keys() {
            let path = self.export.dir.join(name);
            // The statement as it verified; the data files read again and held to the
            // digests the verified statement signs.
            let bytes = if name == STATEMENT_FILE {
                self.export.statement_file.clone()
            } else {
                std::fs::read(&path).map_err(IoError::at("read", &path))?
            };
            // What leaves must be what verified.
            if sha256_hex(&bytes) != files[name] {
                return Err(BurstError::Unverified {
                    dir: self.export.dir.clone(),
                    why: format!("{name} changed after it was verified"),
                });
            }
            if let Err(e) = self.store.put_object(&format!("export/{name}"), &bytes) {
                self.audit.record(
                    AuditAction::Export,
                    files.clone(),
                    self.destination.to_owned(),
                    format!("failed: {e}"),
                )?;
                return Err(BurstError::Failed(format!("uploading the export: {e}")));
            }
        }
        self.audit.record(
            AuditAction::Export,
            files,
            self.destination.to_owned(),
            format!("ok: {rows} rows"),
        )
    }

    /// The `train` channel as a job reads it: the export downloaded back from S3 (local
    /// mode trains on what is in the bucket, as SageMaker would).
    fn download_channel(&self) -> Result<PathBuf, BurstError> {
        let dir = self.state_dir.join("channel");
        std::fs::create_dir_all(&dir).map_err(IoError::at("create", &dir))?;
        if !self.o.local {
            return Ok(dir);
        }
        for name in [DATA_FILE, PIPELINE_FILE, STATEMENT_FILE] {
            let bytes = self
                .store
                .get_object(&format!("export/{name}"))
                .map_err(|e| BurstError::Failed(format!("downloading the channel: {e}")))?
                .ok_or_else(|| {
                    BurstError::Failed(format!("export/{name} is gone from the bucket"))
                })?;
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(IoError::at("write", &path))?;
        }
        Ok(dir)
    }

    fn start(&mut self, job: &JobPlan, channel: &Path) -> Result<(String, Running), BurstError> {
        let (arn, r) = if self.o.local {
            let arn = format!(
                "arn:aws:sagemaker:local:000000000000:training-job/{}",
                job.name
            );
            let j = crate::local::start(
                &self.o.airlock,
                &self.state_dir.join("jobs"),
                job,
                &arn,
                channel,
            )?;
            self.state.jobs.push((job.name.clone(), j.pids()));
            (arn, Running::Local(j))
        } else {
            // On record before it exists: a job created whose answer is lost is still
            // found and stopped.
            self.state.jobs.push((job.name.clone(), Vec::new()));
            self.state.save(self.state_path)?;
            let j = crate::sagemaker::create(
                self.aws,
                self.spec,
                job,
                &format!("s3://{}/{}/export/", self.store.bucket(), self.state.prefix),
                &format!("s3://{}/{}/output", self.store.bucket(), self.state.prefix),
                self.id,
            )?;
            (j.arn.clone(), Running::SageMaker(j))
        };
        self.state.save(self.state_path)?;
        self.audit.record(
            AuditAction::TrainingJob,
            BTreeMap::new(),
            arn.clone(),
            format!(
                "started: {} host(s), hyperparameters {}",
                job.instance_count,
                serde_json::to_string(&job.hyperparameters).unwrap_or_default()
            ),
        )?;
        Ok((arn, r))
    }

    fn poll(&self, job: &JobPlan, arn: &str, r: &mut Running) -> Result<Option<Ended>, BurstError> {
        match r {
            Running::Local(j) => Ok(match j.poll()? {
                None => None,
                Some(LocalEnd::Failed(why)) => Some(Ended::Failed(why)),
                Some(LocalEnd::Completed { model, run_sha256 }) => {
                    // SageMaker's part: pack the model folder and put it in the bucket.
                    let key = format!("output/{}/output/model.tar.gz", job.name);
                    let bytes = crate::local::pack(&model)?;
                    self.store
                        .put_object(&key, &bytes)
                        .map_err(|e| BurstError::Failed(format!("uploading {key}: {e}")))?;
                    Some(Ended::Completed { key, run_sha256 })
                }
            }),
            Running::SageMaker(j) => Ok(match crate::sagemaker::poll(self.aws, j)? {
                None => None,
                Some(SmEnd::Failed(why)) => Some(Ended::Failed(why)),
                Some(SmEnd::Completed {
                    artifact,
                    run_sha256,
                }) => {
                    let key = self.key_of(&artifact).ok_or_else(|| {
                        BurstError::Refused(format!(
                            "sync-back: job {arn} put its artifact at {artifact}, outside the burst's prefix"
                        ))
                    })?;
                    match run_sha256 {
                        Some(run_sha256) => Some(Ended::Completed { key, run_sha256 }),
                        None => Some(Ended::Failed(
                            "the job recorded no digest of its artifact (tag airlock:run-sha256): its artifact cannot be told from a replaced one".into(),
                        )),
                    }
                }
            }),
        }
    }

    /// The registry key of `s3://bucket/prefix/...` under this burst's prefix.
    fn key_of(&self, uri: &str) -> Option<String> {
        let (bucket, key) = airlock_publisher::s3::parse_uri(uri)?;
        let rest = key.strip_prefix(&format!("{}/", self.state.prefix))?;
        (bucket == self.store.bucket()).then(|| rest.to_owned())
    }

    fn stop(&self, r: Running) {
        match r {
            Running::Local(mut j) => j.stop(),
            Running::SageMaker(j) => {
                let _ = crate::sagemaker::stop(self.aws, &j);
            }
        }
    }

    fn finish(
        &mut self,
        job: &JobPlan,
        arn: &str,
        done: Ended,
        started: Instant,
    ) -> Result<(JobOutcome, Option<Synced>), BurstError> {
        let (key, run_sha256) = match done {
            Ended::Failed(why) => {
                eprintln!("  job {} failed: {why}", job.name);
                self.audit.record(
                    AuditAction::TrainingJob,
                    BTreeMap::new(),
                    arn.to_owned(),
                    format!("failed: {why}"),
                )?;
                return Ok((
                    outcome(job, arn, format!("failed: {why}"), None, started),
                    None,
                ));
            }
            Ended::Completed { key, run_sha256 } => (key, run_sha256),
        };
        self.audit.record(
            AuditAction::TrainingJob,
            [("run-sha256".to_owned(), run_sha256.clone())].into(),
            arn.to_owned(),
            "ok: completed".to_owned(),
        )?;
        let dest = self.state_dir.join("synced").join(&job.name);
        let synced = self.sync_back(job, arn, &key, &run_sha256, &dest);
        let artifacts: BTreeMap<String, String> = [("run-sha256".to_owned(), run_sha256)].into();
        let source = format!("s3://{}/{}/{key}", self.store.bucket(), self.state.prefix);
        match synced {
            Ok(s) => {
                eprintln!(
                    "  job {} ({} host(s)): verified, validation loss {:.4}",
                    job.name, job.instance_count, s.validation_loss
                );
                self.audit.record(
                    AuditAction::SyncBack,
                    artifacts.clone(),
                    source,
                    "ok: verified".to_owned(),
                )?;
                let mut o = outcome(
                    job,
                    arn,
                    "completed".into(),
                    Some(s.validation_loss),
                    started,
                );
                o.artifact_sha256 = artifacts.get("run-sha256").cloned();
                Ok((o, Some(s)))
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dest);
                eprintln!("  job {}: {e}", job.name);
                self.audit.record(
                    AuditAction::SyncBack,
                    artifacts.clone(),
                    source,
                    format!("refused: {e}"),
                )?;
                let mut o = outcome(job, arn, format!("refused: {e}"), None, started);
                o.artifact_sha256 = artifacts.get("run-sha256").cloned();
                Ok((o, None))
            }
        }
    }

    fn sync_back(
        &self,
        job: &JobPlan,
        arn: &str,
        key: &str,
        run_sha256: &str,
        dest: &Path,
    ) -> Result<Synced, BurstError> {
        let bytes = match self
            .store
            .get_object_max(key, MAX_ARTIFACT)
            .map_err(|e| BurstError::Failed(format!("downloading {key}: {e}")))?
        {
            Some(Ok(b)) => b,
            Some(Err(len)) => {
                return Err(BurstError::Refused(format!(
                    "sync-back: the artifact is {len} bytes, over {MAX_ARTIFACT}"
                )));
            }
            None => {
                return Err(BurstError::Refused(format!(
                    "sync-back: {key} is not in the bucket"
                )));
            }
        };
        std::fs::create_dir_all(dest).map_err(IoError::at("create", dest))?;
        unpack(&bytes, dest)?;
        verify_artifact(
            dest,
            &Expected {
                job_name: &job.name,
                job_arn: arn,
                hyperparameters: &job.hyperparameters,
                hosts: job.instance_count,
                run_sha256,
                export: self.export,
            },
        )
    }

    fn choose(
        &self,
        outcomes: Vec<(JobOutcome, Option<Synced>)>,
    ) -> Result<BurstSummary, BurstError> {
        let best = outcomes
            .iter()
            .filter_map(|(o, s)| s.as_ref().map(|s| (o, s)))
            .min_by(|a, b| a.1.validation_loss.total_cmp(&b.1.validation_loss))
            .map(|(o, s)| (o.name.clone(), s.dir.clone()));
        let jobs: Vec<JobOutcome> = outcomes.into_iter().map(|(o, _)| o).collect();
        let Some((chosen, artifact)) = best else {
            let why: Vec<String> = jobs
                .iter()
                .map(|j| format!("{}: {}", j.name, j.outcome))
                .collect();
            return Err(BurstError::Failed(format!(
                "no job's artifact came back verified ({})",
                why.join("; ")
            )));
        };
        Ok(BurstSummary {
            id: self.id.to_owned(),
            jobs,
            chosen,
            selection: self
                .spec
                .sweep
                .as_ref()
                .map_or("single", |s| s.method.as_str())
                .to_owned(),
            export_statement_sha256: self.export.statement_sha256.clone(),
            export_data_sha256: self.export.data_sha256.clone(),
            artifact,
            released_objects: 0,
        })
    }

    /// Stop what still runs, delete everything under the burst's prefix, record it.
    fn release(&mut self) -> Result<usize, BurstError> {
        let deleted = self
            .store
            .delete_under("")
            .map_err(|e| BurstError::Failed(format!("releasing {}: {e}", self.destination)));
        let (outcome, n) = match &deleted {
            Ok(keys) => (
                format!(
                    "ok: {} object(s) deleted, {} job(s) ended",
                    keys.len(),
                    self.state.jobs.len()
                ),
                keys.len(),
            ),
            Err(e) => (format!("failed: {e}"), 0),
        };
        self.audit.record(
            AuditAction::Release,
            BTreeMap::new(),
            self.destination.to_owned(),
            outcome,
        )?;
        deleted?;
        Ok(n)
    }
}

/// How a job ended, as its engine tells.
enum Ended {
    Completed { key: String, run_sha256: String },
    Failed(String),
}

fn outcome(
    job: &JobPlan,
    arn: &str,
    outcome: String,
    loss: Option<f64>,
    started: Instant,
) -> JobOutcome {
    JobOutcome {
        artifact_sha256: None,
        name: job.name.clone(),
        arn: arn.to_owned(),
        hyperparameters: job.hyperparameters.clone(),
        instance_count: job.instance_count,
        outcome,
        validation_loss: loss,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// What `airlock burst --cleanup` is given.
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    /// Where bursts keep their state.
    pub work: PathBuf,
    /// Trust policy (the publisher key must be one of its).
    pub trust: PathBuf,
    /// The publisher's private key.
    pub key: PathBuf,
    /// The residency audit log (each release is recorded).
    pub audit_log: PathBuf,
    /// AWS settings.
    pub aws: AwsOptions,
}

/// What one interrupted burst's cleanup released.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    /// The burst.
    pub id: String,
    /// Jobs stopped (or found already ended).
    pub jobs: Vec<String>,
    /// S3 objects deleted.
    pub objects: usize,
}

/// Whether `pid` is a local-mode container (an `airlock burst container` process).
fn is_local_container(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        args.windows(2)
            .any(|w| w[0] == b"burst" && w[1] == b"container")
    })
}

/// Release what interrupted bursts left: every burst whose state is still under
/// `o.work` (a burst removes its state once it has released its resources).
pub fn cleanup(o: &CleanupOptions) -> Result<Vec<Released>, BurstError> {
    let mut states = Vec::new();
    if o.work.exists() {
        for entry in std::fs::read_dir(&o.work).map_err(IoError::at("read", &o.work))? {
            let path = entry.map_err(IoError::at("read", &o.work))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).map_err(IoError::at("read", &path))?;
                let state: BurstState = airlock_schemas::strict_json::from_slice(&bytes)
                    .map_err(|e| invalid(&path, format!("not a burst's state: {e}")))?;
                state
                    .check()
                    .map_err(|why| invalid(&path, format!("refused: {why}")))?;
                states.push((path, state));
            }
        }
    }
    if states.is_empty() {
        return Ok(Vec::new());
    }
    airlock_trust::keys::check_not_writable_by_others(&o.work, "burst state folder")?;
    let trust = Trust::load(&o.trust)?;
    let signer = Signer::load(&o.key)?;
    let now = time::OffsetDateTime::now_utc();
    trust
        .usable_key(signer.key_id(), KeyRole::Publisher, now, now)
        .map_err(|why| invalid(&o.key, format!("not a usable publisher key: {why}")))?;
    let log = AuditLog::open(&o.audit_log).map_err(|e| BurstError::Failed(e.to_string()))?;
    log.check_head_as(&trust, KeyRole::Publisher)
        .map_err(|e| BurstError::Failed(format!("audit log: {e}")))?;
    let mut audit = Audit {
        log,
        signer,
        trust_sha256: trust.sha256.clone(),
        residency_sha256: String::new(),
        approvals: Vec::new(),
        region: None,
    };
    let mut out = Vec::new();
    for (path, state) in states {
        // The jobs are stopped where they run.
        let mut opts = o.aws.clone();
        if !state.region.is_empty() {
            opts.region = Some(state.region.clone());
        }
        let aws = Aws::load(opts).map_err(|e| BurstError::Failed(e.to_string()))?;
        let mut jobs = Vec::new();
        for (name, pids) in &state.jobs {
            if state.local {
                for &pid in pids {
                    if is_local_container(pid) {
                        let _ = std::process::Command::new("kill")
                            .arg(pid.to_string())
                            .status();
                    }
                }
            } else {
                // A job that already ended answers an error: nothing is left to stop.
                let _ = crate::sagemaker::stop_named(&aws, name);
            }
            jobs.push(name.clone());
        }
        let (bucket, _) = airlock_publisher::s3::parse_uri(&state.destination)
            .ok_or_else(|| invalid(&path, "its destination is not s3://bucket/prefix"))?;
        let store = S3Registry::new(aws.clone(), bucket, state.prefix.clone());
        let deleted = store
            .delete_under("")
            .map_err(|e| BurstError::Failed(format!("releasing {}: {e}", state.destination)));
        let outcome = match &deleted {
            Ok(keys) => format!(
                "ok: cleanup of an interrupted burst: {} object(s) deleted, {} job(s) stopped",
                keys.len(),
                jobs.len()
            ),
            Err(e) => format!("failed: {e}"),
        };
        audit.record(
            AuditAction::Release,
            BTreeMap::new(),
            state.destination.clone(),
            outcome,
        )?;
        let objects = deleted?.len();
        let _ = std::fs::remove_dir_all(o.work.join(&state.id));
        std::fs::remove_file(&path).map_err(IoError::at("remove", &path))?;
        out.push(Released {
            id: state.id,
            jobs,
            objects,
        });
    }
    Ok(out)
}
