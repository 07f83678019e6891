//! `airlock audit verify` and `airlock audit show`: a residency audit log.

use std::path::Path;

use anyhow::Context as _;

use airlock_publisher::audit::{self, ReleaseOf, printable};
use airlock_schemas::AuditEntry;

use crate::cli::AwsArgs;
use crate::exit;

/// Verify the log's chain, signed head and checkpoint; with a registry, also its
/// witnesses; with proofs, each proof offline (and against the log when there is one).
pub fn verify(
    log: Option<&Path>,
    trust: &Path,
    proofs: &[std::path::PathBuf],
    old_checkpoint: Option<&Path>,
    registry: Option<&str>,
    aws: &AwsArgs,
) -> anyhow::Result<()> {
    let trust = airlock_trust::Trust::load(trust)?;
    let chain = match log {
        Some(log) => Some(verify_one_log(log, &trust, registry, aws)?),
        None => None,
    };
    let old = match old_checkpoint {
        Some(p) => {
            let note =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            match airlock_trust::merkle::open_trusted(
                &note,
                &trust,
                airlock_schemas::KeyRole::Publisher,
            ) {
                Ok(c) => Some(c.checkpoint),
                Err(why) => {
                    eprintln!("  FAIL {}: {}", p.display(), printable(&why));
                    return Err(exit::VerificationFailed(p.display().to_string()).into());
                }
            }
        }
        None => None,
    };
    let mut failed = None;
    for p in proofs {
        match check_proof(p, &trust, chain.as_ref(), old.as_ref()) {
            Ok(line) => println!("verified {}: {line}", p.display()),
            Err(why) => {
                eprintln!("  FAIL {}: {}", p.display(), printable(&why));
                failed = Some(p.display().to_string());
            }
        }
    }
    match failed {
        Some(f) => Err(exit::VerificationFailed(f).into()),
        None => Ok(()),
    }
}

/// An inclusion or consistency proof file, checked offline (and against `chain`, `old`).
fn check_proof(
    path: &Path,
    trust: &airlock_trust::Trust,
    chain: Option<&audit::Chain>,
    old: Option<&airlock_trust::merkle::Checkpoint>,
) -> Result<String, String> {
    use airlock_schemas::{ConsistencyProof, InclusionProof, KeyRole};
    use airlock_trust::merkle;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let value: serde_json::Value = airlock_schemas::strict_json::from_slice(&bytes)
        .map_err(|e| format!("not a proof ({e})"))?;
    let (what, checkpoint) = if value.get("from_size").is_some() {
        let p: ConsistencyProof = airlock_schemas::strict_json::from_slice(&bytes)
            .map_err(|e| format!("not a consistency proof ({e})"))?;
        let signed = merkle::verify_consistency_proof(&p, trust, KeyRole::Publisher)?;
        if let Some(o) = old
            && (o.size != p.from_size
                || merkle::to_hex(&o.root) != p.from_root
                || o.origin != signed.checkpoint.origin)
        {
            return Err(format!(
                "the kept checkpoint ({} entries of {}) is not the proof's older tree ({} entries of {})",
                o.size, o.origin, p.from_size, signed.checkpoint.origin
            ));
        }
        (
            format!(
                "the first {} entries (root {}) are a prefix of the {} of the signed checkpoint{}",
                p.from_size,
                p.from_root,
                p.tree_size,
                if old.is_some() {
                    ", as the kept checkpoint says"
                } else {
                    ""
                }
            ),
            signed.checkpoint,
        )
    } else {
        let p: InclusionProof = airlock_schemas::strict_json::from_slice(&bytes)
            .map_err(|e| format!("not an inclusion proof ({e})"))?;
        let (entry, signed) = merkle::verify_entry_proof(&p, trust, KeyRole::Publisher)?;
        (
            format!(
                "entry {} ({} {}) is in the {} entries of the signed checkpoint",
                entry.seq,
                entry.action,
                printable(&entry.outcome),
                p.tree_size
            ),
            signed.checkpoint,
        )
    };
    if let Some(chain) = chain
        && let Some(why) = chain.missing_checkpoint(&checkpoint, "the proof's checkpoint")
    {
        return Err(why);
    }
    Ok(format!("{what} ({})", printable(&checkpoint.origin)))
}

