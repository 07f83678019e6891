//! The pipeline being run: its spec, keys and trust policy, and where it publishes.

use std::path::{Path, PathBuf};

use airlock_schemas::PipelineSpec;
use anyhow::Context as _;

use crate::RunOptions;
use crate::workdir::under;

/// The pipeline being run and its keys.
#[derive(Debug)]
pub(crate) struct Pipeline<'a> {
    pub opts: &'a RunOptions,
    pub spec: PipelineSpec,
    /// No `[signing]`: local demo keys and automatic demo approval.
    pub demo: bool,
    pub trust_path: PathBuf,
    pub trust: airlock_trust::Trust,
    pub builder_key: PathBuf,
    /// `<model>-<version>[-DEMO]`, the prefix of run and bundle directories.
    pub name: String,
    pub title: String,
}

/// Where the publish stage sends a release, paths resolved.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    pub registry: String,
    pub residency: PathBuf,
    pub key: PathBuf,
    pub audit_log: PathBuf,
    pub region: Option<String>,
    pub sagemaker: Option<airlock_schemas::SageMakerSpec>,
    /// Stage the bundle for review in the registry while it waits for approvals.
    pub stage_for_review: bool,
}

impl<'a> Pipeline<'a> {
    /// The pipeline's keys and trust policy (a DEMO's are made under demo/ when missing).
    pub fn load(opts: &'a RunOptions, spec: PipelineSpec) -> anyhow::Result<Self> {
        let demo = spec.signing.is_none();
        let (trust_path, builder_key) = match &spec.signing {
            Some(s) => (
                spec.resolve(&opts.pipeline, &s.trust),
                spec.resolve(&opts.pipeline, &s.builder_key),
            ),
            None => {
                let dir = under(&opts.workdir, "demo");
                tracing::warn!(
                    "DEMO: {} has no [signing] section; using local demo keys under {}",
                    opts.pipeline.display(),
                    dir.display()
                );
                crate::demo::demo_keys(&dir)?
            }
        };
        let (name, version) = (&spec.release.name, &spec.release.version);
        Ok(Self {
            opts,
            trust: airlock_trust::Trust::load(&trust_path)?,
            trust_path,
            builder_key,
            name: format!("{name}-{version}{}", if demo { "-DEMO" } else { "" }),
            title: format!("{name} {version}{}", if demo { " (DEMO)" } else { "" }),
            demo,
            spec,
        })
    }
}

impl Pipeline<'_> {
    /// `p` under the work directory.
    pub fn under(&self, p: &str) -> PathBuf {
        under(&self.opts.workdir, p)
    }

    /// The pipeline's `[publish]` destination, or the DEMO's local registry, paths resolved.
    pub fn destination(&self) -> anyhow::Result<Option<Destination>> {
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
                    stage_for_review: p.stage_for_review,
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
                    stage_for_review: false,
                })
            }
            None => None,
        })
    }
}
