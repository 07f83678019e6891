//! `airlock run PIPELINE.toml`: train → package → approval gate → publish → deploy, resumable.
//!
//! Every stage but the gate digests its inputs. A stage that completed with the same input
//! digest before, and whose output still matches the digest recorded for it, is skipped and
//! says so. Records live in `.airlock/stages/<stage>-<inputs sha256>.json` under the work
//! directory, written atomically once a stage's output is complete, so an interrupted stage
//! leaves nothing a later stage would trust: run directories and bundles are staged and
//! renamed into place, registries only show a release once its index is written, and the
//! audit log is never left with an entry but no signed head.
//!
//! The gate is evaluated on every run (approvals come and go). Without enough approvals it
//! stops with exit 6 and prints the officers' commands; the next run resumes there.
//!
//! A pipeline with a `[signing]` section names real keys: the release is signed with the
//! builder key and waits for k officers. A pipeline without it is a DEMO: airlock makes local
//! demo keys, approves with two demo officers, publishes only to the local `registry/`, and
//! marks every output DEMO. No switch turns auto-approval on for real keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use airlock_schemas::{Decision, DeploySpec, PipelineSpec};
use airlock_trust::approvals::{DecisionRequest, decide, evaluate};
use airlock_trust::shards::{sha256_hex, stream_digest};
use airlock_trust::{APPROVALS_DIR, MODEL_FILE, STATEMENT_FILE};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::exit::{AwaitingApproval, BadInputError};

/// The stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    /// Train the model on the on-prem data (a run directory under runs/).
    Train,
    /// Strip, leak-check and sign the run into a release bundle (under releases/).
    Package,
    /// Verify the bundle and count the officers' approvals.
    Gate,
    /// Upload to the registry (and register in SageMaker's Model Registry).
    Publish,
    /// Bring the SageMaker endpoint InService on the release.
    Deploy,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Package => "package",
            Self::Gate => "gate",
            Self::Publish => "publish",
            Self::Deploy => "deploy",
        }
    }
}

/// Options of `airlock run`.
#[derive(Debug)]
pub struct RunOptions {
    pub pipeline: PathBuf,
    /// Where runs/, releases/, demo/ and .airlock/ go.
    pub workdir: PathBuf,
    pub progress: bool,
    pub threads: usize,
    /// Rerun this stage and every later one even when their inputs are unchanged.
    pub from: Option<Stage>,
    /// Stop after this stage.
    pub until: Option<Stage>,
}

const DEMO_OFFICERS: [&str; 2] = ["demo-officer-1", "demo-officer-2"];
/// The run's state, under the work directory.
pub const STATE_DIR: &str = ".airlock";
/// Files of a run directory whose digest stands for the train stage's output.
const RUN_FILES: [&str; 4] = [
    airlock_model::CHECKPOINT_FILE,
    airlock_model::PREPROCESS_FILE,
    airlock_model::RECORD_FILE,
    airlock_model::PIPELINE_SNAPSHOT_FILE,
];

/// What a completed stage is remembered by.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageRecord {
    stage: String,
    inputs_sha256: String,
    inputs: serde_json::Value,
    /// The run directory, bundle, registry index or endpoint it produced.
    output: String,
    /// SHA-256 standing for the output's content (empty where it lives in the cloud).
    output_sha256: String,
    #[serde(default)]
    details: BTreeMap<String, String>,
    finished_at: String,
}

