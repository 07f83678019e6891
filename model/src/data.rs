//! Loading the on-prem CSV: typed errors that name the row and column, never the value
//! (a bad cell may hold an identifier, and error messages end up in CI logs).

use std::path::{Path, PathBuf};

use airlock_schemas::{DatasetFile, SubgroupSpec, TaskSpec};
use sha2::{Digest, Sha256};

/// Why a data file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read data file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CSV structure is broken (ragged row, bad UTF-8...).
    #[error("malformed CSV in {} at line {line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What the CSV parser said (without the cell's content).
        message: String,
    },
    /// A column the pipeline needs is not in the header.
    #[error("data file {} has no {role} column {column:?} (header has: {header})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// `feature`, `label`, `subgroup` or `identifier`.
        role: &'static str,
        /// The missing column.
        column: String,
        /// The header's column names, comma-separated.
        header: String,
    },
    /// A feature cell is empty, not a number, or not finite.
    #[error("data file {}: row {row} (line {line}), column {column:?}: {problem}", path.display())]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// 1-based data row (the header is not a row).
        row: u64,
        /// 1-based line in the file.
        line: u64,
        /// Column name.
        column: String,
        /// `empty`, `not a number` or `not finite`.
        problem: &'static str,
    },
    /// A label cell is not what the task takes (never the cell's value: it may be an
    /// identifier).
    #[error("data file {}: row {row} (line {line}), label column {column:?}: expected {expected}", path.display())]
    BadLabel {
        /// What the task takes: `0 or 1`, `one of task.classes`, `a finite number`.
        expected: &'static str,
        /// The file.
        path: PathBuf,
        /// 1-based data row.
        row: u64,
        /// 1-based line in the file.
        line: u64,
        /// Column name.
        column: String,
    },
    /// A banded subgroup cell is empty, not a number, or not finite.
    #[error("data file {}: row {row} (line {line}), subgroup column {column:?}: {problem} (a banded subgroup needs numbers)", path.display())]
    BadGroupValue {
        /// The file.
        path: PathBuf,
        /// 1-based data row.
        row: u64,
        /// 1-based line in the file.
        line: u64,
        /// Column name.
        column: String,
        /// `empty`, `not a number` or `not finite`.
        problem: &'static str,
    },
    /// The format is not readable by this build.
    #[error("data file {}: format {format:?} is not supported by this build", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format.
        format: &'static str,
    },
    /// The file has a header but no data rows (or is empty).
    #[error("data file {} has no data rows", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// A Parquet file the reader cannot decode: truncated, corrupt, or written with a codec
    /// or encoding this build does not read.
    #[error("malformed Parquet file {}: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader said (it describes the file's structure, not its cells),
        /// control characters escaped and bounded in length.
        message: String,
    },
    /// A Parquet column the pipeline needs has a type its role cannot be read from.
    #[error("data file {}: {role} column {column:?} has type {data_type}; a {role} column must be {expected}", path.display())]
    ParquetType {
        /// The file.
        path: PathBuf,
        /// `feature`, `label`, `subgroup`, `banded subgroup` or `identifier`.
        role: &'static str,
        /// Column name.
        column: String,
        /// The column's Arrow type, as the Parquet schema gives it.
        data_type: String,
        /// The types the role takes.
        expected: &'static str,
    },
    /// A Parquet cell is not what its column's role takes (never the cell's value: it may
    /// be an identifier). Parquet has no lines: the row alone places it.
    #[error("data file {}: row {row}, {role} column {column:?}: {problem}", path.display())]
    ParquetValue {
        /// The file.
        path: PathBuf,
        /// 1-based data row, counted across row groups.
        row: u64,
        /// `feature`, `label`, `subgroup` or `banded subgroup`.
        role: &'static str,
        /// Column name.
        column: String,
        /// `empty`, `not a number`, `not finite`, or what a label must be (`expected 0 or
        /// 1`...).
        problem: &'static str,
    },
    /// An image named by a manifest row was refused: its name leaves the manifest's folder,
    /// it is missing, a link or not a regular file, too large, not PNG or JPEG, malformed,
    /// or not the declared size or channels. Names the row and the image's file name (the
    /// site's file naming, from the image column; no other cell of the row is shown).
    #[error("data file {}: row {row} (line {line}), image {file:?}: {problem}", path.display())]
    Image {
        /// The manifest.
        path: PathBuf,
        /// 1-based data row of the manifest.
        row: u64,
        /// 1-based line in the manifest.
        line: u64,
        /// The image's file name, as the manifest's image column gives it (trimmed).
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A manifest lists more images than are loaded into memory.
    #[error("data file {} lists {rows} images: {limit}", path.display())]
    TooManyImages {
        /// The manifest.
        path: PathBuf,
        /// Its data rows.
        rows: u64,
        /// The limit it is over.
        limit: String,
    },
    /// The declared image size is not one images are loaded at.
    #[error(
        "images are loaded at 1 or 3 channels and 1 to {max} pixels a side, not {channels}×{height}×{width}",
        max = airlock_schemas::MAX_IMAGE_SIDE
    )]
    ImageShape {
        /// Declared channels.
        channels: usize,
        /// Declared height.
        height: usize,
        /// Declared width.
        width: usize,
    },
}

