//! `airlock run PIPELINE.toml`: train, package, and the approval gate, in one command.
//!
//! A pipeline with a `[signing]` section names real keys: the release is signed with the
//! builder key and stops at the approval gate until k officers approve. A pipeline without
//! it is a DEMO: airlock makes local demo keys, approves with two demo officers, and marks
//! every output DEMO. There is no switch that turns auto-approval on for real keys.

use std::path::{Path, PathBuf};

use airlock_packager::approvals::{DecisionRequest, decide, evaluate};
use airlock_schemas::{Decision, PipelineSpec};
use anyhow::Context;

use crate::exit::AwaitingApproval;

/// Options of `airlock run`.
#[derive(Debug)]
pub struct RunOptions {
    pub pipeline: PathBuf,
    /// Where runs/, releases/ and demo/ go.
    pub workdir: PathBuf,
    pub progress: bool,
    pub threads: usize,
}

const DEMO_OFFICERS: [&str; 2] = ["demo-officer-1", "demo-officer-2"];

pub fn run(opts: &RunOptions) -> anyhow::Result<()> {
    let spec = PipelineSpec::load(&opts.pipeline)?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let demo = spec.signing.is_none();
    let tag = if demo { "-DEMO" } else { "" };
    let name = format!("{}-{}", spec.release.name, spec.release.version);
    let under = |p: &str| {
        if opts.workdir == Path::new(".") {
            PathBuf::from(p)
        } else {
            opts.workdir.join(p)
        }
    };
    let run_dir = under("runs").join(format!("{}{tag}-{stamp}", spec.release.name));
    let bundle = under("releases").join(format!("{name}{tag}-{stamp}"));

    let (trust_path, builder_key) = match &spec.signing {
        Some(s) => (
            spec.resolve(&opts.pipeline, &s.trust),
            spec.resolve(&opts.pipeline, &s.builder_key),
        ),
        None => {
            eprintln!(
                "DEMO: {} has no [signing] section; using local demo keys under demo/",
                opts.pipeline.display()
            );
            demo_keys(&under("demo"))?
        }
    };
    let trust = airlock_packager::Trust::load(&trust_path)?;

    let data = spec.data_source(&opts.pipeline);
    if demo && !data.exists() {
        let s = airlock_trainer::demo::write_demo_csv(&data, 50_000, 7)?;
        eprintln!(
            "DEMO: wrote {} synthetic transactions to {}",
            s.rows,
            data.display()
        );
    }

    eprintln!("== train");
    let summary = airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
        pipeline: opts.pipeline.clone(),
        out: Some(run_dir),
        device: None,
        cpu_backend: None,
        progress: opts.progress,
    })?;
    eprintln!("holdout ROC AUC {:.4}", summary.record.holdout.roc_auc);

    eprintln!("== package");
    let pkg = airlock_packager::package(&airlock_packager::PackageOptions {
        run_dir: summary.run_dir.clone(),
        key: builder_key,
        out: bundle.clone(),
        threads: opts.threads,
    })?;
    for l in &pkg.report.layers {
        eprintln!("  {} {:<22} pass", l.id, l.name);
    }

    if demo {
        eprintln!("== approve (DEMO: automatic, by local demo officers; not a real review)");
        for officer in DEMO_OFFICERS {
            decide(
                &DecisionRequest {
                    bundle: bundle.clone(),
                    key: under("demo/keys").join(format!("{officer}.key")),
                    name: format!("{officer} (DEMO)"),
                    reason: "DEMO auto-approval by airlock's local demo officer; nobody reviewed this release".into(),
                    decision: Decision::Approve,
                    expires: Some("30d".into()),
                },
                &trust,
                opts.threads,
            )?;
        }
    }

    eprintln!("== approval gate");
    let v = airlock_packager::verify_bundle(&bundle, &trust, opts.threads, false);
    if !v.ok() {
        anyhow::bail!(crate::exit::VerificationFailed(
            bundle.display().to_string()
        ));
    }
    let s = evaluate(&bundle, &trust, &v, time::OffsetDateTime::now_utc());
    eprintln!(
        "  {} of {} required officer approvals",
        s.approvals, s.required
    );
    if !s.approved() {
        let b = bundle.display();
        let t = trust_path.display();
        eprintln!(
            "\nrelease {name} is packaged, signed and waiting for approval.\n\
             An officer reviews and decides with:\n\n  \
             airlock review {b} --trust {t} --out review.html\n  \
             airlock approve {b} --trust {t} --key <officer.key> --name \"<your name>\" --reason \"<why>\"\n"
        );
        println!("{b}");
        return Err(AwaitingApproval(b.to_string()).into());
    }
    if demo {
        eprintln!("== publish (DEMO: to the local file registry registry/)");
        let root = std::path::absolute(under("registry")).context("cannot resolve registry/")?;
        let p = airlock_publisher::publish::publish(&airlock_publisher::publish::PublishOptions {
            bundle: bundle.clone(),
            to: format!("file://{}", root.display()),
            trust: trust_path.clone(),
            residency: under("demo/residency.toml"),
            audit_log: under("demo/audit.log"),
            key: under("demo/keys/publisher.key"),
            threads: opts.threads,
            aws: airlock_publisher::aws::AwsOptions::default(),
            sagemaker: None,
        })?;
        eprintln!(
            "  uploaded {} blobs, {} already present; {} (audit entry {} in demo/audit.log)",
            p.uploaded, p.skipped, p.index, p.audit_seq
        );
    }
    eprintln!(
        "{}released: {}",
        if demo { "DEMO " } else { "" },
        bundle.display()
    );
    println!("{}", bundle.display());
    Ok(())
}

/// Local demo keys (a builder, two officers, a publisher), made once, a 2-of-2 trust policy
/// and a residency policy that keeps releases in the local file registry.
fn demo_keys(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let keys = dir.join("keys");
    for k in ["builder", "publisher"].iter().chain(DEMO_OFFICERS.iter()) {
        let prefix = keys.join(k);
        if !PathBuf::from(format!("{}.key", prefix.display())).exists() {
            airlock_packager::keys::generate(&prefix)
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
    std::fs::write(&trust, policy).with_context(|| format!("cannot write {}", trust.display()))?;
    let residency = dir.join("residency.toml");
    std::fs::write(
        &residency,
        "# DEMO residency policy written by `airlock run`: releases stay in the local file registry.\n\
         [registry]\nregions = [\"local\"]\n",
    )
    .with_context(|| format!("cannot write {}", residency.display()))?;
    Ok((trust, keys.join("builder.key")))
}
