//! `airlock package`: run directory → signed release bundle, or a refusal with a report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use airlock_model::{
    CHECKPOINT_FILE, Description, Folded, Params, RECORD_FILE, Role, Run, TensorDecl, file_name,
    read_run,
};
use airlock_safetensors::{self as st, Dtype, SafetensorsFile};
use airlock_schemas::{
    Architecture, BUNDLE_FORMAT_VERSION, CardConfiguration, CardDataFile, CardMetrics, CardSource,
    CnnArchitecture, ConvBlock, Finding, IN_TOTO_PAYLOAD_TYPE, InputFeature, LeakLayer, LeakReport,
    ModelCard, ModelOutput, ModelSpec, PrivacyGuarantee, ReleasePredicate, ReportInput,
    SLSA_PROVENANCE_TYPE, STATEMENT_TYPE, Statement, Subject, TaskSpec, TensorSpec,
    TrainingSummary, Verdict,
};
use airlock_trust::bundle::{
    APPROVALS_DIR, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, MODEL_METADATA,
    PROVENANCE_DSSE_FILE, SHARD_SIZE, STATEMENT_DSSE_FILE, STATEMENT_FILE,
};
use airlock_trust::keys::{KeyError, Signer};
use airlock_trust::shards::{sha256_hex, whole_and_shard_digests};
use airlock_trust::{dsse, pretty};
use serde_json::json;

use crate::evaluate::{FOLD_CHECK_ROWS, FOLD_TOLERANCE, Nets, RowOutputs};
use airlock_leak::membership::loss_threshold_attack;
use airlock_leak::outgoing::{IdentifierIndex, OutgoingFinding};
use airlock_leak::pii::PiiScanner;
use airlock_leak::pixels::{PixelIndex, PixelParams, PixelSource, finding_kind};
use airlock_leak::records::{MatchKind, RecordIndex, RecordMatch, RecordParams, RecordSource};

/// At most this many findings are listed per layer (counts hold the totals).
const MAX_FINDINGS: usize = 100;

/// Why packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The builder key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The run directory is incomplete or inconsistent.
    #[error("cannot package run {}: {what}", dir.display())]
    Run {
        /// The run directory.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// File-system failure.
    #[error(transparent)]
    Io(#[from] airlock_schemas::IoError),
    /// The output already exists.
    #[error("bundle directory {} already exists and is not empty", path.display())]
    OutputExists {
        /// The directory.
        path: PathBuf,
    },
    /// A real (non-DEMO) release from a run with no recorded git commit, or one trained
    /// from a work tree with uncommitted changes, and the pipeline does not allow it.
    #[error(
        "release refused: run {} was trained {why}, so nobody can tell which code and pipeline \
         made this model; commit your changes and train again, or, to release it anyway, set \
         `[release] allow_uncommitted = true` in the pipeline and train again (the run keeps \
         the pipeline it was trained from; the model card records the choice)",
        dir.display()
    )]
    Unprovenanced {
        /// The run directory.
        dir: PathBuf,
        /// `outside a git repository (no commit recorded)` or `from a work tree with
        /// uncommitted changes`.
        why: &'static str,
    },
    /// A leak check failed or could not run: no bundle was written.
    #[error("release refused: leak check {} failed; report written to {}", layers.join(", "), report.display())]
    LeakRefused {
        /// `L0 structure`, ...
        layers: Vec<String>,
        /// Where the report was written.
        report: PathBuf,
    },
}

impl PackageError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        use airlock_schemas::ErrorKind;
        match self {
            Self::Key(e) => e.kind(),
            Self::Run { .. } | Self::OutputExists { .. } | Self::Unprovenanced { .. } => {
                ErrorKind::BadInput
            }
            Self::Io(e) => e.kind(),
            Self::LeakRefused { .. } => ErrorKind::LeakRefused,
        }
    }
}

impl From<airlock_model::RunError> for PackageError {
    fn from(e: airlock_model::RunError) -> Self {
        Self::Run {
            dir: e.dir,
            what: e.what,
        }
    }
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> PackageError + 'a {
    move |source| PackageError::Io(airlock_schemas::IoError::new(action, path, source))
}

/// Options of `airlock package`.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// Run directory from `airlock train`.
    pub run_dir: PathBuf,
    /// Builder's private key.
    pub key: PathBuf,
    /// Bundle directory to create.
    pub out: PathBuf,
    /// Threads for scanning and hashing.
    pub threads: usize,
    /// Told each step as it starts (with the seconds since packaging began), for long runs.
    pub progress: Option<fn(f64, &str)>,
}

/// A written bundle.
#[derive(Debug, Clone)]
pub struct PackageSummary {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// SHA-256 of `model.safetensors`.
    pub model_sha256: String,
    /// The leak report.
    pub report: LeakReport,
}

/// The description of the recorded model: the run's declaration, not its files, says
/// what may be in the checkpoint and what ships.
fn describe(run: &Run, dir: &Path) -> Result<Description, PackageError> {
    let h = &run.record.hyperparameters;
    Description::new(&h.model, &h.task, h.features.len()).map_err(|what| PackageError::Run {
        dir: dir.to_owned(),
        what: format!("{RECORD_FILE}: {what}"),
    })
}

