//! Time and memory of loading the same table from Parquet and from CSV.
//!
//! ```text
//! cargo run -p airlock-model --example parquet_load -- write DIR [ROWS]
//! /usr/bin/time -v target/debug/examples/parquet_load parquet DIR/bench.parquet
//! /usr/bin/time -v target/debug/examples/parquet_load csv DIR/bench.csv
//! ```
//!
//! (The dev profile builds this crate and its dependencies at `opt-level = 3`.)
//!
//! `write` makes `bench.parquet` (snappy, default row groups) and `bench.csv` with the same
//! ROWS rows (default 1,000,000): an identifier column `id` (never requested: Parquet skips
//! it), 12 float features `f0`..`f11` (four decimals, as an export would round them) and a
//! binary label `y`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use airlock_model::{LabelColumn, load_parquet, load_table};
use airlock_schemas::TaskSpec;
use arrow_array::{ArrayRef, Float64Array, Int8Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};

const FEATURES: usize = 12;
const CHUNK: usize = 65_536;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let features: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let label = Some(LabelColumn {
        column: "y",
        task: &TaskSpec::Binary,
    });
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["write", dir, rest @ ..] => {
            let rows = rest.first().map_or(Ok(1_000_000), |r| r.parse())?;
            write(Path::new(dir), rows)
        }
        ["parquet", path] => {
            let start = Instant::now();
            let (table, _) = load_parquet(Path::new(path), &features, label, &[], &[])?;
            report("parquet", table.rows(), start);
            Ok(())
        }
        ["csv", path] => {
            let start = Instant::now();
            let table = load_table(Path::new(path), &features, label)?;
            report("csv", table.rows(), start);
            Ok(())
        }
        _ => Err("usage: parquet_load write DIR [ROWS] | parquet FILE | csv FILE".into()),
    }
}

fn report(what: &str, rows: usize, start: Instant) {
    println!(
        "{what}: {rows} rows × {FEATURES} features in {:.3} s",
        start.elapsed().as_secs_f64()
    );
}

/// Both files, written `CHUNK` rows at a time.
fn write(dir: &Path, rows: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
    let mut csv = BufWriter::new(File::create(dir.join("bench.csv"))?);
    let names: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    writeln!(csv, "id,{},y", names.join(","))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut parquet: Option<ArrowWriter<File>> = None;
    let mut done = 0;
    while done < rows {
        let n = CHUNK.min(rows - done);
        let ids: Vec<String> = (done..done + n).map(|i| format!("P{i:08}")).collect();
        let cols: Vec<Vec<f64>> = (0..FEATURES)
            .map(|_| {
                (0..n)
                    .map(|_| (rng.random::<f64>() * 2e5 - 1e5).round() / 1e4)
                    .collect()
            })
            .collect();
        let y: Vec<i8> = (0..n).map(|_| i8::from(rng.random::<bool>())).collect();
        for r in 0..n {
            write!(csv, "{}", ids[r])?;
            for c in &cols {
                write!(csv, ",{}", c[r])?;
            }
            writeln!(csv, ",{}", y[r])?;
        }
        let mut columns: Vec<(String, ArrayRef)> =
            vec![("id".into(), Arc::new(StringArray::from(ids)))];
        for (name, c) in names.iter().zip(cols) {
            columns.push((name.clone(), Arc::new(Float64Array::from(c))));
        }
        columns.push(("y".into(), Arc::new(Int8Array::from(y))));
        let batch = RecordBatch::try_from_iter(columns)?;
        if parquet.is_none() {
            let file = File::create(dir.join("bench.parquet"))?;
            parquet = Some(ArrowWriter::try_new(
                file,
                batch.schema(),
                Some(props.clone()),
            )?);
        }
        if let Some(w) = parquet.as_mut() {
            w.write(&batch)?;
        }
        done += n;
    }
    if let Some(w) = parquet {
        w.close()?;
    }
    csv.flush()?;
    Ok(())
}
