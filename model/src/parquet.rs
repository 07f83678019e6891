//! Loading `[data] format = "parquet"`: the columns the pipeline names and no other
//! (column projection), decoded row group by row group in bounded record batches, into the
//! same [`Table`] the CSV reader gives. Errors name the row and the column, never a value.
//!
//! What each role reads (a `Dictionary` column reads as its values' type; a null is an
//! empty cell):
//!
//! - features and banded subgroups: integers (`Int8`..`Int64`, `UInt8`..`UInt64`),
//!   floats (`Float16`, `Float32`, `Float64`), `Boolean` (0 or 1) and decimals
//!   (`Decimal32`, `Decimal64`, `Decimal128`; read through their exact decimal text, as
//!   from a CSV export). A feature must be a finite `f32`, a banded subgroup a finite `f64`.
//!   `Decimal256` (over 38 digits), text, dates and timestamps are refused by type.
//! - the label, as the task says: binary from numbers equal to 0 or 1, booleans, or the
//!   text `0`/`1` (`0.0`/`1.0`); multi-class from text (`Utf8`, `LargeUtf8`, `Utf8View`)
//!   holding a class name, or integers whose decimal text is one; regression from integers,
//!   floats and decimals (finite).
//! - identifiers and subgroups that are not banded: as text, the way a CSV export shows
//!   them: integers in decimal, text as it is, floats in Rust's shortest round-trip form
//!   (`0.5`, `1.0`), booleans `true`/`false`, decimals exactly (`12.50`), `Date32` as
//!   `YYYY-MM-DD`, a null as the empty string. Subgroup names are trimmed, as in a CSV;
//!   identifiers are kept as they are. Timestamps, binary, lists, structs and maps are
//!   refused by type.

use std::borrow::Cow;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use airlock_schemas::{DatasetFile, SubgroupSpec, TaskSpec};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal32Type, Decimal64Type, Decimal128Type, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal32Array, Decimal64Array, Decimal128Array,
    Float16Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use crate::data::{DataError, GroupLoader, LabelColumn, Table, column, label_value};

/// Rows per decoded record batch: what is held in Arrow form at once, per requested column.
const BATCH_ROWS: usize = 8192;

/// Longest reader message kept in a [`DataError::Parquet`] (in characters).
const MAX_MESSAGE: usize = 300;

/// Everything one pass over a Parquet file gives: the table (features, labels, subgroup
/// columns, fingerprint) and the identifier columns as text, row-major
/// (`rows × identifiers.len()`).
///
/// Only the named columns are decoded, a bounded batch of rows at a time; the file's
/// SHA-256 is computed by streaming it first, through the handle the decoder then reads. A
/// column missing from the schema is a [`DataError::MissingColumn`], a column whose type
/// its role cannot be read from a [`DataError::ParquetType`], a bad cell a
/// [`DataError::ParquetValue`] naming its 1-based data row, and a file the reader cannot
/// decode (truncated, corrupt, a codec this build lacks) a [`DataError::Parquet`], even
/// where the decoder would panic. The module documentation lists the types each role reads.
///
/// With no features (the identifiers alone, as the leak checks need them),
/// `fingerprint.rows` counts the rows. Its `sha256` is computed through the open file the
/// decoder then reads (a file replaced by another after opening is not what gets decoded),
/// so a caller checking the file against a record compares it rather than hashing the path
/// a second time; a file rewritten in place while it is read is not detected.
pub fn load_parquet(
    path: &Path,
    features: &[String],
    label: Option<LabelColumn<'_>>,
    subgroups: &[SubgroupSpec],
    identifiers: &[String],
) -> Result<(Table, Vec<String>), DataError> {
    let request = Request {
        features,
        label,
        subgroups,
        identifiers,
    };
    load_batched(path, &request, BATCH_ROWS)
}

/// The columns asked for, by role.
struct Request<'a> {
    features: &'a [String],
    label: Option<LabelColumn<'a>>,
    subgroups: &'a [SubgroupSpec],
    identifiers: &'a [String],
}

