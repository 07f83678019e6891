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
//! stops with [`RunError::AwaitingApproval`] and prints the officers' commands; the next run
//! resumes there.
//!
//! A pipeline with a `[signing]` section names real keys: the release is signed with the
//! builder key and waits for k officers. A pipeline without it is a DEMO: airlock makes local
//! demo keys, approves with two demo officers, publishes only to the local `registry/`, and
//! marks every output DEMO. No switch turns auto-approval on for real keys.
//!
//! Modules: [`Stage`] and the records of completed stages (`state`), the summary (`runner`),
//! the stages themselves (`stages`), the DEMO's keys and policies (`demo`), the work
//! directory's housekeeping (`workdir`) and the interrupt handler (`interrupt`).

use std::path::{Path, PathBuf};

mod demo;
mod error;
mod interrupt;
mod pipeline;
mod runner;
mod stage;
mod stages;
mod state;
mod workdir;

pub use error::RunError;
pub use stage::Stage;
pub use state::STATE_DIR;

use pipeline::Pipeline;
use runner::Runner;

/// Options of `airlock run`.
#[derive(Debug)]
pub struct RunOptions {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Where runs/, releases/, demo/ and .airlock/ go.
    pub workdir: PathBuf,
    /// Progress bars while training.
    pub progress: bool,
    /// Threads for leak scans, digests and verification.
    pub threads: usize,
    /// Rerun this stage and every later one even when their inputs are unchanged.
    pub from: Option<Stage>,
    /// Stop after this stage.
    pub until: Option<Stage>,
}

/// Run the pipeline's stages, skipping those whose inputs are unchanged. Prints the stages
/// and the summary on stderr and the bundle directory on stdout; stops with
/// [`RunError::AwaitingApproval`] at the gate until the officers' approvals count.
pub fn run(opts: &RunOptions) -> anyhow::Result<()> {
    let spec = airlock_schemas::PipelineSpec::load(&opts.pipeline)?;
    let state = state::State::open(&opts.workdir)?;
    workdir::clean_staging(&[
        workdir::under(&opts.workdir, "runs"),
        workdir::under(&opts.workdir, "releases"),
    ]);
    let current = interrupt::Current::default();
    interrupt::exit_on_interrupt(current.clone())?;
    let mut r = Runner::new(opts, state, current);
    let p = Pipeline::load(opts, spec)?;
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
        return stopped(&r, &p, "stopped after package (--until package)", &bundle);
    }
    let approvals = p.gate(&mut r, &bundle)?;
    if r.stop_after(Stage::Gate) {
        return stopped(&r, &p, "stopped after gate (--until gate)", &bundle);
    }
    let Some(dest) = p.destination()? else {
        r.not_configured(Stage::Publish, "no [publish] section");
        let why = "approved; nothing left the premises (add [publish] to the pipeline)";
        return stopped(&r, &p, why, &bundle);
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

/// The end of a run that stopped early with a bundle: the summary, then the bundle.
fn stopped(r: &Runner<'_>, p: &Pipeline<'_>, why: &str, bundle: &Path) -> anyhow::Result<()> {
    r.summary(&p.title, &[why.to_owned()]);
    println!("{}", bundle.display());
    Ok(())
}
