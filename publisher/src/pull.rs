//! `airlock pull`: a release out of a registry, trusted only once it verifies.
//!
//! The files land in a temporary directory beside the destination; the builder signature,
//! the approval threshold, the leak verdict and every digest (the model per shard, on every
//! core) are checked there, and only then is it renamed into place. A failure leaves
//! nothing that looks like a model.

use std::path::{Path, PathBuf};

use airlock_schemas::{ReleaseIndex, ReleasePredicate, Statement};
use airlock_trust::bundle::is_closed_set_name;
use airlock_trust::shards::stream_digest;
use airlock_trust::{
    APPROVALS_DIR, MODEL_FILE, STATEMENT_FILE, Trust, approvals, verify_bundle_streamed,
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
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
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

/// Download the release at `key` into `tmp` and verify it; returns (bytes, approvals).
fn fetch_verified(
    registry: &dyn Registry,
    name: &str,
    version: &str,
    trust: &Trust,
    tmp: &Path,
    threads: usize,
) -> Result<(u64, usize), PullError> {
    let release = format!("{name} {version}");
    let refused = |why: String| PullError::Refused {
        release: release.clone(),
        why,
    };
    let key = index_key(name, version).map_err(|e| refused(e.to_string()))?;
    let bytes = registry
        .get_object(&key)?
        .ok_or_else(|| PullError::NotFound(format!("{} has no {key}", registry.uri())))?;
    let index: ReleaseIndex = airlock_schemas::strict_json::from_slice(&bytes)
        .map_err(|e| refused(format!("its index is not a release index: {e}")))?;
    // Only a bundle's closed set of names may be installed: refused before any download.
    let outside: Vec<&String> = index
        .files
        .keys()
        .filter(|f| !is_closed_set_name(f))
        .collect();
    if !outside.is_empty() {
        return Err(refused(format!(
            "its index names files that are not part of a bundle (only the signed files and {APPROVALS_DIR}/<key id>.dsse.json decisions are): {outside:?}; nothing was downloaded"
        )));
    }
    if index.name != name || index.version != version {
        return Err(refused(format!(
            "the index at {key} describes {} {}",
            index.name, index.version
        )));
    }
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| PullError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(tmp.join(APPROVALS_DIR)).map_err(io("create", tmp))?;
    let mut total = 0;
    // The small files first: a release whose signature or approvals do not hold is refused
    // before its model is downloaded.
    for (file, sha) in index.files.iter().filter(|(f, _)| *f != MODEL_FILE) {
        let dest = tmp.join(file);
        total += registry.get_blob(sha, &dest)?;
        let got = stream_digest(&dest).map_err(io("read", &dest))?;
        if &got != sha {
            return Err(refused(format!(
                "{file} reads back with digest {got}, the index says {sha}"
            )));
        }
    }
    // Pull checks its own private download and installs the files; it never uses the
    // model's bytes (serve verifies again, keeping them, when it starts), so every verify
    // here streams the model through its digests without keeping it.
    let early = verify_bundle_streamed(tmp, trust, threads, false);
    if let Some(c) = early
        .checks
        .iter()
        .find(|c| !c.ok && (c.name.starts_with("statement") || c.name == "leak verdict"))
    {
        return Err(refused(format!(
            "it does not verify ({}: {}); the model was not downloaded",
            c.name, c.detail
        )));
    }
    // The signed statement must be the release the index is filed under, and approved.
    let gate = |v: &airlock_trust::Verification, when: &str| -> Result<usize, PullError> {
        let st = v
            .statement
            .as_ref()
            .ok_or_else(|| refused(format!("no signed statement{when}")))?;
        if st.predicate.model_name != name || st.predicate.model_version != version {
            return Err(refused(format!(
                "its signed statement is for {} {}, not what the index is filed under{when}",
                st.predicate.model_name, st.predicate.model_version
            )));
        }
        let s = approvals::evaluate(trust, v, time::OffsetDateTime::now_utc());
        if !s.approved() {
            return Err(refused(format!(
                "{} of {} required officer approvals{}{when}",
                s.approvals,
                s.required,
                if s.rejected {
                    " and a valid rejection"
                } else {
                    ""
                }
            )));
        }
        Ok(s.approvals)
    };
    gate(&early, "; the model was not downloaded")?;
    // The publish must be on record: its `start` entry in the registry's copy of the log.
    crate::witness::check_release(registry, &index, trust).map_err(|e| match e {
        crate::witness::WitnessError::Registry(e) => e.into(),
        crate::witness::WitnessError::Refused(why) => {
            refused(format!("{why}; the model was not downloaded"))
        }
    })?;
    if let Some(sha) = index.files.get(MODEL_FILE) {
        // Checked whole and per shard, in parallel, against the signed statement below.
        total += registry.get_blob(sha, &tmp.join(MODEL_FILE))?;
    }
    let v = verify_bundle_streamed(tmp, trust, threads, true);
    if !v.ok() {
        let failed: Vec<String> = v
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        return Err(refused(format!(
            "it does not verify ({})",
            failed.join("; ")
        )));
    }
    let approvals = gate(&v, "")?;
    let st = v
        .statement
        .as_ref()
        .ok_or_else(|| refused("no statement".into()))?;
    let model_sha = st
        .subject
        .iter()
        .find(|s| s.name == MODEL_FILE)
        .and_then(|s| s.digest.get("sha256"));
    if model_sha != index.files.get(MODEL_FILE) {
        return Err(refused(
            "the index's model digest is not the signed one".into(),
        ));
    }
    Ok((total, approvals))
}

/// Pull a release.
pub fn pull(opts: &PullOptions) -> Result<PullSummary, PullError> {
    let (reg_uri, name, version) = parse_uri(&opts.uri).ok_or_else(|| {
        PullError::Usage(format!(
            "expected REGISTRY/models/NAME[@VERSION], NAME a model name ([a-z0-9][a-z0-9-]{{0,63}}) and VERSION SemVer 2.0 (file:///path/models/fraud-detector@1.0.0, s3://bucket/prefix/models/fraud-detector), got {:?}",
            opts.uri
        ))
    })?;
    let trust = Trust::load(&opts.trust)?;
    let registry = open(&reg_uri, || Aws::load(opts.aws.clone()))?;
    let out = std::path::absolute(&opts.out).map_err(|source| PullError::Io {
        action: "resolve",
        path: opts.out.clone(),
        source,
    })?;
    let parent = out.parent().unwrap_or(Path::new("/")).to_owned();
    std::fs::create_dir_all(&parent).map_err(|source| PullError::Io {
        action: "create",
        path: parent.clone(),
        source,
    })?;
    let candidates = match &version {
        Some(v) => vec![v.clone()],
        None => {
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
            vs
        }
    };
    let mut last_err = None;
    for v in &candidates {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(
                ".{}.pull-",
                out.file_name()
                    .map_or_else(|| "model".into(), |n| n.to_string_lossy())
            ))
            .tempdir_in(&parent)
            .map_err(|source| PullError::Io {
                action: "create a directory in",
                path: parent.clone(),
                source,
            })?;
        match fetch_verified(
            registry.as_ref(),
            &name,
            v,
            &trust,
            tmp.path(),
            opts.threads,
        ) {
            Ok((bytes, approvals)) => {
                install(&out, tmp, v, &trust, opts)?;
                return Ok(PullSummary {
                    name: name.clone(),
                    version: v.clone(),
                    bytes,
                    approvals,
                });
            }
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
        std::fs::rename(out, &old).map_err(|source| PullError::Io {
            action: "move aside",
            path: out.to_owned(),
            source,
        })?;
        let kept = tmp.keep();
        if let Err(source) = std::fs::rename(&kept, out) {
            let _ = std::fs::rename(&old, out);
            let _ = std::fs::remove_dir_all(&kept);
            return Err(PullError::Io {
                action: "install",
                path: out.to_owned(),
                source,
            });
        }
        let _ = std::fs::remove_dir_all(&old);
    } else {
        let kept = tmp.keep();
        std::fs::rename(&kept, out).map_err(|source| {
            let _ = std::fs::remove_dir_all(&kept);
            PullError::Io {
                action: "install",
                path: out.to_owned(),
                source,
            }
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
