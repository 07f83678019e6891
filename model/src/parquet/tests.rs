//! Parquet files written here with arrow-rs's writer (small row groups, small batches),
//! read back and compared with the same data as a CSV through [`load_table_with_groups`].

use std::sync::Arc;

use airlock_schemas::BandedSubgroup;
use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    DictionaryArray, Float16Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray, StructArray,
    TimestampSecondArray, UInt8Array, UInt64Array,
};
use arrow_schema::{DataType, Field};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::*;
use crate::data::load_table_with_groups;
use crate::{GroupValues, Table};

type F16 = <Float16Type as arrow_array::ArrowPrimitiveType>::Native;

type I256 = <arrow_array::types::Decimal256Type as arrow_array::ArrowPrimitiveType>::Native;

/// Named columns of a file to write.
type Columns = Vec<(&'static str, ArrayRef)>;

const SECRET: &str = "SECRET-VALUE";
const BINARY: TaskSpec = TaskSpec::Binary;

/// Write `columns` as one Parquet file: row groups of `group_rows`, `compression`.
fn write_with(
    path: &Path,
    columns: Vec<(&str, ArrayRef)>,
    group_rows: usize,
    compression: Compression,
) {
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .set_compression(compression)
        .build();
    let file = File::create(path).expect("create");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// A temporary directory holding `d.parquet` with `columns` (row groups of 4 rows, snappy).
fn file(columns: Vec<(&str, ArrayRef)>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("d.parquet");
    write_with(&p, columns, 4, Compression::SNAPPY);
    (dir, p)
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

/// Load with 3-row batches, so that batches and row groups (4 rows) do not line up.
fn load(
    path: &Path,
    features: &[&str],
    label: Option<LabelColumn<'_>>,
    subgroups: &[SubgroupSpec],
    identifiers: &[&str],
) -> Result<(Table, Vec<String>), DataError> {
    let request = Request {
        features: &names(features),
        label,
        subgroups,
        identifiers: &names(identifiers),
    };
    load_batched(path, &request, 3)
}

fn arr(a: impl Array + 'static) -> ArrayRef {
    Arc::new(a)
}

/// The error of loading feature `a` of a file holding `columns`, with the label `y` read
/// as `task` when there is one; checked never to contain [`SECRET`].
fn refusal(columns: Vec<(&str, ArrayRef)>, task: Option<&TaskSpec>) -> DataError {
    let (_dir, p) = file(columns);
    let label = task.map(|task| LabelColumn { column: "y", task });
    let err = load(&p, &["a"], label, &[], &[]).expect_err("refused");
    assert!(!err.to_string().contains(SECRET), "{err}");
    err
}

fn value_problem(err: &DataError) -> (u64, &'static str, &str, &'static str) {
    match err {
        DataError::ParquetValue {
            row,
            role,
            column,
            problem,
            ..
        } => (*row, *role, column.as_str(), *problem),
        other => panic!("expected a ParquetValue error, got {other}"),
    }
}

/// 23 rows of every supported column type, and the same rows as a CSV export would show them.
fn mixed(n: usize) -> (Vec<(&'static str, ArrayRef)>, String) {
    let i32s = |f: &dyn Fn(usize) -> i32| (0..n).map(f).collect::<Vec<_>>();
    let a = i32s(&|i| i as i32 - 10);
    let b: Vec<f64> = (0..n).map(|i| i as f64 * 0.37 - 2.5).collect();
    let c: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
    let d: Vec<u8> = (0..n).map(|i| (i % 7) as u8).collect();
    let e: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let f: Vec<i128> = (0..n).map(|i| 1234 * i as i128 - 5000).collect();
    let y: Vec<i8> = (0..n).map(|i| i8::from(i % 3 == 0)).collect();
    let age: Vec<i16> = (0..n).map(|i| 20 + 3 * i as i16).collect();
    let sites = [Some("north"), Some(" south "), None];
    let site: DictionaryArray<Int32Type> = (0..n).map(|i| sites[i % 3]).collect();
    let id: Vec<String> = (0..n).map(|i| format!("P{i:04}")).collect();
    let mrn: Vec<i64> = (0..n).map(|i| 1_000_000 + i as i64).collect();
    let dob = i32s(&|i| 7000 + 37 * i as i32);
    let mut history = ListBuilder::new(Int32Builder::new());
    for i in 0..n {
        history.append_value([Some(i as i32)]);
    }
    let mut csv = String::from("id,mrn,dob,a,b,c,d,e,f,y,age,site\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{},{},{},{},{:?},{:?},{},{},{},{},{},{}\n",
            id[i],
            mrn[i],
            date_text(dob[i]),
            a[i],
            b[i],
            f64::from(c[i]),
            d[i],
            u8::from(e[i]),
            decimal_text(f[i], 2),
            y[i],
            age[i],
            sites[i % 3].unwrap_or(""),
        ));
    }
    let columns = vec![
        ("id", arr(StringArray::from(id))),
        ("mrn", arr(Int64Array::from(mrn))),
        ("dob", arr(Date32Array::from(dob))),
        ("a", arr(Int32Array::from(a))),
        ("b", arr(Float64Array::from(b))),
        ("c", arr(Float32Array::from(c))),
        ("d", arr(UInt8Array::from(d))),
        ("e", arr(BooleanArray::from(e))),
        (
            "f",
            arr(Decimal128Array::from(f)
                .with_precision_and_scale(10, 2)
                .expect("decimal")),
        ),
        ("y", arr(Int8Array::from(y))),
        ("age", arr(Int16Array::from(age))),
        ("site", arr(site)),
        ("history", arr(history.finish())),
    ];
    (columns, csv)
}

fn mixed_groups() -> Vec<SubgroupSpec> {
    vec![
        SubgroupSpec::Banded(BandedSubgroup {
            column: "age".into(),
            bands: vec![40.0],
        }),
        SubgroupSpec::Column("site".into()),
    ]
}

#[test]
fn parquet_reads_as_the_same_data_as_csv() {
    let n = 23;
    let (columns, csv) = mixed(n);
    let (dir, p) = file(columns);
    let csv_path = dir.path().join("d.csv");
    std::fs::write(&csv_path, csv).expect("write csv");
    let features = ["a", "b", "c", "d", "e", "f"];
    let label = Some(LabelColumn {
        column: "y",
        task: &BINARY,
    });
    let groups = mixed_groups();
    let (t, ids) = load(&p, &features, label, &groups, &["id", "mrn", "dob"]).expect("parquet");
    let c = load_table_with_groups(&csv_path, &names(&features), label, &groups).expect("csv");
    assert_eq!(t.feature_names, c.feature_names);
    assert_eq!(t.features, c.features);
    assert_eq!(t.labels, c.labels);
    assert_eq!(t.groups, c.groups);
    assert_eq!(t.rows(), n);
    assert_eq!(t.fingerprint.rows, n as u64);
    assert_eq!(
        t.fingerprint.columns,
        names(&[
            "id", "mrn", "dob", "a", "b", "c", "d", "e", "f", "y", "age", "site", "history"
        ])
    );
    let bytes = std::fs::read(&p).expect("read");
    assert_eq!(t.fingerprint.bytes, bytes.len() as u64);
    assert_eq!(t.fingerprint.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(t.fingerprint.path, p.display().to_string());
    assert_eq!(ids.len(), n * 3);
    assert_eq!(ids[..3], ["P0000", "1000000", "1989-03-02"]);
    assert_eq!(
        ids[3 * 22..],
        ["P0022", "1000022", &date_text(7000 + 37 * 22)]
    );
    let GroupValues::Categorical { values, ids } = &t.groups[1].values else {
        panic!("site is categorical");
    };
    assert_eq!(values, &["north", "south", ""]);
    assert_eq!(ids[..4], [0, 1, 2, 0]);
}

#[test]
fn every_codec_of_this_build_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (k, codec) in [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::try_new(3).expect("level")),
        Compression::GZIP(GzipLevel::default()),
        Compression::LZ4_RAW,
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.path().join(format!("{k}.parquet"));
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        write_with(
            &p,
            vec![("a", arr(Float64Array::from(a.clone())))],
            16,
            codec,
        );
        let (t, _) = load(&p, &["a"], None, &[], &[]).expect("codec");
        let want: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        assert_eq!(t.features, want, "{codec:?}");
    }
}

#[test]
fn a_missing_column_names_its_role_and_the_header() {
    let (_dir, p) = file(vec![
        ("a", arr(Float64Array::from(vec![1.0]))),
        ("y", arr(Int8Array::from(vec![1]))),
    ]);
    let label = |column| {
        Some(LabelColumn {
            column,
            task: &BINARY,
        })
    };
    let site = [SubgroupSpec::Column("site".into())];
    for (err, role) in [
        (load(&p, &["a", "b"], None, &[], &[]), "feature"),
        (load(&p, &["a"], label("z"), &[], &[]), "label"),
        (load(&p, &["a"], label("y"), &site, &[]), "subgroup"),
        (load(&p, &["a"], label("y"), &[], &["mrn"]), "identifier"),
    ] {
        let err = err.expect_err("missing");
        assert!(
            matches!(&err, DataError::MissingColumn { role: r, .. } if *r == role),
            "{err}"
        );
        assert!(err.to_string().contains("(header has: a, y)"), "{err}");
    }
}

#[test]
fn a_bad_feature_cell_names_its_row_across_row_groups() {
    let mut v: Vec<Option<f64>> = (0..12).map(|i| Some(f64::from(i))).collect();
    v[9] = None;
    let err = refusal(vec![("a", arr(Float64Array::from(v.clone())))], None);
    assert_eq!(value_problem(&err), (10, "feature", "a", "empty"));
    assert!(
        err.to_string()
            .contains("row 10, feature column \"a\": empty"),
        "{err}"
    );
    for bad in [f64::NAN, f64::INFINITY, 1e300] {
        v[9] = Some(bad);
        let err = refusal(vec![("a", arr(Float64Array::from(v.clone())))], None);
        assert_eq!(value_problem(&err), (10, "feature", "a", "not finite"));
    }
}

#[test]
fn binary_labels_read_numbers_booleans_and_text() {
    let (_dir, p) = file(vec![
        ("a", arr(Float64Array::from(vec![1.0, 2.0]))),
        ("i", arr(UInt64Array::from(vec![1, 0]))),
        ("f", arr(Float32Array::from(vec![0.0, 1.0]))),
        ("b", arr(BooleanArray::from(vec![true, false]))),
        ("s", arr(StringArray::from(vec![" 1.0", "0"]))),
        (
            "d",
            arr(Decimal128Array::from(vec![100, 0])
                .with_precision_and_scale(5, 2)
                .expect("decimal")),
        ),
    ]);
    for (column, want) in [
        ("i", [1.0, 0.0]),
        ("f", [0.0, 1.0]),
        ("b", [1.0, 0.0]),
        ("s", [1.0, 0.0]),
        ("d", [1.0, 0.0]),
    ] {
        let label = Some(LabelColumn {
            column,
            task: &BINARY,
        });
        let (t, _) = load(&p, &["a"], label, &[], &[]).expect("labels");
        assert_eq!(t.labels.as_deref(), Some(&want[..]), "{column}");
    }
}

#[test]
fn bad_binary_labels_are_refused_without_their_value() {
    let a = || arr(Float64Array::from(vec![1.0; 6]));
    let labels: [ArrayRef; 4] = [
        arr(Int64Array::from(vec![0, 1, 1, 0, 1, 2])),
        arr(Float64Array::from(vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.5])),
        arr(StringArray::from(vec!["0", "1", "1", "0", "1", SECRET])),
        arr(Int64Array::from(vec![
            Some(0),
            Some(1),
            Some(1),
            Some(0),
            Some(1),
            None,
        ])),
    ];
    for y in labels {
        let err = refusal(vec![("a", a()), ("y", y)], Some(&BINARY));
        assert_eq!(value_problem(&err), (6, "label", "y", "expected 0 or 1"));
    }
}