/// `(name, shape)` of declared tensors.
fn shapes(decls: &[TensorDecl]) -> Vec<(String, Vec<usize>)> {
    decls
        .iter()
        .map(|d| (d.name.clone(), d.shape.clone()))
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Collects one layer's findings and counts.
pub(crate) struct LayerBuilder {
    layer: LeakLayer,
    total: u64,
}

impl LayerBuilder {
    pub(crate) fn new(id: &str, name: &str) -> Self {
        Self {
            layer: LeakLayer {
                id: id.into(),
                name: name.into(),
                verdict: Verdict::Pass,
                parameters: BTreeMap::new(),
                counts: BTreeMap::new(),
                findings: Vec::new(),
                error: None,
            },
            total: 0,
        }
    }
    pub(crate) fn param(&mut self, k: &str, v: serde_json::Value) {
        self.layer.parameters.insert(k.into(), v);
    }
    pub(crate) fn count(&mut self, k: &str, v: impl Into<serde_json::Value>) {
        self.layer.counts.insert(k.into(), v.into());
    }
    pub(crate) fn find(
        &mut self,
        kind: &str,
        location: String,
        record: Option<u64>,
        column: Option<String>,
    ) {
        self.total += 1;
        if self.layer.findings.len() < MAX_FINDINGS {
            self.layer.findings.push(Finding {
                kind: kind.into(),
                location,
                record,
                column,
            });
        }
    }
    pub(crate) fn error(&mut self, e: String) {
        self.layer.error.get_or_insert(e);
    }
    pub(crate) fn finish(mut self) -> LeakLayer {
        self.layer
            .counts
            .insert("findings".into(), self.total.into());
        self.layer.verdict = if self.layer.error.is_some() {
            Verdict::Error
        } else if self.total > 0 {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        self.layer
    }
}

/// The training data as the leak checks need it.
pub(crate) struct Data {
    /// Model inputs before normalization: feature values, or pixels scaled to [0, 1].
    pub(crate) features: Vec<f32>,
    /// What the trained model took: standardized features, or normalized pixels.
    pub(crate) standardized: Vec<f32>,
    /// Labels as the task reads them.
    pub(crate) labels: Vec<f32>,
    /// Feature columns (empty for images).
    pub(crate) numeric_columns: Vec<String>,
    pub(crate) text_columns: Vec<String>,
    pub(crate) text_values: Vec<String>,
    pub(crate) rows: usize,
    /// The training images, for L2's pixel runs.
    pub(crate) images: Option<airlock_model::Images>,
    /// Per-channel (mean, std) of the input normalization, for images.
    pub(crate) normalization: (Vec<f32>, Vec<f32>),
}

fn load_data(run: &Run) -> Result<(Data, Vec<ReportInput>), String> {
    let path = airlock_model::check_recorded_files(&run.record.dataset.files)?;
    let inputs = run
        .record
        .dataset
        .files
        .iter()
        .map(|f| ReportInput {
            role: "training-data".into(),
            name: file_name(Path::new(&f.path)),
            sha256: f.sha256.clone(),
        })
        .collect();
    let data = airlock_model::load_dataset(&run.spec, &path, true).map_err(|e| e.to_string())?;
    airlock_model::check_same_files(&run.record.dataset.files, &data.files)?;
    let rows = data.rows();
    let standardized = match &data.images {
        Some(im) => {
            let plane = im.shape.height * im.shape.width;
            run.pre.apply_channels(&im.pixels, plane, 0..rows)
        }
        None => run.pre.apply(&data.table.features, 0..rows),
    };
    Ok((
        Data {
            features: data.raw_inputs(0..rows),
            standardized,
            labels: data.table.labels.clone().unwrap_or_default(),
            numeric_columns: run.record.hyperparameters.features.clone(),
            text_columns: run.spec.data.identifiers.clone(),
            text_values: data.identifier_values,
            rows,
            images: data.images,
            normalization: (
                run.pre.features.iter().map(|f| f.mean as f32).collect(),
                run.pre.features.iter().map(|f| f.std as f32).collect(),
            ),
        },
        inputs,
    ))
}

/// Package a run into a bundle at `opts.out`.
pub fn package(opts: &PackageOptions) -> Result<PackageSummary, PackageError> {
    let signer = Signer::load(&opts.key)?;
    refuse_existing_output(&opts.out)?;
    let progress = Progress::start(opts.progress);
    progress.step("reading the run");
    // The checkpoint is hashed (the report's first input) on a second thread as it is read.
    let run = read_run(&opts.run_dir, true)?;
    check_provenance(&run, &opts.run_dir)?;
    let description = describe(&run, &opts.run_dir)?;
    check_and_write(opts, &run, &description, &signer, &progress)
}

/// Everything after reading the run: the leak layers, the report, the signatures and the
/// bundle.
fn check_and_write(
    opts: &PackageOptions,
    run: &Run,
    description: &Description,
    signer: &Signer,
    progress: &Progress,
) -> Result<PackageSummary, PackageError> {
    let trained_decls = description.trained();
    let released_decls = description.released();
    let threads = opts.threads.max(1);

    // L0 on the input: strict parse, and nothing but parameters and their optimizer state.
    progress.step(&format!(
        "L0 structure: {:.1} MiB checkpoint, {} declared tensors ({} {})",
        run.checkpoint.len() as f64 / f64::from(1 << 20),
        trained_decls.len(),
        run.record.hyperparameters.task.name(),
        run.record.hyperparameters.model.kind(),
    ));
    let mut l0 = l0_layer(&trained_decls, &released_decls);
    let ckpt = parse_checkpoint(&run.checkpoint, &mut l0);
    let params = ckpt
        .as_ref()
        .and_then(|ckpt| check_checkpoint(ckpt, &trained_decls, &mut l0));
    // Strip, fold, write canonically.
    let (folded, model_bytes) = strip_and_fold(description, params, run, &mut l0);
    let model_bytes = std::sync::Arc::new(model_bytes);
    // The model file goes to the bundle's staging directory on its own thread while the
    // checks run (a gigabyte is seconds of disk); a refusal or an error removes it.
    let staged = StagedModel::start(&opts.out, &model_bytes);
    // L0 on the output: rebuilt from the declaration, so it must hold exactly that.
    let model = check_rebuilt(&model_bytes, &shapes(&released_decls), &mut l0);
    // The networks take the fold's tensors over (the model's bytes are written already).
    let nets = folded.map(|f| Nets::new(description, f));

    let drafts = Drafts::new(run, description, &model_bytes, threads, signer);

    // Training data for L2 and L3 (fail closed if it is gone or changed).
    let (data, data_inputs) = match load_data(run) {
        Ok((d, inputs)) => (Ok(d), inputs),
        Err(e) => (Err(e), Vec::new()),
    };
    let released = match (&nets, &data) {
        (Some(n), Ok(d)) => {
            progress
                .step("L0 fold check: the released model against the trained one, through burn");
            Some(check_fold(n, run, d, description.input_len(), &mut l0))
        }
        _ => None,
    };
    let files = [
        (ckpt.as_ref(), CHECKPOINT_FILE),
        (model.as_ref(), MODEL_FILE),
    ];

    progress.step("L1 pii-patterns: every string, and printable runs in every tensor");
    let pii = PiiScanner::new(&run.spec.leak.mrn_patterns);
    let same = same_in_both(&files);
    let mut l1 = l1_on_files(&files, &same, &pii, threads);

    progress.step("L2 exact-records: training rows in every byte of the checkpoint and the model");
    let evaluated = nets.as_ref().zip(released.as_ref());
    let (mut l2, mut l3) = l2_l3_on_data(run, &data, &files, &same, evaluated, threads, progress);

    // L1 and L2 over every signed document, with the identifiers in normalized forms too.
    progress.step("L1, L2 on the signed documents: statement, provenance, model card");
    let doc_index = scan_documents(&data, &drafts, &mut l1, &mut l2, pii);

    let replay = crate::reproduce::l4_reproduce(run, ckpt.as_ref(), &|m| progress.step(m));
    l3_rmia(&mut l3, run, &replay, &data, nets.as_ref(), progress);
    let layers = vec![
        l0.finish(),
        l1.finish(),
        l2.finish(),
        l3.finish(),
        replay.layer.finish(),
    ];
    let mut inputs = run_inputs(run, run.checkpoint_sha256.clone());
    inputs.extend(data_inputs);
    let model_digest = (!model_bytes.is_empty()).then_some(drafts.model_sha.as_str());
    let mut report = assemble_report(layers, inputs, model_digest, &drafts.card_bytes);
    let mut report_bytes = pretty(&report);

    // Sign (in memory): the exact bytes that would be written.
    let signed = sign(
        run,
        &drafts,
        &report_bytes,
        report.verdict,
        replay.privacy.as_ref(),
        signer,
    );
    if report.verdict == Verdict::Pass
        && last_gate(&mut report, &drafts, &report_bytes, &signed, &doc_index)
    {
        report_bytes = pretty(&report);
    }
    if report.verdict != Verdict::Pass {
        return Err(refuse(&opts.out, &report, &report_bytes));
    }

    let model_sha256 = drafts.model_sha.clone();
    progress.step("signing and writing the bundle");
    let staging = staged.finish()?;
    let files: Vec<(&str, Vec<u8>)> = vec![
        (MODEL_CARD_FILE, drafts.card_bytes),
        (LEAK_REPORT_FILE, report_bytes),
        (STATEMENT_FILE, signed.statement_bytes),
        (STATEMENT_DSSE_FILE, signed.statement_env),
        (PROVENANCE_DSSE_FILE, signed.provenance_env),
    ];
    write_run_pointer(opts, run)?;
    write_bundle(&opts.out, staging, &files)?;
    Ok(PackageSummary {
        bundle: opts.out.clone(),
        model_sha256,
        report,
    })
}

/// Whether the run is a DEMO: its pipeline has no `[signing]` (local demo keys, demo
/// approvals, local registry only), as `airlock run` tells one.
fn is_demo(run: &Run) -> bool {
    run.spec.signing.is_none()
}

/// A real release needs a recorded, clean git commit, unless its pipeline says
/// `[release] allow_uncommitted = true`; a DEMO does not.
fn check_provenance(run: &Run, dir: &Path) -> Result<(), PackageError> {
    if is_demo(run) || run.spec.release.allow_uncommitted {
        return Ok(());
    }
    let why = match (&run.record.git_commit, run.record.git_dirty) {
        (None, _) => "outside a git repository (no commit recorded)",
        (Some(_), Some(false)) => return Ok(()),
        (Some(_), _) => "from a work tree with uncommitted changes",
    };
    Err(PackageError::Unprovenanced {
        dir: dir.to_owned(),
        why,
    })
}

/// Refuses an output that is a file or a directory with something in it.
fn refuse_existing_output(out: &Path) -> Result<(), PackageError> {
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) || out.is_file() {
        return Err(PackageError::OutputExists {
            path: out.to_owned(),
        });
    }
    Ok(())
}

/// Tells [`PackageOptions::progress`] each step, with the seconds since packaging began.
struct Progress {
    started: std::time::Instant,
    report: Option<fn(f64, &str)>,
}

impl Progress {
    fn start(report: Option<fn(f64, &str)>) -> Self {
        Self {
            started: std::time::Instant::now(),
            report,
        }
    }
    fn step(&self, what: &str) {
        if let Some(p) = self.report {
            p(self.started.elapsed().as_secs_f64(), what);
        }
    }
}

/// The report's inputs read from the run directory itself (the checkpoint's digest
/// computed beforehand).
fn run_inputs(run: &Run, checkpoint_sha256: String) -> Vec<ReportInput> {
    vec![
        ReportInput {
            role: "checkpoint".into(),
            name: CHECKPOINT_FILE.into(),
            sha256: checkpoint_sha256,
        },
        ReportInput {
            role: "training-record".into(),
            name: RECORD_FILE.into(),
            sha256: sha256_hex(&run.record_bytes),
        },
    ]
}

/// L0, with its parameters: the declared tensors (and which of them are aggregate
/// statistics that ship) and the allowed metadata.
pub(crate) fn l0_layer(trained: &[TensorDecl], released: &[TensorDecl]) -> LayerBuilder {
    let mut l0 = LayerBuilder::new("L0", "structure");
    l0.param(
        "declared_tensors",
        json!(trained.iter().map(|d| &d.name).collect::<Vec<_>>()),
    );
    let aggregates: Vec<&String> = released
        .iter()
        .filter(|d| d.role == Role::Aggregate)
        .map(|d| &d.name)
        .collect();
    if !aggregates.is_empty() {
        l0.param("released_aggregate_tensors", json!(aggregates));
    }
    let dropped: Vec<&String> = trained
        .iter()
        .filter(|d| d.role == Role::Aggregate)
        .map(|d| &d.name)
        .collect();
    if !dropped.is_empty() {
        l0.param("folded_aggregate_tensors", json!(dropped));
    }
    l0.param(
        "allowed_metadata",
        json!(MODEL_METADATA.iter().map(|m| m.0).collect::<Vec<_>>()),
    );
    l0
}

/// The checkpoint, strictly parsed; a failure is L0's error.
fn parse_checkpoint<'a>(bytes: &'a [u8], l0: &mut LayerBuilder) -> Option<SafetensorsFile<'a>> {
    match st::parse(bytes) {
        Ok(f) => Some(f),
        Err(e) => {
            l0.error(format!("{CHECKPOINT_FILE}: {e}"));
            None
        }
    }
}

