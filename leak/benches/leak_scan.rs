//! L2 scan throughput: an index over 100,000 demo training rows, scanned against a buffer
//! of pseudo-random f32 weights (1 GiB by default) with 1 and 2 threads.
//!
//! `cargo bench -p airlock-leak --bench leak_scan -- [MiB]`; set `LEAK_SCAN_BREAKDOWN=1`
//! to also time the text and numeric parts of the index separately.

use std::time::Instant;

use airlock_leak::records::{RecordIndex, RecordParams, RecordSource};
use airlock_model::demo::write_demo_csv;

const ROWS: usize = 100_000;
const TEXT: [&str; 8] = [
    "full_name",
    "email",
    "card_number",
    "ssn",
    "iban",
    "phone",
    "zip",
    "age",
];
const NUMERIC: [&str; 12] = airlock_model::demo::DEMO_FEATURES;

fn main() {
    // Cargo appends `--bench`; the first numeric argument is the buffer size.
    let mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("demo.csv");
    let t = Instant::now();
    write_demo_csv(&path, ROWS, 7).expect("write demo csv");
    println!("demo csv: {ROWS} rows written in {:.2?}", t.elapsed());

    let t = Instant::now();
    let data = Data::parse(&std::fs::read_to_string(&path).expect("read demo csv"));
    println!("parsed and standardized in {:.2?}", t.elapsed());

    let src = data.source();
    let t = Instant::now();
    let index = RecordIndex::build(&src, RecordParams::default());
    let build = t.elapsed();
    let s = index.stats();
    println!("index build: {build:.2?}");
    println!(
        "  text patterns {} (skipped short {}), numeric windows {} (skipped low-information {})",
        s.text_patterns, s.text_skipped_short, s.numeric_windows, s.numeric_skipped_low_information
    );
    println!("  {index:?}");

    let len = mib << 20;
    let t = Instant::now();
    let buf = random_weights(len);
    println!(
        "buffer: {mib} MiB of pseudo-random f32 weights filled in {:.2?}",
        t.elapsed()
    );

    for threads in [1usize, 2] {
        // Warm the pages and caches once on a small prefix, then measure the whole buffer.
        let _ = index.scan(&buf[..len.min(1 << 20)], threads);
        let t = Instant::now();
        let found = index.scan(&buf, threads);
        let secs = t.elapsed().as_secs_f64();
        let gbs = len as f64 / secs / 1e9;
        println!(
            "scan {threads} thread(s): {secs:.3} s, {gbs:.3} GB/s, {:.3} GB/s per core, {} match(es)",
            gbs / threads as f64,
            found.len()
        );
        // Random weights hold no record: anything here is a false alarm worth a look.
        for m in found.iter().take(5) {
            println!("  false alarm: {m:?}");
        }
    }

    // Weights trained in half precision and saved as f32 have structured low halves, the
    // hardest case for f16/bf16 windows read at 2-byte offsets.
    let small = len.min(256 << 20);
    for (name, keep) in [("bf16-widened", 0xFFFF_0000), ("f16-widened", 0xFFFF_E000)] {
        let buf = random_weights_rounded(small, keep);
        let found = index.scan(&buf, 2);
        println!(
            "false alarms in {} MiB of {name} f32 weights: {}",
            small >> 20,
            found.len()
        );
    }

    planted_check(&index, &data);
    outgoing(&data);
    l1(&buf);

    // Where the time goes: text and numeric parts of the index on their own.
    if std::env::var_os("LEAK_SCAN_BREAKDOWN").is_some() {
        let empty: Vec<String> = Vec::new();
        let text_only = RecordSource {
            numeric_columns: &empty,
            numeric_raw: &[],
            numeric_standardized: &[],
            ..data.source()
        };
        let num_only = RecordSource {
            text_columns: &empty,
            text_values: &[],
            ..data.source()
        };
        for (name, src) in [("text only", text_only), ("numeric only", num_only)] {
            let idx = RecordIndex::build(&src, RecordParams::default());
            let t = Instant::now();
            let found = idx.scan(&buf, 1);
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{name}: {:.3} GB/s ({} matches)",
                len as f64 / secs / 1e9,
                found.len()
            );
        }
    }
}