/// `.airlock/` of a work directory, locked for the whole run.
struct State {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl State {
    fn open(workdir: &Path) -> anyhow::Result<Self> {
        let dir = workdir.join(STATE_DIR);
        std::fs::create_dir_all(dir.join("stages"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another `airlock run` is using {} (it holds {})",
                workdir.display(),
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        Ok(Self { dir, _lock: lock })
    }

    fn path(&self, stage: Stage, digest: &str) -> PathBuf {
        self.dir
            .join("stages")
            .join(format!("{}-{digest}.json", stage.name()))
    }

    fn get(&self, stage: Stage, digest: &str) -> Option<StageRecord> {
        let bytes = std::fs::read(self.path(stage, digest)).ok()?;
        let r: StageRecord = serde_json::from_slice(&bytes).ok()?;
        (r.stage == stage.name() && r.inputs_sha256 == digest).then_some(r)
    }

    fn put(&self, stage: Stage, r: &StageRecord) -> anyhow::Result<()> {
        let path = self.path(stage, &r.inputs_sha256);
        let dir = self.dir.join("stages");
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        use std::io::Write as _;
        tmp.write_all(&serde_json::to_vec_pretty(r)?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

fn digest_json(v: &serde_json::Value) -> String {
    sha256_hex(&serde_json::to_vec(v).unwrap_or_default())
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One digest over the named files of `dir`.
fn dir_digest(dir: &Path, files: &[&str]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_bytes());
        h.update(b"\0");
        h.update(stream_digest(&dir.join(f))?.as_bytes());
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// The approval files of a bundle, by name and digest.
fn approval_digests(bundle: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let dir = bundle.join(APPROVALS_DIR);
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries {
            let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
            if e.path().is_file() {
                let sha = stream_digest(&e.path())
                    .with_context(|| format!("cannot read {}", e.path().display()))?;
                out.insert(e.file_name().to_string_lossy().into_owned(), sha);
            }
        }
    }
    Ok(out)
}

/// A directory that is in the way of a stage's output but not recorded as complete is moved
/// aside (never deleted: it may hold an officer's approvals).
fn move_aside(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let stale = PathBuf::from(format!(
            "{}.stale-{}",
            dir.display(),
            time::OffsetDateTime::now_utc().unix_timestamp()
        ));
        std::fs::rename(dir, &stale)
            .with_context(|| format!("cannot move {} aside", dir.display()))?;
        eprintln!(
            "  {} was not recorded as complete; moved it to {}",
            dir.display(),
            stale.display()
        );
    }
    Ok(())
}

/// Staging directories an interrupted trainer or packager left behind.
fn clean_staging(dirs: &[PathBuf]) {
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".airlock-run-") || name.starts_with(".airlock-bundle-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// On SIGINT or SIGTERM: let an audit append finish, say what happens next, exit 130.
/// Nothing else needs undoing: every stage output is staged or recorded atomically.
fn exit_on_interrupt(current: Arc<Mutex<&'static str>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("airlock-interrupt".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let streams = rt.block_on(async {
                Ok::<_, std::io::Error>((
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                ))
            });
            let (mut int, mut term) = match streams {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            rt.block_on(async {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
            let _quiet = airlock_publisher::audit::quiesce();
            let stage = *current.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "\ninterrupted during {stage}: its output is not recorded as complete, so no \
                 later stage will use it. Run the same command again to resume."
            );
            std::process::exit(130);
        })
        .context("cannot start the interrupt handler")?;
    ready_rx
        .recv()
        .context("the interrupt handler did not start")?
        .context("cannot handle SIGINT")
}

/// Where the publish stage sends a release, paths resolved.
#[derive(Debug, Clone)]
struct Destination {
    registry: String,
    residency: PathBuf,
    key: PathBuf,
    audit_log: PathBuf,
    region: Option<String>,
    sagemaker: Option<airlock_schemas::SageMakerSpec>,
}

/// One line of the summary.
struct Line {
    stage: Stage,
    what: String,
    secs: Option<f64>,
    detail: String,
}

struct Runner<'a> {
    opts: &'a RunOptions,
    state: State,
    lines: Vec<Line>,
    /// Digests of what the run released, shown under the stage lines.
    digests: Vec<String>,
    /// What left the premises on this run, and where to.
    crossed: Vec<String>,
    /// (entries, last seq) of each publish call's audit entries.
    audit: Vec<(usize, u64)>,
    current: Arc<Mutex<&'static str>>,
    started: Instant,
}

impl Runner<'_> {
    fn begin(&self, stage: Stage) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = stage.name();
    }

    /// The record of a completed `stage` with these inputs whose output still checks, unless
    /// `--from` asks to redo it.
    fn reusable(
        &self,
        stage: Stage,
        digest: &str,
        valid: impl Fn(&StageRecord) -> bool,
    ) -> Option<StageRecord> {
        if self.opts.from.is_some_and(|f| stage >= f) {
            return None;
        }
        self.state.get(stage, digest).filter(valid)
    }

