//! `airlock export`: the de-identified rows a burst may take out, or nothing.
//!
//! Only the pipeline's training split is eligible (validation and holdout rows never
//! leave, so the on-prem holdout stays unseen by anything trained in the cloud). Identifier
//! columns not listed as quasi-identifiers are dropped; listed ones are generalized; rows
//! are sampled; rows in equivalence classes over the quasi-identifiers smaller than k are
//! suppressed. The result is written as Parquet (uncompressed, so the scans read the bytes
//! that leave) and scanned against the full data: L1's PII detectors, and L2, every
//! identifier value of every row (exact cells, and text of 8 bytes or more anywhere in the
//! files). Any finding refuses the export and nothing is left behind; otherwise a builder
//! key signs an export statement naming the files, the policy and every count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_leak::pii::PiiScanner;
use airlock_model::{Dataset, load_dataset, rng, split_rows};
use airlock_schemas::{
    DataFormat, ExportColumn, ExportPolicy, ExportPolicyFile, ExportPredicate, ExportRows,
    ExportScan, IN_TOTO_PAYLOAD_TYPE, IoError, KeyRole, PipelineSpec, QuasiIdentifier,
    STATEMENT_TYPE, Statement, Subject, TaskSpec, Verdict,
};
use airlock_trust::keys::Signer;
use airlock_trust::{Trust, dsse};
use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use rand::seq::SliceRandom;

use crate::{BurstError, DATA_FILE, PIPELINE_FILE, STATEMENT_FILE, sha256_hex};

/// The random stream of the export's sample (apart from the trainer's streams).
const STREAM_EXPORT: u64 = 0x6578_706f_7274;

/// What `airlock export` is given.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The on-prem pipeline file.
    pub pipeline: PathBuf,
    /// The export policy file.
    pub policy: PathBuf,
    /// The export directory to create (must not exist).
    pub out: PathBuf,
    /// The trust policy the signing key must be a builder key of.
    pub trust: PathBuf,
    /// The builder's private key.
    pub key: PathBuf,
    /// Threads for the scans.
    pub threads: usize,
}

/// A written export.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The export directory.
    pub dir: PathBuf,
    /// What the statement says.
    pub predicate: ExportPredicate,
    /// SHA-256 of the signed statement's payload (what officers approve).
    pub statement_sha256: String,
}