/// The outgoing scan's index (publish and the packager build one per release over the
/// identifier values) and a scan of a 64 KiB document, next to the Aho-Corasick automaton
/// over the same values that the index used before (its build dominated packaging).
fn outgoing(data: &Data) {
    use airlock_leak::outgoing::{IdentifierIndex, MIN_TEXT_LEN, fold_text};
    let t = Instant::now();
    let index =
        IdentifierIndex::build(&data.text_columns, &data.text_values).expect("identifier index");
    let build = t.elapsed();
    let doc: Vec<u8> = (0..)
        .map(|i| format!("{{\"k{i}\": \"value number {i} of the document\"}}\n"))
        .flat_map(String::into_bytes)
        .take(64 << 10)
        .collect();
    let t = Instant::now();
    let found = index.scan_document("doc", &doc);
    let scan = t.elapsed();
    println!(
        "outgoing index over {} identifier values: build {build:.2?}, scan of 64 KiB {scan:.2?} ({} finding(s)) {:?}",
        data.text_values.len(),
        found.len(),
        index.stats()
    );
    // The peer: the two Aho-Corasick automata (exact and folded values) built before.
    let mut exact: Vec<&str> = data
        .text_values
        .iter()
        .map(String::as_str)
        .filter(|v| v.len() >= MIN_TEXT_LEN)
        .collect();
    exact.sort_unstable();
    exact.dedup();
    let mut folded: Vec<String> = data
        .text_values
        .iter()
        .map(|v| fold_text(v))
        .filter(|v| v.len() >= MIN_TEXT_LEN)
        .collect();
    folded.sort_unstable();
    folded.dedup();
    let t = Instant::now();
    let a = aho_corasick::AhoCorasick::new(&exact).expect("automaton");
    let b = aho_corasick::AhoCorasick::new(&folded).expect("automaton");
    let ac_build = t.elapsed();
    let t = Instant::now();
    let n = a.find_overlapping_iter(&doc).count() + b.find_overlapping_iter(&doc).count();
    println!(
        "  peer: Aho-Corasick over the same values: build {ac_build:.2?}, scan of 64 KiB {:.2?} ({n} match(es)); build speed-up {:.0}x",
        t.elapsed(),
        ac_build.as_secs_f64() / build.as_secs_f64().max(1e-9)
    );
}

/// L1 throughput: the PII patterns over the printable runs of the weights buffer (as the
/// packager scans tensors), and over technical text (printed floats, RFC 3339 timestamps,
/// hex digests) as large as a quarter of it, as the outgoing scan reads documents.
fn l1(weights: &[u8]) {
    use airlock_leak::pii::{find_pii, find_pii_in_bytes};
    let t = Instant::now();
    let found = find_pii_in_bytes(weights);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "L1 over {} MiB of weights: {secs:.3} s, {:.3} GB/s, {} hit(s) {:?}",
        weights.len() >> 20,
        weights.len() as f64 / secs / 1e9,
        found.len(),
        found.iter().map(|h| h.kind.name()).collect::<Vec<_>>()
    );
    let mut text = Vec::with_capacity(weights.len() / 4 + 256);
    let mut i = 0u64;
    while text.len() < weights.len() / 4 {
        let w = f32::from_le_bytes([
            weights[(i as usize * 4) % (weights.len() - 4)],
            weights[(i as usize * 4 + 1) % (weights.len() - 4)],
            weights[(i as usize * 4 + 2) % (weights.len() - 4)],
            weights[(i as usize * 4 + 3) % (weights.len() - 4)],
        ]);
        let secs = 1_700_000_000 + i * 7919;
        text.extend_from_slice(
            format!(
                "{{\"w\": {w}, \"at\": \"2026-{:02}-{:02}T{:02}:{:02}:{:02}Z\", \"sha256\": \"{:016x}{:016x}\", \"n\": {i}}}\n",
                1 + secs / 86_400 % 12,
                1 + secs / 86_400 % 28,
                secs % 86_400 / 3600,
                secs / 60 % 60,
                secs % 60,
                secs.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                i.wrapping_mul(0xD1B5_4A32_D192_ED03),
            )
            .as_bytes(),
        );
        i += 1;
    }
    let t = Instant::now();
    let found = find_pii(&text);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "L1 over {} MiB of technical text: {secs:.3} s, {:.3} GB/s, {} hit(s)",
        text.len() >> 20,
        text.len() as f64 / secs / 1e9,
        found.len()
    );
}

/// Plants 50 raw rows as f32 and a few text identifiers into a small buffer and checks that
/// every one is reported at its offset.
fn planted_check(index: &RecordIndex, data: &Data) {
    let mut buf = random_weights(1 << 20);
    let mut rows = Vec::new();
    for i in 0..50 {
        let row = (i * 1999 + 17) % ROWS;
        let at = 4096 + i * 16_384;
        let bytes: Vec<u8> = data
            .raw_row(row)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        buf[at..at + bytes.len()].copy_from_slice(&bytes);
        rows.push((row, at));
    }
    let mut texts = Vec::new();
    for (i, col) in ["email", "card_number", "iban", "phone", "ssn"]
        .iter()
        .enumerate()
    {
        let row = 31_337 + i * 7;
        let at = 4096 + 8192 + i * 16_384 + 1 + i;
        let value = data.text(row, col);
        buf[at..at + value.len()].copy_from_slice(value.as_bytes());
        texts.push((row, *col, at));
    }
    let found = index.scan(&buf, 2);
    let rows_found = rows
        .iter()
        .filter(|&&(row, at)| {
            found.iter().any(|m| {
                m.offset == at
                    && m.column == "amount"
                    && data.raw_row(m.row)[..4] == data.raw_row(row)[..4]
            })
        })
        .count();
    let texts_found = texts
        .iter()
        .filter(|&&(row, col, at)| {
            found
                .iter()
                .any(|m| m.offset == at && m.column == col && m.row == row)
        })
        .count();
    println!(
        "planted: {rows_found}/{} raw f32 rows found, {texts_found}/{} text identifiers found ({} matches in all)",
        rows.len(),
        texts.len(),
        found.len()
    );
    if rows_found != rows.len() || texts_found != texts.len() {
        eprintln!("planted records were missed");
        std::process::exit(1);
    }
}

