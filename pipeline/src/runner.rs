//! The run's bookkeeping: which stages ran or were skipped, what left the premises, the
//! audit entries written, and the summary printed at the end.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::interrupt::Current;
use crate::state::{StageRecord, State, now};
use crate::{RunError, RunOptions, Stage};

/// One line of the summary.
#[derive(Debug)]
pub(crate) struct Line {
    pub stage: Stage,
    pub what: String,
    pub secs: Option<f64>,
    pub detail: String,
}

/// A run in progress.
#[derive(Debug)]
pub(crate) struct Runner<'a> {
    opts: &'a RunOptions,
    state: State,
    pub lines: Vec<Line>,
    /// Digests of what the run released, shown under the stage lines.
    pub digests: Vec<String>,
    /// What left the premises on this run, and where to.
    pub crossed: Vec<String>,
    /// (entries, last seq) of each publish call's audit entries.
    pub audit: Vec<(usize, u64)>,
    current: Current,
    started: Instant,
}

impl<'a> Runner<'a> {
    /// A run starting now.
    pub fn new(opts: &'a RunOptions, state: State, current: Current) -> Self {
        Self {
            opts,
            state,
            lines: Vec::new(),
            digests: Vec::new(),
            crossed: Vec::new(),
            audit: Vec::new(),
            current,
            started: Instant::now(),
        }
    }
}

impl Runner<'_> {
    /// `stage` starts (for the interrupt message).
    pub fn begin(&self, stage: Stage) {
        self.current.set(stage.name());
    }

    /// The record of a completed `stage` with these inputs whose output still checks, unless
    /// `--from` asks to redo it.
    pub fn reusable(
        &self,
        stage: Stage,
        digest: &str,
        valid: impl Fn(&StageRecord) -> bool,
    ) -> Option<StageRecord> {
        if self.opts.from.is_some_and(|f| stage >= f) {
            return None;
        }
        self.state.get(stage, digest).filter(valid)
    }

    /// `--from` past `stage`, which has no reusable output: nothing to start from.
    pub fn needs_earlier(&self, stage: Stage) -> anyhow::Result<()> {
        if let Some(f) = self.opts.from
            && f > stage
        {
            anyhow::bail!(RunError::BadInput(format!(
                "--from {}: the {} stage has no completed output for these inputs; run without --from",
                f.name(),
                stage.name()
            )));
        }
        Ok(())
    }

    /// `stage` was skipped: its record stands.
    pub fn skipped(&mut self, stage: Stage, r: &StageRecord) {
        tracing::info!(
            "== {}: skipped, inputs unchanged ({}) → {}",
            stage.name(),
            &r.inputs_sha256[..12],
            r.output
        );
        self.lines.push(Line {
            stage,
            what: "skipped".into(),
            secs: None,
            detail: r.output.clone(),
        });
    }

    /// `stage` ran since `t`.
    pub fn ran(&mut self, stage: Stage, t: Instant, detail: String) {
        self.lines.push(Line {
            stage,
            what: "ran".into(),
            secs: Some(t.elapsed().as_secs_f64()),
            detail,
        });
    }

    /// Record `stage` as complete with these inputs and output.
    pub fn record(
        &self,
        stage: Stage,
        digest: &str,
        inputs: serde_json::Value,
        output: String,
        output_sha256: String,
        details: BTreeMap<String, String>,
    ) -> anyhow::Result<StageRecord> {
        let r = StageRecord {
            stage: stage.name().into(),
            inputs_sha256: digest.into(),
            inputs,
            output,
            output_sha256,
            details,
            finished_at: now(),
        };
        self.state.put(stage, &r)?;
        Ok(r)
    }

    /// `stage` has nothing to do in this pipeline.
    pub fn not_configured(&mut self, stage: Stage, why: &str) {
        self.lines.push(Line {
            stage,
            what: "not configured".into(),
            secs: None,
            detail: why.into(),
        });
    }

    /// The end of a run that got through: the summary, what left and the audit entries.
    pub fn finish(&self, title: &str, bundle: &Path, audit_log: &Path) {
        let mut tail = Vec::new();
        if self.crossed.is_empty() {
            tail.push("left the premises on this run: nothing".to_owned());
        } else {
            tail.push("left the premises on this run:".to_owned());
            tail.extend(self.crossed.iter().map(|l| format!("  {l}")));
        }
        let n: usize = self.audit.iter().map(|a| a.0).sum();
        let last = self.audit.iter().map(|a| a.1).max().unwrap_or(0);
        tail.push(if n == 0 {
            format!("audit entries written: none ({})", audit_log.display())
        } else {
            format!(
                "audit entries written: {n} (seq {}..={last}) in {}",
                last + 1 - n as u64,
                audit_log.display()
            )
        });
        self.summary(title, &tail);
        println!("{}", bundle.display());
    }

    /// `--until` reached after `stage`?
    pub fn stop_after(&self, stage: Stage) -> bool {
        self.opts.until == Some(stage)
    }

    /// The summary: one line per stage, the digests, then `tail`.
    pub fn summary(&self, title: &str, tail: &[String]) {
        eprintln!(
            "\n== summary: {title} ({:.1} s)",
            self.started.elapsed().as_secs_f64()
        );
        for l in &self.lines {
            let t = l.secs.map_or_else(String::new, |s| format!(" {s:.1} s"));
            eprintln!(
                "  {:<8} {:<16} {}",
                l.stage.name(),
                format!("{}{t}", l.what),
                l.detail
            );
        }
        for d in &self.digests {
            eprintln!("  {d}");
        }
        for t in tail {
            eprintln!("  {t}");
        }
    }
}