impl DataError {
    /// What kind of failure this is: always [`airlock_schemas::ErrorKind::BadInput`] (a
    /// data file that cannot be read is the operator's to fix, like a malformed one).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Read { .. }
            | Self::Csv { .. }
            | Self::MissingColumn { .. }
            | Self::NotNumeric { .. }
            | Self::BadLabel { .. }
            | Self::BadGroupValue { .. }
            | Self::Unsupported { .. }
            | Self::NoRows { .. }
            | Self::Parquet { .. }
            | Self::ParquetType { .. }
            | Self::ParquetValue { .. }
            | Self::Image { .. }
            | Self::TooManyImages { .. }
            | Self::ImageShape { .. } => airlock_schemas::ErrorKind::BadInput,
        }
    }
}

/// Features (row-major `rows × features.len()`) and optional labels read from a CSV or a
/// Parquet file.
#[derive(Debug, Clone)]
pub struct Table {
    /// Feature column names, in model input order.
    pub feature_names: Vec<String>,
    /// Row-major feature values.
    pub features: Vec<f32>,
    /// Labels, when a label column was asked for: 0/1 (binary), the class's index in
    /// `task.classes` (multi-class) or the value (regression).
    pub labels: Option<Vec<f32>>,
    /// Digest, size, row count and header of the file.
    pub fingerprint: DatasetFile,
    /// The `[data] subgroups` columns asked for, in the order asked.
    pub groups: Vec<GroupColumn>,
}

/// A subgroup column's values, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupColumn {
    /// The column's name.
    pub name: String,
    /// Its values.
    pub values: GroupValues,
}

/// The values of a subgroup column.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupValues {
    /// A banded column: each row's number.
    Numeric(Vec<f64>),
    /// A column whose values are the groups: each row's index into `values` (each
    /// distinct trimmed cell once, in order of first appearance).
    Categorical {
        /// The distinct values.
        values: Vec<String>,
        /// Each row's value, as an index into `values`.
        ids: Vec<u32>,
    },
}

impl Table {
    /// Number of data rows (with no feature columns, as for images, the file's row count).
    pub fn rows(&self) -> usize {
        if self.feature_names.is_empty() {
            return usize::try_from(self.fingerprint.rows).unwrap_or(usize::MAX);
        }
        self.features.len() / self.feature_names.len()
    }

    /// Width of a row.
    pub fn width(&self) -> usize {
        self.feature_names.len()
    }
}

/// The label column and the task that says how its cells read.
#[derive(Debug, Clone, Copy)]
pub struct LabelColumn<'a> {
    /// Column name.
    pub column: &'a str,
    /// The task.
    pub task: &'a TaskSpec,
}