/// Read and check an export policy file (strict TOML: unknown keys are refused).
pub fn load_policy(path: &Path) -> Result<(ExportPolicy, String), BurstError> {
    let bytes = std::fs::read(path).map_err(IoError::at("read", path))?;
    let invalid = |message: String| BurstError::Invalid {
        path: path.to_owned(),
        message,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not UTF-8".to_owned()))?;
    let file: ExportPolicyFile =
        toml::from_str(text).map_err(|e| invalid(format!("not an export policy: {e}")))?;
    file.export.validate().map_err(invalid)?;
    Ok((file.export, sha256_hex(&bytes)))
}

/// Where a quasi-identifier comes from.
#[derive(Debug, Clone, Copy)]
enum QiSource {
    /// An identifier column (index into `[data] identifiers`): generalized, exported as text.
    Identifier(usize),
    /// A feature column (index): kept as it is.
    Feature(usize),
    /// The label: kept as it is.
    Label,
}

/// Check the policy against the pipeline: which column each quasi-identifier is.
fn resolve(
    policy: &ExportPolicy,
    spec: &PipelineSpec,
    policy_path: &Path,
) -> Result<Vec<QiSource>, BurstError> {
    let invalid = |message: String| BurstError::Invalid {
        path: policy_path.to_owned(),
        message,
    };
    let d = &spec.data;
    policy
        .quasi_identifiers
        .iter()
        .map(|q| {
            let generalized = q.generalization().is_some();
            if let Some(i) = d.identifiers.iter().position(|c| *c == q.column) {
                if !generalized {
                    return Err(invalid(format!(
                        "quasi-identifier {:?} is an identifier column: it leaves only generalized (bands, prefix or truncate), or not at all",
                        q.column
                    )));
                }
                return Ok(QiSource::Identifier(i));
            }
            let source = if q.column == d.label {
                QiSource::Label
            } else if let Some(i) = d.features.iter().position(|c| *c == q.column) {
                QiSource::Feature(i)
            } else {
                return Err(invalid(format!(
                    "quasi-identifier {:?} is not an identifier, feature or the label of the pipeline",
                    q.column
                )));
            };
            if generalized {
                return Err(invalid(format!(
                    "quasi-identifier {:?} is a model input: it is exported as the model reads it, so list it without a generalization",
                    q.column
                )));
            }
            Ok(source)
        })
        .collect()
}

/// Write the export for `o`, or refuse and leave nothing.
pub fn export(o: &ExportOptions) -> Result<ExportSummary, BurstError> {
    let spec = PipelineSpec::load(&o.pipeline).map_err(|e| BurstError::Invalid {
        path: o.pipeline.clone(),
        message: e.to_string(),
    })?;
    let pipeline_bytes = std::fs::read(&o.pipeline).map_err(IoError::at("read", &o.pipeline))?;
    if spec.data.format == DataFormat::Images {
        return Err(BurstError::Invalid {
            path: o.pipeline.clone(),
            message: "an image pipeline cannot be exported: pixels are not de-identified by generalizing columns".to_owned(),
        });
    }
    let (policy, policy_sha256) = load_policy(&o.policy)?;
    let qis = resolve(&policy, &spec, &o.policy)?;
    let trust = Trust::load(&o.trust)?;
    let signer = Signer::load(&o.key)?;
    let at = time::OffsetDateTime::now_utc();
    trust
        .usable_key(signer.key_id(), KeyRole::Builder, at, at)
        .map_err(|why| BurstError::Invalid {
            path: o.key.clone(),
            message: format!("not a usable builder key of the trust policy: {why}"),
        })?;
    if o.out.exists() {
        return Err(BurstError::Invalid {
            path: o.out.clone(),
            message: "already exists; an export is never overwritten".to_owned(),
        });
    }
    let source = o
        .pipeline
        .parent()
        .unwrap_or(Path::new("."))
        .join(&spec.data.source);
    let data = load_dataset(&spec, &source, true)?;
    let sampled = sample(&spec, &policy, &data);
    let table = generalize(&spec, &policy, &qis, &data, &sampled, &source)?;
    let kept = anonymize(&policy, &table)?;
    let rows = ExportRows {
        source: data.rows() as u64,
        eligible: table.eligible as u64,
        sampled: sampled.len() as u64,
        suppressed: (sampled.len() - kept.rows.len()) as u64,
        exported: kept.rows.len() as u64,
    };
    let parquet = write_parquet(&spec, &policy, &data, &table, &kept)?;
    let cloud = cloud_pipeline(&spec)?;
    let scans = scan(
        &spec,
        &data,
        &table,
        &kept,
        &parquet,
        cloud.as_bytes(),
        o.threads,
    )?;
    let predicate = ExportPredicate {
        model_name: spec.release.name.clone(),
        model_version: spec.release.version.clone(),
        pipeline_sha256: sha256_hex(&pipeline_bytes),
        policy_sha256,
        policy: policy.clone(),
        source_sha256: data.table.fingerprint.sha256.clone(),
        rows,
        k_required: policy.k,
        k_achieved: kept.k_achieved,
        classes: kept.classes,
        columns: table.columns.clone(),
        dropped: dropped(&spec, &qis),
        scans,
        time: crate::rfc3339(at),
    };
    let payload = write_signed(o, &trust, &signer, &parquet, &cloud, &predicate)?;
    Ok(ExportSummary {
        dir: o.out.clone(),
        predicate,
        statement_sha256: sha256_hex(&payload),
    })
}

/// Sign the statement of `predicate` over the files, and write the three files into a
/// staging folder beside `o.out`, renamed into place at the end: nothing partial is left.
/// Returns the statement's payload.
fn write_signed(
    o: &ExportOptions,
    trust: &Trust,
    signer: &Signer,
    parquet: &[u8],
    cloud: &str,
    predicate: &ExportPredicate,
) -> Result<Vec<u8>, BurstError> {
    let statement = Statement {
        type_: STATEMENT_TYPE.to_owned(),
        subject: vec![
            subject(DATA_FILE, parquet),
            subject(PIPELINE_FILE, cloud.as_bytes()),
        ],
        predicate_type: trust.uri_base.export_predicate(),
        predicate: predicate.clone(),
    };
    let payload = airlock_trust::pretty(&statement);
    let envelope = dsse::sign(IN_TOTO_PAYLOAD_TYPE, &payload, signer);
    let parent = o.out.parent().unwrap_or(Path::new("."));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let staging = tempfile::Builder::new()
        .prefix(".airlock-export-")
        .tempdir_in(parent)
        .map_err(IoError::at("create a staging folder in", parent))?;
    for (name, bytes) in [
        (DATA_FILE, parquet),
        (PIPELINE_FILE, cloud.as_bytes()),
        (STATEMENT_FILE, &airlock_trust::pretty(&envelope)),
    ] {
        let path = staging.path().join(name);
        std::fs::write(&path, bytes).map_err(IoError::at("write", &path))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &o.out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        IoError::new("move the export into place at", &o.out, e)
    })?;
    Ok(payload)
}

