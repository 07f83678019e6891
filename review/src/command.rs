//! `airlock review` itself: verify the bundle once, then build the page and the summary from
//! the bytes that verification read.
//!
//! [`load`] verifies the bundle (and the previous release, when one is named) and keeps what
//! the page needs: the model card, the leak report, the provenance and the file digests all
//! come from [`Verification::files`], the bytes every check ran on. Nothing is read from the
//! bundle again afterwards, so a file swapped on disk between the verification and the
//! rendering can never be shown under a "verified" banner: [`Loaded::render`] touches no
//! file at all.

use std::path::{Path, PathBuf};

use airlock_schemas::strict_json::StrictJsonError;
use airlock_schemas::{Envelope, IN_TOTO_PAYLOAD_TYPE, KeyRole, LeakReport, ModelCard, Statement};
use airlock_trust::approvals::{self, ApprovalSummary};
use airlock_trust::shards::sha256_hex;
use airlock_trust::{
    BundleFiles, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, PROVENANCE_DSSE_FILE,
    STATEMENT_DSSE_FILE, Trust, TrustError, Verification, dsse, verify_bundle_streamed,
};
use time::OffsetDateTime;

use crate::{Previous, ReviewInput, render_html, render_text};

/// What `airlock review` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bundle directory under review.
    pub bundle: PathBuf,
    /// The trust policy to verify it against.
    pub trust: PathBuf,
    /// The release it replaces, for "What changed".
    pub previous: Option<PathBuf>,
    /// Threads for the model's shard digests.
    pub threads: usize,
}

/// Why no page could be made.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The trust policy (or a key it names) could not be loaded.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The bundle path is not a directory.
    #[error("{} is not a bundle directory", .0.display())]
    NotABundle(PathBuf),
    /// A document the page shows was not among the files the verification read (missing,
    /// or refused by the closed-set walk).
    #[error("cannot read {}: it is not among the files the verification read", .0.display())]
    NotRead(PathBuf),
    /// A document the page shows is not valid.
    #[error("{} is not a valid document", path.display())]
    Invalid {
        /// The document.
        path: PathBuf,
        /// Why not.
        #[source]
        source: StrictJsonError,
    },
}

/// The page and the terminal summary.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The self-contained HTML page.
    pub html: String,
    /// The terminal summary.
    pub text: String,
}

/// A verified bundle with everything its review shows, held in memory.
#[derive(Debug)]
pub struct Loaded {
    bundle: PathBuf,
    trust_path: PathBuf,
    verification: Verification,
    approvals: ApprovalSummary,
    card: ModelCard,
    report: LeakReport,
    provenance: Option<serde_json::Value>,
    files: Vec<(String, String)>,
    builder: Option<(String, String)>,
    previous: Option<LoadedPrevious>,
    demo: bool,
}

/// The previous release, verified against the same trust policy (and labelled when it does
/// not verify).
#[derive(Debug)]
struct LoadedPrevious {
    bundle: PathBuf,
    card: ModelCard,
    report: LeakReport,
    provenance: Option<serde_json::Value>,
    verified: bool,
}

/// The bytes of `name` as the verification read them.
fn held<'a>(files: &'a BundleFiles, dir: &Path, name: &str) -> Result<&'a [u8], ReviewError> {
    files
        .get(name)
        .ok_or_else(|| ReviewError::NotRead(dir.join(name)))
}

/// `document!(files, dir, name)`: the document `name` (of the type the context asks for),
/// parsed from the bytes the verification read.
macro_rules! document {
    ($files:expr, $dir:expr, $name:expr) => {
        airlock_schemas::strict_json::from_slice(held($files, $dir, $name)?).map_err(|source| {
            ReviewError::Invalid {
                path: $dir.join($name),
                source,
            }
        })?
    };
}

/// Verify `opts.bundle` (and `opts.previous`) and render the review.
pub fn review(opts: &Options) -> Result<Rendered, ReviewError> {
    Ok(load(opts)?.render())
}

/// Verify `opts.bundle` against `opts.trust` once, and keep what the review shows.
pub fn load(opts: &Options) -> Result<Loaded, ReviewError> {
    let trust = Trust::load(&opts.trust)?;
    if !opts.bundle.is_dir() {
        return Err(ReviewError::NotABundle(opts.bundle.clone()));
    }
    // The page reports checks and digests; the model's bytes are not used, so not kept.
    let v = verify_bundle_streamed(&opts.bundle, &trust, opts.threads, false);
    let now = OffsetDateTime::now_utc();
    let approvals = approvals::evaluate(&trust, &v, now);
    let card: ModelCard = document!(&v.files, &opts.bundle, MODEL_CARD_FILE);
    let report: LeakReport = document!(&v.files, &opts.bundle, LEAK_REPORT_FILE);
    let provenance = provenance(&v.files, Some((&trust, now)));
    let previous = match &opts.previous {
        Some(p) => Some(load_previous(p, &trust, opts.threads)?),
        None => None,
    };
    Ok(Loaded {
        bundle: opts.bundle.clone(),
        trust_path: opts.trust.clone(),
        files: file_digests(&v),
        builder: builder(&v, &trust),
        approvals,
        card,
        report,
        provenance,
        previous,
        demo: trust
            .policy
            .keys
            .iter()
            .any(|k| k.name.starts_with("demo-")),
        verification: v,
    })
}

