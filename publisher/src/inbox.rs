//! Approvals that travel: a bundle staged for review and the officers' approvals inbox, in
//! the registry the release will go to.
//!
//! Layout (every key checked with [`check_key`], name and version by their grammars):
//! - `review/<name>/<version>/release.json`: the bundle staged for review, an index in the
//!   format of `models/<name>/<version>/release.json` (files → blobs under `blobs/sha256/`).
//!   Never under `models/`: staging is not a release, and `pull` reads only `models/`.
//! - `review/<name>/<version>/approvals/<key id>.dsse.json`: the inbox, one object per
//!   officer key, written atomically; it never overwrites anything of the bundle.
//!
//! Residency decides where the bytes may be; approvals decide whether it is released. So
//! staging is held to the residency policy, the outgoing leak scan and the audit log exactly
//! as a publish is, and a decision read from the inbox counts only once it verifies, as one
//! in the bundle's `approvals/` does.

use std::collections::BTreeMap;

use airlock_schemas::{AuditAction, ReleaseIndex};
use airlock_trust::bundle::{TOP_LEVEL_FILES, decision_key_id};
use airlock_trust::shards::sha256_hex;
use airlock_trust::{MODEL_FILE, ModelBytes, STATEMENT_FILE, VerifyOptions, verify_bundle_with};

use crate::publish::{
    Blob, PublishError, PublishOptions, Publisher, Target, check_residency, copy_audit, new_index,
    open_audit_log, setup, upload,
};
use crate::registry::{Registry, RegistryError, check_key};

/// Largest inbox object read (a decision is well under 4 KiB).
pub const MAX_DECISION_BYTES: usize = 64 << 10;
/// Most inbox objects read; the rest are reported and skipped.
pub const MAX_DECISIONS: usize = 256;

/// `review/<name>/<version>/`, refused unless the name is a model name and the version
/// SemVer 2.0.
pub fn review_prefix(name: &str, version: &str) -> Result<String, RegistryError> {
    let unsafe_key = |why: String| RegistryError::UnsafeKey {
        key: format!("review/{name}/{version}"),
        why,
    };
    airlock_schemas::grammar::model_name(name).map_err(unsafe_key)?;
    airlock_schemas::grammar::version(version).map_err(unsafe_key)?;
    let prefix = format!("review/{name}/{version}/");
    check_key(&prefix)?;
    Ok(prefix)
}

/// The key of the review index of `name` `version`.
pub fn review_index_key(name: &str, version: &str) -> Result<String, RegistryError> {
    Ok(format!("{}release.json", review_prefix(name, version)?))
}

/// The inbox key of `keyid`'s decision on `name` `version`.
pub fn inbox_key(name: &str, version: &str, keyid: &str) -> Result<String, RegistryError> {
    let file = format!("{keyid}.dsse.json");
    if decision_key_id(&file).is_none() {
        return Err(RegistryError::UnsafeKey {
            key: file.escape_debug().to_string(),
            why: "not <64 lowercase hex>.dsse.json".into(),
        });
    }
    let key = format!("{}approvals/{file}", review_prefix(name, version)?);
    check_key(&key)?;
    Ok(key)
}

/// What an inbox held.
#[derive(Debug, Default, Clone)]
pub struct Inbox {
    /// `(file name <key id>.dsse.json, bytes)` of each object read, in key order.
    pub decisions: Vec<(String, Vec<u8>)>,
    /// Objects not read, each with why (they count for nothing and are never written).
    pub skipped: Vec<String>,
}

/// Read the inbox of `name` `version` strictly: only `<64 hex>.dsse.json` objects directly
/// under `approvals/`, each at most [`MAX_DECISION_BYTES`], at most [`MAX_DECISIONS`].
/// What is read is not trusted: the caller judges each decision against the trust policy.
pub fn read_inbox(
    registry: &dyn Registry,
    name: &str,
    version: &str,
) -> Result<Inbox, RegistryError> {
    let prefix = format!("{}approvals/", review_prefix(name, version)?);
    let mut inbox = Inbox::default();
    for key in registry.list(&prefix)? {
        let file = key.strip_prefix(&prefix).unwrap_or(&key);
        let shown = file.escape_debug().to_string();
        if file.contains('/') || decision_key_id(file).is_none() {
            inbox
                .skipped
                .push(format!("{shown}: not named <64 hex key id>.dsse.json"));
            continue;
        }
        if inbox.decisions.len() >= MAX_DECISIONS {
            inbox.skipped.push(format!(
                "{shown}: more than {MAX_DECISIONS} objects in the inbox"
            ));
            continue;
        }
        // One unreadable object (a link or a FIFO in a file registry, a failed GET) is
        // reported and skipped like any other that does not belong: it does not stop the
        // gate from judging the others.
        match registry.get_object_max(&key, MAX_DECISION_BYTES) {
            Err(e) => inbox.skipped.push(format!("{shown}: cannot be read ({e})")),
            Ok(None) => inbox.skipped.push(format!("{shown}: gone while reading")),
            Ok(Some(Err(len))) => inbox.skipped.push(format!(
                "{shown}: {len} bytes, more than the {MAX_DECISION_BYTES} a decision may hold"
            )),
            Ok(Some(Ok(bytes))) => inbox.decisions.push((file.to_owned(), bytes)),
        }
    }
    Ok(inbox)
}

