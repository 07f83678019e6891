//! L2: exact training records (text fields and numeric rows) in artifact bytes.
//!
//! A model file must hold weights, nothing else. If a training row was copied into it (a
//! debugging buffer, a cached batch, an embedding table keyed by customer), the row's
//! values appear verbatim somewhere in the bytes. This module indexes the training data and
//! scans artifacts for:
//!
//! - text cells (identifiers: names, e-mails, card numbers, …) of at least
//!   [`RecordParams::min_text_len`] bytes, with Aho-Corasick over all bytes;
//! - windows of [`RecordParams::window`] consecutive numeric values of a row, raw and
//!   standardized, encoded as little-endian f32, f16 and bf16, at element-aligned offsets.
//!
//! Numeric windows are found with one probe of a small Bloom-style bit set per aligned
//! offset (keyed on the first 8 bytes, which serve an f32 window start and an f16/bf16
//! window alike); only on a hit is a hash table consulted, and a match is reported only
//! after the exact window bytes were compared, so hash collisions never produce a finding.
//!
//! Nothing printable produced here (matches, stats, `Debug` output, panics) contains a
//! training value: findings name rows and columns only, so that a leak report can itself be
//! shipped and logged.

use std::fmt;

use aho_corasick::AhoCorasick;
use half::{bf16, f16};

/// The training data to look for, borrowed from the caller.
///
/// `Debug` is implemented by hand and prints only column names and sizes, never values.
#[derive(Clone)]
pub struct RecordSource<'a> {
    /// Names of the text (identifier) columns.
    pub text_columns: &'a [String],
    /// Row-major: rows × text_columns.len() cell values.
    pub text_values: &'a [String],
    /// Names of the numeric feature columns.
    pub numeric_columns: &'a [String],
    /// Row-major rows × numeric_columns.len(): raw values as read from the CSV.
    pub numeric_raw: &'a [f32],
    /// Same shape: the standardized values the model was trained on.
    pub numeric_standardized: &'a [f32],
}

impl fmt::Debug for RecordSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordSource")
            .field("text_columns", &self.text_columns)
            .field(
                "text_values",
                &format_args!("[{} values]", self.text_values.len()),
            )
            .field("numeric_columns", &self.numeric_columns)
            .field(
                "numeric_raw",
                &format_args!("[{} values]", self.numeric_raw.len()),
            )
            .field(
                "numeric_standardized",
                &format_args!("[{} values]", self.numeric_standardized.len()),
            )
            .finish()
    }
}

/// Tuning of the record index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RecordParams {
    /// Text cells shorter than this (in bytes) are not searched: short values ("42",
    /// "12345") occur in any binary by chance.
    pub min_text_len: usize,
    /// Consecutive numeric values per window; must be at least 2.
    pub window: usize,
}

impl Default for RecordParams {
    fn default() -> Self {
        Self {
            min_text_len: 8,
            window: 4,
        }
    }
}

/// How numeric values were encoded in the artifact.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// IEEE 754 binary32, little-endian.
    F32,
    /// IEEE 754 binary16, little-endian.
    F16,
    /// bfloat16, little-endian.
    Bf16,
}

/// What kind of record data matched.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MatchKind {
    /// A text cell, byte for byte.
    Text,
    /// A window of consecutive numeric values of one row.
    Numeric {
        /// Encoding of the values found.
        encoding: Encoding,
        /// Whether the values are the standardized ones (else the raw CSV values).
        standardized: bool,
    },
}

/// A verified occurrence of training data in the scanned bytes. Names where the data came
/// from, never the data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordMatch {
    /// 0-based data row (the first row holding the value, when several rows share it).
    pub row: usize,
    /// Column name (for numeric: the first column of the window).
    pub column: String,
    /// What matched.
    pub kind: MatchKind,
    /// Byte offset in the scanned buffer.
    pub offset: usize,
}

