#![doc = include_str!("../README.md")]

mod aggregate;
mod demo;
mod demo_setup;
mod error;
mod finalize;
mod rounds;
mod site;

use std::path::{Path, PathBuf};

use airlock_model::Description;
use airlock_schemas::{FederationFile, FederationSpec, KeyRole, PipelineSpec};
use airlock_trust::Trust;
use airlock_trust::shards::sha256_hex;

pub use aggregate::{AggregateOptions, RoundOutcome, Status, aggregate, status};
pub use demo::{
    DemoOptions, DemoReport, FLOWER_VERSION, Loopback, LoopbackSite, Score, demo, eprint_line,
    flower_app_dir,
};
pub use demo_setup::{Layout, prepare as prepare_demo};
pub use error::FederationError;
pub use finalize::{FinalizeOptions, finalize};
pub use rounds::{ROUND_FILE, RoundState, latest_round, read_round, verify_chain};
pub use site::{SiteOptions, SiteOutcome, seal, site_round, train_plain};

/// The statement file of a site's update.
pub const UPDATE_STATEMENT_FILE: &str = "update.dsse.json";
/// Largest update file the aggregator reads (bytes).
pub const MAX_UPDATE_BYTES: u64 = 1 << 30;

/// A federation file with what it names loaded and checked: the pipeline, the trust
/// policy, the sites' and the aggregator's keys.
#[derive(Debug, Clone)]
pub struct Federation {
    /// The federation file.
    pub path: PathBuf,
    /// SHA-256 of its bytes (every statement names it).
    pub sha256: String,
    /// Its `[federation]` table.
    pub spec: FederationSpec,
    /// The federation's trust policy.
    pub trust: Trust,
    /// The pipeline every site trains.
    pub pipeline_path: PathBuf,
    /// It, parsed.
    pub pipeline: PipelineSpec,
    /// SHA-256 of the pipeline file's bytes (every update names it: the leak layers a site
    /// ran are the ones this pipeline sets).
    pub pipeline_sha256: String,
    /// The model it declares (its tensors are what an update may hold).
    pub description: Description,
}

impl Federation {
    /// Load `path`, its pipeline and its trust policy; every site key must be in the
    /// policy with the `site` role, the aggregator's with the `aggregator` role.
    pub fn load(path: &Path) -> Result<Self, FederationError> {
        let bad = |message: String| FederationError::Invalid {
            path: path.to_owned(),
            message,
        };
        // Whoever can rewrite the federation or its pipeline decides what sites check.
        airlock_trust::keys::check_not_writable_by_others(path, "federation file")?;
        let bytes = std::fs::read(path).map_err(|e| FederationError::io("read", path, e))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| bad("the federation file is not UTF-8".to_owned()))?;
        let spec = FederationFile::from_toml_str(text, path)
            .map_err(|m| FederationError::Invalid {
                path: path.to_owned(),
                message: m,
            })?
            .federation;
        let dir = path.parent().unwrap_or(Path::new("."));
        let trust = Trust::load(&dir.join(&spec.trust))?;
        for (key, role, who) in spec
            .sites
            .iter()
            .map(|s| (&s.key_id, KeyRole::Site, format!("site {:?}", s.name)))
            .chain([(
                &spec.aggregator.key_id,
                KeyRole::Aggregator,
                "the aggregator".to_owned(),
            )])
        {
            if !trust
                .keys
                .iter()
                .any(|k| &k.key_id == key && k.role == role)
            {
                return Err(bad(format!(
                    "{who}'s key {key} is not a {} key of the trust policy {}",
                    airlock_trust::role_name(role),
                    spec.trust.display()
                )));
            }
        }
        let pipeline_path = dir.join(&spec.pipeline);
        airlock_trust::keys::check_not_writable_by_others(&pipeline_path, "federation's pipeline")?;
        let pbytes = std::fs::read(&pipeline_path)
            .map_err(|e| FederationError::io("read", &pipeline_path, e))?;
        let pipeline =
            PipelineSpec::from_toml_str(&String::from_utf8_lossy(&pbytes), &pipeline_path)
                .map_err(|e| bad(e.to_string()))?;
        if pipeline.privacy.is_some() {
            return Err(bad(format!(
                "{}: [privacy] is not supported in a federation yet (each round would need its share of ε)",
                pipeline_path.display()
            )));
        }
        if pipeline.leak.reproduce {
            return Err(bad(format!(
                "{}: a federation's model cannot be replayed by one site: set [leak] reproduce = false",
                pipeline_path.display()
            )));
        }
        let description = Description::new(
            &pipeline.model,
            &pipeline.task,
            pipeline.data.features.len(),
        )
        .map_err(|m| bad(format!("{}: {m}", pipeline_path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            sha256: sha256_hex(&bytes),
            spec,
            trust,
            pipeline_path,
            pipeline,
            pipeline_sha256: sha256_hex(&pbytes),
            description,
        })
    }

    /// The predicate type of a site's update statement.
    pub fn update_predicate_type(&self) -> String {
        format!(
            "{}/attestation/federated-update/v1",
            self.trust.uri_base.as_str()
        )
    }

    /// The predicate type of the aggregator's round statement.
    pub fn round_predicate_type(&self) -> String {
        format!(
            "{}/attestation/federated-round/v1",
            self.trust.uri_base.as_str()
        )
    }

    /// FedProx's μ for the sites' local training (none for FedAvg).
    pub fn proximal_mu(&self) -> Option<f64> {
        match self.spec.strategy {
            airlock_schemas::Strategy::Fedprox => self.spec.proximal_mu,
            airlock_schemas::Strategy::Fedavg => None,
        }
    }

    /// The seed of `site`'s local training in `round` (shuffling and dropout differ by site
    /// and round; every one is derived from the pipeline's seed).
    pub fn site_seed(&self, site: &str, round: u32) -> u64 {
        let index = self
            .spec
            .sites
            .iter()
            .position(|s| s.name == site)
            .unwrap_or(0) as u64;
        self.pipeline
            .training
            .seed
            .wrapping_add(u64::from(round) << 32)
            .wrapping_add(index + 1)
    }
}

/// Now, RFC 3339 UTC, whole seconds.
pub(crate) fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Write `bytes` to `path` and sync it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), FederationError> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path).map_err(|e| FederationError::io("create", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| FederationError::io("write", path, e))
}
