//! `airlock pull`: a release out of a registry, trusted only once it verifies.
//!
//! The files land in a temporary directory beside the destination; the builder signature,
//! the approval threshold, the leak verdict and every digest (the model per shard, on every
//! core) are checked there, and only then is it renamed into place. A failure leaves
//! nothing that looks like a model.

use std::path::{Path, PathBuf};

use airlock_schemas::{ErrorKind, IoError, ReleaseIndex, ReleasePredicate, Statement};
use airlock_trust::bundle::is_closed_set_name;
use airlock_trust::shards::stream_digest;
use airlock_trust::{
    APPROVALS_DIR, GateOptions, MODEL_FILE, Refusal, STATEMENT_FILE, Trust, admit, approvals,
    verify_bundle_streamed,
};

use crate::aws::{Aws, AwsOptions};
use crate::registry::{Registry, RegistryError, index_key, open};

/// Why a pull did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The URI.
    #[error("{0}")]
    Usage(String),
    /// Trust policy.
    #[error(transparent)]
    Trust(#[from] airlock_trust::TrustError),
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// No such release.
    #[error("{0}")]
    NotFound(String),
    /// What was downloaded does not verify (nothing was installed).
    #[error("refused {release}: {why}")]
    Refused {
        /// Which release.
        release: String,
        /// Why.
        why: String,
    },
    /// Local files.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl PullError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Usage(_) | Self::NotFound(_) => ErrorKind::BadInput,
            Self::Trust(e) => e.kind(),
            // What the registry holds is not what was published (an OCI manifest, layer or
            // referrer): refused, as a release that does not verify is.
            Self::Registry(RegistryError::Untrusted { .. }) => ErrorKind::VerificationFailed,
            // Every other registry failure of a pull is the environment's, an unsupported
            // registry URI included (publish calls that one bad input).
            Self::Registry(_) => ErrorKind::Remote,
            Self::Refused { .. } => ErrorKind::VerificationFailed,
            Self::Io(e) => e.kind(),
        }
    }
}

/// Options of `airlock pull`.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// `REGISTRY/models/NAME[@VERSION]`.
    pub uri: String,
    /// Trust policy.
    pub trust: PathBuf,
    /// Destination directory.
    pub out: PathBuf,
    /// Replace a newer verified release in `out` with an older one.
    pub allow_downgrade: bool,
    /// Threads for verification.
    pub threads: usize,
    /// AWS settings for `s3://` registries.
    pub aws: AwsOptions,
}

/// What was pulled.
#[derive(Debug, Clone)]
pub struct PullSummary {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Approvals that counted.
    pub approvals: usize,
}

/// Split `REGISTRY/models/NAME[@VERSION]`.
pub fn parse_uri(uri: &str) -> Option<(String, String, Option<String>)> {
    let (reg, rest) = uri.rsplit_once("/models/")?;
    let rest = rest.trim_end_matches('/');
    let (name, version) = match rest.split_once('@') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (rest, None),
    };
    // A model name and a SemVer version: nothing that could become a path.
    let ok = airlock_schemas::grammar::model_name(name).is_ok()
        && version
            .as_deref()
            .is_none_or(|v| airlock_schemas::grammar::version(v).is_ok());
    (ok && !reg.is_empty()).then(|| (reg.to_owned(), name.to_owned(), version))
}

