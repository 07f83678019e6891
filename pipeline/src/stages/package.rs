//! The package stage: strip, leak-check and sign the run into a bundle under releases/.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use airlock_trust::shards::{sha256_hex, stream_digest};
use airlock_trust::{MODEL_FILE, STATEMENT_FILE};
use anyhow::Context as _;
use serde_json::json;

use crate::Stage;
use crate::pipeline::Pipeline;
use crate::runner::Runner;
use crate::state::{StageRecord, digest_json};
use crate::workdir::move_aside;

impl Pipeline<'_> {
    /// Package the trained run, unless a bundle with the same inputs is recorded and its
    /// statement unchanged. Adds the released digests to the summary.
    pub fn package(&self, r: &mut Runner<'_>, train: &StageRecord) -> anyhow::Result<StageRecord> {
        let builder = airlock_trust::keys::Signer::load(&self.builder_key)?;
        let inputs = json!({
            "airlock": env!("CARGO_PKG_VERSION"),
            "run_sha256": train.output_sha256,
            "builder": builder.key_id(),
        });
        drop(builder);
        let digest = digest_json(&inputs);
        r.begin(Stage::Package);
        let check = |rec: &StageRecord| {
            std::fs::read(Path::new(&rec.output).join(STATEMENT_FILE))
                .is_ok_and(|b| sha256_hex(&b) == rec.output_sha256)
        };
        let rec = match r.reusable(Stage::Package, &digest, check) {
            Some(rec) => {
                r.skipped(Stage::Package, &rec);
                rec
            }
            None => {
                r.needs_earlier(Stage::Package)?;
                self.package_run(r, train, &digest, inputs)?
            }
        };
        if let Some(m) = rec.details.get("model_sha256") {
            r.digests.push(format!("{MODEL_FILE} sha256 {m}"));
        }
        r.digests.push(format!(
            "{STATEMENT_FILE} sha256 {} (what the officers sign)",
            rec.output_sha256
        ));
        Ok(rec)
    }

    /// Run the packager into releases/<name>-<digest>, and record it.
    fn package_run(
        &self,
        r: &mut Runner<'_>,
        train: &StageRecord,
        digest: &str,
        inputs: serde_json::Value,
    ) -> anyhow::Result<StageRecord> {
        let bundle = self
            .under("releases")
            .join(format!("{}-{}", self.name, &digest[..12]));
        tracing::info!("== package (strip, leak checks L0-L4, sign)");
        let t = Instant::now();
        move_aside(&bundle)?;
        let pkg = airlock_packager::package(&airlock_packager::PackageOptions {
            run_dir: PathBuf::from(&train.output),
            key: self.builder_key.clone(),
            out: bundle.clone(),
            threads: self.opts.threads,
            progress: Some(|secs, what| tracing::info!("  [{secs:6.1} s] {what}")),
        })?;
        for l in &pkg.report.layers {
            tracing::info!("  {} {:<22} pass", l.id, l.name);
        }
        let statement = std::fs::read(bundle.join(STATEMENT_FILE))
            .with_context(|| format!("cannot read {}", bundle.display()))?;
        let model_sha = stream_digest(&bundle.join(MODEL_FILE))
            .with_context(|| format!("cannot read {}", bundle.display()))?;
        r.ran(Stage::Package, t, bundle.display().to_string());
        r.record(
            Stage::Package,
            digest,
            inputs,
            bundle.display().to_string(),
            sha256_hex(&statement),
            BTreeMap::from([("model_sha256".into(), model_sha)]),
        )
    }
}
