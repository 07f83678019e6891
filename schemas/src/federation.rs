//! Federated learning's documents: the federation file the sites and the aggregator share,
//! a site's signed update statement, the aggregator's signed round statement, and what a
//! federated run's training record says of the federation.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Verdict;

/// Most sites one federation declares.
pub const MAX_SITES: usize = 64;
/// Most rounds one federation runs.
pub const MAX_ROUNDS: u32 = 1000;

/// `federation.toml`: a `[federation]` table beside the pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FederationFile {
    /// The federation.
    pub federation: FederationSpec,
}

/// Who trains together, for how long, and who may sign what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FederationSpec {
    /// The federation's name (the model-name grammar); every statement names it.
    pub name: String,
    /// The pipeline every site trains (model, task, features, optimizer, seed), relative to
    /// this file. Each site reads its own data (`airlock federate site --data`).
    pub pipeline: PathBuf,
    /// The federation's trust policy, relative to this file: the sites' keys (role
    /// `site`) and the aggregator's (role `aggregator`).
    pub trust: PathBuf,
    /// Training rounds after the statistics round (1 to 1000).
    pub rounds: u32,
    /// Local epochs each site trains per round (1 to 100).
    pub epochs_per_round: u32,
    /// Quorum: accepted updates a round needs (1 to the number of sites).
    pub min_sites: u32,
    /// `fedavg` (weighted by samples) or `fedprox` (FedAvg with a proximal term in each
    /// site's loss).
    #[serde(default)]
    pub strategy: Strategy,
    /// FedProx's μ: each site adds μ/2 ‖w − w_global‖² to its loss (fedprox only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proximal_mu: Option<f64>,
    /// How long the aggregator waits for a round's updates, seconds (default 600).
    #[serde(default = "default_round_timeout")]
    pub round_timeout_seconds: u32,
    /// Fewest training rows a site may share statistics and updates of (default 100).
    #[serde(default = "default_min_site_rows")]
    pub min_site_rows: u32,
    /// Where the aggregator runs and which key signs its rounds.
    pub aggregator: Party,
    /// The sites.
    pub sites: Vec<Site>,
}

/// The aggregator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Key id (hex SHA-256 of the SPKI DER) of its key in the trust policy.
    pub key_id: String,
    /// The region it runs in (where the sites' updates go).
    pub region: String,
}

/// A site of the federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The site's name (the model-name grammar).
    pub name: String,
    /// Key id of its `site` key in the trust policy.
    pub key_id: String,
    /// The data residency region its data stays in.
    pub region: String,
}

/// How a round combines the accepted updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Federated averaging, weighted by each update's training rows.
    #[default]
    Fedavg,
    /// FedAvg whose sites train with a proximal term toward the round's global model.
    Fedprox,
}

impl Strategy {
    /// The name in files and statements.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fedavg => "fedavg",
            Self::Fedprox => "fedprox",
        }
    }
}

fn default_round_timeout() -> u32 {
    600
}
fn default_min_site_rows() -> u32 {
    100
}

impl FederationFile {
    /// Parse and check `text`, read from `path` (for messages).
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, String> {
        let f: Self = toml::from_str(text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
        f.federation
            .validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(f)
    }
}

impl FederationSpec {
    /// Every bound and grammar: names, key ids, regions, counts, the strategy's settings.
    pub fn validate(&self) -> Result<(), String> {
        use crate::grammar as g;
        g::model_name(&self.name).map_err(|e| format!("federation.name: {e}"))?;
        if !(1..=MAX_ROUNDS).contains(&self.rounds) {
            return Err(format!(
                "federation.rounds is {}; 1 to {MAX_ROUNDS}",
                self.rounds
            ));
        }
        if !(1..=100).contains(&self.epochs_per_round) {
            return Err(format!(
                "federation.epochs_per_round is {}; 1 to 100",
                self.epochs_per_round
            ));
        }
        if self.sites.is_empty() || self.sites.len() > MAX_SITES {
            return Err(format!(
                "federation.sites lists {} sites; 1 to {MAX_SITES}",
                self.sites.len()
            ));
        }
        if self.min_sites == 0 || self.min_sites as usize > self.sites.len() {
            return Err(format!(
                "federation.min_sites is {}; 1 to the {} sites listed",
                self.min_sites,
                self.sites.len()
            ));
        }
        if !(1..=86_400).contains(&self.round_timeout_seconds) {
            return Err("federation.round_timeout_seconds: 1 to 86400".to_owned());
        }
        if self.min_site_rows < 20 {
            return Err(format!(
                "federation.min_site_rows is {}; at least 20 (a site's statistics of fewer rows come close to its rows)",
                self.min_site_rows
            ));
        }
        match (self.strategy, self.proximal_mu) {
            (Strategy::Fedprox, Some(mu)) if mu.is_finite() && mu > 0.0 && mu <= 10.0 => {}
            (Strategy::Fedprox, _) => {
                return Err("federation.proximal_mu: fedprox needs a μ in (0, 10]".to_owned());
            }
            (Strategy::Fedavg, Some(_)) => {
                return Err("federation.proximal_mu is for strategy = \"fedprox\" only".to_owned());
            }
            (Strategy::Fedavg, None) => {}
        }
        g::sha256_hex(&self.aggregator.key_id).map_err(|e| format!("aggregator.key_id: {e}"))?;
        region(&self.aggregator.region).map_err(|e| format!("aggregator.region: {e}"))?;
        let mut names = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        keys.insert(self.aggregator.key_id.as_str());
        for (i, s) in self.sites.iter().enumerate() {
            g::model_name(&s.name).map_err(|e| format!("sites[{i}].name: {e}"))?;
            g::sha256_hex(&s.key_id).map_err(|e| format!("sites[{i}].key_id: {e}"))?;
            region(&s.region).map_err(|e| format!("sites[{i}].region: {e}"))?;
            if !names.insert(s.name.as_str()) {
                return Err(format!(
                    "sites[{i}]: the site name {:?} is listed twice",
                    s.name
                ));
            }
            if !keys.insert(s.key_id.as_str()) {
                return Err(format!(
                    "sites[{i}]: key {} is listed twice (each site and the aggregator have their own)",
                    s.key_id
                ));
            }
        }
        Ok(())
    }