/// Normal-ish f32 weights (sum of two 24-bit uniforms, scaled like an initialized layer),
/// filled by two threads with their own xorshift streams. The scale is not a simple
/// fraction, so mantissas are full like those of trained weights.
fn random_weights(len: usize) -> Vec<u8> {
    random_weights_rounded(len, u32::MAX)
}

/// The same, with the low bits of every value cleared by `keep` (`0xFFFF_0000`: bf16
/// weights widened to f32; `0xFFFF_E000`: f16 weights widened to f32).
fn random_weights_rounded(len: usize, keep: u32) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let half = len / 2 / 4 * 4;
    let (a, b) = buf.split_at_mut(half);
    std::thread::scope(|s| {
        s.spawn(|| fill(a, 0x9E37_79B9_7F4A_7C15, keep));
        fill(b, 0xD1B5_4A32_D192_ED03, keep);
    });
    buf
}

fn fill(out: &mut [u8], seed: u64, keep: u32) {
    let mut x = seed;
    let mut chunks = out.chunks_exact_mut(4);
    for c in &mut chunks {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let tri = ((x >> 40) + ((x >> 16) & 0xFF_FFFF)) as f32 - 16_777_215.0;
        let w = tri * (0.0173 / 16_777_216.0);
        c.copy_from_slice(&(w.to_bits() & keep).to_le_bytes());
    }
    for b in chunks.into_remainder() {
        *b = 0;
    }
}

/// The demo table split into what [`RecordSource`] borrows. The demo CSV has no quoting, so
/// splitting on commas is exact.
struct Data {
    text_columns: Vec<String>,
    text_values: Vec<String>,
    numeric_columns: Vec<String>,
    raw: Vec<f32>,
    standardized: Vec<f32>,
}

impl Data {
    fn parse(csv: &str) -> Data {
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let idx = |n: &str| header.iter().position(|h| *h == n).expect("column");
        let ti: Vec<usize> = TEXT.iter().map(|n| idx(n)).collect();
        let ni: Vec<usize> = NUMERIC.iter().map(|n| idx(n)).collect();
        let mut text_values = Vec::with_capacity(ROWS * TEXT.len());
        let mut raw = Vec::with_capacity(ROWS * NUMERIC.len());
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            text_values.extend(ti.iter().map(|&i| cells[i].to_owned()));
            raw.extend(
                ni.iter()
                    .map(|&i| cells[i].parse::<f32>().expect("numeric cell")),
            );
        }
        let cols = NUMERIC.len();
        let rows = raw.len() / cols;
        let mut standardized = vec![0.0f32; raw.len()];
        for c in 0..cols {
            let col = || (0..rows).map(|r| f64::from(raw[r * cols + c]));
            let mean = col().sum::<f64>() / rows as f64;
            let var = col().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            let std = if var > 0.0 { var.sqrt() } else { 1.0 };
            for r in 0..rows {
                standardized[r * cols + c] = ((f64::from(raw[r * cols + c]) - mean) / std) as f32;
            }
        }
        Data {
            text_columns: TEXT.iter().map(|s| s.to_string()).collect(),
            text_values,
            numeric_columns: NUMERIC.iter().map(|s| s.to_string()).collect(),
            raw,
            standardized,
        }
    }

    fn source(&self) -> RecordSource<'_> {
        RecordSource {
            text_columns: &self.text_columns,
            text_values: &self.text_values,
            numeric_columns: &self.numeric_columns,
            numeric_raw: &self.raw,
            numeric_standardized: &self.standardized,
        }
    }

    fn raw_row(&self, row: usize) -> &[f32] {
        let n = NUMERIC.len();
        &self.raw[row * n..(row + 1) * n]
    }

    fn text(&self, row: usize, column: &str) -> &str {
        let c = TEXT.iter().position(|n| *n == column).expect("text column");
        &self.text_values[row * TEXT.len() + c]
    }
}