/// Folds what can be folded exactly (see [`Description::fold`]) and writes the released
/// tensors canonically: the fold (the trained tensors moved, not copied) and the bytes of
/// `model.safetensors`
/// (empty when it could not be written).
fn strip_and_fold(
    description: &Description,
    params: Option<Params>,
    run: &Run,
    l0: &mut LayerBuilder,
) -> (Option<Folded>, Vec<u8>) {
    let Some(p) = params else {
        return (None, Vec::new());
    };
    match description.fold_owned(p, &run.pre) {
        Ok(mut f) => {
            // Units no output depends on ship as zeros (the fold check then confirms that
            // no output changed).
            let dead: usize = description
                .zero_dead_units(&mut f)
                .iter()
                .map(|(_, n)| n)
                .sum();
            l0.count("dead_units_zeroed", dead as u64);
            let meta: BTreeMap<String, String> = MODEL_METADATA
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let model_bytes = match st::write_canonical_refs(&f.released.to_tensor_refs(), &meta) {
                Ok(b) => b,
                Err(e) => {
                    l0.error(format!("writing {MODEL_FILE}: {e}"));
                    Vec::new()
                }
            };
            (Some(f), model_bytes)
        }
        Err(e) => {
            l0.error(e.to_string());
            (None, Vec::new())
        }
    }
}

/// L0 on the rebuilt model, parsed back; no model at all is L0's error.
fn check_rebuilt<'a>(
    model_bytes: &'a [u8],
    declared: &[(String, Vec<usize>)],
    l0: &mut LayerBuilder,
) -> Option<SafetensorsFile<'a>> {
    let model = if model_bytes.is_empty() {
        None
    } else {
        st::parse(model_bytes).ok()
    };
    if let Some(m) = &model {
        check_model(m, declared, l0);
    } else if l0.layer.error.is_none() {
        l0.error(format!("{MODEL_FILE} could not be rebuilt"));
    }
    model
}