/// Order versions by SemVer 2.0 precedence: numeric identifiers numerically, a
/// pre-release below its release, build metadata ignored. A string that is not SemVer
/// sorts below every version that is (and such strings among themselves bytewise), so it
/// is never the newest and never blocks an upgrade.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use airlock_schemas::grammar::version;
    match (version(a), version(b)) {
        (Ok(x), Ok(y)) => x.cmp_precedence(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
        (Err(_), Ok(_)) => std::cmp::Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn statement_of(dir: &Path) -> Option<Statement<ReleasePredicate>> {
    airlock_schemas::strict_json::from_slice(&std::fs::read(dir.join(STATEMENT_FILE)).ok()?).ok()
}

/// One release being fetched into a private directory and checked there.
struct Fetch<'a> {
    registry: &'a dyn Registry,
    name: &'a str,
    version: &'a str,
    trust: &'a Trust,
    tmp: &'a Path,
    threads: usize,
    /// Read `review/<name>/<version>/` (a bundle staged for review) instead of `models/`.
    review: bool,
}

impl Fetch<'_> {
    /// This release refused, for `why`.
    fn refused(&self, why: String) -> PullError {
        PullError::Refused {
            release: format!("{} {}", self.name, self.version),
            why,
        }
    }

    /// The release index, refused unless it is for this release and names only a bundle's
    /// closed set of files (before anything is downloaded).
    fn index(&self) -> Result<ReleaseIndex, PullError> {
        let key = if self.review {
            crate::inbox::review_index_key(self.name, self.version)
        } else {
            index_key(self.name, self.version)
        }
        .map_err(|e| self.refused(e.to_string()))?;
        let bytes = self
            .registry
            .get_object_max(&key, crate::registry::MAX_INDEX_BYTES)?
            .ok_or_else(|| PullError::NotFound(format!("{} has no {key}", self.registry.uri())))?
            .map_err(|len| {
                self.refused(format!(
                    "its index is {len} bytes, more than an index ever is ({} bytes); nothing was downloaded",
                    crate::registry::MAX_INDEX_BYTES
                ))
            })?;
        let index: ReleaseIndex = airlock_schemas::strict_json::from_slice(&bytes)
            .map_err(|e| self.refused(format!("its index is not a release index: {e}")))?;
        let outside: Vec<&String> = index
            .files
            .keys()
            .filter(|f| !is_closed_set_name(f))
            .collect();
        if !outside.is_empty() {
            return Err(self.refused(format!(
                "its index names files that are not part of a bundle (only the signed files and {APPROVALS_DIR}/<key id>.dsse.json decisions are): {outside:?}; nothing was downloaded"
            )));
        }
        if index.name != self.name || index.version != self.version {
            return Err(self.refused(format!(
                "the index at {key} describes {} {}",
                index.name, index.version
            )));
        }
        Ok(index)
    }

    /// Download every file but the model and check each digest; returns the bytes read.
    fn small_files(&self, index: &ReleaseIndex) -> Result<u64, PullError> {
        std::fs::create_dir_all(self.tmp.join(APPROVALS_DIR)).map_err(io("create", self.tmp))?;
        let mut total = 0;
        for (file, sha) in index.files.iter().filter(|(f, _)| *f != MODEL_FILE) {
            let dest = self.tmp.join(file);
            total += self.registry.get_blob(sha, &dest)?;
            let got = stream_digest(&dest).map_err(io("read", &dest))?;
            if &got != sha {
                return Err(self.refused(format!(
                    "{file} reads back with digest {got}, the index says {sha}"
                )));
            }
        }
        Ok(total)
    }

    /// The signed statement must be the release the index is filed under.
    fn check_names(
        &self,
        st: Option<&Statement<ReleasePredicate>>,
        when: &str,
    ) -> Result<(), PullError> {
        let st = st.ok_or_else(|| self.refused(format!("no signed statement{when}")))?;
        if st.predicate.model_name != self.name || st.predicate.model_version != self.version {
            return Err(self.refused(format!(
                "its signed statement is for {} {}, not what the index is filed under{when}",
                st.predicate.model_name, st.predicate.model_version
            )));
        }
        Ok(())
    }

    /// Before the model is downloaded: the statement, the leak verdict, the release's name
    /// and its approvals, as far as the files without the model show them. A release
    /// whose signature or approvals do not hold is refused without its model.
    fn early_checks(&self) -> Result<(), PullError> {
        const WHEN: &str = "; the model was not downloaded";
        let early = verify_bundle_streamed(self.tmp, self.trust, self.threads, false);
        if let Some(c) = early
            .checks
            .iter()
            .find(|c| !c.ok && (c.name.starts_with("statement") || c.name == "leak verdict"))
        {
            return Err(self.refused(format!(
                "it does not verify ({}: {}){WHEN}",
                c.name, c.detail
            )));
        }
        self.check_names(early.statement.as_ref(), WHEN)?;
        let s = approvals::evaluate(self.trust, &early, time::OffsetDateTime::now_utc());
        if !s.approved() {
            return Err(self.refused(format!(
                "{} of {} required officer approvals{}{WHEN}",
                s.approvals,
                s.required,
                if s.rejected {
                    " and a valid rejection"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }

    /// The gate, once every file is here: [`admit`] (every digest, the model's whole and
    /// per shard in parallel, streamed: pull never uses the model's bytes, serve verifies
    /// again, keeping them, when it starts), the release's name, and the index's model
    /// digest the signed one. Returns the approvals that counted.
    fn gate(&self, index: &ReleaseIndex) -> Result<usize, PullError> {
        let opts = GateOptions {
            full_digest: true,
            ..GateOptions::digest_only(self.threads)
        };
        let admitted = match admit(self.tmp, self.trust, &opts) {
            Ok(admitted) => admitted,
            Err(r @ Refusal::DoesNotVerify(_)) => {
                return Err(self.refused(format!(
                    "it does not verify ({})",
                    r.failed_checks().join("; ")
                )));
            }
            Err(r @ (Refusal::NotApproved { .. } | Refusal::Rejected { .. })) => {
                self.check_names(r.verification().statement.as_ref(), "")?;
                return Err(self.refused(r.to_string()));
            }
        };
        self.check_names(Some(admitted.statement()), "")?;
        if index.files.get(MODEL_FILE).map(String::as_str) != Some(admitted.model_sha256()) {
            return Err(self.refused("the index's model digest is not the signed one".into()));
        }
        Ok(admitted.approvals().approvals)
    }

    /// Download the release into `tmp` and verify it; returns (bytes, approvals).
    fn run(&self) -> Result<(u64, usize), PullError> {
        let index = self.index()?;
        // The publish must be on record before anything the index names is downloaded: its
        // `start` entry, naming exactly these files, in the registry's copy of the log (so
        // no file a registry writer added to the index is fetched).
        crate::witness::check_release(self.registry, &index, self.trust).map_err(|e| match e {
            crate::witness::WitnessError::Registry(e) => e.into(),
            crate::witness::WitnessError::Refused(why) => {
                self.refused(format!("{why}; nothing was downloaded"))
            }
        })?;
        let mut total = self.small_files(&index)?;
        self.early_checks()?;
        // And provably so, offline: the index's inclusion proof, kept with the bundle so
        // that `serve` and `verify` check it again.
        let proven = crate::witness::check_index_proof(&index, self.trust)
            .map_err(|e| self.refused(format!("{e}; the model was not downloaded")))?;
        if let (true, Some(p)) = (proven, &index.transparency) {
            let dest = self.tmp.join(airlock_trust::bundle::TRANSPARENCY_FILE);
            let mut bytes = serde_json::to_vec_pretty(p).unwrap_or_default();
            bytes.push(b'\n');
            std::fs::write(&dest, bytes).map_err(io("write", &dest))?;
        }
        if let Some(sha) = index.files.get(MODEL_FILE) {
            total += self.registry.get_blob(sha, &self.tmp.join(MODEL_FILE))?;
        }
        let approvals = self.gate(&index)?;
        Ok((total, approvals))
    }
}

impl Fetch<'_> {
    /// For review: download the bundle into `tmp` and verify it without requiring
    /// approvals (every digest, the builder signature, the leak verdict, the release's name,
    /// the index's model digest the signed one). Returns the bytes read.
    fn run_for_review(&self) -> Result<u64, PullError> {
        let index = self.index()?;
        let mut total = self.small_files(&index)?;
        if let Some(sha) = index.files.get(MODEL_FILE) {
            total += self.registry.get_blob(sha, &self.tmp.join(MODEL_FILE))?;
        }
        let v = verify_bundle_streamed(self.tmp, self.trust, self.threads, true);
        if !v.ok() {
            let failed: Vec<String> = v
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            return Err(self.refused(format!("it does not verify ({})", failed.join("; "))));
        }
        self.check_names(v.statement.as_ref(), "")?;
        let signed = v
            .statement
            .as_ref()
            .and_then(|st| st.subject.iter().find(|s| s.name == MODEL_FILE))
            .and_then(|s| s.digest.get("sha256"));
        if index.files.get(MODEL_FILE) != signed {
            return Err(self.refused("the index's model digest is not the signed one".into()));
        }
        Ok(total)
    }
}

/// Split `REGISTRY/review/NAME@VERSION` or `REGISTRY/models/NAME@VERSION`: (registry,
/// staged for review, name, version).
pub fn parse_review_uri(uri: &str) -> Option<(String, bool, String, String)> {
    let (review, (reg, rest)) = match (uri.rsplit_once("/review/"), uri.rsplit_once("/models/")) {
        (Some(r), None) => (true, r),
        (None, Some(m)) => (false, m),
        (Some(r), Some(m)) if r.0.len() > m.0.len() => (true, r),
        (_, Some(m)) => (false, m),
        (None, None) => return None,
    };
    let (name, version) = rest.trim_end_matches('/').split_once('@')?;
    let ok = airlock_schemas::grammar::model_name(name).is_ok()
        && airlock_schemas::grammar::version(version).is_ok();
    (ok && !reg.is_empty()).then(|| (reg.to_owned(), review, name.to_owned(), version.to_owned()))
}

/// Options of `airlock review URI`.
#[derive(Debug, Clone)]
pub struct ReviewFetchOptions {
    /// `REGISTRY/review/NAME@VERSION` or `REGISTRY/models/NAME@VERSION`.
    pub uri: String,
    /// Trust policy.
    pub trust: PathBuf,
    /// Where the bundle goes; `None`: `NAME-VERSION` in the current folder.
    pub out: Option<PathBuf>,
    /// Threads for verification.
    pub threads: usize,
    /// AWS settings for `s3://` registries.
    pub aws: AwsOptions,
}

/// What `airlock review URI` fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The verified bundle.
    pub dir: PathBuf,
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Decisions copied from the approvals inbox.
    pub decisions: usize,
    /// Inbox objects skipped, each with why.
    pub skipped: Vec<String>,
}

/// Whether the earlier fetch at `dir` can be replaced without losing anything: every entry
/// a plain file of a bundle's closed set, every decision in it also in the new fetch's
/// `fresh` approvals folder (the release's and the inbox's), byte for byte. Else what would
/// be lost.
fn replaceable(dir: &Path, fresh: &Path) -> Result<(), String> {
    let entries = |d: &Path| -> Result<Vec<(String, std::fs::Metadata)>, String> {
        std::fs::read_dir(d)
            .map_err(|e| format!("an unreadable folder ({e})"))?
            .map(|e| {
                let e = e.map_err(|e| format!("an unreadable entry ({e})"))?;
                let meta = std::fs::symlink_metadata(e.path())
                    .map_err(|err| format!("an unreadable entry ({err})"))?;
                Ok((e.file_name().to_string_lossy().into_owned(), meta))
            })
            .collect()
    };
    for (name, meta) in entries(dir)? {
        if name == APPROVALS_DIR && meta.is_dir() {
            for (file, meta) in entries(&dir.join(APPROVALS_DIR))? {
                let held = meta.is_file()
                    && std::fs::read(dir.join(APPROVALS_DIR).join(&file))
                        .is_ok_and(|b| std::fs::read(fresh.join(&file)).is_ok_and(|f| f == b));
                if !held {
                    return Err(format!(
                        "the decision {APPROVALS_DIR}/{} that neither the release nor the registry's inbox holds",
                        file.escape_debug()
                    ));
                }
            }
        } else if !(meta.is_file() && is_closed_set_name(&name)) {
            return Err(format!(
                "{:?}, which is not part of a bundle",
                name.escape_debug().to_string()
            ));
        }
    }
    Ok(())
}

/// Fetch a bundle for an officer's review: verified (approvals not required), with the
/// approvals inbox's decisions (read strictly) in its `approvals/`, into `opts.out`, which
/// must be absent, empty, or an earlier fetch of the same release.
pub fn fetch_for_review(opts: &ReviewFetchOptions) -> Result<Fetched, PullError> {
    let (reg_uri, review, name, version) = parse_review_uri(&opts.uri).ok_or_else(|| {
        PullError::Usage(format!(
            "expected REGISTRY/review/NAME@VERSION or REGISTRY/models/NAME@VERSION (NAME a model name, VERSION SemVer 2.0), got {:?}",
            opts.uri
        ))
    })?;
    let trust = Trust::load(&opts.trust)?;
    let registry = open(&reg_uri, || Aws::load(opts.aws.clone()))?;
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}-{version}")));
    let (out, parent) = destination(&out)?;
    let earlier = |p: &Path| {
        statement_of(p).is_some_and(|st| {
            st.predicate.model_name == name && st.predicate.model_version == version
        })
    };
    let non_empty = std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some());
    if (out.exists() && !out.is_dir()) || (non_empty && !earlier(&out)) {
        return Err(PullError::Refused {
            release: format!("{name} {version}"),
            why: format!(
                "{} is not empty and not an earlier fetch of this release; choose another --bundle-out",
                out.display()
            ),
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".review-fetch-")
        .tempdir_in(&parent)
        .map_err(io("create a directory in", &parent))?;
    let bytes = Fetch {
        registry: registry.as_ref(),
        name: &name,
        version: &version,
        trust: &trust,
        tmp: tmp.path(),
        threads: opts.threads,
        review,
    }
    .run_for_review()?;
    let inbox = crate::inbox::read_inbox(registry.as_ref(), &name, &version)?;
    approvals::write_decisions(tmp.path(), &inbox.decisions)?;
    if out.exists() {
        // An earlier fetch is replaced only when nothing in it would be lost: no file
        // outside a bundle's closed set, and no decision that the inbox does not hold
        // byte for byte (an officer's decision recorded without --to, not yet sent).
        if let Err(why) = replaceable(&out, &tmp.path().join(APPROVALS_DIR)) {
            return Err(PullError::Refused {
                release: format!("{name} {version}"),
                why: format!(
                    "{} holds {why}, which a new fetch would delete; send it (approve|reject --to) or choose another --bundle-out",
                    out.display()
                ),
            });
        }
        std::fs::remove_dir_all(&out).map_err(io("replace", &out))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &out).map_err(|source| {
        let _ = std::fs::remove_dir_all(&kept);
        PullError::Io(IoError::new("install", &out, source))
    })?;
    Ok(Fetched {
        dir: out,
        name,
        version,
        bytes,
        decisions: inbox.decisions.len(),
        skipped: inbox.skipped,
    })
}

/// A closure for `map_err`: `action` on `path` failed.
fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PullError + 'a {
    move |source| PullError::Io(IoError::new(action, path, source))
}

/// The versions to try, newest first: the one asked for, or every SemVer release of
/// `name` in the registry.
fn candidates(
    registry: &dyn Registry,
    reg_uri: &str,
    name: &str,
    version: Option<&String>,
) -> Result<Vec<String>, PullError> {
    if let Some(v) = version {
        return Ok(vec![v.clone()]);
    }
    let prefix = format!("models/{name}/");
    let mut vs: Vec<String> = registry
        .list(&prefix)?
        .into_iter()
        .filter_map(|k| {
            k.strip_prefix(&prefix)?
                .strip_suffix("/release.json")
                .filter(|v| !v.contains('/'))
                .map(str::to_owned)
        })
        .filter(|v| {
            // Only SemVer versions can be releases (and be ordered).
            let ok = airlock_schemas::grammar::version(v).is_ok();
            if !ok {
                eprintln!("  skipping {name} {v:?}: not a SemVer 2.0 version");
            }
            ok
        })
        .collect();
    vs.sort_by(|a, b| version_cmp(b, a));
    if vs.is_empty() {
        return Err(PullError::NotFound(format!(
            "{reg_uri} has no release of {name}"
        )));
    }
    Ok(vs)
}

/// The destination, absolute, and its parent (created), where the private download goes.
fn destination(out: &Path) -> Result<(PathBuf, PathBuf), PullError> {
    let out = std::path::absolute(out).map_err(io("resolve", out))?;
    let parent = out.parent().unwrap_or(Path::new("/")).to_owned();
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    Ok((out, parent))
}

/// A release fetched and verified in a private directory: (it, bytes, approvals).
type Verified = (tempfile::TempDir, u64, usize);

/// Fetch release `name` `version` of `registry` into a private directory beside `out` and
/// verify it there.
fn fetch_verified(
    registry: &dyn Registry,
    name: &str,
    version: &str,
    trust: &Trust,
    opts: &PullOptions,
) -> Result<Verified, PullError> {
    let (out, parent) = destination(&opts.out)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.pull-",
            out.file_name()
                .map_or_else(|| "model".into(), |n| n.to_string_lossy())
        ))
        .tempdir_in(&parent)
        .map_err(io("create a directory in", &parent))?;
    let (bytes, approvals) = Fetch {
        registry,
        name,
        version,
        trust,
        tmp: tmp.path(),
        threads: opts.threads,
        review: false,
    }
    .run()?;
    Ok((tmp, bytes, approvals))
}

