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
pub(crate) fn held<'a>(
    files: &'a BundleFiles,
    dir: &Path,
    name: &str,
) -> Result<&'a [u8], ReviewError> {
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
pub(crate) fn provenance(
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
pub(crate) fn file_digests(v: &Verification) -> Vec<(String, String)> {
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
pub(crate) fn builder(v: &Verification, trust: &Trust) -> Option<(String, String)> {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use airlock_schemas::{ReleasePredicate, ShardDigests, Subject, Verdict};
    use airlock_trust::Check;

    use super::*;

    fn statement(model_sha: &str) -> Statement<ReleasePredicate> {
        Statement {
            type_: airlock_schemas::STATEMENT_TYPE.into(),
            subject: vec![Subject {
                name: MODEL_FILE.into(),
                digest: BTreeMap::from([("sha256".to_owned(), model_sha.to_owned())]),
            }],
            predicate_type: airlock_schemas::RELEASE_PREDICATE_TYPE.into(),
            predicate: ReleasePredicate {
                model_name: "m".into(),
                model_version: "1".into(),
                pipeline_sha256: "ab".repeat(32),
                training_record_sha256: "cd".repeat(32),
                leak_verdict: Verdict::Pass,
                git_commit: None,
                model_shards: ShardDigests {
                    length: 1,
                    shard_size: 1 << 20,
                    sha256: vec![model_sha.to_owned()],
                },
                privacy: None,
            },
        }
    }

    /// A streamed verification (no bytes kept) with these model checks.
    fn verification(checks: &[(&'static str, bool)], signed: bool) -> Verification {
        Verification {
            checks: checks
                .iter()
                .map(|&(name, ok)| Check {
                    name,
                    ok,
                    detail: String::new(),
                })
                .collect(),
            statement: signed.then(|| statement(&"9d".repeat(32))),
            ..Verification::default()
        }
    }

    #[test]
    fn the_model_digest_is_listed_only_once_its_bytes_verified() {
        let listed = vec![(MODEL_FILE.to_owned(), "9d".repeat(32))];
        for (checks, signed, want) in [
            (
                &[("model shard digests", true), ("model digest", true)][..],
                true,
                true,
            ),
            // Several shards, no whole-file digest computed: the shards pin every byte.
            (&[("model shard digests", true)][..], true, true),
            (
                &[("model shard digests", false), ("model digest", true)][..],
                true,
                false,
            ),
            (
                &[("model shard digests", true), ("model digest", false)][..],
                true,
                false,
            ),
            // The model is read only once the statement's signature held.
            (&[][..], true, false),
            (&[("model shard digests", true)][..], false, false),
        ] {
            let got = file_digests(&verification(checks, signed));
            assert_eq!(got == listed, want, "{checks:?} signed {signed}: {got:?}");
            if !want {
                assert!(got.is_empty(), "{got:?}");
            }
        }
    }

    #[test]
    fn a_document_the_verification_did_not_read_is_refused() {
        let err = held(&BundleFiles::default(), Path::new("b"), MODEL_CARD_FILE)
            .expect_err("nothing was read");
        assert!(matches!(&err, ReviewError::NotRead(p) if p == Path::new("b/model-card.json")));
        assert_eq!(
            err.to_string(),
            "cannot read b/model-card.json: it is not among the files the verification read"
        );
        assert_eq!(provenance(&BundleFiles::default(), None), None);
        // The builder is named from the verified envelope's bytes, never from the disk.
        let signed = verification(&[("statement signature", true)], true);
        assert_eq!(builder(&signed, &trust()), None);
    }

    fn trust() -> Trust {
        Trust {
            policy: airlock_schemas::TrustPolicy {
                approvals_required: 0,
                keys: vec![],
                revoked: vec![],
                uri_base: None,
            },
            sha256: String::new(),
            keys: vec![],
            uri_base: airlock_schemas::UriBase::default(),
        }
    }
}