/// [`load_parquet`] with `batch_rows` rows per record batch.
fn load_batched(
    path: &Path,
    request: &Request<'_>,
    batch_rows: usize,
) -> Result<(Table, Vec<String>), DataError> {
    let read = |source| DataError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(read)?;
    let sha256 = hex::encode(hasher.finalize());
    // arrow-rs asserts on some inconsistencies of a corrupt file instead of returning an
    // error: a panic while decoding is a malformed file too.
    let decoded = catch_unwind(AssertUnwindSafe(|| decode(path, file, request, batch_rows)))
        .unwrap_or_else(|_| {
            Err(malformed(
                path,
                &"the decoder stopped on an inconsistent file",
            ))
        })?;
    let table = Table {
        feature_names: request.features.to_vec(),
        features: decoded.rows.features,
        labels: decoded.rows.labels,
        fingerprint: DatasetFile {
            path: path.display().to_string(),
            sha256,
            bytes,
            rows: decoded.rows.count,
            columns: decoded.header,
        },
        groups: decoded
            .rows
            .groups
            .into_iter()
            .map(GroupLoader::finish)
            .collect(),
    };
    Ok((table, decoded.rows.identifiers))
}

/// What decoding gives.
struct Decoded {
    header: Vec<String>,
    rows: Rows,
}

/// Read the schema, check the requested columns, then stream their batches.
fn decode(
    path: &Path,
    file: File,
    request: &Request<'_>,
    batch_rows: usize,
) -> Result<Decoded, DataError> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| malformed(path, &e))?;
    let roots = builder.parquet_schema().root_schema().get_fields().len();
    if roots != builder.schema().fields().len() {
        return Err(malformed(
            path,
            &"the Arrow schema does not match the Parquet schema",
        ));
    }
    let plan = Plan::new(path, builder.schema(), request)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), plan.roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| malformed(path, &e))?;
    let mut rows = Rows::new(request);
    for batch in reader {
        let batch = batch.map_err(|e| malformed(path, &e))?;
        rows.add(path, request, &plan, &batch)?;
    }
    if rows.count == 0 {
        return Err(DataError::NoRows {
            path: path.to_owned(),
        });
    }
    Ok(Decoded {
        header: plan.header,
        rows,
    })
}

/// A [`DataError::Parquet`] with the reader's message, control characters dropped and
/// bounded in length.
fn malformed(path: &Path, e: &dyn std::fmt::Display) -> DataError {
    let text = e.to_string();
    let mut message: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE)
        .collect();
    if text.chars().count() > MAX_MESSAGE {
        message.push('…');
    }
    DataError::Parquet {
        path: path.to_owned(),
        message,
    }
}

/// Where each requested column is: its index among the file's top-level columns, and its
/// position in a projected batch.
struct Plan {
    /// The file's top-level column names.
    header: Vec<String>,
    /// The requested top-level columns, sorted, each once (the projection).
    roots: Vec<usize>,
    /// For each top-level column, its position in a projected batch (`usize::MAX` when not
    /// requested).
    position: Vec<usize>,
    features: Vec<usize>,
    label: Option<usize>,
    groups: Vec<usize>,
    identifiers: Vec<usize>,
}

