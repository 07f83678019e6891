//! `airlock run PIPELINE.toml`: the whole release, resumably.

use crate::cli::RunArgs;
use crate::pipeline_run;

/// Run the pipeline's stages.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    pipeline_run::run(&pipeline_run::RunOptions {
        pipeline: a.pipeline,
        workdir: a.workdir,
        progress: super::progress(a.no_progress),
        threads: super::cores(),
        from: a.from,
        until: a.until,
    })
}