    /// `--from` past `stage`, which has no reusable output: nothing to start from.
    fn needs_earlier(&self, stage: Stage) -> anyhow::Result<()> {
        if let Some(f) = self.opts.from
            && f > stage
        {
            anyhow::bail!(BadInputError(format!(
                "--from {}: the {} stage has no completed output for these inputs; run without --from",
                f.name(),
                stage.name()
            )));
        }
        Ok(())
    }

    fn skipped(&mut self, stage: Stage, r: &StageRecord) {
        eprintln!(
            "== {}: skipped, inputs unchanged ({}) → {}",
            stage.name(),
            &r.inputs_sha256[..12],
            r.output
        );
        self.lines.push(Line {
            stage,
            what: "skipped".into(),
            secs: None,
            detail: r.output.clone(),
        });
    }

    fn ran(&mut self, stage: Stage, t: Instant, detail: String) {
        self.lines.push(Line {
            stage,
            what: "ran".into(),
            secs: Some(t.elapsed().as_secs_f64()),
            detail,
        });
    }

    fn record(
        &self,
        stage: Stage,
        digest: &str,
        inputs: serde_json::Value,
        output: String,
        output_sha256: String,
        details: BTreeMap<String, String>,
    ) -> anyhow::Result<StageRecord> {
        let r = StageRecord {
            stage: stage.name().into(),
            inputs_sha256: digest.into(),
            inputs,
            output,
            output_sha256,
            details,
            finished_at: now(),
        };
        self.state.put(stage, &r)?;
        Ok(r)
    }

    fn not_configured(&mut self, stage: Stage, why: &str) {
        self.lines.push(Line {
            stage,
            what: "not configured".into(),
            secs: None,
            detail: why.into(),
        });
    }

    /// The end of a run that got through: the summary, what left and the audit entries.
    fn finish(&self, title: &str, bundle: &Path, audit_log: &Path) {
        let mut tail = Vec::new();
        if self.crossed.is_empty() {
            tail.push("left the premises on this run: nothing".to_owned());
        } else {
            tail.push("left the premises on this run:".to_owned());
            tail.extend(self.crossed.iter().map(|l| format!("  {l}")));
        }
        let n: usize = self.audit.iter().map(|a| a.0).sum();
        let last = self.audit.iter().map(|a| a.1).max().unwrap_or(0);
        tail.push(if n == 0 {
            format!("audit entries written: none ({})", audit_log.display())
        } else {
            format!(
                "audit entries written: {n} (seq {}..={last}) in {}",
                last + 1 - n as u64,
                audit_log.display()
            )
        });
        self.summary(title, &tail);
        println!("{}", bundle.display());
    }

    /// `--until` reached after `stage`?
    fn stop_after(&self, stage: Stage) -> bool {
        self.opts.until == Some(stage)
    }