#[test]
fn multiclass_labels_read_class_names_and_integers() {
    let task = TaskSpec::Multiclass {
        classes: names(&["clear", "nodule", "mass"]),
    };
    let names_col: DictionaryArray<Int32Type> =
        ["mass", "clear", "nodule", "mass"].into_iter().collect();
    let (_dir, p) = file(vec![
        ("a", arr(Float64Array::from(vec![1.0; 4]))),
        ("y", arr(names_col)),
        (
            "s",
            arr(LargeStringArray::from(vec![
                "clear", " mass", "mass", "nodule",
            ])),
        ),
    ]);
    for (column, want) in [("y", [2.0, 0.0, 1.0, 2.0]), ("s", [0.0, 2.0, 2.0, 1.0])] {
        let label = Some(LabelColumn {
            column,
            task: &task,
        });
        let (t, _) = load(&p, &["a"], label, &[], &[]).expect("labels");
        assert_eq!(t.labels.as_deref(), Some(&want[..]), "{column}");
    }
    let digits = TaskSpec::Multiclass {
        classes: names(&["0", "1", "2"]),
    };
    let (_dir, p) = file(vec![
        ("a", arr(Float64Array::from(vec![1.0; 3]))),
        ("y", arr(Int32Array::from(vec![2, 0, 1]))),
    ]);
    let label = Some(LabelColumn {
        column: "y",
        task: &digits,
    });
    let (t, _) = load(&p, &["a"], label, &[], &[]).expect("integer classes");
    assert_eq!(t.labels, Some(vec![2.0, 0.0, 1.0]));
}