fn subject(name: &str, bytes: &[u8]) -> Subject {
    Subject {
        name: name.to_owned(),
        digest: [("sha256".to_owned(), sha256_hex(bytes))]
            .into_iter()
            .collect(),
    }
}

/// The identifier columns not exported.
fn dropped(spec: &PipelineSpec, qis: &[QiSource]) -> Vec<String> {
    spec.data
        .identifiers
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            !qis.iter()
                .any(|q| matches!(q, QiSource::Identifier(j) if j == i))
        })
        .map(|(_, c)| c.clone())
        .collect()
}

/// The training split's rows, sampled: a seeded shuffle, the first `fraction` of it (at
/// most `max_rows`), in shuffled order (the source's row order is not exported).
fn sample(spec: &PipelineSpec, policy: &ExportPolicy, data: &Dataset) -> Vec<usize> {
    let n = data.rows();
    let n_train = (n as f64 * spec.splits.train).round() as usize;
    let n_val = (n as f64 * spec.splits.validation).round() as usize;
    let (mut train, _, _) = split_rows(n, n_train, n_val, spec.training.seed);
    train.shuffle(&mut rng(policy.seed, STREAM_EXPORT));
    let mut take = (train.len() as f64 * policy.sample_fraction).ceil() as usize;
    if let Some(max) = policy.max_rows {
        take = take.min(usize::try_from(max).unwrap_or(usize::MAX));
    }
    train.truncate(take.min(train.len()));
    train
}

/// The sampled rows' quasi-identifier values (interned per column) and the generalized
/// text of identifier columns.
#[derive(Debug)]
struct Generalized {
    /// Rows of the training split.
    eligible: usize,
    /// The sampled data rows.
    sampled: Vec<usize>,
    /// The quasi-identifiers' column names.
    qi_names: Vec<String>,
    /// The exported columns, described.
    columns: Vec<ExportColumn>,
    /// Per quasi-identifier: each sampled row's value id.
    ids: Vec<Vec<u32>>,
    /// Per quasi-identifier that is an identifier column: the generalized values, indexed
    /// by id (`None` for features and the label).
    text: Vec<Option<Vec<Arc<str>>>>,
}