/// Put `keyid`'s decision (the envelope's bytes) into the inbox of `name` `version`,
/// replacing only that key's earlier decision. Returns the key.
pub fn put_decision(
    registry: &dyn Registry,
    name: &str,
    version: &str,
    keyid: &str,
    bytes: &[u8],
) -> Result<String, RegistryError> {
    let key = inbox_key(name, version, keyid)?;
    if bytes.len() > MAX_DECISION_BYTES {
        return Err(RegistryError::UnsafeKey {
            key,
            why: format!("a decision is at most {MAX_DECISION_BYTES} bytes"),
        });
    }
    registry.put_object(&key, bytes)?;
    Ok(key)
}

/// What [`stage`] did.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The review index's key.
    pub index: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Region the registry reported.
    pub region: String,
    /// Already staged with exactly these files: nothing was sent or recorded.
    pub already: bool,
    /// Audit entries written.
    pub audit_entries: usize,
}

/// The verified bundle to stage: its release's review target, the signed model digest and
/// the signed files (decisions travel through the inbox), or why it is not staged.
struct ToStage<'a> {
    target: Target,
    model_sha: String,
    blobs: Vec<Blob<'a>>,
    files: BTreeMap<String, String>,
}

fn to_stage<'a>(
    opts: &PublishOptions,
    verification: &'a airlock_trust::Verification,
) -> Result<ToStage<'a>, PublishError> {
    let not_staged = |why: String| PublishError::NotApproved {
        bundle: opts.bundle.clone(),
        why: format!("not staged for review: {why}"),
    };
    let (Some(st), true) = (verification.statement.as_ref(), verification.ok()) else {
        let failed: Vec<String> = verification
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        return Err(not_staged(format!(
            "it does not verify ({})",
            failed.join("; ")
        )));
    };
    let model_sha = st
        .subject
        .iter()
        .find(|x| x.name == MODEL_FILE)
        .and_then(|x| x.digest.get("sha256").cloned())
        .ok_or_else(|| not_staged("the statement names no model digest".into()))?;
    let target = Target {
        key: review_index_key(&st.predicate.model_name, &st.predicate.model_version)?,
        name: st.predicate.model_name.clone(),
        version: st.predicate.model_version.clone(),
    };
    let blobs: Vec<Blob<'_>> = verification
        .files
        .iter()
        .filter(|(rel, _)| TOP_LEVEL_FILES.contains(rel))
        .map(|(rel, bytes)| Blob {
            rel,
            bytes,
            sha256: sha256_hex(bytes),
        })
        .collect();
    let files: BTreeMap<String, String> = blobs
        .iter()
        .map(|b| (b.rel.to_owned(), b.sha256.clone()))
        .collect();
    if files.get(MODEL_FILE) != Some(&model_sha) || !files.contains_key(STATEMENT_FILE) {
        return Err(not_staged(format!("{MODEL_FILE} is not the signed one")));
    }
    Ok(ToStage {
        target,
        model_sha,
        blobs,
        files,
    })
}

