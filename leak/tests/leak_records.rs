//! L2 exact records: planted rows and identifiers are found where they are, with their row
//! and column, and nothing is found in buffers that hold none.

use airlock_leak::records::{
    Encoding, MatchKind, RecordIndex, RecordMatch, RecordParams, RecordSource,
};
use airlock_model::demo::write_demo_csv;
use half::{bf16, f16};

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

/// The demo table split into what [`RecordSource`] borrows.
struct Data {
    text_columns: Vec<String>,
    text_values: Vec<String>,
    numeric_columns: Vec<String>,
    raw: Vec<f32>,
    standardized: Vec<f32>,
}

impl Data {
    fn demo(rows: usize, seed: u64) -> Data {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("demo.csv");
        write_demo_csv(&path, rows, seed).expect("write demo csv");
        let csv = std::fs::read_to_string(&path).expect("read demo csv");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let idx = |n: &str| header.iter().position(|h| *h == n).expect("column");
        let ti: Vec<usize> = TEXT.iter().map(|n| idx(n)).collect();
        let ni: Vec<usize> = NUMERIC.iter().map(|n| idx(n)).collect();
        let mut text_values = Vec::new();
        let mut raw = Vec::new();
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            text_values.extend(ti.iter().map(|&i| cells[i].to_owned()));
            raw.extend(
                ni.iter()
                    .map(|&i| cells[i].parse::<f32>().expect("numeric cell")),
            );
        }
        let standardized = standardize(&raw, NUMERIC.len());
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
        let n = self.numeric_columns.len();
        &self.raw[row * n..(row + 1) * n]
    }

    fn std_row(&self, row: usize) -> &[f32] {
        let n = self.numeric_columns.len();
        &self.standardized[row * n..(row + 1) * n]
    }

    fn text(&self, row: usize, column: &str) -> &str {
        let c = TEXT.iter().position(|n| *n == column).expect("text column");
        &self.text_values[row * TEXT.len() + c]
    }
}

fn standardize(raw: &[f32], cols: usize) -> Vec<f32> {
    let rows = raw.len() / cols;
    let mut out = vec![0.0; raw.len()];
    for c in 0..cols {
        let mean = (0..rows).map(|r| f64::from(raw[r * cols + c])).sum::<f64>() / rows as f64;
        let var = (0..rows)
            .map(|r| (f64::from(raw[r * cols + c]) - mean).powi(2))
            .sum::<f64>()
            / rows as f64;
        let std = if var > 0.0 { var.sqrt() } else { 1.0 };
        for r in 0..rows {
            out[r * cols + c] = ((f64::from(raw[r * cols + c]) - mean) / std) as f32;
        }
    }
    out
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Roughly normal (sum of uniforms), like trained weights.
    fn weight(&mut self) -> f32 {
        let s: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (s - 2.0) * 0.05
    }
}

fn random_floats(n_bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed);
    let mut out = Vec::with_capacity(n_bytes);
    while out.len() + 4 <= n_bytes {
        out.extend_from_slice(&rng.weight().to_le_bytes());
    }
    out.resize(n_bytes, 0);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect()
}

fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect()
}

fn plant(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn numeric(encoding: Encoding, standardized: bool) -> MatchKind {
    MatchKind::Numeric {
        encoding,
        standardized,
    }
}

fn index(data: &Data) -> RecordIndex {
    RecordIndex::build(&data.source(), RecordParams::default())
}

/// A row whose windows are all distinct from every other row's (first occurrence).
const ROW: usize = 37;

#[test]
fn planted_raw_row_as_f32_is_found_with_row_and_first_column() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let mut buf = random_floats(64 * 1024, 1);
    let at = 4000;
    plant(&mut buf, at, &f32_bytes(data.raw_row(ROW)));
    let found = idx.scan(&buf, 1);
    let want = RecordMatch {
        row: ROW,
        column: "amount".to_owned(),
        kind: numeric(Encoding::F32, false),
        offset: at,
    };
    assert!(found.contains(&want), "{found:?}");
    // Every finding is a window of the planted row at its position; a window that an
    // earlier row shares is reported under that row.
    let planted = data.raw_row(ROW);
    for m in &found {
        assert_eq!(m.kind, numeric(Encoding::F32, false));
        let c = NUMERIC.iter().position(|n| *n == m.column).expect("column");
        assert_eq!(m.offset, at + 4 * c);
        assert_eq!(data.raw_row(m.row)[c..c + 4], planted[c..c + 4]);
        assert!(m.row <= ROW);
    }
}