    /// The site named `name`.
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }
}

/// A region name: lowercase letters, digits and dashes, 1 to 64.
fn region(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "{s:?} is not a region (lowercase letters, digits and dashes)"
        ));
    }
    Ok(())
}

/// What a site's update holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateKind {
    /// Round 0: the site's input statistics (count, means, standard deviations), from
    /// which the aggregator pools the federation's standardization.
    Statistics,
    /// Rounds 1 and on: the model's parameters after the site's local epochs.
    Weights,
}

/// One leak layer's outcome at a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerOutcome {
    /// `L0`, `L1` or `L2`.
    pub id: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Findings it counted.
    pub findings: u64,
}

/// Predicate of a site's `update.dsse.json`; the subject is the update file by SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePredicate {
    /// The federation's name.
    pub federation: String,
    /// The round the update is for.
    pub round: u32,
    /// The site's name.
    pub site: String,
    /// Statistics or weights.
    pub kind: UpdateKind,
    /// What the update was computed from: the SHA-256 of the previous round's statement
    /// envelope (round 0: of the federation file).
    pub based_on: String,
    /// SHA-256 of the pipeline file the site trained and checked with.
    pub pipeline_sha256: String,
    /// Training rows the site used.
    pub samples: u64,
    /// Local epochs trained (0 for statistics).
    pub epochs: u32,
    /// The site's leak layers on the update, against its own data.
    pub leak_layers: Vec<LayerOutcome>,
    /// Pass only when every layer passed.
    pub verdict: Verdict,
    /// Mean training loss of the last local epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// Training accuracy of the last local epoch (absent for regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    /// Validation loss on the site's validation rows after its local epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Validation accuracy there (absent for regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// ε the site has spent over all its rounds so far (DP-SGD sites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// When it was signed, RFC 3339 UTC.
    pub time: String,
}

/// An accepted update, as a round statement records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contribution {
    /// The site.
    pub site: String,
    /// Its key id.
    pub key_id: String,
    /// SHA-256 of its update file.
    pub update_sha256: String,
    /// SHA-256 of its update statement envelope.
    pub statement_sha256: String,
    /// Its training rows (the update's weight in the average).
    pub samples: u64,
    /// Its last local epoch's training loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// Its last local epoch's training accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    /// Its validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Its validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
}

/// An update the aggregator left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// The site it claimed to come from, or the node that sent it.
    pub from: String,
    /// Why it was refused.
    pub reason: String,
}

/// Predicate of the aggregator's `round.dsse.json`; the subjects are `global.safetensors`
/// and `preprocess.json` by SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundPredicate {
    /// The federation's name.
    pub federation: String,
    /// SHA-256 of the federation file.
    pub federation_sha256: String,
    /// The round (0: statistics and initial weights).
    pub round: u32,
    /// SHA-256 of the previous round's statement envelope (none for round 0): the rounds
    /// form a chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// `fedavg` or `fedprox`.
    pub strategy: String,
    /// The updates averaged.
    pub accepted: Vec<Contribution>,
    /// The updates left out.
    pub refused: Vec<Refusal>,
    /// When it was signed, RFC 3339 UTC.
    pub time: String,
}

/// What a federated run's training record says of its federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FederationRecord {
    /// The federation's name.
    pub name: String,
    /// SHA-256 of the federation file.
    pub federation_sha256: String,
    /// Training rounds run.
    pub rounds: u32,
    /// `fedavg` or `fedprox`.
    pub strategy: String,
    /// SHA-256 of the last round's statement envelope (the global model's).
    pub final_round_sha256: String,
    /// Each site's contribution.
    pub sites: Vec<SiteContribution>,
}

/// One site's part in a federated run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteContribution {
    /// The site.
    pub site: String,
    /// Its key id.
    pub key_id: String,
    /// Its data's region.
    pub region: String,
    /// Rounds whose average took its update.
    pub rounds_accepted: u32,
    /// Rounds it was refused in or missing from.
    pub rounds_missing: u32,
    /// Its training rows (in its last accepted update).
    pub samples: u64,
}

impl FederationRecord {
    /// Grammars of everything the packager may copy.
    pub fn validate(&self) -> Result<(), String> {
        use crate::grammar as g;
        g::model_name(&self.name).map_err(|e| format!("federation.name: {e}"))?;
        g::sha256_hex(&self.federation_sha256)
            .map_err(|e| format!("federation.federation_sha256: {e}"))?;
        g::sha256_hex(&self.final_round_sha256)
            .map_err(|e| format!("federation.final_round_sha256: {e}"))?;
        if !matches!(self.strategy.as_str(), "fedavg" | "fedprox") {
            return Err("federation.strategy: fedavg or fedprox".to_owned());
        }
        if self.sites.is_empty() || self.sites.len() > MAX_SITES {
            return Err("federation.sites: 1 to 64 sites".to_owned());
        }
        for s in &self.sites {
            g::model_name(&s.site).map_err(|e| format!("federation.sites: {e}"))?;
            g::sha256_hex(&s.key_id).map_err(|e| format!("federation.sites: {e}"))?;
            region(&s.region).map_err(|e| format!("federation.sites: {e}"))?;
        }
        Ok(())
    }
}