/// Read `path`, hash it, and parse the named feature columns (and label, if given).
pub fn load_table(
    path: &Path,
    features: &[String],
    label: Option<LabelColumn<'_>>,
) -> Result<Table, DataError> {
    load_table_with_groups(path, features, label, &[])
}

/// [`load_table`], and the `[data] subgroups` columns too: a banded column's cells must
/// be numbers, another column's trimmed cells are kept as they are (interned). A subgroup
/// column missing from the header is refused.
pub fn load_table_with_groups(
    path: &Path,
    features: &[String],
    label: Option<LabelColumn<'_>>,
    subgroups: &[SubgroupSpec],
) -> Result<Table, DataError> {
    load_csv(path, features, label, subgroups, &[]).map(|read| read.table)
}

/// A column read as text, untouched (not trimmed), with its role for
/// [`DataError::MissingColumn`]: an identifier, an image manifest's file column.
pub(crate) struct TextColumn<'a> {
    /// Column name.
    pub name: &'a str,
    /// `identifier`, `image` ...
    pub role: &'static str,
}

/// What [`load_csv`] read.
pub(crate) struct CsvRead {
    /// Features, labels, subgroups and the file's fingerprint.
    pub table: Table,
    /// The text columns' cells exactly as the file holds them, row-major.
    pub text: Vec<String>,
    /// Each data row's 1-based line in the file (only when text columns were asked for).
    pub lines: Vec<u64>,
}

/// [`load_table_with_groups`], and the `text` columns' cells exactly as the file holds
/// them, row-major (`rows × text.len()`), so that a manifest is read once.
pub(crate) fn load_csv(
    path: &Path,
    features: &[String],
    label: Option<LabelColumn<'_>>,
    subgroups: &[SubgroupSpec],
    text: &[TextColumn<'_>],
) -> Result<CsvRead, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Read {
        path: path.to_owned(),
        source,
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes.as_slice());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => return Err(csv_error(path, &e)),
    };
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(DataError::NoRows {
            path: path.to_owned(),
        });
    }
    let mut rows = RowReader::new(path, &header, features, label, subgroups, text)?;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => rows.push(&record)?,
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, &e)),
        }
    }
    if rows.row == 0 {
        return Err(DataError::NoRows {
            path: path.to_owned(),
        });
    }
    let fingerprint = DatasetFile {
        path: path.display().to_string(),
        sha256,
        bytes: bytes.len() as u64,
        rows: rows.row,
        columns: header.clone(),
    };
    let table = Table {
        feature_names: features.to_vec(),
        features: rows.values,
        labels: rows.labels,
        fingerprint,
        groups: rows.groups.into_iter().map(|(_, g)| g.finish()).collect(),
    };
    Ok(CsvRead {
        table,
        text: rows.text,
        lines: rows.lines,
    })
}

/// The columns asked for, found in the header, and what has been read of them so far.
struct RowReader<'a> {
    path: &'a Path,
    header: &'a [String],
    features: &'a [String],
    feature_idx: Vec<usize>,
    label: Option<(usize, LabelColumn<'a>)>,
    groups: Vec<(usize, GroupLoader)>,
    text_idx: Vec<usize>,
    values: Vec<f32>,
    labels: Option<Vec<f32>>,
    text: Vec<String>,
    lines: Vec<u64>,
    /// Data rows read.
    row: u64,
}