    fn summary(&self, title: &str, tail: &[String]) {
        eprintln!(
            "\n== summary: {title} ({:.1} s)",
            self.started.elapsed().as_secs_f64()
        );
        for l in &self.lines {
            let t = l.secs.map_or_else(String::new, |s| format!(" {s:.1} s"));
            eprintln!(
                "  {:<8} {:<16} {}",
                l.stage.name(),
                format!("{}{t}", l.what),
                l.detail
            );
        }
        for d in &self.digests {
            eprintln!("  {d}");
        }
        for t in tail {
            eprintln!("  {t}");
        }
    }
}

pub fn run(opts: &RunOptions) -> anyhow::Result<()> {
    let spec = PipelineSpec::load(&opts.pipeline)?;
    let state = State::open(&opts.workdir)?;
    let under = |p: &str| under(&opts.workdir, p);
    clean_staging(&[under("runs"), under("releases")]);
    let current = Arc::new(Mutex::new("start"));
    exit_on_interrupt(current.clone())?;
    let mut r = Runner {
        opts,
        state,
        lines: Vec::new(),
        digests: Vec::new(),
        crossed: Vec::new(),
        audit: Vec::new(),
        current,
        started: Instant::now(),
    };

    let demo = spec.signing.is_none();
    let (trust_path, builder_key) = match &spec.signing {
        Some(s) => (
            spec.resolve(&opts.pipeline, &s.trust),
            spec.resolve(&opts.pipeline, &s.builder_key),
        ),
        None => {
            eprintln!(
                "DEMO: {} has no [signing] section; using local demo keys under {}",
                opts.pipeline.display(),
                under("demo").display()
            );
            demo_keys(&under("demo"))?
        }
    };
    let p = Pipeline {
        opts,
        trust: airlock_trust::Trust::load(&trust_path)?,
        trust_path,
        builder_key,
        name: format!(
            "{}-{}{}",
            spec.release.name,
            spec.release.version,
            if demo { "-DEMO" } else { "" }
        ),
        title: format!(
            "{} {}{}",
            spec.release.name,
            spec.release.version,
            if demo { " (DEMO)" } else { "" }
        ),
        demo,
        spec,
    };

    // A release that cannot be published is not trained, packaged or put to the officers.
    if opts.until.is_none_or(|u| u >= Stage::Publish)
        && let Some(dest) = p.destination()?
    {
        p.preflight(&dest)?;
    }
    let train = p.train(&mut r)?;
    if r.stop_after(Stage::Train) {
        r.summary(&p.title, &["stopped after train (--until train)".into()]);
        return Ok(());
    }
    let package = p.package(&mut r, &train)?;
    let bundle = PathBuf::from(&package.output);
    if r.stop_after(Stage::Package) {
        r.summary(
            &p.title,
            &["stopped after package (--until package)".into()],
        );
        println!("{}", bundle.display());
        return Ok(());
    }
    let approvals = p.gate(&mut r, &bundle)?;
    if r.stop_after(Stage::Gate) {
        r.summary(&p.title, &["stopped after gate (--until gate)".into()]);
        println!("{}", bundle.display());
        return Ok(());
    }
    let Some(dest) = p.destination()? else {
        r.not_configured(Stage::Publish, "no [publish] section");
        r.summary(
            &p.title,
            &["approved; nothing left the premises (add [publish] to the pipeline)".into()],
        );
        println!("{}", bundle.display());
        return Ok(());
    };
    let published = p.publish(&mut r, &dest, &package, &approvals)?;
    match &p.spec.deploy {
        _ if r.stop_after(Stage::Publish) => {}
        None => r.not_configured(Stage::Deploy, "no [deploy] section"),
        Some(deploy) => p.deploy(&mut r, &dest, &bundle, &published, deploy)?,
    }
    r.finish(&p.title, &bundle, &dest.audit_log);
    Ok(())
}

/// `p` under the work directory (as given when it is `.`, for shorter messages).
fn under(workdir: &Path, p: &str) -> PathBuf {
    if workdir == Path::new(".") {
        PathBuf::from(p)
    } else {
        workdir.join(p)
    }
}

/// The pipeline being run and its keys.
struct Pipeline<'a> {
    opts: &'a RunOptions,
    spec: PipelineSpec,
    demo: bool,
    trust_path: PathBuf,
    trust: airlock_trust::Trust,
    builder_key: PathBuf,
    /// `<model>-<version>[-DEMO]`, the prefix of run and bundle directories.
    name: String,
    title: String,
}

