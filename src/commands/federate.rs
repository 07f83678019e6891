//! `airlock federate`: the demo federation, or one step of a federation (what airlock's
//! Flower apps call).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::{FederateArgs, FederateStep};

/// Run the demo or the step.
pub fn run(a: FederateArgs) -> anyhow::Result<()> {
    match a.step {
        None => demo(&a),
        Some(FederateStep::Site(s)) => {
            let out = airlock_federation::site_round(&site_options(s))?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Some(FederateStep::Seal(s)) => {
            let out = airlock_federation::seal(&site_options(s.site), &s.update)?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Some(FederateStep::Aggregate(s)) => {
            let out = airlock_federation::aggregate(&airlock_federation::AggregateOptions {
                federation: s.federation,
                state: s.state,
                key: s.key,
                round: s.round,
                updates: s.updates,
                missing: s.missing,
                audit_log: s.audit_log,
            })?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Some(FederateStep::TrainPlain(s)) => {
            let out =
                airlock_federation::train_plain(&site_options(s.site), &s.weights, &s.preprocess)?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Some(FederateStep::Status(s)) => {
            let st = airlock_federation::status(&s.federation, &s.state)?;
            println!("{}", serde_json::to_string(&st)?);
            Ok(())
        }
        Some(FederateStep::Finalize(s)) => {
            let run = airlock_federation::finalize(&airlock_federation::FinalizeOptions {
                federation: s.federation,
                state: s.state,
                data: s.data,
                out: s.out,
                progress: super::progress(false),
            })?;
            println!("{}", run.run_dir.display());
            Ok(())
        }
    }
}

fn site_options(s: crate::cli::FederateSiteArgs) -> airlock_federation::SiteOptions {
    airlock_federation::SiteOptions {
        federation: s.federation,
        site: s.site,
        data: s.data,
        key: s.key,
        round: s.round,
        global: s.global,
        out: s.out,
        threads: super::cores(),
    }
}

/// Where Flower's executables are: --flower-bin, $AIRLOCK_FLOWER_BIN, or the venv that
/// tests/setup-flower.sh makes.
fn flower_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(b) = given.or_else(|| std::env::var_os("AIRLOCK_FLOWER_BIN").map(PathBuf::from)) {
        return Ok(b);
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --flower-bin")?;
    Ok(PathBuf::from(home).join(".cache/airlock/flwr-venv/bin"))
}

fn demo(a: &FederateArgs) -> anyhow::Result<()> {
    let airlock = std::env::current_exe().context("cannot find the airlock binary")?;
    let report = airlock_federation::demo(
        &airlock_federation::DemoOptions {
            out: a.out.clone(),
            rounds: a.rounds,
            epochs_per_round: a.epochs_per_round,
            rows_per_site: usize::try_from(a.rows_per_site)?,
            sites: 3,
            airlock,
            flower_bin: flower_bin(a.flower_bin.clone())?,
        },
        &mut airlock_federation::eprint_line,
    )?;
    eprintln!("\nROC AUC on the pooled holdout of all three sites:");
    for s in &report.scores {
        eprintln!(
            "  {:<28} {:.4}   (log loss {:.4})",
            s.model, s.roc_auc, s.log_loss
        );
    }
    let global = report.scores[0].roc_auc;
    let beaten = report.scores[1..].iter().all(|s| global > s.roc_auc);
    eprintln!(
        "the global model {} every site's local-only model",
        if beaten { "beats" } else { "does NOT beat" }
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