impl<'a> RowReader<'a> {
    /// Find every column asked for in `header` (a missing one is refused, by role).
    fn new(
        path: &'a Path,
        header: &'a [String],
        features: &'a [String],
        label: Option<LabelColumn<'a>>,
        subgroups: &[SubgroupSpec],
        text: &[TextColumn<'_>],
    ) -> Result<Self, DataError> {
        let find = |name: &str, role: &'static str| column(path, header, name, role);
        let feature_idx = features
            .iter()
            .map(|f| find(f, "feature"))
            .collect::<Result<Vec<_>, _>>()?;
        let label = label
            .map(|l| Ok::<_, DataError>((find(l.column, "label")?, l)))
            .transpose()?;
        let groups = subgroups
            .iter()
            .map(|g| Ok((find(g.column(), "subgroup")?, GroupLoader::new(g))))
            .collect::<Result<Vec<_>, DataError>>()?;
        let text_idx = text
            .iter()
            .map(|t| find(t.name, t.role))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path,
            header,
            features,
            feature_idx,
            labels: label.map(|_| Vec::new()),
            label,
            groups,
            text_idx,
            values: Vec::new(),
            text: Vec::new(),
            lines: Vec::new(),
            row: 0,
        })
    }

    /// Read one data row's cells.
    fn push(&mut self, record: &csv::StringRecord) -> Result<(), DataError> {
        self.row += 1;
        let (path, row) = (self.path, self.row);
        let line = record.position().map_or(row + 1, csv::Position::line);
        for (&i, name) in self.feature_idx.iter().zip(self.features) {
            match feature_value(record.get(i).unwrap_or("").trim()) {
                Ok(v) => self.values.push(v),
                Err(problem) => {
                    return Err(DataError::NotNumeric {
                        path: path.to_owned(),
                        row,
                        line,
                        column: name.clone(),
                        problem,
                    });
                }
            }
        }
        if let (Some((i, l)), Some(labels)) = (self.label, self.labels.as_mut()) {
            let Some(v) = label_value(l.task, record.get(i).unwrap_or("").trim()) else {
                return Err(DataError::BadLabel {
                    expected: label_expectation(l.task),
                    path: path.to_owned(),
                    row,
                    line,
                    column: self.header[i].clone(),
                });
            };
            labels.push(v);
        }
        for (i, g) in &mut self.groups {
            g.push(record.get(*i).unwrap_or("").trim())
                .map_err(|problem| DataError::BadGroupValue {
                    path: path.to_owned(),
                    row,
                    line,
                    column: self.header[*i].clone(),
                    problem,
                })?;
        }
        if !self.text_idx.is_empty() {
            self.text.extend(
                self.text_idx
                    .iter()
                    .map(|&i| record.get(i).unwrap_or("").to_owned()),
            );
            self.lines.push(line);
        }
        Ok(())
    }
}

/// Collects one subgroup column while the rows are read.
pub(crate) struct GroupLoader {
    name: String,
    numeric: Option<Vec<f64>>,
    index: std::collections::HashMap<String, u32>,
    values: Vec<String>,
    ids: Vec<u32>,
}

impl GroupLoader {
    pub(crate) fn new(spec: &SubgroupSpec) -> Self {
        Self {
            name: spec.column().to_owned(),
            numeric: matches!(spec, SubgroupSpec::Banded(_)).then(Vec::new),
            index: std::collections::HashMap::new(),
            values: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// Whether the column is banded (its cells are numbers).
    pub(crate) fn banded(&self) -> bool {
        self.numeric.is_some()
    }

    /// A banded column's next value, already a finite number (a Parquet cell); refused for
    /// a column that is not banded (its groups are names).
    pub(crate) fn push_number(&mut self, v: f64) -> Result<(), &'static str> {
        let n = self.numeric.as_mut().ok_or("not a banded subgroup")?;
        n.push(v);
        Ok(())
    }

    /// The next cell (trimmed): a number for a banded column, else a group's name.
    pub(crate) fn push(&mut self, cell: &str) -> Result<(), &'static str> {
        if let Some(n) = &mut self.numeric {
            // Parsed as f64 (not through f32), so a value on a band edge lands in its band.
            n.push(match cell.parse::<f64>() {
                _ if cell.is_empty() => return Err("empty"),
                Ok(v) if v.is_finite() => v,
                Ok(_) => return Err("not finite"),
                Err(_) => return Err("not a number"),
            });
            return Ok(());
        }
        let id = match self.index.get(cell) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.values.len()).map_err(|_| "too many values")?;
                self.index.insert(cell.to_owned(), id);
                self.values.push(cell.to_owned());
                id
            }
        };
        self.ids.push(id);
        Ok(())
    }

    pub(crate) fn finish(self) -> GroupColumn {
        GroupColumn {
            name: self.name,
            values: match self.numeric {
                Some(n) => GroupValues::Numeric(n),
                None => GroupValues::Categorical {
                    values: self.values,
                    ids: self.ids,
                },
            },
        }
    }
}