fn generalize(
    spec: &PipelineSpec,
    policy: &ExportPolicy,
    qis: &[QiSource],
    data: &Dataset,
    sampled: &[usize],
    source: &Path,
) -> Result<Generalized, BurstError> {
    let d = &spec.data;
    let width = d.identifiers.len();
    let mut ids = Vec::with_capacity(qis.len());
    let mut text = Vec::with_capacity(qis.len());
    for (q, src) in policy.quasi_identifiers.iter().zip(qis) {
        let mut interned: HashMap<Arc<str>, u32> = HashMap::new();
        let mut values: Vec<Arc<str>> = Vec::new();
        let mut column_ids = Vec::with_capacity(sampled.len());
        for &row in sampled {
            let key: Arc<str> = match *src {
                QiSource::Identifier(i) => {
                    let cell = &data.identifier_values[row * width + i];
                    generalize_cell(q, cell).map_err(|why| BurstError::Invalid {
                        path: source.to_owned(),
                        message: format!(
                            "data row {}, column {:?}: {why} (the export policy generalizes it as {})",
                            row + 1,
                            q.column,
                            q.generalization().unwrap_or_default()
                        ),
                    })?.into()
                }
                QiSource::Feature(f) => {
                    let v = data.table.features[row * data.table.width() + f];
                    v.to_bits().to_string().into()
                }
                QiSource::Label => {
                    let v = data.table.labels.as_ref().map_or(0.0, |l| l[row]);
                    v.to_bits().to_string().into()
                }
            };
            let next = u32::try_from(values.len()).unwrap_or(u32::MAX);
            let id = *interned.entry(key.clone()).or_insert_with(|| {
                values.push(key);
                next
            });
            column_ids.push(id);
        }
        ids.push(column_ids);
        text.push(matches!(src, QiSource::Identifier(_)).then_some(values));
    }
    let mut columns: Vec<ExportColumn> = d
        .features
        .iter()
        .map(|f| column(f, "feature", policy))
        .collect();
    columns.push(column(&d.label, "label", policy));
    for (q, src) in policy.quasi_identifiers.iter().zip(qis) {
        if matches!(src, QiSource::Identifier(_)) {
            columns.push(column(&q.column, "quasi-identifier", policy));
        }
    }
    let n = data.rows();
    Ok(Generalized {
        eligible: (n as f64 * spec.splits.train).round() as usize,
        sampled: sampled.to_vec(),
        qi_names: policy
            .quasi_identifiers
            .iter()
            .map(|q| q.column.clone())
            .collect(),
        columns,
        ids,
        text,
    })
}

fn column(name: &str, role: &str, policy: &ExportPolicy) -> ExportColumn {
    let q = policy.quasi_identifiers.iter().find(|q| q.column == name);
    ExportColumn {
        name: name.to_owned(),
        role: role.to_owned(),
        quasi_identifier: q.is_some(),
        generalization: q.and_then(QuasiIdentifier::generalization),
    }
}

/// One identifier cell, generalized as `q` says. The error never holds the value.
fn generalize_cell(q: &QuasiIdentifier, cell: &str) -> Result<String, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(String::new());
    }
    if let Some(bands) = &q.bands {
        let v: f64 = cell
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or("not a finite number")?;
        let first = bands[0];
        let last = bands[bands.len() - 1];
        return Ok(if v < first {
            format!("<{first}")
        } else if v >= last {
            format!(">={last}")
        } else {
            let w = bands
                .windows(2)
                .find(|w| v >= w[0] && v < w[1])
                .ok_or("not in a band")?;
            format!("{}-{}", w[0], w[1])
        });
    }
    if let Some(n) = q.prefix {
        return Ok(cell.chars().take(n as usize).collect());
    }
    if let Some(t) = q.truncate {
        let b = cell.as_bytes();
        let date = b.len() >= 10
            && b[4] == b'-'
            && b[7] == b'-'
            && [0, 1, 2, 3, 5, 6, 8, 9]
                .iter()
                .all(|&i| b[i].is_ascii_digit())
            && (b.len() == 10 || matches!(b[10], b'T' | b' '));
        if !date {
            return Err("not an ISO date (YYYY-MM-DD)".to_owned());
        }
        return Ok(match t {
            airlock_schemas::DateTruncation::Year => cell[..4].to_owned(),
            airlock_schemas::DateTruncation::Month => cell[..7].to_owned(),
        });
    }
    Err("no generalization".to_owned())
}

/// The sampled rows that survive k-anonymity (positions into the sample), and what was
/// achieved.
#[derive(Debug)]
struct Kept {
    rows: Vec<usize>,
    k_achieved: u64,
    classes: u64,
}