impl Plan {
    /// Find each requested column and check its type against its role.
    fn new(path: &Path, schema: &Schema, request: &Request<'_>) -> Result<Self, DataError> {
        let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if header.is_empty() {
            return Err(DataError::NoRows {
                path: path.to_owned(),
            });
        }
        let find = |name: &str, role: &'static str, want: Want<'_>| {
            let i = column(path, &header, name, role)?;
            check_type(path, name, schema.field(i).data_type(), want)?;
            Ok::<_, DataError>(i)
        };
        let features = request
            .features
            .iter()
            .map(|f| find(f, "feature", Want::Number))
            .collect::<Result<Vec<_>, _>>()?;
        let label = request
            .label
            .map(|l| find(l.column, "label", Want::Label(l.task)))
            .transpose()?;
        let groups = request
            .subgroups
            .iter()
            .map(|g| match g {
                SubgroupSpec::Banded(_) => find(g.column(), "subgroup", Want::Banded),
                SubgroupSpec::Column(_) => find(g.column(), "subgroup", Want::Text("subgroup")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let identifiers = request
            .identifiers
            .iter()
            .map(|c| find(c, "identifier", Want::Text("identifier")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut roots: Vec<usize> = features
            .iter()
            .chain(&label)
            .chain(&groups)
            .chain(&identifiers)
            .copied()
            .collect();
        roots.sort_unstable();
        roots.dedup();
        let mut position = vec![usize::MAX; header.len()];
        for (k, &r) in roots.iter().enumerate() {
            position[r] = k;
        }
        Ok(Self {
            header,
            roots,
            position,
            features,
            label,
            groups,
            identifiers,
        })
    }

    /// Top-level column `root`'s array in a projected `batch`.
    fn array<'b>(
        &self,
        path: &Path,
        batch: &'b RecordBatch,
        root: usize,
    ) -> Result<&'b ArrayRef, DataError> {
        self.position
            .get(root)
            .and_then(|&p| batch.columns().get(p))
            .filter(|_| batch.num_columns() == self.roots.len())
            .ok_or_else(|| malformed(path, &"a record batch does not have the projected columns"))
    }

    /// The arrays of `roots` in `batch`, ready to be read cell by cell.
    fn columns<'b>(
        &self,
        path: &Path,
        batch: &'b RecordBatch,
        roots: &[usize],
    ) -> Result<Vec<Col<'b>>, DataError> {
        roots
            .iter()
            .map(|&r| {
                let array = self.array(path, batch, r)?;
                Col::new(array.as_ref()).ok_or_else(|| DataError::ParquetType {
                    path: path.to_owned(),
                    role: "requested",
                    column: self.header[r].clone(),
                    data_type: array.data_type().to_string(),
                    expected: "the type its schema declares",
                })
            })
            .collect()
    }
}

/// What a role reads a column as.
#[derive(Debug, Clone, Copy)]
enum Want<'a> {
    /// A feature: a number.
    Number,
    /// A banded subgroup: a number.
    Banded,
    /// The label, as the task reads it.
    Label(&'a TaskSpec),
    /// Text (an identifier or a subgroup that is not banded; the role's name).
    Text(&'static str),
}

impl Want<'_> {
    /// The role's name in errors.
    fn role(self) -> &'static str {
        match self {
            Self::Number => "feature",
            Self::Banded => "banded subgroup",
            Self::Label(_) => "label",
            Self::Text(role) => role,
        }
    }

    /// The types the role takes, for [`DataError::ParquetType`].
    fn expected(self) -> &'static str {
        match self {
            Self::Number | Self::Banded => {
                "an integer, floating-point, decimal (up to 38 digits) or boolean column"
            }
            Self::Label(TaskSpec::Binary) => {
                "a numeric or boolean column holding 0 or 1, or text \"0\"/\"1\""
            }
            Self::Label(TaskSpec::Multiclass { .. }) => {
                "text holding class names, or integers whose decimal text is a class name"
            }
            Self::Label(TaskSpec::Regression) => {
                "an integer, floating-point or decimal (up to 38 digits) column"
            }
            Self::Text(_) => "text, an integer, floating-point, decimal, boolean or date column",
        }
    }

    /// Whether the role reads a column of type `t`.
    fn accepts(self, t: &DataType) -> bool {
        if let DataType::Dictionary(_, values) = t {
            return self.accepts(values);
        }
        let integer = t.is_integer();
        let fractional = matches!(
            t,
            DataType::Float16
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
        );
        let boolean = matches!(t, DataType::Boolean);
        let text = matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        match self {
            Self::Number | Self::Banded => integer || fractional || boolean,
            Self::Label(TaskSpec::Binary) => integer || fractional || boolean || text,
            Self::Label(TaskSpec::Multiclass { .. }) => integer || text,
            Self::Label(TaskSpec::Regression) => integer || fractional,
            Self::Text(_) => {
                integer || fractional || boolean || text || matches!(t, DataType::Date32)
            }
        }
    }
}