/// What will be signed, drafted before any signature so that L1 and L2 scan it: the model
/// card, the statement (its leak report digest still a placeholder) and the provenance.
struct Drafts {
    card_bytes: Vec<u8>,
    model_sha: String,
    model_shards: airlock_schemas::ShardDigests,
    draft_statement: Vec<u8>,
    provenance_bytes: Vec<u8>,
}

impl Drafts {
    fn new(
        run: &Run,
        description: &Description,
        model_bytes: &[u8],
        threads: usize,
        signer: &Signer,
    ) -> Self {
        let card_bytes = pretty(&model_card(run, description));
        let (model_sha, model_shards) = whole_and_shard_digests(model_bytes, SHARD_SIZE, threads);
        let draft_statement = pretty(&release_statement(
            run,
            &model_sha,
            &sha256_hex(&card_bytes),
            &"0".repeat(64),
            Verdict::Pass,
            model_shards.clone(),
            run.record.privacy.as_ref(),
        ));
        let provenance_bytes = pretty(&provenance(run, &model_sha, signer.key_id()));
        Self {
            card_bytes,
            model_sha,
            model_shards,
            draft_statement,
            provenance_bytes,
        }
    }
}

/// Fold check: the released model must compute what the trained one did (on up to
/// [`FOLD_CHECK_ROWS`] training rows, batched through burn). The released model's outputs
/// are computed once for these rows and L3's members and non-members together, and
/// returned for L3.
fn check_fold(nets: &Nets, run: &Run, d: &Data, width: usize, l0: &mut LayerBuilder) -> RowOutputs {
    let n = d.rows.min(FOLD_CHECK_ROWS);
    let (train, hold) = l3_rows(run, d);
    let rows: Vec<usize> = (0..n).chain(train).chain(hold).collect();
    let released = nets.released_outputs(&d.features, &rows);
    let diff = match released.gather(0..n) {
        Some(out) => nets.fold_difference(&run.pre, &d.standardized[..n * width], &out),
        None => f32::INFINITY,
    };
    l0.count("fold_max_abs_output_diff", f64::from(diff));
    if diff.is_nan() || diff > FOLD_TOLERANCE {
        l0.error(format!(
            "folding changed the model's outputs by up to {diff}"
        ));
    }
    released
}

/// L3's members (the training split) and non-members (the holdout split), as recorded.
fn l3_rows(run: &Run, d: &Data) -> (Vec<usize>, Vec<usize>) {
    let record = &run.record;
    let s = &record.splits;
    let (train, _, hold) =
        airlock_model::split_rows(d.rows, s.train as usize, s.validation as usize, record.seed);
    (train, hold)
}