fn anonymize(policy: &ExportPolicy, t: &Generalized) -> Result<Kept, BurstError> {
    let n = t.ids.first().map_or(0, Vec::len);
    let key = |r: usize| -> Box<[u32]> { t.ids.iter().map(|c| c[r]).collect() };
    let mut sizes: HashMap<Box<[u32]>, u64> = HashMap::new();
    for r in 0..n {
        *sizes.entry(key(r)).or_default() += 1;
    }
    let k = u64::from(policy.k);
    let rows: Vec<usize> = (0..n).filter(|&r| sizes[&key(r)] >= k).collect();
    let suppressed = n - rows.len();
    let small = sizes.values().filter(|&&s| s < k).count();
    if rows.is_empty() {
        return Err(BurstError::Refused(format!(
            "no equivalence class over the quasi-identifiers holds k = {k} of the {n} sampled rows; generalize further or sample more"
        )));
    }
    if suppressed as f64 > policy.max_suppressed_fraction * n as f64 {
        return Err(BurstError::Refused(format!(
            "k = {k} would suppress {suppressed} of the {n} sampled rows ({small} classes smaller than k), over the policy's max_suppressed_fraction {}; generalize further",
            policy.max_suppressed_fraction
        )));
    }
    let kept: Vec<&u64> = sizes.values().filter(|&&s| s >= k).collect();
    Ok(Kept {
        k_achieved: kept.iter().map(|&&s| s).min().unwrap_or(0),
        classes: kept.len() as u64,
        rows,
    })
}

/// The export as Parquet: the features (Float32), the label (Float32, or the class name
/// for multi-class) and the generalized identifier columns (text); no compression, so what
/// the scans read is the bytes that leave.
fn write_parquet(
    spec: &PipelineSpec,
    policy: &ExportPolicy,
    data: &Dataset,
    t: &Generalized,
    kept: &Kept,
) -> Result<Vec<u8>, BurstError> {
    let d = &spec.data;
    let width = data.table.width();
    let failed = |e: &dyn std::fmt::Display| BurstError::Failed(format!("writing Parquet: {e}"));
    // `kept.rows` are positions in the sample, whose entries are data rows.
    let rows: Vec<usize> = kept.rows.iter().map(|&r| t.sampled[r]).collect();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (f, name) in d.features.iter().enumerate() {
        fields.push(Field::new(name, DataType::Float32, false));
        let v: Float32Array = rows
            .iter()
            .map(|&r| data.table.features[r * width + f])
            .collect();
        arrays.push(Arc::new(v));
    }
    let labels = data.table.labels.as_deref().unwrap_or(&[]);
    if let TaskSpec::Multiclass { classes } = &spec.task {
        fields.push(Field::new(&d.label, DataType::Utf8, false));
        let v: StringArray = rows
            .iter()
            .map(|&r| classes.get(labels[r] as usize).map(String::as_str))
            .collect();
        arrays.push(Arc::new(v));
    } else {
        fields.push(Field::new(&d.label, DataType::Float32, false));
        let v: Float32Array = rows.iter().map(|&r| labels[r]).collect();
        arrays.push(Arc::new(v));
    }
    for ((q, ids), text) in policy.quasi_identifiers.iter().zip(&t.ids).zip(&t.text) {
        let Some(text) = text else { continue };
        fields.push(Field::new(&q.column, DataType::Utf8, false));
        let v: StringArray = kept
            .rows
            .iter()
            .map(|&r| Some(&*text[ids[r] as usize]))
            .collect();
        arrays.push(Arc::new(v));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| failed(&e))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .set_created_by("airlock export".to_owned())
        .build();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, Some(props))
        .map_err(|e| failed(&e))?;
    w.write(&batch).map_err(|e| failed(&e))?;
    w.close().map_err(|e| failed(&e))?;
    Ok(out)
}

/// The pipeline the cloud trains with: the on-prem one with the export as its data (no
/// identifiers, no subgroups: the export holds none raw) and without the sections that
/// name on-prem keys, registries and endpoints.
fn cloud_pipeline(spec: &PipelineSpec) -> Result<String, BurstError> {
    let mut cloud = spec.clone();
    cloud.data.source = PathBuf::from(DATA_FILE);
    cloud.data.format = DataFormat::Parquet;
    cloud.data.identifiers.clear();
    cloud.data.subgroups.clear();
    cloud.data.image_column = None;
    cloud.signing = None;
    cloud.publish = None;
    cloud.deploy = None;
    cloud.burst = None;
    let body = toml::to_string(&cloud)
        .map_err(|e| BurstError::Failed(format!("writing the cloud pipeline: {e}")))?;
    Ok(format!(
        "# The pipeline a cloud burst trains with, written by `airlock export`: the data is\n# the export beside it.\n{body}"
    ))
}