impl Pipeline<'_> {
    fn under(&self, p: &str) -> PathBuf {
        under(&self.opts.workdir, p)
    }

    fn train(&self, r: &mut Runner<'_>) -> anyhow::Result<StageRecord> {
        let (opts, spec) = (self.opts, &self.spec);
        let data = spec.data_source(&opts.pipeline);
        if self.demo && !data.exists() {
            let s = airlock_model::demo::write_demo_csv(&data, 50_000, 7)?;
            eprintln!(
                "DEMO: wrote {} synthetic transactions to {}",
                s.rows,
                data.display()
            );
        }
        let data_sha = stream_digest(&data).map_err(|e| {
            BadInputError(format!(
                "cannot read the pipeline's data source {}: {e}",
                data.display()
            ))
        })?;
        // Everything that shapes the model; destinations and keys do not.
        let mut shaping = serde_json::to_value(spec)?;
        if let Some(o) = shaping.as_object_mut() {
            for k in ["signing", "publish", "deploy"] {
                o.remove(k);
            }
        }
        let inputs = json!({
            "airlock": env!("CARGO_PKG_VERSION"),
            "pipeline": shaping,
            "data_sha256": data_sha,
        });
        let digest = digest_json(&inputs);
        let run_dir = self
            .under("runs")
            .join(format!("{}-{}", self.name, &digest[..12]));
        r.begin(Stage::Train);
        let check = |rec: &StageRecord| {
            dir_digest(Path::new(&rec.output), &RUN_FILES).is_ok_and(|d| d == rec.output_sha256)
        };
        if let Some(rec) = r.reusable(Stage::Train, &digest, check) {
            r.skipped(Stage::Train, &rec);
            return Ok(rec);
        }
        r.needs_earlier(Stage::Train)?;
        eprintln!(
            "== train ({} epochs on {})",
            spec.training.epochs, spec.training.device
        );
        let t = Instant::now();
        move_aside(&run_dir)?;
        let summary = airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
            pipeline: opts.pipeline.clone(),
            out: Some(run_dir.clone()),
            device: None,
            cpu_backend: None,
            progress: opts.progress,
        })?;
        let auc = summary.record.holdout.roc_auc;
        eprintln!("  holdout ROC AUC {auc:.4}");
        let out_sha = dir_digest(&run_dir, &RUN_FILES)
            .with_context(|| format!("cannot read {}", run_dir.display()))?;
        r.ran(
            Stage::Train,
            t,
            format!("{} (holdout ROC AUC {auc:.4})", run_dir.display()),
        );
        r.record(
            Stage::Train,
            &digest,
            inputs,
            run_dir.display().to_string(),
            out_sha,
            BTreeMap::from([("holdout_roc_auc".into(), format!("{auc:.4}"))]),
        )
    }

    fn package(&self, r: &mut Runner<'_>, train: &StageRecord) -> anyhow::Result<StageRecord> {
        let builder = airlock_trust::keys::Signer::load(&self.builder_key)?;
        let inputs = json!({
            "airlock": env!("CARGO_PKG_VERSION"),
            "run_sha256": train.output_sha256,
            "builder": builder.key_id(),
        });
        drop(builder);
        let digest = digest_json(&inputs);
        let bundle = self
            .under("releases")
            .join(format!("{}-{}", self.name, &digest[..12]));
        r.begin(Stage::Package);
        let check = |rec: &StageRecord| {
            std::fs::read(Path::new(&rec.output).join(STATEMENT_FILE))
                .is_ok_and(|b| sha256_hex(&b) == rec.output_sha256)
        };
        let rec = match r.reusable(Stage::Package, &digest, check) {
            Some(rec) => {
                r.skipped(Stage::Package, &rec);
                rec
            }
            None => {
                r.needs_earlier(Stage::Package)?;
                eprintln!("== package (strip, leak checks L0-L3, sign)");
                let t = Instant::now();
                move_aside(&bundle)?;
                let pkg = airlock_packager::package(&airlock_packager::PackageOptions {
                    run_dir: PathBuf::from(&train.output),
                    key: self.builder_key.clone(),
                    out: bundle.clone(),
                    threads: self.opts.threads,
                    progress: Some(|secs, what| eprintln!("  [{secs:6.1} s] {what}")),
                })?;
                for l in &pkg.report.layers {
                    eprintln!("  {} {:<22} pass", l.id, l.name);
                }
                let statement = std::fs::read(bundle.join(STATEMENT_FILE))
                    .with_context(|| format!("cannot read {}", bundle.display()))?;
                let model_sha = stream_digest(&bundle.join(MODEL_FILE))
                    .with_context(|| format!("cannot read {}", bundle.display()))?;
                r.ran(Stage::Package, t, bundle.display().to_string());
                r.record(
                    Stage::Package,
                    &digest,
                    inputs,
                    bundle.display().to_string(),
                    sha256_hex(&statement),
                    BTreeMap::from([("model_sha256".into(), model_sha)]),
                )?
            }
        };
        if let Some(m) = rec.details.get("model_sha256") {
            r.digests.push(format!("{MODEL_FILE} sha256 {m}"));
        }
        r.digests.push(format!(
            "{STATEMENT_FILE} sha256 {} (what the officers sign)",
            rec.output_sha256
        ));
        Ok(rec)
    }

    /// Verify the bundle and count approvals (DEMO: approve with the demo officers). Returns
    /// the approval files by digest, or stops the run at the gate with the officers' commands.
    fn gate(&self, r: &mut Runner<'_>, bundle: &Path) -> anyhow::Result<BTreeMap<String, String>> {
        let (opts, trust) = (self.opts, &self.trust);
        r.begin(Stage::Gate);
        eprintln!("== gate (verify the bundle, count approvals)");
        let t = Instant::now();
        // The gate only counts: publish verifies again and keeps the bytes it uploads.
        let v = airlock_trust::verify_bundle_streamed(bundle, trust, opts.threads, false);
        if !v.ok() {
            for c in v.checks.iter().filter(|c| !c.ok) {
                eprintln!("  FAIL {}: {}", c.name, c.detail);
            }
            anyhow::bail!(crate::exit::VerificationFailed(
                bundle.display().to_string()
            ));
        }
        let mut s = evaluate(trust, &v, time::OffsetDateTime::now_utc());
        if self.demo && !s.approved() {
            eprintln!("  DEMO: automatic approval by local demo officers; not a real review");
            for officer in DEMO_OFFICERS {
                decide(
                    &DecisionRequest {
                        bundle: bundle.to_owned(),
                        key: self.under("demo/keys").join(format!("{officer}.key")),
                        name: format!("{officer} (DEMO)"),
                        reason: "DEMO auto-approval by airlock's local demo officer; nobody reviewed this release".into(),
                        decision: Decision::Approve,
                        expires: Some("30d".into()),
                    },
                    trust,
                    opts.threads,
                )?;
            }
            // Decisions are judged from the bytes verify read: read the bundle again.
            let v = airlock_trust::verify_bundle_streamed(bundle, trust, opts.threads, false);
            s = evaluate(trust, &v, time::OffsetDateTime::now_utc());
        }
        let count = format!("{} of {} officer approvals", s.approvals, s.required);
        let rejected = if s.rejected {
            " (a valid rejection blocks it)"
        } else {
            ""
        };
        eprintln!(
            "  {} of {} required officer approvals{rejected}",
            s.approvals, s.required
        );
        if !s.approved() {
            r.lines.push(Line {
                stage: Stage::Gate,
                what: "waiting".into(),
                secs: None,
                detail: count,
            });
            let b = bundle.display();
            let tp = self.trust_path.display();
            let p = opts.pipeline.display();
            r.summary(
                &self.title,
                &[format!(
                    "release {} is packaged, signed and waiting for approval{rejected}. Each \
                     officer reviews and decides with:\n\n    \
                     airlock review {b} --trust {tp} --out review.html\n    \
                     airlock approve {b} --trust {tp} --key <officer.key> --name \"<your name>\" --reason \"<why>\"\n\n  \
                     then run `airlock run {p}` again: it resumes at the gate.",
                    self.name
                )],
            );
            println!("{b}");
            return Err(AwaitingApproval(b.to_string()).into());
        }
        r.lines.push(Line {
            stage: Stage::Gate,
            what: "passed".into(),
            secs: Some(t.elapsed().as_secs_f64()),
            detail: count,
        });
        approval_digests(bundle)
    }

    /// The pipeline's `[publish]` destination, or the DEMO's local registry, paths resolved.
    fn destination(&self) -> anyhow::Result<Option<Destination>> {
        Ok(match &self.spec.publish {
            Some(p) => {
                let resolve = |f: &Path| self.spec.resolve(&self.opts.pipeline, f);
                Some(Destination {
                    registry: p.registry.clone(),
                    residency: resolve(&p.residency),
                    key: resolve(&p.key),
                    audit_log: resolve(&p.audit_log),
                    region: p.region.clone(),
                    sagemaker: p.sagemaker.clone(),
                })
            }
            None if self.demo => {
                let root = std::path::absolute(self.under("registry"))
                    .context("cannot resolve registry/")?;
                Some(Destination {
                    registry: format!("file://{}", root.display()),
                    residency: self.under("demo/residency.toml"),
                    key: self.under("demo/keys/publisher.key"),
                    audit_log: self.under("demo/audit.log"),
                    region: None,
                    sagemaker: None,
                })
            }
            None => None,
        })
    }

    fn publish_options(
        &self,
        dest: &Destination,
        bundle: &Path,
        deploy: Option<&DeploySpec>,
    ) -> airlock_publisher::publish::PublishOptions {
        use airlock_publisher::sagemaker::{DeployOptions, SageMakerOptions};
        airlock_publisher::publish::PublishOptions {
            bundle: bundle.to_owned(),
            to: dest.registry.clone(),
            trust: self.trust_path.clone(),
            residency: dest.residency.clone(),
            audit_log: dest.audit_log.clone(),
            key: dest.key.clone(),
            threads: self.opts.threads,
            aws: airlock_publisher::aws::AwsOptions {
                region: dest.region.clone(),
                ..Default::default()
            },
            sagemaker: dest.sagemaker.as_ref().map(|sm| SageMakerOptions {
                group: sm.model_package_group.clone(),
                image: sm.image.clone(),
                deploy: deploy.map(|d| DeployOptions {
                    endpoint: d.endpoint.clone(),
                    role: d.role.clone(),
                    instance_type: d.instance_type.clone(),
                    instance_count: i32::try_from(d.instance_count).unwrap_or(i32::MAX),
                    timeout: std::time::Duration::from_secs(d.timeout_seconds),
                    poll: std::time::Duration::from_secs(d.poll_seconds),
                }),
            }),
            deploy_only: deploy.is_some(),
            run_dir: None,
        }
    }

    /// Check the publish stage's keys, residency, registry and audit log before anything
    /// runs, sending nothing and appending nothing (no bundle is needed for that).
    fn preflight(&self, dest: &Destination) -> anyhow::Result<()> {
        let f = airlock_publisher::publish::preflight(&self.publish_options(
            dest,
            Path::new(""),
            None,
        ))
        .with_context(|| {
            format!(
                "the release could not be published to {}, so it is not put to the officers",
                dest.registry
            )
        })?;
        eprintln!(
            "== publish pre-flight: {} (region {}), audit log {} ({} entries): ok",
            dest.registry,
            f.region,
            dest.audit_log.display(),
            f.audit_entries
        );
        Ok(())
    }

    fn publish(
        &self,
        r: &mut Runner<'_>,
        dest: &Destination,
        package: &StageRecord,
        approvals: &BTreeMap<String, String>,
    ) -> anyhow::Result<StageRecord> {
        let residency_sha = sha256_hex(&std::fs::read(&dest.residency).with_context(|| {
            format!("cannot read residency policy {}", dest.residency.display())
        })?);
        let publisher = airlock_trust::keys::Signer::load(&dest.key)?;
        let inputs = json!({
            "statement_sha256": package.output_sha256,
            "approvals": approvals,
            "registry": dest.registry,
            "region": dest.region,
            "sagemaker": dest.sagemaker,
            "residency_sha256": residency_sha,
            "trust_sha256": self.trust.sha256,
            "publisher": publisher.key_id(),
            "audit_log": std::path::absolute(&dest.audit_log).unwrap_or(dest.audit_log.clone()),
        });
        drop(publisher);
        let digest = digest_json(&inputs);
        r.begin(Stage::Publish);
        if let Some(rec) = r.reusable(Stage::Publish, &digest, |_| true) {
            r.skipped(Stage::Publish, &rec);
            return Ok(rec);
        }
        eprintln!(
            "== publish to {}{}",
            dest.registry,
            if dest.sagemaker.is_some() {
                " and the SageMaker Model Registry"
            } else {
                ""
            }
        );
        let t = Instant::now();
        let bundle = Path::new(&package.output);
        let p = airlock_publisher::publish::publish(&self.publish_options(dest, bundle, None))?;
        let index = format!("{}/{}", dest.registry.trim_end_matches('/'), p.index);
        eprintln!(
            "  uploaded {} files ({} bytes), {} already there; region {}",
            p.uploaded, p.uploaded_bytes, p.skipped, p.region
        );
        r.crossed.push(format!(
            "{} files, {} bytes → {} (region {})",
            p.uploaded, p.uploaded_bytes, dest.registry, p.region
        ));
        r.audit.push((p.audit_entries, p.audit_seq));
        let mut details = BTreeMap::from([
            ("region".to_owned(), p.region.clone()),
            ("uploaded_bytes".to_owned(), p.uploaded_bytes.to_string()),
        ]);
        let mut detail = index.clone();
        if let Some(mp) = &p.model_package {
            r.crossed.push(format!("model package → {mp}"));
            details.insert("model_package".into(), mp.clone());
            detail = format!("{index}; {mp}");
        }
        r.ran(Stage::Publish, t, detail);
        r.record(
            Stage::Publish,
            &digest,
            inputs,
            index,
            String::new(),
            details,
        )
    }

    fn deploy(
        &self,
        r: &mut Runner<'_>,
        dest: &Destination,
        bundle: &Path,
        published: &StageRecord,
        deploy: &DeploySpec,
    ) -> anyhow::Result<()> {
        let inputs = json!({
            "publish_sha256": published.inputs_sha256,
            "deploy": deploy,
        });
        let digest = digest_json(&inputs);
        r.begin(Stage::Deploy);
        if let Some(rec) = r.reusable(Stage::Deploy, &digest, |_| true) {
            r.skipped(Stage::Deploy, &rec);
            return Ok(());
        }
        eprintln!("== deploy to SageMaker endpoint {}", deploy.endpoint);
        let t = Instant::now();
        let p =
            airlock_publisher::publish::publish(&self.publish_options(dest, bundle, Some(deploy)))?;
        let endpoint = p.endpoint.clone().unwrap_or_default();
        r.audit.push((p.audit_entries, p.audit_seq));
        r.crossed
            .push(format!("endpoint {endpoint} serves it (InService)"));
        r.ran(Stage::Deploy, t, format!("{endpoint} InService"));
        r.record(
            Stage::Deploy,
            &digest,
            inputs,
            endpoint,
            String::new(),
            BTreeMap::new(),
        )?;
        Ok(())
    }
}