/// A CSV error as a [`DataError::Csv`]: its line and a message that names no cell content.
pub(crate) fn csv_error(path: &Path, e: &csv::Error) -> DataError {
    let line = e.position().map_or(0, csv::Position::line);
    // The csv crate's messages describe structure (field counts, UTF-8 positions),
    // not cell contents, so they are safe to show.
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields, found {len}")
        }
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_owned(),
        _ => e.to_string(),
    };
    DataError::Csv {
        path: path.to_owned(),
        line,
        message,
    }
}

/// The index of column `name` in `header`, or a [`DataError::MissingColumn`] for `role`.
pub(crate) fn column(
    path: &Path,
    header: &[String],
    name: &str,
    role: &'static str,
) -> Result<usize, DataError> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| DataError::MissingColumn {
            path: path.to_owned(),
            role,
            column: name.to_owned(),
            header: header.join(", "),
        })
}

/// A feature cell (trimmed) as a finite `f32`, or what is wrong with it: `empty`,
/// `not finite`, `not a number`.
fn feature_value(cell: &str) -> Result<f32, &'static str> {
    if cell.is_empty() {
        return Err("empty");
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() && (v as f32).is_finite() => Ok(v as f32),
        Ok(_) => Err("not finite"),
        Err(_) => Err("not a number"),
    }
}

/// A label cell (trimmed) as the task reads it: `0`/`0.0` or `1`/`1.0` (binary), the
/// index of a class name (multi-class), a finite number (regression); else `None`.
pub fn label_value(task: &TaskSpec, cell: &str) -> Option<f32> {
    match task {
        TaskSpec::Binary => match cell {
            "0" | "0.0" => Some(0.0),
            "1" | "1.0" => Some(1.0),
            _ => None,
        },
        TaskSpec::Multiclass { classes } => {
            classes.iter().position(|c| c == cell).map(|i| i as f32)
        }
        TaskSpec::Regression => feature_value(cell).ok(),
    }
}

