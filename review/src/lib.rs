#![doc = include_str!("../README.md")]

//! `airlock review`: the page a compliance officer reads before deciding whether a model may
//! leave the premises, and a short terminal summary of the same.
//!
//! The page is one self-contained HTML5 file (inline CSS, inline SVG, no script, no external
//! URL at all) so it can be opened, archived and printed on an air-gapped laptop, and so
//! opening it never tells anyone outside that a review took place. Every string that came
//! from a bundle, a trust policy or an officer is escaped: the documents are signed, but
//! signed is not the same as harmless. The page is written through [`Html`], whose only
//! ways in are escaped text, `'static` markup literals and numbers, so that holds by
//! construction.

use std::path::Path;

use airlock_schemas::{LeakReport, ModelCard, ReleasePredicate, Statement};
use airlock_trust::Check;
use airlock_trust::approvals::ApprovalSummary;

mod architecture;
mod charts;
mod clinical;
pub mod command;
mod diff;
mod format;
pub mod html;
mod metrics;
mod page;
mod provenance;
pub mod sbom;
mod status;
mod summary;
mod summary_html;
mod task;
mod text;

pub use html::Html;
pub use page::{render_html, render_page};
pub use status::{ReviewStatus, review_status};
pub use text::render_text;

/// Everything the review page shows.
#[derive(Debug, Clone)]
pub struct ReviewInput<'a> {
    /// The bundle directory under review.
    pub bundle: &'a Path,
    /// Its `model-card.json`.
    pub card: &'a ModelCard,
    /// Its `leak-report.json`.
    pub report: &'a LeakReport,
    /// The release statement, when its builder signature verified.
    pub statement: Option<&'a Statement<ReleasePredicate>>,
    /// The SLSA provenance predicate (JSON), when its signature verified (the whole
    /// statement is accepted too). Its `buildDefinition.resolvedDependencies` hold
    /// `{"name": "training-data:<file>", "digest": {"sha256": ..}}`,
    /// `{"name": "training-record:...", ...}` and `{"name": "source", "digest": {"gitCommit": ..}}`;
    /// `buildDefinition.externalParameters.pipeline` = `{"name", "sha256"}`; `runDetails.builder.id`.
    pub provenance: Option<&'a serde_json::Value>,
    /// (file name, sha256) of every top-level bundle file, as the verification read and
    /// digested it (see [`command`]).
    pub files: Vec<(String, String)>,
    /// The verification checks, in order.
    pub checks: &'a [Check],
    /// (trust-policy name, key id) of the builder key that signed, if any.
    pub builder: Option<(String, String)>,
    /// Officer decisions, judged against the trust policy.
    pub approvals: &'a ApprovalSummary,
    /// The release being replaced, for the change summary at the top of the page.
    pub previous: Option<Previous<'a>>,
    /// Demo release (local demo keys): shown prominently as DEMO on the page.
    pub demo: bool,
    /// The trust policy file, as the officer should pass it to `airlock approve`.
    pub trust: Option<&'a Path>,
}

/// The release a new one replaces: what the change summary (and the detail table) compares
/// against.
#[derive(Debug, Clone)]
pub struct Previous<'a> {
    /// Its bundle directory.
    pub bundle: &'a Path,
    /// Its model card.
    pub card: &'a ModelCard,
    /// Its leak report.
    pub report: &'a LeakReport,
    /// Its SLSA provenance predicate (see [`ReviewInput::provenance`]).
    pub provenance: Option<&'a serde_json::Value>,
    /// Whether that release verified against the same trust policy. When it did not, the
    /// page and the summary say that its figures are only what its files say.
    pub verified: bool,
}

#[cfg(test)]
mod tests;