/// Refuse column `name` of type `t` when its role cannot read it.
fn check_type(path: &Path, name: &str, t: &DataType, want: Want<'_>) -> Result<(), DataError> {
    if want.accepts(t) {
        return Ok(());
    }
    Err(DataError::ParquetType {
        path: path.to_owned(),
        role: want.role(),
        column: name.to_owned(),
        data_type: t.to_string(),
        expected: want.expected(),
    })
}

/// The rows read so far.
struct Rows {
    count: u64,
    features: Vec<f32>,
    labels: Option<Vec<f32>>,
    groups: Vec<GroupLoader>,
    identifiers: Vec<String>,
}

impl Rows {
    fn new(request: &Request<'_>) -> Self {
        Self {
            count: 0,
            features: Vec::new(),
            labels: request.label.map(|_| Vec::new()),
            groups: request.subgroups.iter().map(GroupLoader::new).collect(),
            identifiers: Vec::new(),
        }
    }

    /// Read one record batch, row by row (so that the first bad cell reported is the first
    /// in row-major order, as in a CSV).
    fn add(
        &mut self,
        path: &Path,
        request: &Request<'_>,
        plan: &Plan,
        batch: &RecordBatch,
    ) -> Result<(), DataError> {
        let features = plan.columns(path, batch, &plan.features)?;
        let label = match plan.label {
            Some(r) => plan.columns(path, batch, &[r])?.pop(),
            None => None,
        };
        let groups = plan.columns(path, batch, &plan.groups)?;
        let identifiers = plan.columns(path, batch, &plan.identifiers)?;
        self.features.reserve(batch.num_rows() * features.len());
        self.identifiers
            .reserve(batch.num_rows() * identifiers.len());
        for r in 0..batch.num_rows() {
            self.count += 1;
            let row = self.count;
            let bad =
                |role: &'static str, column: &str, problem: &'static str| DataError::ParquetValue {
                    path: path.to_owned(),
                    row,
                    role,
                    column: column.to_owned(),
                    problem,
                };
            for (col, name) in features.iter().zip(request.features) {
                let v = feature(col.cell(r)).map_err(|p| bad("feature", name, p))?;
                self.features.push(v);
            }
            if let (Some(col), Some(l), Some(labels)) = (&label, request.label, &mut self.labels) {
                let v = label_of(l.task, col.cell(r))
                    .ok_or_else(|| bad("label", l.column, label_problem(l.task)))?;
                labels.push(v);
            }
            for ((col, g), spec) in groups.iter().zip(&mut self.groups).zip(request.subgroups) {
                push_group(g, col.cell(r)).map_err(|(role, p)| bad(role, spec.column(), p))?;
            }
            self.identifiers
                .extend(identifiers.iter().map(|c| text(c.cell(r)).into_owned()));
        }
        Ok(())
    }
}

/// Add a cell to a subgroup column: a number to a banded one, its trimmed text to another.
fn push_group(g: &mut GroupLoader, cell: Cell<'_>) -> Result<(), (&'static str, &'static str)> {
    if g.banded() {
        let v = number(cell).map_err(|p| ("banded subgroup", p))?;
        g.push_number(v).map_err(|p| ("banded subgroup", p))
    } else {
        g.push(text(cell).trim()).map_err(|p| ("subgroup", p))
    }
}

/// One cell of a column, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Float32(f32),
    Bool(bool),
    Text(&'a str),
    /// Unscaled value and scale.
    Decimal(i128, i8),
    /// Days since 1970-01-01.
    Date(i32),
}