/// Install a verified release; what was pulled.
fn install_verified(
    (tmp, bytes, approvals): Verified,
    name: &str,
    version: &str,
    trust: &Trust,
    opts: &PullOptions,
) -> Result<PullSummary, PullError> {
    let (out, _) = destination(&opts.out)?;
    install(&out, tmp, version, trust, opts)?;
    Ok(PullSummary {
        name: name.to_owned(),
        version: version.to_owned(),
        bytes,
        approvals,
    })
}

/// Pull the release a tag or digest of an OCI repository names
/// (`oci://host/repository:TAG`, `oci://host/repository@sha256:<hex>`): its model manifest
/// checked as a whole ([`crate::oci::OciRegistry::open_release`]), then verified as any
/// release is.
fn pull_oci_reference(
    opts: &PullOptions,
    at: crate::oci::OciAt,
    pin: &crate::oci::Pin,
) -> Result<PullSummary, PullError> {
    let trust = Trust::load(&opts.trust)?;
    let oci = crate::oci::OciRegistry::new(at)?;
    let view = oci.open_release(pin)?.ok_or_else(|| {
        PullError::NotFound(format!("{} holds nothing at {}", oci.uri(), opts.uri))
    })?;
    let (name, version) = (view.name().to_owned(), view.version().to_owned());
    let verified = fetch_verified(&view, &name, &version, &trust, opts)?;
    install_verified(verified, &name, &version, &trust, opts)
}