#[test]
fn bad_multiclass_and_regression_labels_are_refused() {
    let task = TaskSpec::Multiclass {
        classes: names(&["0", "1", "2"]),
    };
    let a = || arr(Float64Array::from(vec![1.0; 5]));
    let expect_class = "expected one of the names in task.classes";
    let y = arr(StringArray::from(vec!["0", "1", "2", "1", SECRET]));
    let err = refusal(vec![("a", a()), ("y", y)], Some(&task));
    assert_eq!(value_problem(&err), (5, "label", "y", expect_class));
    let y = arr(Int32Array::from(vec![0, 1, 2, 1, 7]));
    let err = refusal(vec![("a", a()), ("y", y)], Some(&task));
    assert_eq!(value_problem(&err), (5, "label", "y", expect_class));
    let expect_number = "expected a finite number";
    for y in [
        arr(Float64Array::from(vec![0.5, 1.5, -2.0, 3.0, f64::NAN])),
        arr(Float64Array::from(vec![Some(0.5), None, None, None, None])),
    ] {
        let err = refusal(vec![("a", a()), ("y", y)], Some(&TaskSpec::Regression));
        let (row, role, _, problem) = value_problem(&err);
        assert_eq!((role, problem), ("label", expect_number));
        assert!(row == 5 || row == 2, "{err}");
    }
    let (_dir, p) = file(vec![
        ("a", a()),
        ("y", arr(Int64Array::from(vec![1, 2, -3, 4, 5]))),
    ]);
    let label = Some(LabelColumn {
        column: "y",
        task: &TaskSpec::Regression,
    });
    let (t, _) = load(&p, &["a"], label, &[], &[]).expect("regression");
    assert_eq!(t.labels, Some(vec![1.0, 2.0, -3.0, 4.0, 5.0]));
}