/// The log's checkpoint note, checked to be of exactly this log's entries (unsigned
/// checks: whoever gets the proof checks the signature).
fn checkpointed(log: &Path) -> anyhow::Result<(audit::Chain, String, u64)> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    let chain = audit::Chain::parse(&text)
        .map_err(|why| anyhow::anyhow!("{}: {why}", log.display()))
        .context(exit::VerificationFailed(log.display().to_string()))?;
    let note = audit::read_checkpoint(log)?.ok_or_else(|| {
        exit::BadInputError(format!(
            "{} has no checkpoint ({}): it was written before checkpoints; its next append signs one",
            log.display(),
            audit::checkpoint_path(log).display()
        ))
    })?;
    let c = airlock_trust::merkle::Checkpoint::parse_note(&note)
        .map_err(|why| anyhow::anyhow!("{}: {why}", audit::checkpoint_path(log).display()))?;
    if let Some(why) = chain.missing_checkpoint(&c, "its checkpoint") {
        eprintln!("  FAIL {}: {}", log.display(), printable(&why));
        return Err(exit::VerificationFailed(log.display().to_string()).into());
    }
    Ok((chain, note, c.size))
}

/// `airlock audit prove`: entry `seq`'s inclusion proof, as JSON on stdout.
pub fn prove(log: &Path, seq: u64) -> anyhow::Result<()> {
    let (chain, note, size) = checkpointed(log)?;
    let proof = chain.prove(seq, &note, size).ok_or_else(|| {
        exit::BadInputError(format!(
            "--entry {seq}: the checkpoint of {} covers entries 1 to {size}",
            log.display()
        ))
    })?;
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(())
}

/// `airlock audit consistency`: the proof from the first `from` entries, as JSON.
pub fn consistency(log: &Path, from: u64) -> anyhow::Result<()> {
    let (chain, note, size) = checkpointed(log)?;
    let proof = chain.consistency(from, &note, size).ok_or_else(|| {
        exit::BadInputError(format!(
            "--from {from}: the checkpoint of {} covers {size} entries",
            log.display()
        ))
    })?;
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(())
}

/// Verify one log; returns its chain.
fn verify_one_log(
    log: &Path,
    trust: &airlock_trust::Trust,
    registry: Option<&str>,
    aws: &AwsArgs,
) -> anyhow::Result<audit::Chain> {
    match audit::verify_log(log, trust) {
        Ok(v) => {
            println!(
                "verified: {} entries, head (entry {}) signed by publisher key \"{}\" ({})",
                v.chain.len(),
                v.chain.len(),
                printable(&v.head_key_name),
                v.head_keyid
            );
            match &v.checkpoint {
                Some(c) => println!(
                    "  checkpoint: {} entries, Merkle root {} ({}), signed by {}",
                    c.checkpoint.size,
                    airlock_trust::merkle::to_hex(&c.checkpoint.root),
                    printable(&c.checkpoint.origin),
                    c.keyid
                ),
                None => println!(
                    "  checkpoint: none (the log was written before checkpoints; its next append signs one)"
                ),
            }
            if let Some(uri) = registry {
                witness(log, &v.chain, uri, trust, aws)?;
            }
            Ok(v.chain)
        }
        Err(e @ audit::AuditError::Invalid { .. }) => {
            eprintln!("  FAIL {}", printable(&e.to_string()));
            Err(exit::VerificationFailed(log.display().to_string()).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Print the log's entries, unverified: a table, or one JSON object per line.
pub fn show(log: &Path, trust: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let (entries, _) = audit::parse_chain(&text)
        .map_err(|p| exit::BadInputError(printable(&format!("{}: {p}", log.display()))))?;
    let trust = trust.map(airlock_trust::Trust::load).transpose()?;
    let shown = shown(&entries, trust.as_ref());
    let mut out = String::new();
    if json {
        for s in &shown {
            out.push_str(&json_line(s)?);
            out.push('\n');
        }
    } else {
        out = table(&shown);
    }
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .context("cannot write to standard output")?;
    Ok(())
}

/// An entry as `audit show` prints it.
struct Shown<'a> {
    entry: &'a AuditEntry,
    release: Option<ReleaseOf>,
    /// Approving officers: key names from the trust policy, else short key ids.
    approvers: Vec<String>,
    /// The publisher key that wrote the entry, named the same way.
    publisher: String,
}

/// A key's name in `trust`, else its id's first 12 characters (the whole id when it is
/// not in the policy but a policy was given, so it can be looked up).
fn key_label(id: &str, trust: Option<&airlock_trust::Trust>) -> String {
    match trust {
        Some(t) => t
            .name_of(id)
            .map_or_else(|| format!("{id} (not in the trust policy)"), str::to_owned),
        None => id.chars().take(12).collect(),
    }
}

fn shown<'a>(entries: &'a [AuditEntry], trust: Option<&airlock_trust::Trust>) -> Vec<Shown<'a>> {
    entries
        .iter()
        .zip(audit::releases_of(entries))
        .map(|(entry, release)| Shown {
            entry,
            release,
            approvers: entry
                .approvals
                .iter()
                .map(|id| key_label(id, trust))
                .collect(),
            publisher: key_label(&entry.actor, trust),
        })
        .collect()
}

/// The columns of the table, outcome last (never cut: it is what an auditor reads).
const COLUMNS: [&str; 10] = [
    "seq",
    "time",
    "action",
    "model",
    "version",
    "approvers",
    "publisher",
    "region",
    "destination",
    "outcome",
];

/// Aligned columns sized to their content, every string escaped for the terminal.
fn table(shown: &[Shown<'_>]) -> String {
    let rows: Vec<[String; 10]> = shown
        .iter()
        .map(|s| {
            let e = s.entry;
            let (model, version) = s.release.as_ref().map_or(("-".into(), "-".into()), |r| {
                let mark = if r.source == audit::ReleaseSource::Recorded {
                    ""
                } else {
                    "*"
                };
                (format!("{}{mark}", r.model), format!("{}{mark}", r.version))
            });
            let or_dash = |v: String| if v.is_empty() { "-".to_owned() } else { v };
            [
                e.seq.to_string(),
                e.time.clone(),
                e.action.to_string(),
                model,
                version,
                or_dash(s.approvers.join(", ")),
                s.publisher.clone(),
                e.verified_region.clone().unwrap_or_else(|| "-".into()),
                e.destination.clone(),
                e.outcome.clone(),
            ]
            .map(|c| printable(&c))
        })
        .collect();
    let mut widths = COLUMNS.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 0 {
                l.push_str(&format!("{c:>w$}"));
            } else if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}"));
            }
            if i + 1 < cells.len() {
                l.push_str("  ");
            }
        }
        l.push('\n');
        l
    };
    let mut out = line(&COLUMNS.map(str::to_owned));
    for r in &rows {
        out.push_str(&line(r));
    }
    if shown.iter().any(|s| {
        s.release
            .as_ref()
            .is_some_and(|r| r.source != audit::ReleaseSource::Recorded)
    }) {
        out.push_str(
            "* not recorded in the entry (written before entries named the release): derived from its destination or from another entry with the same model digest (--json says which)\n",
        );
    }
    out
}