/// Pull a release.
pub fn pull(opts: &PullOptions) -> Result<PullSummary, PullError> {
    if let Some((at, pin)) = crate::oci::parse_reference(&opts.uri) {
        return pull_oci_reference(opts, at, &pin);
    }
    let (reg_uri, name, version) = parse_uri(&opts.uri).ok_or_else(|| {
        PullError::Usage(format!(
            "expected REGISTRY/models/NAME[@VERSION], NAME a model name ([a-z0-9][a-z0-9-]{{0,63}}) and VERSION SemVer 2.0 (file:///path/models/fraud-detector@1.0.0, s3://bucket/prefix/models/fraud-detector), got {:?}",
            opts.uri
        ))
    })?;
    let trust = Trust::load(&opts.trust)?;
    let registry = open(&reg_uri, || Aws::load(opts.aws.clone()))?;
    let candidates = candidates(registry.as_ref(), &reg_uri, &name, version.as_ref())?;
    let mut last_err = None;
    for v in &candidates {
        // An OCI registry hands over each release as a whole, checked first.
        let fetched = match registry.release(&name, v) {
            Ok(Some(view)) => fetch_verified(view.as_ref(), &name, v, &trust, opts),
            Ok(None) => fetch_verified(registry.as_ref(), &name, v, &trust, opts),
            Err(RegistryError::Untrusted { what, why }) => Err(PullError::Refused {
                release: format!("{name} {v}"),
                why: format!("{what}: {why}"),
            }),
            Err(e) => Err(e.into()),
        };
        match fetched {
            Ok(verified) => return install_verified(verified, &name, v, &trust, opts),
            // Without a version: the newest release that verifies and is approved.
            Err(e @ PullError::Refused { .. }) if version.is_none() => {
                eprintln!("  skipping {name} {v}: {e}");
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| PullError::NotFound(format!("no release of {name}"))))
}

/// Rename the verified `tmp` into `out`, refusing a rollback.
fn install(
    out: &Path,
    tmp: tempfile::TempDir,
    version: &str,
    trust: &Trust,
    opts: &PullOptions,
) -> Result<(), PullError> {
    if out.exists() {
        if let Some(st) = statement_of(out) {
            // A tag or digest names whatever the registry put there: a model directory is
            // never silently replaced by another model.
            if let Some(new) = statement_of(tmp.path())
                && new.predicate.model_name != st.predicate.model_name
                && verify_bundle_streamed(out, trust, opts.threads, false).ok()
            {
                return Err(PullError::Refused {
                    release: format!("{} {version}", new.predicate.model_name),
                    why: format!(
                        "{} holds the verified model {}; pull another model into another directory",
                        out.display(),
                        st.predicate.model_name
                    ),
                });
            }
            let current = &st.predicate.model_version;
            let newer = version_cmp(current, version).is_gt();
            if newer
                && !opts.allow_downgrade
                && verify_bundle_streamed(out, trust, opts.threads, false).ok()
            {
                return Err(PullError::Refused {
                    release: format!("{} {version}", st.predicate.model_name),
                    why: format!(
                        "{} holds the newer verified release {current}; pass --allow-downgrade to roll back",
                        out.display()
                    ),
                });
            }
        }
        let old = out.with_file_name(format!(
            ".{}.replaced-{}",
            out.file_name()
                .map_or_else(|| "model".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        std::fs::rename(out, &old)
            .map_err(|source| PullError::Io(IoError::new("move aside", out, source)))?;
        let kept = tmp.keep();
        if let Err(source) = std::fs::rename(&kept, out) {
            let _ = std::fs::rename(&old, out);
            let _ = std::fs::remove_dir_all(&kept);
            return Err(PullError::Io(IoError::new("install", out, source)));
        }
        let _ = std::fs::remove_dir_all(&old);
    } else {
        let kept = tmp.keep();
        std::fs::rename(&kept, out).map_err(|source| {
            let _ = std::fs::remove_dir_all(&kept);
            PullError::Io(IoError::new("install", out, source))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    /// SemVer 2.0 precedence: the newest release and the rollback check both use it.
    #[test]
    fn versions_order_by_semver_precedence() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.9.0",
            "1.10.0",
        ];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                assert_eq!(version_cmp(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        // Build metadata is ignored.
        assert_eq!(
            version_cmp("1.0.0+build.2", "1.0.0+build.10"),
            Ordering::Equal
        );
        assert_eq!(version_cmp("1.0.0+zzz", "1.0.0"), Ordering::Equal);
        // Not SemVer: never newer than a release.
        assert_eq!(version_cmp("v9.0.0", "1.0.0"), Ordering::Less);
        assert_eq!(version_cmp("1.0.0", "2024.1"), Ordering::Greater);
        // The newest of a listing.
        let mut vs = ["1.0.0-rc.1", "1.0.0", "1.0.0-beta.11", "0.9.0"];
        vs.sort_by(|a, b| version_cmp(b, a));
        assert_eq!(vs[0], "1.0.0");
    }

    #[test]
    fn pull_uris_need_a_model_name_and_a_semver_version() {
        assert_eq!(
            parse_uri("file:///r/models/fraud-detector@1.0.0-rc.1"),
            Some((
                "file:///r".into(),
                "fraud-detector".into(),
                Some("1.0.0-rc.1".into())
            ))
        );
        assert!(parse_uri("s3://b/p/models/fraud-detector").is_some());
        for uri in [
            "file:///r/models/..@1.0.0",
            "file:///r/models/fraud@..",
            "file:///r/models/fraud@v1.0.0",
            "file:///r/models/fraud@1.0.0%2f..",
            "file:///r/models/Fraud@1.0.0",
            "file:///r/models/fraud@1.0",
            "file:///r/models/fr%2e%2e@1.0.0",
            "file:///r/models/fraud\\..@1.0.0",
        ] {
            assert!(parse_uri(uri).is_none(), "{uri}");
        }
    }
}
