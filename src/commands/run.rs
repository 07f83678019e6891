//! `airlock run PIPELINE.toml`: the whole release, resumably (the `airlock-pipeline` crate).

use airlock_pipeline::RunError;

use crate::cli::RunArgs;
use crate::exit;

/// Run the pipeline's stages.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    airlock_pipeline::run(&airlock_pipeline::RunOptions {
        pipeline: a.pipeline,
        workdir: a.workdir,
        progress: super::progress(a.no_progress),
        threads: super::cores(),
        from: a.from,
        until: a.until,
    })
    .map_err(exit_error)
}

/// The run's own refusals as the errors `exit` maps to exit codes (same messages): 6
/// waiting at the gate, 8 rejected by an officer, 4 the bundle does not verify, 3 refused input. Errors of the
/// libraries the run calls pass through: `exit` knows them.
fn exit_error(err: anyhow::Error) -> anyhow::Error {
    match err.downcast::<RunError>() {
        Ok(RunError::AwaitingApproval(bundle)) => exit::AwaitingApproval(bundle).into(),
        Ok(RunError::Rejected(why)) => exit::Rejected(why).into(),
        Ok(RunError::VerificationFailed(bundle)) => exit::VerificationFailed(bundle).into(),
        Ok(RunError::BadInput(why)) => exit::BadInputError(why).into(),
        Err(err) => err,
    }
}
