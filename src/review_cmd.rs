//! `airlock review`: the compliance officer's page for one release.

use std::path::{Path, PathBuf};

use airlock_review::{Previous, ReviewInput, render_html, render_text};
use airlock_schemas::{Envelope, IN_TOTO_PAYLOAD_TYPE, KeyRole, LeakReport, ModelCard, Statement};
use airlock_trust::{
    LEAK_REPORT_FILE, MODEL_CARD_FILE, PROVENANCE_DSSE_FILE, Trust, approvals, dsse,
    verify_bundle_streamed,
};
use anyhow::Context;
use sha2::{Digest, Sha256};

/// Options of `airlock review`.
#[derive(Debug)]
pub struct ReviewOptions {
    pub bundle: PathBuf,
    pub trust: PathBuf,
    pub out: PathBuf,
    pub previous: Option<PathBuf>,
    pub threads: usize,
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> anyhow::Result<T> {
    let p = dir.join(name);
    let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    airlock_schemas::strict_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a valid document", p.display()))
}

/// The provenance predicate; `trusted` keys verify it when given.
fn provenance(
    dir: &Path,
    trusted: Option<&[(String, ed25519_dalek::VerifyingKey)]>,
) -> Option<serde_json::Value> {
    let env: Envelope = read_json(dir, PROVENANCE_DSSE_FILE).ok()?;
    let payload = match trusted {
        Some(keys) => dsse::verify(&env, IN_TOTO_PAYLOAD_TYPE, keys).ok()?.payload,
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

/// Render the page to `opts.out` and return the terminal summary.
pub fn review(opts: &ReviewOptions) -> anyhow::Result<String> {
    let trust = Trust::load(&opts.trust)?;
    if !opts.bundle.is_dir() {
        anyhow::bail!(crate::exit::BadInputError(format!(
            "{} is not a bundle directory",
            opts.bundle.display()
        )));
    }
    // The page reports checks and digests; the model's bytes are not used, so not kept.
    let v = verify_bundle_streamed(&opts.bundle, &trust, opts.threads, false);
    let now = time::OffsetDateTime::now_utc();
    let summary = approvals::evaluate(&trust, &v, now);
    let card: ModelCard = read_json(&opts.bundle, MODEL_CARD_FILE)?;
    let report: LeakReport = read_json(&opts.bundle, LEAK_REPORT_FILE)?;
    let builders = trust.usable_keys(KeyRole::Builder, now, now);
    let prov = provenance(&opts.bundle, Some(&builders));
    let mut files: Vec<(String, String)> = std::fs::read_dir(&opts.bundle)?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                hex::encode(Sha256::digest(&bytes)),
            )
        })
        .collect();
    files.sort();
    let builder = v
        .checks
        .iter()
        .find(|c| c.name == "statement signature" && c.ok)
        .and_then(|_| {
            trust
                .keys
                .iter()
                .find(|k| {
                    k.role == KeyRole::Builder && v.statement.is_some() && {
                        let env: Option<Envelope> =
                            read_json(&opts.bundle, airlock_trust::STATEMENT_DSSE_FILE).ok();
                        env.is_some_and(|e| e.signatures.iter().any(|s| s.keyid == k.key_id))
                    }
                })
                .map(|k| (k.name.clone(), k.key_id.clone()))
        });
    let prev_docs = match &opts.previous {
        Some(p) => Some((
            p.clone(),
            read_json::<ModelCard>(p, MODEL_CARD_FILE)?,
            read_json::<LeakReport>(p, LEAK_REPORT_FILE)?,
            provenance(p, None),
        )),
        None => None,
    };
    let demo = trust
        .policy
        .keys
        .iter()
        .any(|k| k.name.starts_with("demo-"));
    let input = ReviewInput {
        bundle: &opts.bundle,
        card: &card,
        report: &report,
        statement: v.statement.as_ref(),
        provenance: prov.as_ref(),
        files,
        checks: &v.checks,
        builder,
        approvals: &summary,
        previous: prev_docs
            .as_ref()
            .map(|(bundle, card, report, provenance)| Previous {
                bundle,
                card,
                report,
                provenance: provenance.as_ref(),
            }),
        demo,
        trust: Some(&opts.trust),
    };
    let html = render_html(&input);
    let dir = match opts.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, html.as_bytes())?;
    tmp.persist(&opts.out)
        .with_context(|| format!("cannot write {}", opts.out.display()))?;
    Ok(render_text(&input))
}