/// Stage `opts.bundle` for review in `opts.to`: the bundle must verify (approvals are not
/// required: that is what it is staged for), the destination must be one the residency
/// policy allows and what leaves must pass the outgoing leak scan (each refusal recorded,
/// nothing sent); then a `start` entry, the blobs uploaded and read back, the review index
/// written, and a `stage` entry with the outcome. Idempotent: a review index for exactly
/// these files means nothing is sent and nothing recorded.
pub fn stage(opts: &PublishOptions) -> Result<Staged, PublishError> {
    let s = setup(opts)?;
    let registry = s.registry.as_ref();
    let verification = verify_bundle_with(
        &opts.bundle,
        &s.trust,
        &VerifyOptions {
            threads: opts.threads,
            full_digest: false,
            model: ModelBytes::Keep,
            now: None,
        },
    );
    let ToStage {
        target,
        model_sha,
        blobs,
        files,
    } = to_stage(opts, &verification)?;
    if let Some(Ok(existing)) =
        registry.get_object_max(&target.key, crate::registry::MAX_INDEX_BYTES)?
        && airlock_schemas::strict_json::from_slice::<ReleaseIndex>(&existing)
            .is_ok_and(|i| i.files == files && i.name == target.name && i.version == target.version)
    {
        return Ok(Staged {
            index: target.key,
            uploaded: 0,
            uploaded_bytes: 0,
            region: String::new(),
            already: true,
            audit_entries: 0,
        });
    }
    let mut p = Publisher {
        opts,
        registry,
        log: open_audit_log(opts, &s.trust, registry, &s.residency)?,
        signer: s.signer,
        trust_sha: s.trust.sha256.clone(),
        residency_sha: s.residency_sha,
        artifacts: BTreeMap::from([(MODEL_FILE.to_owned(), model_sha.clone())]),
        approvals: Vec::new(),
        entries: 0,
    };
    let destination = format!("{}/{}", registry.uri(), target.key);
    if let Err(r) = crate::outgoing::scan_before_send(
        opts,
        &verification,
        &model_sha,
        &destination,
        p.signer.key_id(),
    ) {
        return Err(p.refuse(None, format!("{} (staging for review)", r.outcome), r.error));
    }
    let located = check_residency(&mut p, &s.residency, s.aws.as_ref())?;
    let region = located.registry.region;
    let started = p.start(&files, destination.clone(), &region)?;
    let sent = upload(registry, &blobs)
        .map_err(PublishError::from)
        .and_then(|u| {
            let proof = p.log.prove(started.seq);
            let index = new_index(&target, files.clone(), p.signer.key_id(), started, proof);
            let mut bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
            bytes.push(b'\n');
            copy_audit(registry, &p.log)?;
            registry.put_object(&target.key, &bytes)?;
            Ok(u)
        });
    let u = match sent {
        Ok(u) => u,
        Err(e) => {
            p.fail(
                AuditAction::Stage,
                destination,
                &region,
                format!("{e} (no review index written)"),
            )?;
            return Err(e);
        }
    };
    p.record_at(
        AuditAction::Stage,
        destination,
        Some(region.clone()),
        "ok: staged for review".into(),
    )?;
    copy_audit(registry, &p.log)?;
    Ok(Staged {
        index: target.key,
        uploaded: u.uploaded,
        uploaded_bytes: u.uploaded_bytes,
        region,
        already: false,
        audit_entries: p.entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &std::path::Path) -> Box<dyn Registry> {
        crate::registry::open(&format!("file://{}", dir.display()), || {
            Err(crate::aws::AwsSetupError::NoRegion)
        })
        .expect("file registry")
    }

    #[test]
    fn review_keys_need_a_model_name_a_semver_version_and_a_key_id() {
        let id = "ab".repeat(32);
        assert_eq!(
            inbox_key("fraud", "1.0.0", &id).ok(),
            Some(format!("review/fraud/1.0.0/approvals/{id}.dsse.json"))
        );
        assert_eq!(
            review_index_key("fraud", "1.0.0").ok().as_deref(),
            Some("review/fraud/1.0.0/release.json")
        );
        for (n, v, k) in [
            ("..", "1.0.0", id.as_str()),
            ("fraud", "../x", id.as_str()),
            ("fraud", "1.0.0", "../../models/fraud/1.0.0/release"),
            ("fraud", "1.0.0", "AB"),
            ("fraud", "1.0.0", &id[..62]),
        ] {
            assert!(
                matches!(inbox_key(n, v, k), Err(RegistryError::UnsafeKey { .. })),
                "{n} {v} {k}"
            );
        }
    }

    /// Only `<64 hex>.dsse.json` objects directly under approvals/, at most 64 KiB each:
    /// anything else is reported and skipped; writing never touches the bundle's keys.
    #[test]
    fn the_inbox_is_read_strictly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = registry(dir.path());
        let good = "ab".repeat(32);
        let big = "cd".repeat(32);
        put_decision(reg.as_ref(), "m", "1.0.0", &good, b"{}").expect("put");
        let pre = "review/m/1.0.0/approvals/";
        reg.put_object(
            &format!("{pre}{big}.dsse.json"),
            &vec![b' '; MAX_DECISION_BYTES + 1],
        )
        .expect("put");
        reg.put_object(&format!("{pre}notes.txt"), b"x")
            .expect("put");
        reg.put_object(&format!("{pre}{}.dsse.json", "AB".repeat(32)), b"{}")
            .expect("put");
        reg.put_object(&format!("{pre}sub/{good}.dsse.json"), b"{}")
            .expect("put");
        let inbox = read_inbox(reg.as_ref(), "m", "1.0.0").expect("read");
        assert_eq!(
            inbox.decisions,
            vec![(format!("{good}.dsse.json"), b"{}".to_vec())]
        );
        assert_eq!(inbox.skipped.len(), 4, "{:?}", inbox.skipped);
        assert!(
            inbox
                .skipped
                .iter()
                .any(|s| s.contains("more than the 65536"))
        );
        assert!(matches!(
            put_decision(
                reg.as_ref(),
                "m",
                "1.0.0",
                &good,
                &vec![b' '; MAX_DECISION_BYTES + 1]
            ),
            Err(RegistryError::UnsafeKey { .. })
        ));
        // Too many: the rest are skipped.
        for i in 0..=MAX_DECISIONS {
            let id = format!("{i:064x}");
            put_decision(reg.as_ref(), "n", "1.0.0", &id, b"{}").expect("put");
        }
        let inbox = read_inbox(reg.as_ref(), "n", "1.0.0").expect("read");
        assert_eq!(inbox.decisions.len(), MAX_DECISIONS);
        assert_eq!(inbox.skipped.len(), 1);
        assert!(!dir.path().join("models").exists());
    }
}