/// The parsed checkpoint and model, each with its file name (`None` when it did not parse).
pub(crate) type Files<'f, 'a> = [(Option<&'f SafetensorsFile<'a>>, &'static str); 2];

/// The model's tensors byte-identical to the checkpoint's tensor of the same name, dtype
/// and shape (every layer folding did not change): L1 and L2 scan them once, in the
/// checkpoint, and report the findings at both places. Bytes compared, never assumed.
fn same_in_both(files: &Files<'_, '_>) -> BTreeSet<String> {
    let [(Some(ckpt), _), (Some(model), _)] = files else {
        return BTreeSet::new();
    };
    model
        .tensors
        .iter()
        .filter(|t| {
            ckpt.tensor(&t.name).is_some_and(|c| {
                c.dtype == t.dtype && c.shape == t.shape && ckpt.data(c) == model.data(t)
            })
        })
        .map(|t| t.name.clone())
        .collect()
}

/// L1: PII patterns in every string and in printable runs of every tensor.
/// With the site's MRN patterns when they compile, else the built-in ones and an error.
pub(crate) fn l1_on_files(
    files: &Files<'_, '_>,
    same: &BTreeSet<String>,
    pii: &Result<PiiScanner, String>,
    threads: usize,
) -> LayerBuilder {
    let mut l1 = LayerBuilder::new("L1", "pii-patterns");
    let pii = pii.clone().unwrap_or_else(|e| {
        l1.error(format!("leak.mrn_patterns: {e}"));
        PiiScanner::default()
    });
    l1.param("patterns", json!(pii.describe()));
    l1.param("min_printable_run", json!(8));
    let mut scanned = 0u64;
    let mut scan_strings = |l1: &mut LayerBuilder, text: &[u8], place: &str| {
        scanned += text.len() as u64;
        for hit in pii.find(text) {
            l1.find(
                hit.kind.name(),
                format!("{place} at byte {}", hit.range.start),
                None,
                None,
            );
        }
    };
    let mut tensor_bytes = 0u64;
    let mut l1_hits: HashMap<String, Vec<airlock_leak::pii::PiiHit>> = HashMap::new();
    for (file, name) in files {
        let Some(f) = file else { continue };
        // The header's free text (shapes and offsets are layout the parser checked).
        scan_strings(
            &mut l1,
            &f.header_text_without_layout(),
            &format!("{name} header"),
        );
        for (k, v) in &f.metadata {
            scan_strings(&mut l1, k.as_bytes(), &format!("{name} metadata key"));
            scan_strings(&mut l1, v.as_bytes(), &format!("{name} metadata {k:?}"));
        }
        for t in &f.tensors {
            let bytes = f.data(t);
            tensor_bytes += bytes.len() as u64;
            let earlier = (*name == MODEL_FILE && same.contains(&t.name))
                .then(|| l1_hits.get(&t.name).cloned())
                .flatten();
            let hits = earlier.unwrap_or_else(|| pii.find_in_bytes_parallel(bytes, threads));
            for hit in &hits {
                l1.find(
                    hit.kind.name(),
                    format!("{name} tensor {:?} at byte {}", t.name, hit.range.start),
                    None,
                    None,
                );
            }
            l1_hits.insert(t.name.clone(), hits);
        }
    }
    // The model card is scanned with the other signed documents below.
    l1.count("bytes_scanned", scanned + tensor_bytes);
    l1
}

/// L2 (exact training records in every byte of the checkpoint and the model) and L3
/// (membership inference on the model that would ship); both are errors without the data.
fn l2_l3_on_data(
    run: &Run,
    data: &Result<Data, String>,
    files: &Files<'_, '_>,
    same: &BTreeSet<String>,
    evaluated: Option<(&Nets, &RowOutputs)>,
    threads: usize,
    progress: &Progress,
) -> (LayerBuilder, LayerBuilder) {
    let mut l2 = LayerBuilder::new("L2", "exact-records");
    let params_l2 = RecordParams::default();
    l2.param("min_text_len", json!(params_l2.min_text_len));
    l2.param("numeric_window", json!(params_l2.window));
    l2.param("encodings", json!(["f32", "f16", "bf16"]));
    l2.param("numeric_forms", json!(["raw", "standardized"]));
    let mut l3 = LayerBuilder::new("L3", "membership-inference");
    let leak = &run.spec.leak;
    l3.param("attack", json!("loss-threshold"));
    l3.param("max_auc", json!(leak.max_membership_auc));
    l3.param("max_advantage", json!(leak.max_membership_advantage));
    match data {
        Err(e) => {
            l2.error(e.clone());
            l3.error(e.clone());
        }
        Ok(d) => {
            l2_on_files(&mut l2, d, files, same, params_l2, threads);
            // L3 on the model that would ship.
            progress.step("L3 membership-inference: training members vs holdout rows");
            match evaluated {
                None => l3.error("no model to attack (see L0)".into()),
                Some((nets, released)) => l3_attack(&mut l3, run, d, nets, released),
            }
        }
    }
    (l2, l3)
}

/// L2 over the checkpoint's and the model's headers and tensors.
pub(crate) fn l2_on_files(
    l2: &mut LayerBuilder,
    d: &Data,
    files: &Files<'_, '_>,
    same: &BTreeSet<String>,
    params: RecordParams,
    threads: usize,
) {
    let index = RecordIndex::build(
        &RecordSource {
            text_columns: &d.text_columns,
            text_values: &d.text_values,
            numeric_columns: &d.numeric_columns,
            numeric_raw: if d.numeric_columns.is_empty() {
                &[]
            } else {
                &d.features
            },
            numeric_standardized: if d.numeric_columns.is_empty() {
                &[]
            } else {
                &d.standardized
            },
        },
        params,
    );
    let stats = index.stats();
    l2.count("records", d.rows as u64);
    l2.count("text_patterns", stats.text_patterns as u64);
    l2.count("text_skipped_short", stats.text_skipped_short as u64);
    l2.count("numeric_windows", stats.numeric_windows as u64);
    l2.count(
        "numeric_skipped_low_information",
        stats.numeric_skipped_low_information as u64,
    );
    let mut scanned = 0u64;
    let report = |l2: &mut LayerBuilder, matches: &[RecordMatch], place: &str| {
        for m in matches {
            l2.find(
                &record_kind(m.kind),
                format!("{place} at byte {}", m.offset),
                Some(m.row as u64),
                Some(m.column.clone()),
            );
        }
    };
    let mut tensor_matches: HashMap<String, Vec<RecordMatch>> = HashMap::new();
    for (file, name) in files {
        let Some(f) = file else { continue };
        let header = f.header_text_without_layout();
        scanned += header.len() as u64;
        let found = index.scan_tensor(&header, threads, false);
        report(l2, &found, &format!("{name} header"));
        for t in &f.tensors {
            let half = matches!(t.dtype, Dtype::F16 | Dtype::BF16);
            let bytes = f.data(t);
            scanned += bytes.len() as u64;
            let earlier = (*name == MODEL_FILE && same.contains(&t.name))
                .then(|| tensor_matches.get(&t.name).cloned())
                .flatten();
            let found = earlier.unwrap_or_else(|| index.scan_tensor(bytes, threads, half));
            report(l2, &found, &format!("{name} tensor {:?}", t.name));
            tensor_matches.insert(t.name.clone(), found);
        }
    }
    l2.count("bytes_scanned", scanned);
    if let Some(im) = &d.images {
        l2_pixels(l2, d, im, files, threads);
    }
}

/// L2 for images: runs of at least 16 consecutive pixels of any training image, raw or
/// scaled or normalized, in u8, f32, f16 or bf16, anywhere in the checkpoint's and the
/// model's bytes (headers included).
fn l2_pixels(
    l2: &mut LayerBuilder,
    d: &Data,
    im: &airlock_model::Images,
    files: &Files<'_, '_>,
    threads: usize,
) {
    let params = PixelParams::default();
    let index = PixelIndex::try_build(
        &PixelSource {
            pixels: &im.pixels,
            channels: im.shape.channels,
            height: im.shape.height,
            width: im.shape.width,
            normalization: Some((&d.normalization.0, &d.normalization.1)),
        },
        params,
    );
    let index = match index {
        Ok(i) => i,
        Err(e) => {
            l2.error(format!("pixel index: {e}"));
            return;
        }
    };
    let stats = index.stats();
    l2.param("pixel_run", json!(params.run));
    l2.param("pixel_encodings", json!(["u8", "f32", "f16", "bf16"]));
    l2.param("pixel_forms", json!(["raw", "scaled", "normalized"]));
    l2.count("images", stats.images as u64);
    l2.count("pixel_windows_indexed", stats.windows_indexed as u64);
    l2.count(
        "pixel_windows_skipped_low_information",
        stats.skipped_low_information as u64,
    );
    for (file, name) in files {
        let Some(f) = file else { continue };
        for m in index.scan(f.bytes, threads) {
            l2.find(
                &finding_kind(&m),
                format!("{name} at byte {} ({} pixels)", m.offset, m.pixels),
                Some(m.image as u64),
                None,
            );
        }
    }
}

/// The finding kind of an L2 match: `text-record` or `numeric-record (f32, raw)` and the like.
fn record_kind(kind: MatchKind) -> String {
    match kind {
        MatchKind::Text => "text-record".to_owned(),
        MatchKind::Numeric {
            encoding,
            standardized,
        } => format!(
            "numeric-record ({}{})",
            serde_json::to_value(encoding)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            if standardized {
                ", standardized"
            } else {
                ", raw"
            }
        ),
    }
}

/// L3: the loss-threshold attack on the released model, training members against holdout
/// rows, the losses from the released model's outputs (computed in batches through burn
/// with the fold check's).
fn l3_attack(l3: &mut LayerBuilder, run: &Run, d: &Data, nets: &Nets, released: &RowOutputs) {
    let leak = &run.spec.leak;
    let (train, hold) = l3_rows(run, d);
    let losses = |rows: &[usize]| -> Option<Vec<f64>> {
        let out = released.gather(rows.iter().copied())?;
        let y: Vec<f32> = rows.iter().map(|&r| d.labels[r]).collect();
        Some(nets.losses(&out, &y))
    };
    let (Some(members), Some(non_members)) = (losses(&train), losses(&hold)) else {
        l3.error("the released model's outputs are missing rows".into());
        return;
    };
    let Some(r) = loss_threshold_attack(&members, &non_members) else {
        l3.error("the train or holdout split is empty".into());
        return;
    };
    l3.count("members", r.members as u64);
    l3.count("non_members", r.non_members as u64);
    l3.count("auc", r.auc);
    l3.count("advantage", r.advantage);
    if r.auc > leak.max_membership_auc {
        l3.find(
            "membership-auc-above-threshold",
            format!("AUC {:.4} > {}", r.auc, leak.max_membership_auc),
            None,
            None,
        );
    }
    if r.advantage > leak.max_membership_advantage {
        l3.find(
            "membership-advantage-above-threshold",
            format!(
                "advantage {:.4} > {}",
                r.advantage, leak.max_membership_advantage
            ),
            None,
            None,
        );
    }
}

/// L3's RMIA, on the training L4 set up again (an error in L3 where it could not be).
fn l3_rmia(
    l3: &mut LayerBuilder,
    run: &Run,
    replay: &crate::reproduce::Replay,
    data: &Result<Data, String>,
    nets: Option<&Nets>,
    progress: &Progress,
) {
    let (Ok(d), Some(nets)) = (data, nets) else {
        return; // L3 already holds the reason.
    };
    let Some(setup) = &replay.setup else {
        l3.error("RMIA: the run's training could not be set up again (see L4)".into());
        return;
    };
    match crate::reproduce::recorded_backend(run) {
        Ok((backend, devices)) => crate::rmia::rmia(
            l3,
            run,
            &setup.input.description,
            setup,
            d,
            nets,
            (backend, &devices),
            &|m| progress.step(m),
        ),
        Err(e) => l3.error(e),
    }
}

/// L1 and L2 over the drafted documents; returns the identifier index for the last gate
/// (empty, and L2's error, without the data).
fn scan_documents(
    data: &Result<Data, String>,
    drafts: &Drafts,
    l1: &mut LayerBuilder,
    l2: &mut LayerBuilder,
    pii: Result<PiiScanner, String>,
) -> IdentifierIndex {
    let documents: [(&str, &[u8]); 3] = [
        (MODEL_CARD_FILE, &drafts.card_bytes),
        (STATEMENT_FILE, &drafts.draft_statement),
        (PROVENANCE_PAYLOAD, &drafts.provenance_bytes),
    ];
    let doc_index = match data {
        Ok(d) => IdentifierIndex::build(&d.text_columns, &d.text_values),
        Err(e) => Err(e.clone()),
    };
    let doc_index = doc_index
        .unwrap_or_else(|e| {
            l2.error(e);
            IdentifierIndex::empty()
        })
        .with_pii(pii.unwrap_or_default());
    let stats = doc_index.stats();
    l2.param(
        "text_forms",
        json!([
            "exact",
            "case-folded, whitespace-insensitive",
            "digits-only"
        ]),
    );
    l2.count("identifier_values_folded", stats.folded as u64);
    l2.count("identifier_values_digits", stats.digits as u64);
    for (name, bytes) in documents {
        for f in doc_index.scan_document(name, bytes) {
            let layer = if f.layer == "L1" { &mut *l1 } else { &mut *l2 };
            layer.find(&f.kind, f.location, f.row, f.column);
        }
    }
    l1.param(
        "documents",
        json!(documents.iter().map(|d| d.0).collect::<Vec<_>>()),
    );
    doc_index
}

/// The leak report: the layers, their overall verdict, and every input with its digest.
fn assemble_report(
    layers: Vec<LeakLayer>,
    mut inputs: Vec<ReportInput>,
    model_sha256: Option<&str>,
    card_bytes: &[u8],
) -> LeakReport {
    let verdict = if layers.iter().all(|l| l.verdict == Verdict::Pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    // The digest the drafts computed of the same bytes (hashing a GiB twice costs seconds).
    if let Some(sha256) = model_sha256 {
        inputs.push(ReportInput {
            role: "model".into(),
            name: MODEL_FILE.into(),
            sha256: sha256.to_owned(),
        });
    }
    inputs.push(ReportInput {
        role: "model-card".into(),
        name: MODEL_CARD_FILE.into(),
        sha256: sha256_hex(card_bytes),
    });
    LeakReport {
        schema_version: BUNDLE_FORMAT_VERSION,
        verdict,
        inputs,
        layers,
    }
}

/// The signed documents, byte for byte as they would be written.
struct Signed {
    statement_bytes: Vec<u8>,
    statement_env: Vec<u8>,
    provenance_env: Vec<u8>,
}

/// Signs the release statement (over the final report) and the provenance, in memory.
fn sign(
    run: &Run,
    drafts: &Drafts,
    report_bytes: &[u8],
    verdict: Verdict,
    privacy: Option<&PrivacyGuarantee>,
    signer: &Signer,
) -> Signed {
    let statement_bytes = pretty(&release_statement(
        run,
        &drafts.model_sha,
        &sha256_hex(&drafts.card_bytes),
        &sha256_hex(report_bytes),
        verdict,
        drafts.model_shards.clone(),
        privacy,
    ));
    let statement_env = pretty(&dsse::sign(IN_TOTO_PAYLOAD_TYPE, &statement_bytes, signer));
    let provenance_env = pretty(&dsse::sign(
        IN_TOTO_PAYLOAD_TYPE,
        &drafts.provenance_bytes,
        signer,
    ));
    Signed {
        statement_bytes,
        statement_env,
        provenance_env,
    }
}

/// Last gate: every text file of the bundle, byte for byte as it would be written. Findings
/// turn the report into a refusal; returns whether they did.
fn last_gate(
    report: &mut LeakReport,
    drafts: &Drafts,
    report_bytes: &[u8],
    signed: &Signed,
    doc_index: &IdentifierIndex,
) -> bool {
    let mut late = Vec::new();
    let written: [(&str, &[u8]); 5] = [
        (MODEL_CARD_FILE, &drafts.card_bytes),
        (LEAK_REPORT_FILE, report_bytes),
        (STATEMENT_FILE, &signed.statement_bytes),
        (STATEMENT_DSSE_FILE, &signed.statement_env),
        (PROVENANCE_DSSE_FILE, &signed.provenance_env),
    ];
    for (name, bytes) in written {
        late.extend(doc_index.scan_document(name, bytes));
    }
    if late.is_empty() {
        return false;
    }
    refuse_late(report, late);
    true
}

/// Writes the refused report beside the bundle's path; the refusal names the layers.
fn refuse(out: &Path, report: &LeakReport, report_bytes: &[u8]) -> PackageError {
    let path = PathBuf::from(format!("{}.leak-report.json", out.display()));
    if let Err(e) = write_file(&path, report_bytes) {
        return e;
    }
    PackageError::LeakRefused {
        layers: report
            .layers
            .iter()
            .filter(|l| l.verdict != Verdict::Pass)
            .map(|l| format!("{} {} ({})", l.id, l.name, verdict_word(l.verdict)))
            .collect(),
        report: path,
    }
}

/// Beside the bundle, never inside it: which run it came from, for publish's scans.
fn write_run_pointer(opts: &PackageOptions, run: &Run) -> Result<(), PackageError> {
    let run_dir = std::path::absolute(&opts.run_dir).map_err(io("resolve", &opts.run_dir))?;
    write_file(
        &airlock_leak::run_pointer_path(&opts.out),
        &pretty(&json!({
            "run_dir": run_dir.display().to_string(),
            "training_record_sha256": sha256_hex(&run.record_bytes),
        })),
    )
}

/// Name of the provenance payload in findings.
const PROVENANCE_PAYLOAD: &str = "provenance.dsse.json payload";

/// The release statement over the model, the card and the leak report.
fn release_statement(
    run: &Run,
    model_sha: &str,
    card_sha: &str,
    report_sha: &str,
    verdict: Verdict,
    model_shards: airlock_schemas::ShardDigests,
    privacy: Option<&PrivacyGuarantee>,
) -> Statement<ReleasePredicate> {
    let record = &run.record;
    let subject = |name: &str, sha: &str| Subject {
        name: name.into(),
        digest: [("sha256".to_owned(), sha.to_owned())]
            .into_iter()
            .collect(),
    };
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![
            subject(MODEL_FILE, model_sha),
            subject(MODEL_CARD_FILE, card_sha),
            subject(LEAK_REPORT_FILE, report_sha),
        ],
        predicate_type: run.uri_base.release_predicate(),
        predicate: ReleasePredicate {
            model_name: record.model_name.clone(),
            model_version: record.model_version.clone(),
            pipeline_sha256: record.pipeline.sha256.clone(),
            training_record_sha256: sha256_hex(&run.record_bytes),
            leak_verdict: verdict,
            git_commit: record.git_commit.clone(),
            model_shards,
            privacy: privacy.cloned(),
        },
    }
}

/// Findings of the last gate (the written bytes) turn the report into a refusal.
fn refuse_late(report: &mut LeakReport, late: Vec<OutgoingFinding>) {
    for f in late {
        let id = if f.layer == "L1" { "L1" } else { "L2" };
        if let Some(layer) = report.layers.iter_mut().find(|l| l.id == id) {
            let n = layer
                .counts
                .get("findings")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            layer.counts.insert("findings".into(), (n + 1).into());
            if layer.findings.len() < MAX_FINDINGS {
                layer.findings.push(Finding {
                    kind: f.kind,
                    location: format!("{} (in the bytes to be written)", f.location),
                    record: f.row,
                    column: f.column,
                });
            }
            layer.verdict = Verdict::Fail;
        }
    }
    report.verdict = Verdict::Fail;
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "could not run",
    }
}

/// L0 on the checkpoint: returns the declared tensors when they are all present. Only
/// parameters may carry optimizer state; anything else is named.
pub(crate) fn check_checkpoint(
    ckpt: &SafetensorsFile<'_>,
    declared: &[TensorDecl],
    l0: &mut LayerBuilder,
) -> Option<Params> {
    let names: BTreeSet<&str> = declared.iter().map(|d| d.name.as_str()).collect();
    let mut allowed: BTreeMap<String, &Vec<usize>> = BTreeMap::new();
    for d in declared.iter().filter(|d| d.role == Role::Parameter) {
        for m in ["exp_avg", "exp_avg_sq"] {
            allowed.insert(format!("optimizer.{}.{m}", d.name), &d.shape);
        }
    }
    let (mut optimizer, mut other) = (0u64, 0u64);
    for t in &ckpt.tensors {
        if names.contains(t.name.as_str()) {
            continue;
        }
        match allowed.get(&t.name) {
            Some(shape) if t.dtype == Dtype::F32 && &&t.shape == shape => optimizer += 1,
            _ => {
                other += 1;
                l0.find(
                    "unexpected-tensor",
                    format!("{CHECKPOINT_FILE} tensor {:?}", t.name),
                    None,
                    None,
                );
            }
        }
    }
    l0.count("checkpoint_tensors", ckpt.tensors.len() as u64);
    l0.count("optimizer_state_tensors_dropped", optimizer);
    l0.count("unexpected_tensors", other);
    l0.count(
        "checkpoint_metadata_keys_dropped",
        ckpt.metadata.len() as u64,
    );

    let mut tensors = Vec::with_capacity(declared.len());
    let mut ok = true;
    for d in declared {
        match ckpt.tensor(&d.name) {
            Some(t) if t.dtype == Dtype::F32 && t.shape == d.shape => {
                let data = ckpt.data(t);
                // A parameter byte-identical to another tensor (say, Adam's moments
                // renamed as the weight) is not a trained parameter.
                if ckpt
                    .tensors
                    .iter()
                    .any(|o| o.name != t.name && !data.is_empty() && ckpt.data(o) == data)
                {
                    l0.find(
                        "parameter-duplicates-another-tensor",
                        format!("{CHECKPOINT_FILE} tensor {:?}", d.name),
                        None,
                        None,
                    );
                }
                tensors.push((d.clone(), f32s(data)));
            }
            Some(t) => {
                l0.error(format!(
                    "{CHECKPOINT_FILE} tensor {:?} is {} {:?}, the architecture declares F32 {:?}",
                    d.name,
                    t.dtype.name(),
                    t.shape,
                    d.shape
                ));
                ok = false;
            }
            None => {
                l0.error(format!(
                    "{CHECKPOINT_FILE} lacks the declared tensor {:?}",
                    d.name
                ));
                ok = false;
            }
        }
    }
    ok.then_some(Params { tensors })
}

/// L0 on the rebuilt model: exactly the declared tensors, allow-listed metadata, canonical bytes.
fn check_model(m: &SafetensorsFile<'_>, declared: &[(String, Vec<usize>)], l0: &mut LayerBuilder) {
    let want: BTreeMap<&str, &Vec<usize>> = declared.iter().map(|(n, s)| (n.as_str(), s)).collect();
    for t in &m.tensors {
        if want.get(t.name.as_str()) != Some(&&t.shape) || t.dtype != Dtype::F32 {
            l0.find(
                "unexpected-tensor",
                format!("{MODEL_FILE} tensor {:?}", t.name),
                None,
                None,
            );
        }
    }
    if m.tensors.len() != declared.len() {
        l0.find(
            "missing-tensor",
            format!(
                "{MODEL_FILE} has {} of {} declared tensors",
                m.tensors.len(),
                declared.len()
            ),
            None,
            None,
        );
    }
    for (k, v) in &m.metadata {
        if !MODEL_METADATA.iter().any(|(ak, av)| ak == k && av == v) {
            l0.find(
                "metadata-not-allowed",
                format!("{MODEL_FILE} metadata {k:?}"),
                None,
                None,
            );
        }
    }
    if !st::is_canonical(m) {
        l0.find("not-canonical", MODEL_FILE.into(), None, None);
    }
    l0.count("model_tensors", m.tensors.len() as u64);
}

fn model_card(run: &Run, description: &Description) -> ModelCard {
    let r = &run.record;
    let h = &r.hyperparameters;
    let (classes, transform) = match &h.task {
        TaskSpec::Binary => (vec!["0".into(), "1".into()], "sigmoid"),
        TaskSpec::Multiclass { classes } => (classes.clone(), "softmax"),
        TaskSpec::Regression => (Vec::new(), "identity"),
    };
    let cnn = match &h.model {
        ModelSpec::Cnn(c) => Some(CnnArchitecture {
            input: c.input,
            // Batch normalization ships folded into its convolution.
            conv: c
                .conv
                .iter()
                .map(|b| ConvBlock {
                    batch_norm: false,
                    ..*b
                })
                .collect(),
            input_normalization: description.releases_input_normalization(),
        }),
        ModelSpec::Mlp(_) => None,
    };
    ModelCard {
        schema_version: BUNDLE_FORMAT_VERSION,
        name: r.model_name.clone(),
        version: r.model_version.clone(),
        intended_use: run.spec.release.intended_use.clone(),
        onprem_only: run.spec.release.onprem_only,
        architecture: Architecture {
            kind: h.model.kind().into(),
            layer_widths: description.dense_widths(),
            cnn,
            activation: "relu".into(),
            tensors: description
                .released()
                .iter()
                .map(|d| TensorSpec {
                    name: d.name.clone(),
                    dtype: "F32".into(),
                    shape: d.shape.clone(),
                })
                .collect(),
        },
        inputs: h
            .features
            .iter()
            .map(|f| InputFeature {
                name: f.clone(),
                dtype: "float32".into(),
            })
            .collect(),
        output: ModelOutput {
            label: h.label.clone(),
            classes,
            transform: transform.into(),
        },
        metrics: CardMetrics::from_holdout(&r.holdout, r.splits.holdout),
        training: TrainingSummary {
            epochs: r.epochs.clone(),
            roc_curve: r
                .holdout
                .binary()
                .map(|b| b.roc_curve.clone())
                .unwrap_or_default(),
            split_rows: [r.splits.train, r.splits.validation, r.splits.holdout],
        },
        configuration: Some(card_configuration(run)),
        // Validated with the record (`read_run`): bounded figures, suppressed small groups.
        evaluation: r.evaluation.clone(),
    }
}

/// The training configuration of the card, from the validated record and the pipeline it
/// was trained from: file names only, never on-prem paths.
fn card_configuration(run: &Run) -> CardConfiguration {
    let r = &run.record;
    let s = &run.spec.splits;
    CardConfiguration {
        hyperparameters: r.hyperparameters.clone(),
        seed: r.seed,
        split_fractions: [s.train, s.validation, s.holdout],
        data: r
            .dataset
            .files
            .iter()
            .map(|f| CardDataFile {
                name: file_name(Path::new(&f.path)),
                sha256: f.sha256.clone(),
                rows: f.rows,
            })
            .collect(),
        source: CardSource {
            git_commit: r.git_commit.clone(),
            git_dirty: r.git_dirty,
            uncommitted_allowed: is_demo(run) || run.spec.release.allow_uncommitted,
        },
    }
}

fn provenance(run: &Run, model_sha: &str, builder: &str) -> Statement<serde_json::Value> {
    let r = &run.record;
    let mut deps = vec![
        json!({"name": format!("training-record:{RECORD_FILE}"), "digest": {"sha256": sha256_hex(&run.record_bytes)}}),
    ];
    for f in &r.dataset.files {
        deps.push(json!({"name": format!("training-data:{}", file_name(Path::new(&f.path))), "digest": {"sha256": f.sha256}}));
    }
    if let Some(c) = &r.git_commit {
        deps.push(json!({"name": "source", "digest": {"gitCommit": c}}));
    }
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: MODEL_FILE.into(),
            digest: [("sha256".to_owned(), model_sha.to_owned())]
                .into_iter()
                .collect(),
        }],
        predicate_type: SLSA_PROVENANCE_TYPE.into(),
        predicate: json!({
            "buildDefinition": {
                "buildType": run.uri_base.build_type(),
                "externalParameters": {
                    "pipeline": {"name": run.pipeline_name, "sha256": r.pipeline.sha256},
                },
                "internalParameters": {
                    "seed": r.seed,
                    "backend": r.backend.name,
                    "device": r.backend.device,
                    "epochs": r.hyperparameters.epochs,
                    "batch_size": r.hyperparameters.batch_size,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": run.uri_base.builder_id(builder), "version": {"airlock": r.airlock_version}},
                "metadata": {"startedOn": r.started_at, "finishedOn": r.finished_at},
            },
        }),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io("create a file in", &dir))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io("write", path))?;
    tmp.as_file().sync_all().map_err(io("sync", path))?;
    tmp.persist(path).map_err(|e| io("write", path)(e.error))?;
    Ok(())
}