#[test]
fn planted_standardized_row_as_f16_and_bf16_is_found() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let mut buf = random_floats(64 * 1024, 2);
    plant(&mut buf, 1002, &f16_bytes(data.std_row(ROW)));
    plant(&mut buf, 3006, &bf16_bytes(data.std_row(ROW)));
    let found = idx.scan(&buf, 1);
    for (offset, encoding) in [(1002, Encoding::F16), (3006, Encoding::Bf16)] {
        let want = RecordMatch {
            row: ROW,
            column: "amount".to_owned(),
            kind: numeric(encoding, true),
            offset,
        };
        assert!(found.contains(&want), "{encoding:?}: {found:?}");
    }
}

#[test]
fn unaligned_rows_are_not_reported() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let mut buf = random_floats(64 * 1024, 3);
    plant(&mut buf, 4002, &f32_bytes(data.raw_row(ROW)));
    plant(&mut buf, 9001, &f16_bytes(data.std_row(ROW)));
    let found = idx.scan(&buf, 1);
    assert_eq!(found, vec![]);
    // The same bytes aligned are found: the test would pass vacuously otherwise.
    let mut aligned = random_floats(64 * 1024, 3);
    plant(&mut aligned, 4004, &f32_bytes(data.raw_row(ROW)));
    plant(&mut aligned, 9002, &f16_bytes(data.std_row(ROW)));
    let found = idx.scan(&aligned, 1);
    assert!(found.iter().any(|m| m.offset == 4004));
    assert!(found.iter().any(|m| m.offset == 9002));
}

#[test]
fn a_window_that_only_shares_its_prefix_is_not_a_match() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let mut buf = random_floats(4096, 4);
    // The first two values key the prefilter; the window differs in the last value.
    let mut row = data.raw_row(ROW)[..4].to_vec();
    row[3] = f32::from_bits(row[3].to_bits() ^ 1);
    plant(&mut buf, 400, &f32_bytes(&row));
    assert_eq!(idx.scan(&buf, 1), vec![]);
}

#[test]
fn text_identifiers_embedded_in_random_bytes_are_found() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let mut buf = random_floats(64 * 1024, 5);
    let plants = [
        (1237, 12, "email"),
        (20001, 99, "card_number"),
        (30002, 150, "iban"),
        (40003, 230, "phone"),
        (50005, 399, "ssn"),
    ];
    for (at, row, column) in plants {
        plant(&mut buf, at, data.text(row, column).as_bytes());
    }
    let found = idx.scan(&buf, 1);
    for (at, row, column) in plants {
        let want = RecordMatch {
            row,
            column: column.to_owned(),
            kind: MatchKind::Text,
            offset: at,
        };
        assert!(found.contains(&want), "{column}: {found:?}");
    }
    assert!(found.iter().all(|m| m.kind == MatchKind::Text));
}

