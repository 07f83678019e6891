//! `airlock export`: write a burst's data export, or decide on or verify one.

use anyhow::Context as _;

use crate::cli::{ExportArgs, ExportStep};

/// Write the export, or run the step.
pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    match a.step {
        None => write(a),
        Some(ExportStep::Approve(d)) => decide(d, airlock_schemas::Decision::Approve),
        Some(ExportStep::Reject(d)) => decide(d, airlock_schemas::Decision::Reject),
        Some(ExportStep::Verify(v)) => verify(&v),
    }
}

fn write(a: ExportArgs) -> anyhow::Result<()> {
    // clap requires each of these when no step is given.
    let (Some(pipeline), Some(policy), Some(out), Some(trust), Some(key)) =
        (a.pipeline, a.policy, a.out, a.trust, a.key)
    else {
        anyhow::bail!("PIPELINE.toml, --policy, --out, --trust and --key are required");
    };
    let s = airlock_burst::export(&airlock_burst::ExportOptions {
        pipeline,
        policy,
        out,
        trust,
        key,
        threads: super::cores(),
    })?;
    let r = &s.predicate.rows;
    eprintln!(
        "exported {} of {} rows ({} eligible in the training split, {} sampled, {} suppressed), k = {} achieved ({} required), {} classes; L1 and L2 found nothing",
        r.exported,
        r.source,
        r.eligible,
        r.sampled,
        r.suppressed,
        s.predicate.k_achieved,
        s.predicate.k_required,
        s.predicate.classes
    );
    eprintln!(
        "statement sha256 {}: it needs officers' approvals (airlock export approve) before a burst may use it",
        s.statement_sha256
    );
    println!("{}", s.dir.display());
    Ok(())
}

fn decide(
    d: crate::cli::ExportDecideArgs,
    decision: airlock_schemas::Decision,
) -> anyhow::Result<()> {
    let trust = airlock_trust::Trust::load(&d.trust)?;
    let path = airlock_burst::decide(
        &airlock_burst::ExportDecision {
            dir: d.dir,
            key: d.key,
            name: d.name,
            reason: d.reason,
            decision,
            expires: d.expires,
        },
        &trust,
    )?;
    println!("{}", path.display());
    Ok(())
}

fn verify(v: &crate::cli::ExportVerifyArgs) -> anyhow::Result<()> {
    let trust = airlock_trust::Trust::load(&v.trust)?;
    let e = airlock_burst::verify_export(&v.dir, &trust)?;
    if v.json {
        let doc = serde_json::json!({
            "statement_sha256": e.statement_sha256,
            "builder": e.builder,
            "data_sha256": e.data_sha256,
            "pipeline_sha256": e.pipeline_sha256,
            "export": e.predicate,
            "approvals": e.approvals,
            "rejections": e.rejections,
            "ignored": e.ignored.iter().map(|(f, why)| serde_json::json!({"file": f, "why": why})).collect::<Vec<_>>(),
            "required": e.required,
            "approved": e.approved(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).context("JSON")?);
    } else {
        let p = &e.predicate;
        println!(
            "export of {} {}: {} rows, k = {} (required {}), signed by builder {}",
            p.model_name, p.model_version, p.rows.exported, p.k_achieved, p.k_required, e.builder
        );
        println!("approvals: {} of {}", e.approvals.len(), e.required.max(1));
        for (f, why) in &e.ignored {
            println!("ignored: {f}: {why}");
        }
    }
    if let Some(why) = e.why_not() {
        return Err(airlock_burst::BurstError::Unverified {
            dir: v.dir.clone(),
            why: format!("not approved: {why}"),
        }
        .into());
    }
    Ok(())
}