/// The model file being written and synced into a new staging directory next to the
/// bundle, on its own thread. Dropped unfinished (a refusal, an error), it waits for the
/// thread, and the directory is removed: nothing half-written stays.
struct StagedModel {
    thread: Option<std::thread::JoinHandle<Result<tempfile::TempDir, PackageError>>>,
}

impl StagedModel {
    fn start(out: &Path, bytes: &std::sync::Arc<Vec<u8>>) -> Self {
        let (out, bytes) = (out.to_owned(), std::sync::Arc::clone(bytes));
        let thread = std::thread::spawn(move || {
            let parent = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            std::fs::create_dir_all(&parent).map_err(io("create directory", &parent))?;
            let staging = tempfile::Builder::new()
                .prefix(".airlock-bundle-")
                .tempdir_in(&parent)
                .map_err(io("create a staging directory in", &parent))?;
            write_synced(&staging.path().join(MODEL_FILE), &bytes)?;
            Ok(staging)
        });
        Self {
            thread: Some(thread),
        }
    }

    /// The staging directory, holding the synced model file.
    fn finish(mut self) -> Result<tempfile::TempDir, PackageError> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            None => unreachable!("finish consumes the staged model"),
        }
    }
}

impl Drop for StagedModel {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Its staging directory, if it got one, is removed as the result drops.
            let _ = thread.join();
        }
    }
}

/// Writes `bytes` to `p` and syncs them to disk.
fn write_synced(p: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    std::fs::write(p, bytes).map_err(io("write", p))?;
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(io("sync", p))
}

/// Writes the rest of the bundle into the staging directory that holds the model, and
/// renames it into place.
fn write_bundle(
    out: &Path,
    staging: tempfile::TempDir,
    files: &[(&str, Vec<u8>)],
) -> Result<(), PackageError> {
    for (name, bytes) in files {
        write_synced(&staging.path().join(name), bytes)?;
    }
    std::fs::create_dir(staging.path().join(APPROVALS_DIR))
        .map_err(io("create", &staging.path().join(APPROVALS_DIR)))?;
    let staged = staging.keep();
    if out.exists() {
        std::fs::remove_dir(out).map_err(io("replace", out))?;
    }
    std::fs::rename(&staged, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        io("move the bundle into", out)(e)
    })
}