/// Local demo keys (a builder, two officers, a publisher), made once, a 2-of-2 trust policy
/// and a residency policy that keeps releases in the local file registry.
fn demo_keys(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let keys = dir.join("keys");
    for k in ["builder", "publisher"].iter().chain(DEMO_OFFICERS.iter()) {
        let prefix = keys.join(k);
        if !PathBuf::from(format!("{}.key", prefix.display())).exists() {
            airlock_trust::keys::generate(&prefix)
                .with_context(|| format!("cannot make demo key {k}"))?;
        }
    }
    let trust = dir.join("trust.toml");
    let mut policy = String::from(
        "# DEMO trust policy written by `airlock run` for a pipeline without [signing].\n\
         # Its keys live on this machine: never use it for a real release.\n\
         approvals_required = 2\n",
    );
    for (name, role) in [
        ("demo-builder", "builder"),
        (DEMO_OFFICERS[0], "officer"),
        (DEMO_OFFICERS[1], "officer"),
        ("demo-publisher", "publisher"),
    ] {
        let file = match role {
            "builder" => "builder",
            "publisher" => "publisher",
            _ => name,
        };
        policy.push_str(&format!(
            "\n[[keys]]\nname = \"{name}\"\nrole = \"{role}\"\npublic_key = \"keys/{file}.pub\"\n"
        ));
    }
    write_if_changed(&trust, &policy)?;
    // A trust policy, its keys and their folders that others may write are refused, whatever
    // the umask made them.
    let mut restrict = vec![dir.to_owned(), keys.clone(), trust.clone()];
    for k in ["builder", "publisher"].iter().chain(DEMO_OFFICERS.iter()) {
        restrict.push(keys.join(format!("{k}.pub")));
    }
    for p in &restrict {
        airlock_trust::keys::drop_group_other_write(p)
            .with_context(|| format!("cannot restrict the permissions of {}", p.display()))?;
    }
    write_if_changed(
        &dir.join("residency.toml"),
        "# DEMO residency policy written by `airlock run`: releases stay in the local file registry.\n\
         [registry]\nregions = [\"local\"]\n",
    )?;
    let residency = dir.join("residency.toml");
    airlock_trust::keys::drop_group_other_write(&residency)
        .with_context(|| format!("cannot restrict the permissions of {}", residency.display()))?;
    Ok((trust, keys.join("builder.key")))
}

/// Rewriting identical bytes would be harmless, but an unchanged file keeps its time.
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
