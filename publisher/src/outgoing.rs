//! The leak scan of everything a publish would send, run before anything is sent.
//!
//! `publish` runs on the premises, next to the training data. Before the first byte leaves
//! it scans, with L1 (PII patterns) and L2 (the training data's identifier values, exact,
//! case-folded and whitespace-insensitive, and digits-only): every file of the bundle as
//! verify read it (exactly the bytes publish uploads) but the model (the signed documents,
//! the leak report, every approval with its officer name and reason; the model's bytes
//! were scanned at packaging and are pinned by the signed statement), every file name, the release index it will write, the audit log and head it
//! will copy, and the destinations its audit entries will name.
//!
//! The identifier values come from the run the bundle was packaged from: `--run RUN_DIR`,
//! or the `BUNDLE_DIR.run.json` pointer the packager writes beside (never inside) the
//! bundle. That run must be the one the verified statement names (its training record's
//! digest), so a pointer to another run is refused. If the scanner cannot be built, the
//! publish is refused: fail closed.

use std::collections::BTreeMap;

use airlock_leak::identifier_index_for_bundle;
use airlock_leak::outgoing::{IdentifierIndex, OutgoingFinding};
use airlock_trust::{MODEL_FILE, Verification};
use sha2::{Digest, Sha256};

use crate::publish::{PublishError, PublishOptions};

/// Largest bundle file (other than the model) that is scanned; a larger one is refused.
const MAX_SCANNED_FILE: u64 = 256 << 20;
/// Findings named in the error message (all are counted).
const MAX_NAMED: usize = 10;

/// A refused publish: the error, and the audit entry's outcome (kinds and counts only).
#[derive(Debug)]
pub struct Refusal {
    /// What `publish` returns.
    pub error: PublishError,
    /// The audit log's outcome for the refusal.
    pub outcome: String,
}

/// Scan everything `opts` would send, for the verified release `v` (admitted for a
/// publish, verified for staging) whose signed model digest is `model_sha256`, to
/// `destination`.
pub fn scan_before_send(
    opts: &PublishOptions,
    v: &Verification,
    model_sha256: &str,
    destination: &str,
    publisher: &str,
) -> Result<(), Box<Refusal>> {
    let unavailable = |why: String| {
        Box::new(Refusal {
            outcome: "refused: the leak scan of what would leave could not run".into(),
            error: PublishError::ScanUnavailable {
                bundle: opts.bundle.clone(),
                why,
            },
        })
    };
    let st = v
        .statement
        .as_ref()
        .ok_or_else(|| unavailable("no verified statement".into()))?;
    // What leaves includes the model: a verification that did not keep it
    // (`ModelBytes::DigestOnly`) cannot stand for what is sent.
    v.model().map_err(unavailable)?;
    let index = identifier_index_for_bundle(
        &opts.bundle,
        opts.run_dir.as_deref(),
        &st.predicate.training_record_sha256,
    )
    .map_err(|e| unavailable(format!("{}: {}", e.dir.display(), e.what)))?;
    let mut findings = Vec::new();
    let mut files = BTreeMap::new();
    // Exactly the bytes publish uploads: the files verify read once and verified.
    for (rel, bytes) in v.files.iter() {
        let shown = shown_name(rel, files.len());
        findings.extend(index.scan_document(&format!("the name of {shown}"), rel.as_bytes()));
        if rel == MODEL_FILE {
            // Scanned at packaging; its digest is pinned by the verified statement.
            files.insert(rel.to_owned(), model_sha256.to_owned());
            continue;
        }
        if bytes.len() as u64 > MAX_SCANNED_FILE {
            return Err(unavailable(format!(
                "{shown} is {} bytes, more than the {MAX_SCANNED_FILE} a bundle file other than the model may hold",
                bytes.len()
            )));
        }
        findings.extend(index.scan_document(&shown, bytes));
        files.insert(rel.to_owned(), hex::encode(Sha256::digest(bytes)));
    }
    // The index as it will be written (its time and audit position aside: the clock's and
    // the log's). Built as JSON, so that fields added to the index need no change here.
    let draft = serde_json::json!({
        "name": st.predicate.model_name,
        "version": st.predicate.model_version,
        "files": files,
        "published_at": "1970-01-01T00:00:00Z",
        "publisher": publisher,
        "audit": {
            "log": opts.audit_log.file_name().map(|n| n.to_string_lossy().into_owned()),
        },
    });
    let draft = serde_json::to_vec_pretty(&draft).unwrap_or_default();
    findings.extend(index.scan_document("the release index", &draft));
    findings.extend(scan_audit(&index, opts, destination));

    if findings.is_empty() {
        return Ok(());
    }
    let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut named: Vec<String> = findings
        .iter()
        .take(MAX_NAMED)
        .map(OutgoingFinding::to_string)
        .collect();
    if findings.len() > MAX_NAMED {
        named.push(format!("and {} more", findings.len() - MAX_NAMED));
    }
    Err(Box::new(Refusal {
        outcome: format!(
            "refused: the leak scan of what would leave found {} item(s) ({}); nothing was sent",
            findings.len(),
            kinds.join(", ")
        ),
        error: PublishError::LeakRefused {
            bundle: opts.bundle.clone(),
            findings: named,
        },
    }))
}

/// The audit log and head as they are now (the publish copies them into the registry),
/// line by line, and the destinations its new entries will name.
fn scan_audit(
    index: &IdentifierIndex,
    opts: &PublishOptions,
    destination: &str,
) -> Vec<OutgoingFinding> {
    let mut out = Vec::new();
    if let Ok(log) = std::fs::read(&opts.audit_log) {
        for (i, line) in log.split(|&b| b == b'\n').enumerate() {
            out.extend(index.scan_document(&format!("audit log entry {}", i + 1), line));
        }
    }
    if let Ok(head) = std::fs::read(crate::audit::head_path(&opts.audit_log)) {
        out.extend(index.scan_document("the audit log's head", &head));
    }
    let mut places = serde_json::json!({
        "destination": destination,
        "region": opts.aws.region,
    });
    if let Some(sm) = &opts.sagemaker {
        places["sagemaker"] = serde_json::json!({
            "group": sm.group,
            "image": sm.image,
            "endpoint": sm.deploy.as_ref().map(|d| &d.endpoint),
            "role": sm.deploy.as_ref().map(|d| &d.role),
            "instance_type": sm.deploy.as_ref().map(|d| &d.instance_type),
        });
    }
    out.extend(index.scan_document(
        "the destinations the audit entries will name",
        places.to_string().as_bytes(),
    ));
    out
}

/// A bundle file's name as findings show it: the name when it is one airlock writes, else
/// a number (a name may itself carry what was found).
fn shown_name(rel: &str, i: usize) -> String {
    let known = [
        MODEL_FILE,
        airlock_trust::MODEL_CARD_FILE,
        airlock_trust::LEAK_REPORT_FILE,
        airlock_trust::STATEMENT_FILE,
        airlock_trust::STATEMENT_DSSE_FILE,
        airlock_trust::PROVENANCE_DSSE_FILE,
    ];
    let approval = rel
        .strip_prefix("approvals/")
        .and_then(|f| f.strip_suffix(".dsse.json"))
        .is_some_and(|k| airlock_schemas::grammar::sha256_hex(k).is_ok());
    if known.contains(&rel) || approval {
        rel.to_owned()
    } else {
        format!("bundle file #{}", i + 1)
    }
}