/// What a label cell must be, for [`DataError::BadLabel`].
pub fn label_expectation(task: &TaskSpec) -> &'static str {
    match task {
        TaskSpec::Binary => "0 or 1",
        TaskSpec::Multiclass { .. } => "one of the names in task.classes",
        TaskSpec::Regression => "a finite number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINARY: TaskSpec = TaskSpec::Binary;

    fn load(text: &str, label: Option<&str>) -> Result<Table, DataError> {
        load_task(text, label, &BINARY)
    }

    fn load_task(text: &str, label: Option<&str>, task: &TaskSpec) -> Result<Table, DataError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d.csv");
        std::fs::write(&p, text).expect("write");
        let label = label.map(|column| LabelColumn { column, task });
        load_table(&p, &["a".into(), "b".into()], label)
    }

    #[test]
    fn parses_features_and_labels() {
        let t = load("id,a,b,y\nx,1,2.5,0\nz,-3,4e2,1\n", Some("y")).expect("ok");
        assert_eq!(t.features, vec![1.0, 2.5, -3.0, 400.0]);
        assert_eq!(t.labels, Some(vec![0.0, 1.0]));
        assert_eq!(t.rows(), 2);
        assert_eq!(t.fingerprint.rows, 2);
        assert_eq!(t.fingerprint.columns, ["id", "a", "b", "y"]);
    }

    #[test]
    fn bad_cell_names_row_and_column_but_not_value() {
        let err = load("a,b,y\n1,2,0\n1,SECRET-VALUE,1\n", Some("y")).expect_err("bad");
        let msg = err.to_string();
        assert!(
            msg.contains("row 2") && msg.contains("line 3") && msg.contains("\"b\""),
            "{msg}"
        );
        assert!(!msg.contains("SECRET"), "{msg}");
    }

    #[test]
    fn nan_and_empty_are_refused() {
        assert!(matches!(
            load("a,b\n1,NaN\n", None),
            Err(DataError::NotNumeric {
                problem: "not finite",
                ..
            })
        ));
        assert!(matches!(
            load("a,b\n1,\n", None),
            Err(DataError::NotNumeric {
                problem: "empty",
                ..
            })
        ));
    }

    #[test]
    fn labels_read_as_the_task_says() {
        let classes = TaskSpec::Multiclass {
            classes: vec!["clear".into(), "nodule".into(), "mass".into()],
        };
        let t = load_task("a,b,y\n1,2,mass\n1,2,clear\n", Some("y"), &classes).expect("ok");
        assert_eq!(t.labels, Some(vec![2.0, 0.0]));
        let err = load_task("a,b,y\n1,2,SECRET\n", Some("y"), &classes).expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("one of the names in task.classes"), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
        let t = load_task("a,b,y\n1,2,-3.5\n", Some("y"), &TaskSpec::Regression).expect("ok");
        assert_eq!(t.labels, Some(vec![-3.5]));
        let err = load_task("a,b,y\n1,2,inf\n", Some("y"), &TaskSpec::Regression);
        assert!(
            err.expect_err("inf")
                .to_string()
                .contains("a finite number")
        );
    }

    #[test]
    fn label_must_be_binary() {
        assert!(matches!(
            load("a,b,y\n1,2,2\n", Some("y")),
            Err(DataError::BadLabel { row: 1, .. })
        ));
    }

    #[test]
    fn header_only_and_empty_files_have_no_rows() {
        assert!(matches!(
            load("a,b,y\n", Some("y")),
            Err(DataError::NoRows { .. })
        ));
        assert!(matches!(load("", Some("y")), Err(DataError::NoRows { .. })));
    }

    #[test]
    fn subgroup_columns_are_loaded_and_checked() {
        use airlock_schemas::BandedSubgroup;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d.csv");
        let groups = [
            SubgroupSpec::Banded(BandedSubgroup {
                column: "age".into(),
                bands: vec![30.0],
            }),
            SubgroupSpec::Column("site".into()),
        ];
        let load = |text: &str, g: &[SubgroupSpec]| {
            std::fs::write(&p, text).expect("write");
            load_table_with_groups(
                &p,
                &["a".into(), "b".into()],
                Some(LabelColumn {
                    column: "y",
                    task: &BINARY,
                }),
                g,
            )
        };
        let t = load(
            "a,b,y,age,site\n1,2,0,34,x\n1,2,1, 0.7 ,\n1,2,1,45,x\n",
            &groups,
        )
        .expect("ok");
        assert_eq!(
            t.groups[0].values,
            GroupValues::Numeric(vec![34.0, 0.7, 45.0])
        );
        assert_eq!(
            t.groups[1].values,
            GroupValues::Categorical {
                values: vec!["x".into(), String::new()],
                ids: vec![0, 1, 0],
            }
        );
        let err = load("a,b,y,age,site\n1,2,0,SECRET,x\n", &groups).expect_err("not numeric");
        assert!(
            matches!(
                err,
                DataError::BadGroupValue {
                    row: 1,
                    problem: "not a number",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("SECRET"));
        let err = load("a,b,y,age\n1,2,0,3\n", &groups).expect_err("no site");
        assert!(
            err.to_string().contains("no subgroup column \"site\""),
            "{err}"
        );
    }

    #[test]
    fn ragged_rows_are_refused() {
        assert!(matches!(
            load("a,b\n1,2,3\n", None),
            Err(DataError::Csv { line: 2, .. })
        ));
    }
}