/// L1 and L2 over what leaves: the Parquet file's bytes and the cloud pipeline's, and
/// every generalized cell against every identifier value of the full data.
fn scan(
    spec: &PipelineSpec,
    data: &Dataset,
    t: &Generalized,
    kept: &Kept,
    parquet: &[u8],
    pipeline: &[u8],
    threads: usize,
) -> Result<Vec<ExportScan>, BurstError> {
    let threads = threads.max(1);
    let pii = PiiScanner::new(&spec.leak.mrn_patterns).map_err(BurstError::Failed)?;
    let l1: Vec<_> = pii
        .find_in_bytes_parallel(parquet, threads)
        .into_iter()
        .map(|h| (DATA_FILE, h.kind.name()))
        .chain(
            pii.find(pipeline)
                .into_iter()
                .map(|h| (PIPELINE_FILE, h.kind.name())),
        )
        .collect();
    if !l1.is_empty() {
        let mut kinds: Vec<String> = l1.iter().map(|(f, k)| format!("{k} in {f}")).collect();
        kinds.dedup();
        return Err(BurstError::Refused(format!(
            "L1: {} personal identifier(s) found in the export ({})",
            l1.len(),
            kinds.join(", ")
        )));
    }
    let ids = &spec.data.identifiers;
    let values = &data.identifier_values;
    // What the export holds as text: its generalized cells (distinct), and every window
    // of a value's length inside its text runs. Both are small; the full data's
    // identifier values are then looked up in them, once each.
    let mut cells: HashMap<&str, String> = HashMap::new();
    for (qi, text) in t.text.iter().enumerate() {
        let Some(text) = text else { continue };
        for &r in &kept.rows {
            let v = &*text[t.ids[qi][r] as usize];
            if !v.is_empty() {
                cells.entry(v).or_insert_with(|| t.qi_names[qi].clone());
            }
        }
    }
    let buffers = [(DATA_FILE, parquet), (PIPELINE_FILE, pipeline)];
    let windows = TextWindows::new(values, &buffers);
    let width = ids.len().max(1);
    let mut cell_hits: Vec<String> = Vec::new();
    let mut found: Vec<String> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let (row, col) = (i / width + 1, &ids[i % width]);
        if let Some(qi) = cells.get(v.trim())
            && !cell_hits.contains(qi)
        {
            cell_hits.push(qi.clone());
        }
        if let Some(file) = windows
            .find(v.as_bytes())
            .or_else(|| windows.find(v.trim().as_bytes()))
        {
            found.push(format!("{col} of data row {row} in {file}"));
        }
    }
    if !cell_hits.is_empty() {
        return Err(BurstError::Refused(format!(
            "L2: an identifier value of the full data survives in exported column(s) {}; generalize further",
            cell_hits.join(", ")
        )));
    }
    if !found.is_empty() {
        let n = found.len();
        found.truncate(5);
        return Err(BurstError::Refused(format!(
            "L2: {n} identifier value(s) of the full data found in the export ({}{})",
            found.join(", "),
            if n > 5 { ", ..." } else { "" }
        )));
    }
    Ok(vec![
        ExportScan {
            layer: "L1".to_owned(),
            verdict: Verdict::Pass,
            detail: format!(
                "PII detectors ({}) over {} and {}: {} bytes, nothing found",
                pii.describe().join(", "),
                DATA_FILE,
                PIPELINE_FILE,
                parquet.len() + pipeline.len()
            ),
        },
        ExportScan {
            layer: "L2".to_owned(),
            verdict: Verdict::Pass,
            detail: format!(
                "{} identifier values of {} rows in {} columns: compared exactly with the {} distinct generalized cells, and those of 8 bytes or more with the {} windows of text in what leaves; nothing found",
                values.len(),
                data.rows(),
                ids.len(),
                cells.len(),
                windows.windows()
            ),
        },
    ])
}

/// Every window of what leaves that an identifier value could be: inside the buffers'
/// text runs (valid UTF-8 without control characters: a value is text, so it can only be
/// inside one), of each length an identifier value of at least [`MIN_TEXT`] bytes has. In
/// an export, text runs are short and few (the generalized columns, the pipeline, the
/// file's metadata), so this set is small, and each of the full data's values is looked up
/// in it once: far cheaper than an automaton over millions of values. A value holding a
/// control character (it cannot be inside such a run) is looked for byte by byte.
#[derive(Debug)]
struct TextWindows<'a> {
    windows: HashMap<&'a [u8], &'a str>,
    buffers: &'a [(&'a str, &'a [u8])],
}