/// The previous release, verified against the same trust policy; its documents are the
/// bytes that verification read, like the release's own.
fn load_previous(dir: &Path, trust: &Trust, threads: usize) -> Result<LoadedPrevious, ReviewError> {
    let v = verify_bundle_streamed(dir, trust, threads, false);
    let verified = v.ok();
    // A release that verifies has had its provenance checked by a builder key; one that
    // does not is still compared, as its files say, and labelled as unverified.
    let trusted = verified.then(|| (trust, OffsetDateTime::now_utc()));
    Ok(LoadedPrevious {
        bundle: dir.to_owned(),
        card: document!(&v.files, dir, MODEL_CARD_FILE),
        report: document!(&v.files, dir, LEAK_REPORT_FILE),
        provenance: provenance(&v.files, trusted),
        verified,
    })
}

impl Loaded {
    /// The page's input, borrowing from `self`.
    pub fn input(&self) -> ReviewInput<'_> {
        ReviewInput {
            bundle: &self.bundle,
            card: &self.card,
            report: &self.report,
            statement: self.verification.statement.as_ref(),
            provenance: self.provenance.as_ref(),
            files: self.files.clone(),
            checks: &self.verification.checks,
            builder: self.builder.clone(),
            approvals: &self.approvals,
            previous: self.previous.as_ref().map(|p| Previous {
                bundle: &p.bundle,
                card: &p.card,
                report: &p.report,
                provenance: p.provenance.as_ref(),
                verified: p.verified,
            }),
            demo: self.demo,
            trust: Some(&self.trust_path),
        }
    }

    /// The verification the review is built on.
    pub fn verification(&self) -> &Verification {
        &self.verification
    }

    /// The page and the summary, from what [`load`] kept: no file is read.
    pub fn render(&self) -> Rendered {
        let input = self.input();
        Rendered {
            html: render_html(&input),
            text: render_text(&input),
        }
    }
}

/// The provenance predicate from the verified bytes; when `trusted` is given, its signature
/// must verify under a builder key of that policy usable at that time.
fn provenance(
    files: &BundleFiles,
    trusted: Option<(&Trust, OffsetDateTime)>,
) -> Option<serde_json::Value> {
    let env: Envelope =
        airlock_schemas::strict_json::from_slice(files.get(PROVENANCE_DSSE_FILE)?).ok()?;
    let payload = match trusted {
        Some((trust, now)) => {
            let keys = trust.usable_keys(KeyRole::Builder, now, now);
            dsse::verify(&env, IN_TOTO_PAYLOAD_TYPE, &keys)
                .ok()?
                .payload
        }
        None => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(&env.payload)
                .ok()?
        }
    };
    airlock_schemas::strict_json::from_slice::<Statement<serde_json::Value>>(&payload)
        .ok()
        .map(|s| s.predicate)
}

/// (name, SHA-256) of every top-level bundle file, from the verification: the bytes it
/// read, and for the model (streamed through its shard digests, not kept) the signed digest,
/// once the model's bytes matched the signed shard digests (and the whole-file digest, when
/// that was computed). A model that did not verify shows no digest.
fn file_digests(v: &Verification) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = v
        .files
        .iter()
        .filter(|(name, _)| !name.contains('/'))
        .map(|(name, bytes)| (name.to_owned(), sha256_hex(bytes)))
        .collect();
    if !v.files.contains(MODEL_FILE) {
        let check = |name: &str| v.checks.iter().find(|c| c.name == name).map(|c| c.ok);
        let verified =
            check("model shard digests") == Some(true) && check("model digest") != Some(false);
        let signed = v.statement.as_ref().and_then(|s| {
            s.subject
                .iter()
                .find(|s| s.name == MODEL_FILE)
                .and_then(|s| s.digest.get("sha256"))
        });
        if let (true, Some(sha)) = (verified, signed) {
            files.push((MODEL_FILE.to_owned(), sha.clone()));
        }
    }
    files.sort();
    files
}

/// (trust-policy name, key id) of the builder key whose signature on the statement verified.
fn builder(v: &Verification, trust: &Trust) -> Option<(String, String)> {
    let signed = v
        .checks
        .iter()
        .any(|c| c.name == "statement signature" && c.ok);
    if !signed || v.statement.is_none() {
        return None;
    }
    let env: Envelope =
        airlock_schemas::strict_json::from_slice(v.files.get(STATEMENT_DSSE_FILE)?).ok()?;
    trust
        .keys
        .iter()
        .find(|k| k.role == KeyRole::Builder && env.signatures.iter().any(|s| s.keyid == k.key_id))
        .map(|k| (k.name.clone(), k.key_id.clone()))
}
