//! `airlock publish`: a verified, approved bundle to a registry the residency policy allows.

use airlock_publisher::publish::{PublishOptions, publish};
use airlock_publisher::sagemaker::{DeployOptions, SageMakerOptions};

use crate::cli::PublishArgs;

/// Publish; print the registry index.
pub fn run(a: PublishArgs) -> anyhow::Result<()> {
    let to = a.to.clone();
    let s = publish(&options(a))?;
    eprintln!(
        "uploaded {} blobs ({} bytes), {} already present; index {} (region {}); {} audit entries, last {}",
        s.uploaded, s.uploaded_bytes, s.skipped, s.index, s.region, s.audit_entries, s.audit_seq
    );
    if let Some(p) = &s.model_package {
        eprintln!("model package {p}");
    }
    if let Some(e) = &s.endpoint {
        eprintln!("endpoint {e} InService");
    }
    println!("{}/{}", to.trim_end_matches('/'), s.index);
    Ok(())
}

/// The publisher's options from the flags.
fn options(a: PublishArgs) -> PublishOptions {
    let sagemaker = (a.sagemaker || a.deploy.is_some()).then(|| SageMakerOptions {
        group: a.model_package_group.clone(),
        image: a.image.clone().unwrap_or_default(),
        deploy: a.deploy.clone().map(|endpoint| DeployOptions {
            endpoint,
            role: a.role.clone().unwrap_or_default(),
            instance_type: a.instance_type.clone(),
            instance_count: a.instance_count,
            timeout: std::time::Duration::from_secs(a.deploy_timeout),
            poll: std::time::Duration::from_secs(if a.aws.endpoint_url.is_some() { 1 } else { 15 }),
        }),
    });
    PublishOptions {
        aws: a.aws.options(),
        bundle: a.bundle,
        to: a.to,
        trust: a.trust,
        residency: a.residency,
        audit_log: a.audit_log,
        key: a.key,
        threads: super::cores(),
        sagemaker,
        deploy_only: false,
        run_dir: a.run,
    }
}