#[test]
fn overlapping_text_values_are_all_reported_and_duplicates_name_the_first_row() {
    let text_columns = vec!["name".to_owned(), "email".to_owned()];
    let text_values: Vec<String> = [
        "appleseed",
        "johnny.appleseed@example.com",
        "appleseed",
        "other.person@example.org",
        "short",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let src = RecordSource {
        text_columns: &text_columns,
        text_values: &text_values,
        numeric_columns: &[],
        numeric_raw: &[],
        numeric_standardized: &[],
    };
    let idx = RecordIndex::build(&src, RecordParams::default());
    let stats = idx.stats();
    assert_eq!(stats.text_patterns, 3);
    assert_eq!(stats.text_skipped_short, 2);
    let mut buf = vec![0u8; 100];
    plant(&mut buf, 10, b"johnny.appleseed@example.com");
    let found = idx.scan(&buf, 1);
    let m = |row, column: &str, offset| RecordMatch {
        row,
        column: column.to_owned(),
        kind: MatchKind::Text,
        offset,
    };
    assert_eq!(found, vec![m(0, "email", 10), m(0, "name", 17)]);
}

#[test]
fn random_floats_and_zeros_raise_no_alarm() {
    let data = Data::demo(2000, 8);
    let idx = index(&data);
    let stats = idx.stats();
    assert!(stats.numeric_windows > 0 && stats.text_patterns > 0);
    assert!(stats.numeric_skipped_low_information > 0 && stats.text_skipped_short > 0);
    for seed in [11, 12] {
        let buf = random_floats(4 << 20, seed);
        assert_eq!(idx.scan(&buf, 2), vec![], "seed {seed}");
    }
    assert_eq!(idx.scan(&vec![0u8; 1 << 20], 2), vec![]);
    let mut rng = XorShift(77);
    let bytes: Vec<u8> = (0..(1 << 20)).map(|_| (rng.next() >> 56) as u8).collect();
    assert_eq!(idx.scan(&bytes, 1), vec![]);
    // Half-precision weights.
    let halves: Vec<f32> = (0..(1 << 19)).map(|_| rng.weight() * 20.0).collect();
    assert_eq!(idx.scan(&f16_bytes(&halves), 1), vec![]);
    assert_eq!(idx.scan(&bf16_bytes(&halves), 1), vec![]);
}

#[test]
fn half_precision_weights_widened_to_f32_raise_no_alarm() {
    // Their low halves are structured (all zero for bf16, low 13 bits zero for f16): the
    // index must not hold f16/bf16 windows that such halves can complete.
    let data = Data::demo(2000, 8);
    let idx = index(&data);
    for keep in [0xFFFF_0000u32, 0xFFFF_E000] {
        let buf: Vec<u8> = random_floats(8 << 20, 13)
            .chunks_exact(4)
            .flat_map(|c| {
                let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                (v & keep).to_le_bytes()
            })
            .collect();
        assert_eq!(idx.scan(&buf, 2), vec![], "mask {keep:#x}");
    }
}

#[test]
fn multi_thread_scan_equals_single_thread_scan_across_chunk_boundaries() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let len = 30_000;
    let mut buf = random_floats(len, 6);
    // Chunk boundaries as documented on `scan`; each thread count gets its own kind of
    // plant so that plants do not overwrite each other.
    let boundaries = |threads: usize| {
        let chunk = len.div_ceil(threads).div_ceil(4) * 4;
        (1..threads).map(move |k| k * chunk).filter(|&b| b < len)
    };
    for b in boundaries(3) {
        plant(&mut buf, b - 8, &f32_bytes(data.raw_row(ROW)));
    }
    for b in boundaries(4) {
        plant(&mut buf, b - 6, &f16_bytes(&data.std_row(ROW)[..6]));
    }
    for (k, b) in boundaries(7).enumerate() {
        plant(&mut buf, b - 5, data.text(k, "email").as_bytes());
    }
    let single = idx.scan(&buf, 1);
    assert!(single.len() > 10, "{}", single.len());
    for threads in [2, 3, 4, 7, 64] {
        assert_eq!(idx.scan(&buf, threads), single, "threads {threads}");
    }
    // Matches right at a boundary are there, once.
    let chunk = len.div_ceil(3).div_ceil(4) * 4;
    let at = chunk - 8;
    let n = single
        .iter()
        .filter(|m| m.offset == at && m.column == "amount" && m.row == ROW)
        .count();
    assert_eq!(n, 1);
    // Tiny buffers and more threads than bytes.
    assert_eq!(idx.scan(&buf[..3], 8), vec![]);
    assert_eq!(idx.scan(&[], 4), vec![]);
}

#[test]
fn printable_output_never_contains_a_value() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let mut buf = random_floats(64 * 1024, 7);
    plant(&mut buf, 800, &f32_bytes(data.raw_row(ROW)));
    plant(&mut buf, 2000, &f16_bytes(data.std_row(ROW)));
    let texts: Vec<&str> = TEXT[..6].iter().map(|c| data.text(ROW, c)).collect();
    for (i, t) in texts.iter().enumerate() {
        plant(&mut buf, 5000 + 100 * i, t.as_bytes());
    }
    let found = idx.scan(&buf, 2);
    assert!(found.len() > 6);
    let mut printed = vec![
        format!("{idx:?}"),
        format!("{idx:#?}"),
        format!("{:?}", idx.stats()),
        format!("{:?}", data.source()),
        serde_json::to_string(&idx.stats()).expect("json"),
    ];
    for m in &found {
        printed.push(format!("{m:?}"));
        printed.push(serde_json::to_string(m).expect("json"));
    }
    let mut values: Vec<String> = texts.iter().map(|s| s.to_string()).collect();
    for v in data.raw_row(ROW).iter().chain(data.std_row(ROW)) {
        // Plain integers could equal a row number or an offset by chance; skip those.
        for s in [format!("{v}"), format!("{v:?}")] {
            if s.len() >= 4 && !s.bytes().all(|b| b.is_ascii_digit()) {
                values.push(s);
            }
        }
    }
    for p in &printed {
        for v in &values {
            assert!(!p.contains(v.as_str()), "a value is printed");
        }
    }
}