#[test]
fn a_column_of_a_type_its_role_cannot_read_is_refused_by_type() {
    let task = TaskSpec::Multiclass {
        classes: names(&["x"]),
    };
    let a = || arr(Float64Array::from(vec![1.0]));
    let cases: Vec<(Columns, Option<&TaskSpec>, &str, &str)> = vec![
        (
            vec![("a", arr(StringArray::from(vec![SECRET])))],
            None,
            "feature",
            "Utf8",
        ),
        (
            vec![("a", arr(Decimal256Array::from(vec![I256::from_i128(1)])))],
            None,
            "feature",
            "Decimal256",
        ),
        (
            vec![("a", a()), ("y", arr(Float64Array::from(vec![1.0])))],
            Some(&task),
            "label",
            "Float64",
        ),
        (
            vec![("a", a()), ("y", arr(StringArray::from(vec![SECRET])))],
            Some(&TaskSpec::Regression),
            "label",
            "Utf8",
        ),
        (
            vec![("a", a()), ("y", arr(BooleanArray::from(vec![true])))],
            Some(&TaskSpec::Regression),
            "label",
            "Boolean",
        ),
        (
            vec![("a", a()), ("y", arr(Date32Array::from(vec![1])))],
            Some(&BINARY),
            "label",
            "Date32",
        ),
    ];
    for (columns, task, role, data_type) in cases {
        let err = refusal(columns, task);
        let DataError::ParquetType {
            role: r,
            data_type: t,
            ..
        } = &err
        else {
            panic!("expected a type refusal, got {err}");
        };
        assert!(*r == role && t.starts_with(data_type), "{err}");
        let column = if role == "feature" { "a" } else { "y" };
        assert!(
            err.to_string()
                .contains(&format!("{role} column \"{column}\" has type {t}")),
            "{err}"
        );
    }
}

