//! The publish and deploy stages, and the pre-flight check of the destination that runs
//! before anything is trained.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use airlock_publisher::publish::{PublishOptions, preflight, publish, publish_with_autoscaling};
use airlock_publisher::sagemaker::{DeployOptions, SageMakerOptions};
use airlock_schemas::DeploySpec;
use airlock_trust::shards::sha256_hex;
use anyhow::Context as _;
use serde_json::json;

use crate::Stage;
use crate::pipeline::{Destination, Pipeline};
use crate::runner::Runner;
use crate::state::{StageRecord, digest_json};

impl Pipeline<'_> {
    pub(crate) fn publish_options(
        &self,
        dest: &Destination,
        bundle: &Path,
        deploy: Option<&DeploySpec>,
    ) -> PublishOptions {
        PublishOptions {
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
    pub fn preflight(&self, dest: &Destination) -> anyhow::Result<()> {
        let f = preflight(&self.publish_options(dest, Path::new(""), None)).with_context(|| {
            format!(
                "the release could not be published to {}, so it is not put to the officers",
                dest.registry
            )
        })?;
        tracing::info!(
            "== publish pre-flight: {} (region {}), audit log {} ({} entries): ok",
            dest.registry,
            f.region,
            dest.audit_log.display(),
            f.audit_entries
        );
        Ok(())
    }

    /// What the publish stage's record is keyed by: the statement, its approvals, the
    /// destination and the policies and key that judge it.
    fn publish_inputs(
        &self,
        dest: &Destination,
        package: &StageRecord,
        approvals: &BTreeMap<String, String>,
    ) -> anyhow::Result<serde_json::Value> {
        let residency_sha = sha256_hex(&std::fs::read(&dest.residency).with_context(|| {
            format!("cannot read residency policy {}", dest.residency.display())
        })?);
        let publisher = airlock_trust::keys::Signer::load(&dest.key)?;
        Ok(json!({
            "statement_sha256": package.output_sha256,
            "approvals": approvals,
            "registry": dest.registry,
            "region": dest.region,
            "sagemaker": dest.sagemaker,
            "residency_sha256": residency_sha,
            "trust_sha256": self.trust.sha256,
            "publisher": publisher.key_id(),
            "audit_log": std::path::absolute(&dest.audit_log).unwrap_or(dest.audit_log.clone()),
        }))
    }

    /// Publish the approved bundle, unless the same release went to the same place.
    pub fn publish(
        &self,
        r: &mut Runner<'_>,
        dest: &Destination,
        package: &StageRecord,
        approvals: &BTreeMap<String, String>,
    ) -> anyhow::Result<StageRecord> {
        let inputs = self.publish_inputs(dest, package, approvals)?;
        let digest = digest_json(&inputs);
        r.begin(Stage::Publish);
        if let Some(rec) = r.reusable(Stage::Publish, &digest, |_| true) {
            r.skipped(Stage::Publish, &rec);
            return Ok(rec);
        }
        tracing::info!(
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
        let p = publish(&self.publish_options(dest, bundle, None))?;
        let index = format!("{}/{}", dest.registry.trim_end_matches('/'), p.index);
        tracing::info!(
            "  uploaded {} files ({} bytes), {} already there; region {}",
            p.uploaded,
            p.uploaded_bytes,
            p.skipped,
            p.region
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

    /// Bring the endpoint InService on the published release, unless it already is, and with
    /// `[deploy.autoscaling]` register its capacity to follow demand.
    pub fn deploy(
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
        tracing::info!("== deploy to SageMaker endpoint {}", deploy.endpoint);
        let t = Instant::now();
        let p = publish_with_autoscaling(
            &self.publish_options(dest, bundle, Some(deploy)),
            deploy.autoscaling.as_ref(),
        )?;
        let endpoint = p.endpoint.clone().unwrap_or_default();
        let scaling = deploy
            .autoscaling
            .as_ref()
            .map_or_else(String::new, |a| format!(", {}", a.summary()));
        r.audit.push((p.audit_entries, p.audit_seq));
        r.crossed.push(format!(
            "endpoint {endpoint} serves it (InService{scaling})"
        ));
        r.ran(Stage::Deploy, t, format!("{endpoint} InService{scaling}"));
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