/// Shortest identifier value looked for anywhere (shorter ones occur by chance).
const MIN_TEXT: usize = 8;

impl<'a> TextWindows<'a> {
    fn new(values: &[String], buffers: &'a [(&'a str, &'a [u8])]) -> Self {
        let lengths: std::collections::BTreeSet<usize> = values
            .iter()
            .map(String::len)
            .filter(|&l| l >= MIN_TEXT)
            .collect();
        let mut windows = HashMap::new();
        for (file, bytes) in buffers {
            for chunk in bytes.utf8_chunks() {
                for run in chunk.valid().split(|c: char| c.is_control()) {
                    let run = run.as_bytes();
                    for &len in lengths.range(..=run.len()) {
                        for w in run.windows(len) {
                            windows.entry(w).or_insert(*file);
                        }
                    }
                }
            }
        }
        Self { windows, buffers }
    }

    fn windows(&self) -> usize {
        self.windows.len()
    }

    /// The file holding `value`, if any.
    fn find(&self, value: &[u8]) -> Option<&'a str> {
        if value.len() < MIN_TEXT {
            return None;
        }
        if let Some(file) = self.windows.get(value) {
            return Some(file);
        }
        if String::from_utf8_lossy(value).chars().any(char::is_control) {
            return self
                .buffers
                .iter()
                .find(|(_, b)| b.windows(value.len()).any(|w| w == value))
                .map(|(f, _)| *f);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_values_are_found_anywhere_in_text_between_binary_bytes() {
        let values: Vec<String> = [
            "ann@example.org",
            "Ann Smith",
            "bob@example.org",
            "Zoë Brontë",
            "tab\there!",
            "short",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut bytes = vec![0u8, 0xff, 7];
        bytes.extend_from_slice(b"prefix Zo\xc3\xab Bront\xc3\xab suffix");
        bytes.extend_from_slice(&[0x01, 0x9f]);
        bytes.extend_from_slice(b"bob@example.org");
        bytes.extend_from_slice(b"\x00tab\there!\x00short");
        let buffers = [
            ("a", bytes.as_slice()),
            ("b", b"x ann@example.or y".as_slice()),
        ];
        let w = TextWindows::new(&values, &buffers);
        let found: Vec<Option<&str>> = values.iter().map(|v| w.find(v.as_bytes())).collect();
        assert_eq!(
            found,
            vec![None, None, Some("a"), Some("a"), Some("a"), None],
            "bob, Zoë (non-ASCII), the tab value; not a prefix of ann's; never the short one"
        );
    }

    #[test]
    fn generalizations_keep_only_what_the_policy_says() {
        let q =
            |bands: Option<Vec<f64>>,
             prefix: Option<u32>,
             truncate: Option<airlock_schemas::DateTruncation>| QuasiIdentifier {
                column: "c".to_owned(),
                bands,
                prefix,
                truncate,
            };
        let b = q(Some(vec![30.0, 45.0, 60.0]), None, None);
        assert_eq!(generalize_cell(&b, "29").as_deref(), Ok("<30"));
        assert_eq!(generalize_cell(&b, "30").as_deref(), Ok("30-45"));
        assert_eq!(generalize_cell(&b, "60").as_deref(), Ok(">=60"));
        assert!(generalize_cell(&b, "forty").is_err());
        assert!(generalize_cell(&b, "NaN").is_err());
        assert_eq!(
            generalize_cell(&q(None, Some(3), None), "12345").as_deref(),
            Ok("123")
        );
        let m = q(None, None, Some(airlock_schemas::DateTruncation::Month));
        assert_eq!(generalize_cell(&m, "2024-03-17").as_deref(), Ok("2024-03"));
        assert_eq!(
            generalize_cell(&m, "2024-03-17T10:00:00Z").as_deref(),
            Ok("2024-03")
        );
        assert!(generalize_cell(&m, "17/03/2024").is_err());
        let e = generalize_cell(&m, "secret-value").expect_err("not a date");
        assert!(!e.contains("secret"), "an error never holds the value");
    }
}