#[test]
fn identifiers_and_subgroups_of_nested_binary_or_timestamp_types_are_refused() {
    let mut list = ListBuilder::new(Int32Builder::new());
    list.append_value([Some(1)]);
    let fields: Vec<(Arc<Field>, ArrayRef)> = vec![(
        Arc::new(Field::new("x", DataType::Int32, false)),
        arr(Int32Array::from(vec![1])),
    )];
    let refused: [(ArrayRef, &str); 4] = [
        (arr(list.finish()), "List"),
        (arr(StructArray::from(fields)), "Struct"),
        (arr(BinaryArray::from(vec![SECRET.as_bytes()])), "Binary"),
        (arr(TimestampSecondArray::from(vec![1])), "Timestamp"),
    ];
    for (column, type_name) in refused {
        let (_dir, p) = file(vec![
            ("a", arr(Float64Array::from(vec![1.0]))),
            ("mrn", column),
        ]);
        let err = load(&p, &["a"], None, &[], &["mrn"]).expect_err("identifier type");
        let msg = err.to_string();
        assert!(
            matches!(
                &err,
                DataError::ParquetType {
                    role: "identifier",
                    ..
                }
            ) && msg.contains("identifier column \"mrn\" has type ")
                && msg.contains(type_name),
            "{msg}"
        );
        assert!(!msg.contains(SECRET), "{msg}");
        let groups = [SubgroupSpec::Column("mrn".into())];
        let err = load(&p, &["a"], None, &groups, &[]).expect_err("subgroup type");
        assert!(
            matches!(
                &err,
                DataError::ParquetType {
                    role: "subgroup",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn banded_subgroups_need_numbers() {
    let banded = [SubgroupSpec::Banded(BandedSubgroup {
        column: "age".into(),
        bands: vec![30.0],
    })];
    let (_dir, p) = file(vec![
        ("a", arr(Float64Array::from(vec![1.0; 3]))),
        (
            "age",
            arr(Float64Array::from(vec![Some(31.5), Some(29.0), None])),
        ),
    ]);
    let err = load(&p, &["a"], None, &banded, &[]).expect_err("null age");
    assert_eq!(value_problem(&err), (3, "banded subgroup", "age", "empty"));
    let (_dir, p) = file(vec![
        ("a", arr(Float64Array::from(vec![1.0]))),
        ("age", arr(StringArray::from(vec![SECRET]))),
    ]);
    let err = load(&p, &["a"], None, &banded, &[]).expect_err("text age");
    assert!(
        matches!(
            &err,
            DataError::ParquetType {
                role: "banded subgroup",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains(SECRET), "{err}");
}

#[test]
fn identifiers_read_as_a_csv_export_shows_them() {
    let (_dir, p) = file(vec![
        ("a", arr(Float64Array::from(vec![1.0, 2.0]))),
        ("s", arr(StringViewArray::from(vec![" P 1 ", "P2"]))),
        ("u", arr(UInt64Array::from(vec![u64::MAX, 0]))),
        ("f", arr(Float64Array::from(vec![Some(0.5), None]))),
        ("g", arr(Float32Array::from(vec![1.0, 0.1]))),
        (
            "h",
            arr(Float16Array::from(vec![
                F16::from_f32(1.5),
                F16::from_f32(-2.0),
            ])),
        ),
        ("b", arr(BooleanArray::from(vec![true, false]))),
        (
            "d",
            arr(Decimal128Array::from(vec![-5, 1250])
                .with_precision_and_scale(6, 2)
                .expect("decimal")),
        ),
        ("t", arr(Date32Array::from(vec![0, 11_016]))),
    ]);
    let ids = ["s", "u", "f", "g", "h", "b", "d", "t"];
    let (_, text) = load(&p, &["a"], None, &[], &ids).expect("identifiers");
    let want = [
        " P 1 ",
        "18446744073709551615",
        "0.5",
        "1.0",
        "1.5",
        "true",
        "-0.05",
        "1970-01-01",
        "P2",
        "0",
        "",
        "0.1",
        "-2.0",
        "false",
        "12.50",
        "2000-02-29",
    ];
    assert_eq!(text, want);
}

#[test]
fn decimals_and_dates_render_exactly() {
    assert_eq!(decimal_text(1250, 2), "12.50");
    assert_eq!(decimal_text(-5, 2), "-0.05");
    assert_eq!(decimal_text(0, 3), "0.000");
    assert_eq!(decimal_text(12, -2), "1200");
    assert_eq!(decimal_text(0, -2), "0");
    assert_eq!(decimal_text(7, 0), "7");
    assert_eq!(
        decimal_text(i128::MIN, 38),
        "-1.70141183460469231731687303715884105728"
    );
    assert_eq!(date_text(0), "1970-01-01");
    assert_eq!(date_text(-1), "1969-12-31");
    assert_eq!(date_text(11_016), "2000-02-29");
    assert_eq!(date_text(19_723), "2024-01-01");
    assert_eq!(date_text(-719_528), "0000-01-01");
    assert_eq!(date_text(-719_529), "-0001-12-31");
}

/// A valid file whose identifier column holds [`SECRET`] in every row.
fn secret_file() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let n = 40;
    let (dir, p) = file(vec![
        (
            "a",
            arr(Float64Array::from_iter_values((0..n).map(f64::from))),
        ),
        (
            "mrn",
            arr(StringArray::from_iter_values(
                (0..n).map(|i| format!("{SECRET}-{i}")),
            )),
        ),
    ]);
    let bytes = std::fs::read(&p).expect("read");
    (dir, p, bytes)
}

#[test]
fn truncated_and_garbage_files_are_malformed_not_a_panic() {
    let (_dir, p, bytes) = secret_file();
    let mut garbage = b"PAR1".to_vec();
    garbage.extend(SECRET.as_bytes().repeat(20));
    garbage.extend([200, 0, 0, 0]);
    garbage.extend(b"PAR1");
    for content in [
        &bytes[..bytes.len() - 1],
        &bytes[..bytes.len() / 2],
        &bytes[..10],
        &[][..],
        SECRET.as_bytes(),
        &garbage[..],
    ] {
        std::fs::write(&p, content).expect("write");
        let err = load(&p, &["a"], None, &[], &["mrn"]).expect_err("malformed");
        assert!(matches!(err, DataError::Parquet { .. }), "{err}");
        assert!(!err.to_string().contains(SECRET), "{err}");
    }
}

#[test]
fn corrupted_bytes_never_panic_nor_echo_a_value() {
    let (_dir, p, bytes) = secret_file();
    let mut refused = 0;
    for at in (0..bytes.len()).step_by(5) {
        for flip in [0x01, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[at] ^= flip;
            std::fs::write(&p, &b).expect("write");
            if let Err(err) = load(&p, &["a"], None, &[], &["mrn"]) {
                refused += 1;
                assert!(!err.to_string().contains(SECRET), "{err}");
            }
        }
    }
    assert!(refused > 0, "no corruption was noticed");
}

#[test]
fn a_file_without_rows_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("d.parquet");
    write_with(
        &p,
        vec![("a", arr(Float64Array::from(Vec::<f64>::new())))],
        4,
        Compression::SNAPPY,
    );
    let err = load(&p, &["a"], None, &[], &[]).expect_err("no rows");
    assert!(matches!(err, DataError::NoRows { .. }), "{err}");
}

#[test]
fn the_public_loader_reads_in_its_own_batches() {
    let (columns, _) = mixed(23);
    let (_dir, p) = file(columns);
    let label = Some(LabelColumn {
        column: "y",
        task: &BINARY,
    });
    let (t, ids) = load_parquet(
        &p,
        &names(&["a", "e"]),
        label,
        &mixed_groups(),
        &names(&["id"]),
    )
    .expect("load");
    let (u, same) = load(&p, &["a", "e"], label, &mixed_groups(), &["id"]).expect("load");
    assert_eq!(
        (t.features, t.labels, t.groups),
        (u.features, u.labels, u.groups)
    );
    assert_eq!(ids, same);
}

#[test]
fn identifiers_alone_load_for_the_leak_checks() {
    let (_dir, p, bytes) = secret_file();
    let (t, ids) = load(&p, &[], None, &[], &["mrn"]).expect("identifiers alone");
    assert_eq!(t.fingerprint.rows, 40);
    assert!(t.features.is_empty() && t.labels.is_none());
    assert_eq!(t.fingerprint.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(ids.len(), 40);
    assert_eq!(ids[39], format!("{SECRET}-39"));
}