/// Size of a [`RecordIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    /// Distinct text values indexed (Aho-Corasick patterns).
    pub text_patterns: usize,
    /// Text cells not indexed because shorter than `min_text_len`.
    pub text_skipped_short: usize,
    /// Distinct encoded numeric windows indexed (one per encoding, raw or standardized,
    /// and byte content).
    pub numeric_windows: usize,
    /// Encoded numeric windows not indexed because they carry too little information to
    /// identify a row, counted once per encoding: fewer than 3 distinct encoded values
    /// (fewer than 2 for a window of 2); raw values that are all integers below 256 in
    /// magnitude; or, for f16/bf16, every other value a "round" 16-bit pattern (low 13 bits
    /// zero, e.g. 0 or 2) that the low halves of half-precision weights widened to f32
    /// produce on their own.
    pub numeric_skipped_low_information: usize,
}

/// Index over training records; see the module documentation.
pub struct RecordIndex {
    params: RecordParams,
    stats: IndexStats,
    text_columns: Vec<String>,
    numeric_columns: Vec<String>,
    text: Option<TextIndex>,
    f32_table: NumTable,
    half_table: NumTable,
    filter: Prefilter,
    /// The prefilter key of an f32 window at an offset is the first `min(8, 4 * window)`
    /// bytes there, of an f16/bf16 window the first `min(8, 2 * window)`; with the default
    /// window both are all 8 bytes, so one probe serves both.
    f32_key_mask: u64,
    half_key_mask: u64,
}

impl fmt::Debug for RecordIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordIndex")
            .field("params", &self.params)
            .field("stats", &self.stats)
            .field("text_columns", &self.text_columns)
            .field("numeric_columns", &self.numeric_columns)
            .field("prefilter_bytes", &(self.filter.words.len() * 8))
            .finish_non_exhaustive()
    }
}

const TAG_STANDARDIZED: u8 = 1;
const TAG_F16: u8 = 2;
const TAG_BF16: u8 = 4;

fn tag_kind(tag: u8) -> MatchKind {
    let encoding = if tag & TAG_F16 != 0 {
        Encoding::F16
    } else if tag & TAG_BF16 != 0 {
        Encoding::Bf16
    } else {
        Encoding::F32
    };
    MatchKind::Numeric {
        encoding,
        standardized: tag & TAG_STANDARDIZED != 0,
    }
}

fn to_u32(v: usize, what: &str) -> u32 {
    match u32::try_from(v) {
        Ok(v) => v,
        Err(_) => panic!("record index: {what} exceeds 2^32"),
    }
}