#[test]
fn match_kinds_serialize_as_tagged_kebab_case() {
    let k = numeric(Encoding::Bf16, true);
    let json = serde_json::to_string(&k).expect("json");
    assert_eq!(
        json,
        r#"{"kind":"numeric","encoding":"bf16","standardized":true}"#
    );
    assert_eq!(
        serde_json::to_string(&MatchKind::Text).expect("json"),
        r#"{"kind":"text"}"#
    );
    let back: MatchKind = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, k);
}

#[test]
fn low_information_windows_are_skipped_and_counted() {
    let numeric_columns: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Row 0: small integers (raw skipped); row 1: two distinct values only; row 2: fine.
    let raw = vec![
        1.0, 2.0, 3.0, 4.0, 5.0, //
        0.5, 0.25, 0.5, 0.25, 0.5, //
        1.5, 2.5, 3.5, 4.5, 5.5,
    ];
    let standardized = vec![
        -1.0, -0.5, 0.0, 0.5, 1.0, //
        0.0, 0.0, 0.0, 0.0, 0.0, //
        -0.3, 0.1, 0.7, 1.3, 2.9,
    ];
    let src = RecordSource {
        text_columns: &[],
        text_values: &[],
        numeric_columns: &numeric_columns,
        numeric_raw: &raw,
        numeric_standardized: &standardized,
    };
    let idx = RecordIndex::build(&src, RecordParams::default());
    let s = idx.stats();
    // 3 rows × 2 windows × (raw, standardized) × 3 encodings = 36 encoded windows.
    // Skipped: row 0 raw (6), row 1 raw (6) and standardized (6).
    assert_eq!(s.numeric_skipped_low_information, 18);
    assert_eq!(s.numeric_windows, 18);
    let mut buf = vec![0u8; 64];
    plant(&mut buf, 8, &f32_bytes(&raw[..5]));
    assert_eq!(idx.scan(&buf, 1), vec![]);
    plant(&mut buf, 8, &f32_bytes(&standardized[..5]));
    let found = idx.scan(&buf, 1);
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].row, found[0].column.as_str(), found[0].offset),
        (0, "a", 8)
    );
    assert_eq!(
        (found[1].row, found[1].column.as_str(), found[1].offset),
        (0, "b", 12)
    );
}

#[test]
fn small_windows_work_with_the_tail_of_the_buffer() {
    let data = Data::demo(200, 9);
    let params = RecordParams {
        min_text_len: 8,
        window: 2,
    };
    let idx = RecordIndex::build(&data.source(), params);
    // amount and distance are rarely shared by two rows: pick a window starting at column 0.
    let row = data.raw_row(ROW);
    let mut buf = random_floats(1024, 10);
    let n = buf.len();
    plant(&mut buf, n - 4, &f16_bytes(&data.std_row(ROW)[..2]));
    plant(&mut buf, 100, &f32_bytes(&row[..2]));
    let found = idx.scan(&buf, 1);
    assert!(
        found
            .iter()
            .any(|m| m.offset == n - 4 && m.kind == numeric(Encoding::F16, true)),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|m| m.offset == 100 && m.kind == numeric(Encoding::F32, false))
    );
}

#[test]
fn isolated_half_matches_outside_half_tensors_are_chance() {
    let data = Data::demo(400, 5);
    let idx = index(&data);
    let mut buf = random_floats(64 * 1024, 3);
    // A whole row copied as bf16: every window matches, and they corroborate each other.
    plant(&mut buf, 2002, &bf16_bytes(data.std_row(ROW)));
    // A lone 4-value f16 window, as chance would produce one: nothing next to it matches.
    plant(&mut buf, 6002, &f16_bytes(&data.std_row(ROW)[..4]));
    let lone = |m: &RecordMatch| m.offset == 6002 && m.kind == numeric(Encoding::F16, true);
    assert!(
        idx.scan(&buf, 1).iter().any(lone),
        "the raw scan reports the lone window"
    );
    let in_f32 = idx.scan_tensor(&buf, 1, false);
    assert!(
        !in_f32.iter().any(lone),
        "outside half tensors a lone half window is chance"
    );
    assert!(
        in_f32
            .iter()
            .any(|m| m.offset == 2002 && m.kind == numeric(Encoding::Bf16, true))
    );
    assert!(
        idx.scan_tensor(&buf, 1, true).iter().any(lone),
        "inside half tensors it counts"
    );
}