/// A cell as a finite number: `empty`, `not a number` or `not finite` otherwise.
fn number(cell: Cell<'_>) -> Result<f64, &'static str> {
    let v = match cell {
        Cell::Null => return Err("empty"),
        Cell::Int(i) => i as f64,
        Cell::UInt(u) => u as f64,
        Cell::Float(f) => f,
        Cell::Float32(f) => f64::from(f),
        Cell::Bool(b) => f64::from(u8::from(b)),
        // Through the exact decimal text, as a CSV export of the column would be parsed.
        Cell::Decimal(..) => text(cell).parse().map_err(|_| "not a number")?,
        Cell::Text(s) if s.trim().is_empty() => return Err("empty"),
        Cell::Text(s) => s.trim().parse().map_err(|_| "not a number")?,
        Cell::Date(_) => return Err("not a number"),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err("not finite")
    }
}

/// A cell as a feature: a number that is finite as an `f32` too.
fn feature(cell: Cell<'_>) -> Result<f32, &'static str> {
    let v = number(cell)? as f32;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("not finite")
    }
}

/// A label cell as the task reads it (see the module documentation), or `None`.
fn label_of(task: &TaskSpec, cell: Cell<'_>) -> Option<f32> {
    match (task, cell) {
        (_, Cell::Null) => None,
        (_, Cell::Text(s)) => label_value(task, s.trim()),
        (TaskSpec::Binary, c) => match number(c) {
            Ok(0.0) => Some(0.0),
            Ok(1.0) => Some(1.0),
            _ => None,
        },
        (TaskSpec::Multiclass { .. }, c @ (Cell::Int(_) | Cell::UInt(_))) => {
            label_value(task, &text(c))
        }
        (TaskSpec::Multiclass { .. }, _) => None,
        (TaskSpec::Regression, c) => feature(c).ok(),
    }
}

/// What a bad label cell is missing, for [`DataError::ParquetValue`].
fn label_problem(task: &TaskSpec) -> &'static str {
    match task {
        TaskSpec::Binary => "expected 0 or 1",
        TaskSpec::Multiclass { .. } => "expected one of the names in task.classes",
        TaskSpec::Regression => "expected a finite number",
    }
}