impl RecordIndex {
    /// Index `src`.
    ///
    /// # Panics
    ///
    /// If `params.window < 2`, if the slices of `src` do not have the shapes documented on
    /// [`RecordSource`], or if the data is too large for the index (more than 2^32 rows,
    /// windows or text patterns). Messages name sizes only.
    pub fn build(src: &RecordSource<'_>, params: RecordParams) -> RecordIndex {
        assert!(
            params.window >= 2,
            "record index: window must be at least 2"
        );
        let rows = check_shapes(src);
        let w = params.window;
        let half_len = (2 * w).min(8);
        let f32_len = (4 * w).min(8);
        let mask = |len: usize| {
            if len >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * len)) - 1
            }
        };

        let (text, text_skipped, (f32_b, f32_skipped), (half_b, half_skipped)) =
            std::thread::scope(|s| {
                let text = s.spawn(|| TextIndex::build(src, params.min_text_len));
                let f32_t = s.spawn(|| build_numeric(src, rows, w, Class::F32));
                let half_t = build_numeric(src, rows, w, Class::Half);
                let (text, skipped) = text.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                let f32_t = f32_t
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e));
                (text, skipped, f32_t, half_t)
            });

        let f32_key_mask = mask(f32_len);
        let half_key_mask = mask(half_len);
        let f32_table = f32_b.finish();
        let half_table = half_b.finish();
        let keys = f32_table.groups() + half_table.groups();
        let mut filter = Prefilter::with_capacity(keys);
        for g in 0..f32_table.groups() {
            filter.insert(f32_table.key_prefix(g) & f32_key_mask);
        }
        for g in 0..half_table.groups() {
            filter.insert(half_table.key_prefix(g) & half_key_mask);
        }

        let stats = IndexStats {
            text_patterns: text.as_ref().map_or(0, |t| t.origins.len()),
            text_skipped_short: text_skipped,
            numeric_windows: f32_table.entries.len() + half_table.entries.len(),
            numeric_skipped_low_information: f32_skipped + half_skipped,
        };
        RecordIndex {
            params,
            stats,
            text_columns: src.text_columns.to_vec(),
            numeric_columns: src.numeric_columns.to_vec(),
            text,
            f32_table,
            half_table,
            filter,
            f32_key_mask,
            half_key_mask,
        }
    }

    /// Sizes of the index.
    pub fn stats(&self) -> IndexStats {
        self.stats
    }

    /// Scan `bytes` with `threads` threads (0 counts as 1).
    ///
    /// Numeric windows are checked at element-aligned offsets relative to the start of
    /// `bytes` (every 4 bytes for F32, every 2 bytes for F16/BF16); text at every byte.
    /// Results are sorted by (offset, row, column) and deduplicated.
    ///
    /// The buffer is split into `threads` chunks of `ceil(len / threads)` rounded up to a
    /// multiple of 4 bytes; each thread reports the matches that start in its chunk, reading
    /// past its end as far as the longest pattern needs, so a match that straddles a
    /// boundary is found exactly once.
    pub fn scan(&self, bytes: &[u8], threads: usize) -> Vec<RecordMatch> {
        let threads = threads.max(1);
        let len = bytes.len();
        let chunk = len.div_ceil(threads).div_ceil(4) * 4;
        let mut out = if threads == 1 || chunk == 0 {
            let mut out = Vec::new();
            self.scan_range(bytes, 0, len, &mut out);
            out
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|k| (k * chunk).min(len)..((k + 1) * chunk).min(len))
                    .filter(|r| !r.is_empty())
                    .map(|r| {
                        s.spawn(move || {
                            let mut out = Vec::new();
                            self.scan_range(bytes, r.start, r.end, &mut out);
                            out
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                for h in handles {
                    all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
                all
            })
        };
        out.sort_by(|a, b| {
            (a.offset, a.row, &a.column, a.kind).cmp(&(b.offset, b.row, &b.column, b.kind))
        });
        out.dedup();
        out
    }

    /// [`scan`](Self::scan) of one tensor's bytes. Outside half-precision tensors
    /// (`half_native` false) an f16/bf16 window match is kept only when a neighbouring
    /// window of the same row matches too (at least 5 consecutive values).
    ///
    /// An 8-byte half window at every 2-byte offset of f32 data carries only about 50 bits
    /// that are hard to match by chance: against 100k rows, random f32 weights give about
    /// one chance match per GiB. Two overlapping windows of one row (10 bytes) do not happen
    /// by chance, while a row really copied as f16 or bf16 yields every one of its windows.
    pub fn scan_tensor(&self, bytes: &[u8], threads: usize, half_native: bool) -> Vec<RecordMatch> {
        let found = self.scan(bytes, threads);
        if half_native {
            return found;
        }
        let col = |m: &RecordMatch| self.numeric_columns.iter().position(|c| *c == m.column);
        let is_half = |m: &RecordMatch| {
            matches!(
                m.kind,
                MatchKind::Numeric {
                    encoding: Encoding::F16 | Encoding::Bf16,
                    ..
                }
            )
        };
        let keys: std::collections::HashSet<(usize, usize, Option<usize>, MatchKind)> = found
            .iter()
            .filter(|m| is_half(m))
            .map(|m| (m.offset, m.row, col(m), m.kind))
            .collect();
        found
            .into_iter()
            .filter(|m| {
                if !is_half(m) {
                    return true;
                }
                let Some(c) = col(m) else { return true };
                let next = (m.offset + 2, m.row, Some(c + 1), m.kind);
                let prev = m
                    .offset
                    .checked_sub(2)
                    .zip(c.checked_sub(1))
                    .map(|(o, c)| (o, m.row, Some(c), m.kind));
                keys.contains(&next) || prev.is_some_and(|p| keys.contains(&p))
            })
            .collect()
    }

    /// Matches starting in `start..end` (`start` 4-aligned), reading up to `bytes.len()`.
    fn scan_range(&self, bytes: &[u8], start: usize, end: usize, out: &mut Vec<RecordMatch>) {
        if self.f32_table.groups() + self.half_table.groups() > 0 {
            self.scan_numeric(bytes, start, end, out);
        }
        if let Some(text) = &self.text {
            let text_end = end.saturating_add(text.max_len - 1).min(bytes.len());
            text.scan(bytes, start, end, text_end, &self.text_columns, out);
        }
    }

    fn scan_numeric(&self, bytes: &[u8], start: usize, end: usize, out: &mut Vec<RecordMatch>) {
        debug_assert!(start.is_multiple_of(4));
        let filter = &self.filter;
        let hm = self.half_key_mask;
        let fm = self.f32_key_mask;
        let single = hm == fm;
        let mut o = start;
        // Hot loop: the 8-byte keys at o, o+2, o+4 and o+6 from one 14-byte slice (one
        // bounds check), each probed with one load of the filter.
        while o + 8 <= end {
            let Some(b) = bytes.get(o..o + 14) else {
                break;
            };
            for k in 0..4 {
                let Some(key) = b[2 * k..].first_chunk::<8>() else {
                    break;
                };
                let x = u64::from_le_bytes(*key);
                let hit = if single {
                    filter.contains(x & hm)
                } else {
                    filter.contains(x & hm) || (k % 2 == 0 && filter.contains(x & fm))
                };
                if hit {
                    self.verify_at(bytes, o + 2 * k, out);
                }
            }
            o += 8;
        }
        // Tail: the last offsets, where fewer than 14 bytes remain; keys are zero-padded
        // and windows that do not fit are rejected by `verify_at`.
        while o < end {
            let mut key = [0u8; 8];
            let avail = (bytes.len() - o).min(8);
            key[..avail].copy_from_slice(&bytes[o..o + avail]);
            let x = u64::from_le_bytes(key);
            if filter.contains(x & hm) || (o.is_multiple_of(4) && filter.contains(x & fm)) {
                self.verify_at(bytes, o, out);
            }
            o += 2;
        }
    }

    #[cold]
    fn verify_at(&self, bytes: &[u8], o: usize, out: &mut Vec<RecordMatch>) {
        let mut report = |row: u32, col: u32, tag: u8| {
            out.push(RecordMatch {
                row: row as usize,
                column: self.numeric_columns[col as usize].clone(),
                kind: tag_kind(tag),
                offset: o,
            });
        };
        if o.is_multiple_of(4) {
            for e in self.f32_table.lookup(bytes, o) {
                report(e.row, e.col, e.tag);
            }
        }
        for e in self.half_table.lookup(bytes, o) {
            report(e.row, e.col, e.tag);
        }
    }
}

/// Rows of `src`, after checking that all slices agree.
fn check_shapes(src: &RecordSource<'_>) -> usize {
    let tc = src.text_columns.len();
    let nc = src.numeric_columns.len();
    let text_rows = if tc == 0 {
        assert!(
            src.text_values.is_empty(),
            "record index: text values given without text columns"
        );
        None
    } else {
        assert!(
            src.text_values.len().is_multiple_of(tc),
            "record index: {} text values do not fill rows of {} columns",
            src.text_values.len(),
            tc
        );
        Some(src.text_values.len() / tc)
    };
    assert_eq!(
        src.numeric_raw.len(),
        src.numeric_standardized.len(),
        "record index: raw and standardized numeric values differ in count"
    );
    let numeric_rows = if nc == 0 {
        assert!(
            src.numeric_raw.is_empty(),
            "record index: numeric values given without numeric columns"
        );
        None
    } else {
        assert!(
            src.numeric_raw.len().is_multiple_of(nc),
            "record index: {} numeric values do not fill rows of {} columns",
            src.numeric_raw.len(),
            nc
        );
        Some(src.numeric_raw.len() / nc)
    };
    match (text_rows, numeric_rows) {
        (Some(a), Some(b)) => {
            assert_eq!(a, b, "record index: text and numeric row counts differ");
            a
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 0,
    }
}

// ---------------------------------------------------------------------------------------
// Text

struct TextIndex {
    ac: AhoCorasick,
    /// Per pattern: the first (row, text column) holding it.
    origins: Vec<(u32, u32)>,
    /// Bytes that occur in some pattern: a match lies inside a run of these.
    byteset: [bool; 256],
    min_len: usize,
    max_len: usize,
}

impl TextIndex {
    /// The index (None when no cell is long enough) and the count of short cells.
    fn build(src: &RecordSource<'_>, min_text_len: usize) -> (Option<TextIndex>, usize) {
        let tc = src.text_columns.len();
        let mut skipped = 0;
        let mut seen: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut patterns: Vec<&str> = Vec::new();
        let mut origins = Vec::new();
        let mut byteset = [false; 256];
        let (mut min_len, mut max_len) = (usize::MAX, 0);
        for (i, v) in src.text_values.iter().enumerate() {
            // Empty cells can never be searched for, whatever the threshold.
            if v.len() < min_text_len.max(1) {
                skipped += 1;
                continue;
            }
            if seen.contains_key(v.as_str()) {
                continue;
            }
            seen.insert(v, to_u32(patterns.len(), "text patterns"));
            patterns.push(v);
            origins.push((to_u32(i / tc, "rows"), to_u32(i % tc, "columns")));
            for &b in v.as_bytes() {
                byteset[usize::from(b)] = true;
            }
            min_len = min_len.min(v.len());
            max_len = max_len.max(v.len());
        }
        if patterns.is_empty() {
            return (None, skipped);
        }
        let ac = match AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(&patterns)
        {
            Ok(ac) => ac,
            // The error names sizes and pattern numbers only.
            Err(e) => panic!("record index: text automaton could not be built: {e}"),
        };
        let index = TextIndex {
            ac,
            origins,
            byteset,
            min_len,
            max_len,
        };
        (Some(index), skipped)
    }

    /// Matches starting in `start..end`, the text readable up to `text_end`.
    fn scan(
        &self,
        bytes: &[u8],
        start: usize,
        end: usize,
        text_end: usize,
        columns: &[String],
        out: &mut Vec<RecordMatch>,
    ) {
        let l = self.min_len;
        let set = &self.byteset;
        let mut i = start;
        // Only runs of pattern bytes at least `l` long can hold a match. Probing the last
        // byte of each `l`-window skips most of a binary buffer without reading it.
        while i + l <= text_end {
            let probe = i + l - 1;
            if !set[usize::from(bytes[probe])] {
                i = probe + 1;
                continue;
            }
            let mut j = probe;
            while j > i && set[usize::from(bytes[j - 1])] {
                j -= 1;
            }
            if j > i {
                // The run holding `probe` starts at j and is shorter than `l` so far.
                i = j;
                continue;
            }
            // bytes[i..=probe] are all pattern bytes and the run starts at i.
            let mut e = probe + 1;
            while e < text_end && set[usize::from(bytes[e])] {
                e += 1;
            }
            for m in self.ac.find_overlapping_iter(&bytes[i..e]) {
                let offset = i + m.start();
                if offset >= end {
                    continue;
                }
                let (row, col) = self.origins[m.pattern().as_usize()];
                out.push(RecordMatch {
                    row: row as usize,
                    column: columns[col as usize].clone(),
                    kind: MatchKind::Text,
                    offset,
                });
            }
            i = e + 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Numeric

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    F32,
    /// f16 and bf16 windows share a table: both are 2 bytes per value, so one probe per
    /// 2-byte offset serves both.
    Half,
}

/// Encode the windows of every row in one class, skipping low-information ones. Returns
/// the table builder and the number of skipped encoded windows.
fn build_numeric(
    src: &RecordSource<'_>,
    rows: usize,
    w: usize,
    class: Class,
) -> (NumBuilder, usize) {
    let nc = src.numeric_columns.len();
    let per_row = if nc >= w { nc - w + 1 } else { 0 };
    let encodings: &[u8] = match class {
        Class::F32 => &[0],
        Class::Half => &[TAG_F16, TAG_BF16],
    };
    let elem = if class == Class::F32 { 4 } else { 2 };
    let candidates = rows * per_row * 2 * encodings.len();
    let mut b = NumBuilder::new(w * elem, candidates);
    let mut skipped = 0;
    // A window of 2 cannot hold 3 distinct values: it only has to hold 2.
    let min_distinct = w.min(3);
    let mut buf = vec![0u8; w * elem];
    let mut bits = vec![0u32; w];
    for row in 0..rows {
        for (std_tag, values) in [
            (0u8, src.numeric_raw),
            (TAG_STANDARDIZED, src.numeric_standardized),
        ] {
            let rv = &values[row * nc..(row + 1) * nc];
            for c in 0..per_row {
                let win = &rv[c..c + w];
                let small_ints =
                    std_tag == 0 && win.iter().all(|v| v.fract() == 0.0 && v.abs() < 256.0);
                for &enc in encodings {
                    for (k, &v) in win.iter().enumerate() {
                        let e = match enc {
                            TAG_F16 => u32::from(f16::from_f32(v).to_bits()),
                            TAG_BF16 => u32::from(bf16::from_f32(v).to_bits()),
                            _ => v.to_bits(),
                        };
                        bits[k] = e;
                        let le = e.to_le_bytes();
                        buf[k * elem..(k + 1) * elem].copy_from_slice(&le[..elem]);
                    }
                    if small_ints
                        || distinct_values(&bits) < min_distinct
                        || (class == Class::Half && matches_upcast_low_halves(&bits))
                    {
                        skipped += 1;
                        continue;
                    }
                    b.insert(
                        &buf,
                        NumEntry {
                            row: to_u32(row, "rows"),
                            col: to_u32(c, "columns"),
                            tag: enc | std_tag,
                        },
                    );
                }
            }
        }
    }
    (b, skipped)
}

/// Whether a window of 16-bit values could be matched by the low halves of f32 values
/// that were widened from f16 or bf16 (weights trained in half precision and saved as f32
/// are common). Read at a 2-byte offset, such a buffer shows a low half (low 13 bits zero:
/// ±0, ±2, …) at every other position, so a window whose even (or odd) positions all hold
/// such values needs only its other half to match by chance, and with a few hundred
/// thousand rows that happens in every large model.
fn matches_upcast_low_halves(bits: &[u32]) -> bool {
    let low = |b: &u32| b & 0x1FFF == 0;
    bits.iter().step_by(2).all(low) || bits.iter().skip(1).step_by(2).all(low)
}

/// Distinct values in `bits`, counting no further than 3.
fn distinct_values(bits: &[u32]) -> usize {
    let first = bits[0];
    let Some(&second) = bits.iter().find(|&&b| b != first) else {
        return 1;
    };
    if bits.iter().all(|&b| b == first || b == second) {
        2
    } else {
        3
    }
}

#[derive(Clone, Copy)]
struct NumEntry {
    row: u32,
    col: u32,
    tag: u8,
}

/// An empty slot of the window tables. A slot holds a group index in its low 32 bits and
/// the high 32 bits of the window's hash above them, so that most unsuccessful lookups are
/// answered by the slot array alone.
const EMPTY: u64 = u64::MAX;

fn slot(group: usize, hash: u64) -> u64 {
    (hash & 0xFFFF_FFFF_0000_0000) | u64::from(to_u32(group, "numeric windows"))
}

/// Window equality without a call to `memcmp` for the common sizes.
#[inline]
fn same_window(a: &[u8], b: &[u8]) -> bool {
    match (a.first_chunk::<16>(), b.first_chunk::<16>()) {
        (Some(x), Some(y)) if a.len() == 16 && b.len() == 16 => {
            u128::from_le_bytes(*x) == u128::from_le_bytes(*y)
        }
        _ => match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
            (Some(x), Some(y)) if a.len() == 8 && b.len() == 8 => {
                u64::from_le_bytes(*x) == u64::from_le_bytes(*y)
            }
            _ => a == b,
        },
    }
}

/// Hash of a whole window, for the exact-match table.
fn hash_window(w: &[u8]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3 ^ w.len() as u64;
    let mut chunks = w.chunks_exact(8);
    for c in &mut chunks {
        let mut k = [0u8; 8];
        k.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(k)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut k = [0u8; 8];
        k[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(k)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

/// Collects distinct windows (groups) and, per group, the first row/column of each tag.
struct NumBuilder {
    wlen: usize,
    blob: Vec<u8>,
    slots: Vec<u64>,
    mask: usize,
    group_tags: Vec<u8>,
    pending: Vec<(u32, NumEntry)>,
}

impl NumBuilder {
    fn new(wlen: usize, max_groups: usize) -> Self {
        let cap = (max_groups + max_groups / 3 + 1)
            .next_power_of_two()
            .max(16);
        Self {
            wlen,
            blob: Vec::new(),
            slots: vec![EMPTY; cap],
            mask: cap - 1,
            group_tags: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn insert(&mut self, window: &[u8], entry: NumEntry) {
        let tag_bit = 1u8 << entry.tag;
        let h = hash_window(window);
        let mut s = h as usize & self.mask;
        loop {
            let v = self.slots[s];
            if v == EMPTY {
                let g = self.group_tags.len();
                self.slots[s] = slot(g, h);
                self.blob.extend_from_slice(window);
                self.group_tags.push(tag_bit);
                self.pending.push((to_u32(g, "numeric windows"), entry));
                return;
            }
            let gi = (v & 0xFFFF_FFFF) as usize;
            if v >> 32 == h >> 32
                && same_window(&self.blob[gi * self.wlen..(gi + 1) * self.wlen], window)
            {
                // Keep the first row/column per encoding: rows are inserted in order.
                if self.group_tags[gi] & tag_bit == 0 {
                    self.group_tags[gi] |= tag_bit;
                    self.pending.push((to_u32(gi, "numeric windows"), entry));
                }
                return;
            }
            s = (s + 1) & self.mask;
        }
    }

    fn finish(self) -> NumTable {
        let groups = self.group_tags.len();
        // Group the entries (counting sort, stable: first rows first).
        let mut entry_start = vec![0u32; groups + 1];
        for &(g, _) in &self.pending {
            entry_start[g as usize + 1] += 1;
        }
        for g in 0..groups {
            entry_start[g + 1] += entry_start[g];
        }
        let mut fill: Vec<u32> = entry_start[..groups].to_vec();
        let mut entries = vec![
            NumEntry {
                row: 0,
                col: 0,
                tag: 0
            };
            self.pending.len()
        ];
        for &(g, e) in &self.pending {
            let at = &mut fill[g as usize];
            entries[*at as usize] = e;
            *at += 1;
        }
        // Rehash into a table sized for the groups actually present (the builder's was
        // sized for the worst case): smaller means fewer cache misses when scanning.
        let cap = (groups + groups / 3 + 1).next_power_of_two().max(16);
        let mask = cap - 1;
        let mut slots = vec![EMPTY; cap];
        for g in 0..groups {
            let h = hash_window(&self.blob[g * self.wlen..(g + 1) * self.wlen]);
            let mut s = h as usize & mask;
            while slots[s] != EMPTY {
                s = (s + 1) & mask;
            }
            slots[s] = slot(g, h);
        }
        NumTable {
            wlen: self.wlen,
            blob: self.blob,
            slots,
            mask,
            entry_start,
            entries,
        }
    }
}

/// Distinct windows of one class with the rows/columns they come from.
struct NumTable {
    wlen: usize,
    /// Group g's window bytes at `g * wlen`.
    blob: Vec<u8>,
    /// Open addressing, linear probing; see [`EMPTY`] for the layout.
    slots: Vec<u64>,
    mask: usize,
    entry_start: Vec<u32>,
    entries: Vec<NumEntry>,
}

impl NumTable {
    fn groups(&self) -> usize {
        self.entry_start.len().saturating_sub(1)
    }

    /// First (up to) 8 bytes of group g's window, zero-padded: its prefilter key.
    fn key_prefix(&self, g: usize) -> u64 {
        let w = &self.blob[g * self.wlen..(g + 1) * self.wlen];
        let mut k = [0u8; 8];
        let n = w.len().min(8);
        k[..n].copy_from_slice(&w[..n]);
        u64::from_le_bytes(k)
    }

    /// Entries whose window equals `bytes[o..o + wlen]` exactly.
    fn lookup(&self, bytes: &[u8], o: usize) -> &[NumEntry] {
        let Some(window) = bytes.get(o..o.saturating_add(self.wlen)) else {
            return &[];
        };
        if self.groups() == 0 {
            return &[];
        }
        let h = hash_window(window);
        let mut s = h as usize & self.mask;
        loop {
            let v = self.slots[s];
            if v == EMPTY {
                return &[];
            }
            let gi = (v & 0xFFFF_FFFF) as usize;
            // The exact bytes decide: a hash (or fingerprint) collision is never a match.
            if v >> 32 == h >> 32
                && same_window(&self.blob[gi * self.wlen..(gi + 1) * self.wlen], window)
            {
                let a = self.entry_start[gi] as usize;
                let b = self.entry_start[gi + 1] as usize;
                return &self.entries[a..b];
            }
            s = (s + 1) & self.mask;
        }
    }
}

/// Blocked Bloom filter: a key sets 5 bits of one 64-bit word, so a probe is one load.
/// The bits come from a small table of masks (L1-resident) instead of being computed one by
/// one, which keeps the per-probe arithmetic to one multiply and a few shifts. The pixel
/// index ([`crate::pixels`]) uses it too.
pub(crate) struct Prefilter {
    words: Vec<u64>,
    /// 64 - log2(words.len()): the word index is the top bits of the hash.
    shift: u32,
    masks: Box<[u64; MASKS]>,
}

/// At most 8 MiB of filter (16 bits per key for half a million rows of the demo table):
/// beyond that it no longer fits the last-level cache of common machines and every probe
/// would go to memory.
const MAX_FILTER_WORDS_LOG2: u32 = 20;
const MASKS: usize = 1024;
const BITS_PER_KEY: u32 = 5;

impl Prefilter {
    pub(crate) fn with_capacity(keys: usize) -> Self {
        // About 20 bits per key; at the 8 MiB cap with the 100k-row demo table (18 bits per
        // key) about 1 probe in 400 passes.
        let want_words = (keys.saturating_mul(20) / 64).max(64);
        let log2 = want_words
            .next_power_of_two()
            .trailing_zeros()
            .min(MAX_FILTER_WORDS_LOG2);
        let mut masks = Box::new([0u64; MASKS]);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for m in masks.iter_mut() {
            while m.count_ones() < BITS_PER_KEY {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *m |= 1 << (x % 64);
            }
        }
        Self {
            words: vec![0; 1 << log2],
            shift: 64 - log2,
            masks,
        }
    }

    #[inline(always)]
    fn pos(&self, key: u64) -> (usize, u64) {
        let h = (key ^ (key >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let w = (h >> self.shift) as usize;
        // The bits just below the word index select a mask and a rotation of it: 64 times
        // as many distinct masks as the table holds, so that a probe rarely draws exactly
        // the mask of a key already in its word (with 1024 masks alone, that floor would
        // dominate the false-positive rate).
        let m = self.masks[((h >> (self.shift - 10)) as usize) & (MASKS - 1)]
            .rotate_left(((h >> (self.shift - 16)) & 63) as u32);
        (w, m)
    }

    /// Size of the bit array in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    pub(crate) fn insert(&mut self, key: u64) {
        let (w, m) = self.pos(key);
        self.words[w] |= m;
    }

    /// [`contains`](Self::contains) of each key into `out`. The loop has no branch on what
    /// it loads, so the processor keeps many of the (cache-missing) loads in flight at once.
    pub(crate) fn contains_many(&self, keys: &[u64], out: &mut [bool]) {
        for (k, o) in keys.iter().zip(out.iter_mut()) {
            let (w, m) = self.pos(*k);
            *o = self.words.get(w).is_some_and(|&x| x & m == m);
        }
    }

    #[inline(always)]
    pub(crate) fn contains(&self, key: u64) -> bool {
        let (w, m) = self.pos(key);
        // `w < words.len()` by construction; `get` keeps the hot loop free of panics.
        self.words.get(w).is_some_and(|&x| x & m == m)
    }
}
