//! `airlock burst`: a cloud burst, its cleanup, or the training container's entrypoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

use crate::cli::{BurstArgs, BurstStep};

/// Run the burst, the cleanup or the container.
pub fn run(a: BurstArgs) -> anyhow::Result<()> {
    if let Some(BurstStep::Container { .. }) = a.step {
        return container();
    }
    let pipeline_spec = match &a.pipeline {
        Some(p) => Some((p.clone(), airlock_schemas::PipelineSpec::load(p)?)),
        None => None,
    };
    // The pipeline's [signing] and [publish] sections give the defaults.
    let base = |p: &PathBuf| {
        p.parent()
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
    };
    let from_pipeline = |pick: &dyn Fn(&airlock_schemas::PipelineSpec) -> Option<PathBuf>| {
        pipeline_spec
            .as_ref()
            .and_then(|(p, s)| pick(s).map(|rel| base(p).join(rel)))
    };
    let need = |given: Option<PathBuf>, default: Option<PathBuf>, flag: &str| {
        given.or(default).with_context(|| {
            format!("{flag} is required (or the pipeline's section that gives it)")
        })
    };
    let trust = need(
        a.trust,
        from_pipeline(&|s| s.signing.as_ref().map(|g| g.trust.clone())),
        "--trust",
    )?;
    let residency = need(
        a.residency,
        from_pipeline(&|s| s.publish.as_ref().map(|p| p.residency.clone())),
        "--residency",
    )?;
    let key = need(
        a.key,
        from_pipeline(&|s| s.publish.as_ref().map(|p| p.key.clone())),
        "--key",
    )?;
    let audit_log = need(
        a.audit_log,
        from_pipeline(&|s| s.publish.as_ref().map(|p| p.audit_log.clone())),
        "--audit-log",
    )?;
    let interrupted = on_interrupt();
    if a.cleanup {
        let released = airlock_burst::driver::cleanup(&airlock_burst::driver::CleanupOptions {
            work: a.work,
            trust,
            key,
            audit_log,
            aws: a.aws.options(),
        })?;
        println!("{}", serde_json::to_string_pretty(&released)?);
        return Ok(());
    }
    let a_work = a.work.clone();
    let (Some(pipeline), Some(export)) = (a.pipeline, a.export) else {
        anyhow::bail!("PIPELINE.toml and --export are required");
    };
    let summary = airlock_burst::burst(&airlock_burst::BurstOptions {
        pipeline: pipeline.clone(),
        export,
        trust,
        residency,
        key,
        audit_log,
        work: a_work.clone(),
        local: a.local,
        airlock: std::env::current_exe().context("the path of this airlock binary")?,
        aws: a.aws.options(),
        interrupted,
    })?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&summary.id));
    let work = a_work.join(&summary.id);
    let run = airlock_burst::write_run(&pipeline, &summary, &out, super::progress(false));
    let _ = std::fs::remove_dir_all(&work);
    let run = run?;
    eprintln!(
        "burst {}: kept {} of {} job(s); its run is {} (package it as any other run)",
        summary.id,
        summary.chosen,
        summary.jobs.len(),
        run.display()
    );
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// A flag set on Ctrl-C or SIGTERM: the burst then stops its jobs and releases what it
/// made before exiting.
fn on_interrupt() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            });
            eprintln!("interrupted: stopping jobs and releasing the burst's resources");
            flag.store(true, Ordering::SeqCst);
        }
    });
    interrupted
}

/// The entrypoint of the training image.
fn container() -> anyhow::Result<()> {
    let root = std::env::var_os(airlock_burst::container::SM_ROOT_ENV).map_or_else(
        || PathBuf::from(airlock_burst::container::SM_ROOT),
        PathBuf::from,
    );
    let out = airlock_burst::container::run_container(&root)?;
    if let Some(digest) = &out.run_sha256 {
        // On SageMaker the job records its artifact's digest on itself (a tag), out of
        // reach of whoever can write the bucket; local mode keeps what is printed.
        if std::env::var_os(airlock_burst::local::LOCAL_ENV).is_none()
            && let Ok(arn) = std::env::var("TRAINING_JOB_ARN")
        {
            let aws =
                airlock_publisher::aws::Aws::load(airlock_publisher::aws::AwsOptions::default())?;
            airlock_burst::sagemaker::tag_digest(&aws, &arn, digest)?;
        }
        println!("{}", serde_json::json!({ "run_sha256": digest }));
    }
    Ok(())
}