/// A cell as a CSV export would show it (see the module documentation).
fn text(cell: Cell<'_>) -> Cow<'_, str> {
    match cell {
        Cell::Null => Cow::Borrowed(""),
        Cell::Text(s) => Cow::Borrowed(s),
        Cell::Int(i) => Cow::Owned(i.to_string()),
        Cell::UInt(u) => Cow::Owned(u.to_string()),
        Cell::Float(f) => Cow::Owned(format!("{f:?}")),
        Cell::Float32(f) => Cow::Owned(format!("{f:?}")),
        Cell::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
        Cell::Decimal(unscaled, scale) => Cow::Owned(decimal_text(unscaled, scale)),
        Cell::Date(days) => Cow::Owned(date_text(days)),
    }
}

/// The exact decimal text of `unscaled × 10^-scale`: `12.50`, `-0.05`, `1200`.
fn decimal_text(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = if unscaled == 0 {
            0
        } else {
            usize::from(scale.unsigned_abs())
        };
        return format!("{unscaled}{}", "0".repeat(zeros));
    }
    let scale = usize::from(scale.unsigned_abs());
    let digits = format!("{:0>width$}", unscaled.unsigned_abs(), width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`).
fn date_text(days: i32) -> String {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let sign = if year < 0 { "-" } else { "" };
    format!("{sign}{:04}-{month:02}-{day:02}", year.abs())
}

/// A column of a batch, read cell by cell: its values, and the dictionary keys when it is
/// dictionary-encoded.
struct Col<'a> {
    /// The column as the batch holds it (its nulls, or a dictionary's null keys).
    array: &'a dyn Array,
    /// The values: the array itself, or a dictionary's values (`None` for a dictionary with
    /// no values: every row is null).
    values: Option<(&'a dyn Array, Values<'a>)>,
    /// A dictionary's keys, each in bounds of its values.
    keys: Option<Vec<usize>>,
}

impl<'a> Col<'a> {
    /// `None` when the array's type is not one any role reads.
    fn new(array: &'a dyn Array) -> Option<Self> {
        let Some(dict) = array.as_any_dictionary_opt() else {
            return Some(Self {
                array,
                values: Some((array, Values::new(array)?)),
                keys: None,
            });
        };
        let values = dict.values().as_ref();
        if values.is_empty() {
            return Some(Self {
                array,
                values: None,
                keys: None,
            });
        }
        Some(Self {
            array,
            values: Some((values, Values::new(values)?)),
            keys: Some(dict.normalized_keys()),
        })
    }

    /// Row `row`'s cell.
    fn cell(&self, row: usize) -> Cell<'a> {
        if self.array.is_null(row) {
            return Cell::Null;
        }
        let Some((array, values)) = self.values else {
            return Cell::Null;
        };
        let i = self.keys.as_ref().map_or(row, |k| k[row]);
        if self.keys.is_some() && array.is_null(i) {
            return Cell::Null;
        }
        values.cell(i)
    }
}

/// A typed array, resolved once per batch so that reading a cell is one `match`.
#[derive(Debug, Clone, Copy)]
enum Values<'a> {
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F16(&'a Float16Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    D32(&'a Decimal32Array, i8),
    D64(&'a Decimal64Array, i8),
    D128(&'a Decimal128Array, i8),
    Date(&'a Date32Array),
}

impl<'a> Values<'a> {
    /// `None` when the array's type is not one any role reads.
    fn new(a: &'a dyn Array) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Int8 => Self::I8(a.as_primitive_opt::<Int8Type>()?),
            DataType::Int16 => Self::I16(a.as_primitive_opt::<Int16Type>()?),
            DataType::Int32 => Self::I32(a.as_primitive_opt::<Int32Type>()?),
            DataType::Int64 => Self::I64(a.as_primitive_opt::<Int64Type>()?),
            DataType::UInt8 => Self::U8(a.as_primitive_opt::<UInt8Type>()?),
            DataType::UInt16 => Self::U16(a.as_primitive_opt::<UInt16Type>()?),
            DataType::UInt32 => Self::U32(a.as_primitive_opt::<UInt32Type>()?),
            DataType::UInt64 => Self::U64(a.as_primitive_opt::<UInt64Type>()?),
            DataType::Float16 => Self::F16(a.as_primitive_opt::<Float16Type>()?),
            DataType::Float32 => Self::F32(a.as_primitive_opt::<Float32Type>()?),
            DataType::Float64 => Self::F64(a.as_primitive_opt::<Float64Type>()?),
            DataType::Boolean => Self::Bool(a.as_boolean_opt()?),
            DataType::Utf8 => Self::Utf8(a.as_string_opt::<i32>()?),
            DataType::LargeUtf8 => Self::LargeUtf8(a.as_string_opt::<i64>()?),
            DataType::Utf8View => Self::Utf8View(a.as_string_view_opt()?),
            DataType::Decimal32(_, s) => Self::D32(a.as_primitive_opt::<Decimal32Type>()?, *s),
            DataType::Decimal64(_, s) => Self::D64(a.as_primitive_opt::<Decimal64Type>()?, *s),
            DataType::Decimal128(_, s) => Self::D128(a.as_primitive_opt::<Decimal128Type>()?, *s),
            DataType::Date32 => Self::Date(a.as_primitive_opt::<Date32Type>()?),
            _ => return None,
        })
    }

    /// The value at `i` (not null; `i` in bounds).
    fn cell(self, i: usize) -> Cell<'a> {
        match self {
            Self::I8(a) => Cell::Int(a.value(i).into()),
            Self::I16(a) => Cell::Int(a.value(i).into()),
            Self::I32(a) => Cell::Int(a.value(i).into()),
            Self::I64(a) => Cell::Int(a.value(i)),
            Self::U8(a) => Cell::UInt(a.value(i).into()),
            Self::U16(a) => Cell::UInt(a.value(i).into()),
            Self::U32(a) => Cell::UInt(a.value(i).into()),
            Self::U64(a) => Cell::UInt(a.value(i)),
            Self::F16(a) => Cell::Float32(a.value(i).to_f32()),
            Self::F32(a) => Cell::Float32(a.value(i)),
            Self::F64(a) => Cell::Float(a.value(i)),
            Self::Bool(a) => Cell::Bool(a.value(i)),
            Self::Utf8(a) => Cell::Text(a.value(i)),
            Self::LargeUtf8(a) => Cell::Text(a.value(i)),
            Self::Utf8View(a) => Cell::Text(a.value(i)),
            Self::D32(a, s) => Cell::Decimal(a.value(i).into(), s),
            Self::D64(a, s) => Cell::Decimal(a.value(i).into(), s),
            Self::D128(a, s) => Cell::Decimal(a.value(i), s),
            Self::Date(a) => Cell::Date(a.value(i)),
        }
    }
}

#[cfg(test)]
mod tests;