/// One entry as a JSON object: the entry's fields as recorded, with `model` and `version`
/// filled in where derived (`release_source` says from where), `approver_names` and
/// `publisher_name`. Characters a terminal could act on are escaped even where JSON
/// allows them raw.
fn json_line(s: &Shown<'_>) -> anyhow::Result<String> {
    let mut v = serde_json::to_value(s.entry)?;
    let obj = v
        .as_object_mut()
        .context("an audit entry serializes to an object")?;
    if let Some(r) = &s.release {
        obj.insert("model".into(), r.model.clone().into());
        obj.insert("version".into(), r.version.clone().into());
        obj.insert("release_source".into(), r.source.to_string().into());
    } else {
        obj.insert("model".into(), serde_json::Value::Null);
        obj.insert("version".into(), serde_json::Value::Null);
        obj.insert("release_source".into(), serde_json::Value::Null);
    }
    obj.insert("approver_names".into(), s.approvers.clone().into());
    obj.insert("publisher_name".into(), s.publisher.clone().into());
    let text = serde_json::to_string(&v)?;
    // serde_json escapes C0 controls; DEL, C1 and the formatting characters it leaves raw.
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if printable(c.encode_utf8(&mut [0; 4])).len() > c.len_utf8() {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// `airlock audit verify --registry`: the registry's witnesses against a verified log.
fn witness(
    log: &Path,
    chain: &audit::Chain,
    uri: &str,
    trust: &airlock_trust::Trust,
    aws: &AwsArgs,
) -> anyhow::Result<()> {
    use airlock_publisher::witness;
    let registry = airlock_publisher::registry::open(uri, || {
        airlock_publisher::aws::Aws::load(aws.options())
    })?;
    let name = witness::copy_name(log);
    match witness::check_log(chain, &name, registry.as_ref(), trust) {
        Ok(r) => {
            println!(
                "verified against {uri}: its copy of the signed head (entry {}) and {} signed checkpoint(s) of its history are points of the log; {} release(s) recorded in it{}",
                r.head_seq,
                r.checkpoints,
                r.releases.len(),
                if r.other_logs > 0 {
                    format!(
                        " ({} recorded in other audit logs, not checked)",
                        r.other_logs
                    )
                } else {
                    String::new()
                }
            );
            for (n, v, seq) in &r.releases {
                println!("  {n} {v}: entry {seq}");
            }
            Ok(())
        }
        Err(witness::WitnessError::Refused(why)) => {
            eprintln!("  FAIL {}: {}", log.display(), printable(&why));
            Err(exit::VerificationFailed(log.display().to_string()).into())
        }
        Err(witness::WitnessError::Registry(e)) => Err(e.into()),
    }
}
