//! L2 for images: runs of training pixels in the bytes that leave.
//!
//! A CNN's file must hold weights. If training images were copied into it (a cached batch,
//! a debugging buffer, an "example input" tensor, pixels hidden in a header), runs of their
//! pixels appear in the bytes. This module indexes every run of [`WINDOW`] (16)
//! consecutive pixels of every training image, consecutive in the image's stored
//! channel-major (CHW), row-major order, so that runs cross row ends and channel
//! boundaries, and finds them in a buffer written as:
//!
//! | encoding | forms |
//! |---|---|
//! | `u8` | the raw pixel bytes |
//! | `f32`, `f16`, `bf16` (little-endian) | raw `x` (0 to 255 as a number), scaled `x / 255`, normalized `(x / 255 - mean[c]) / std[c]` with the model's per-channel input statistics |
//!
//! at **every byte offset**, for every encoding: a safetensors data buffer aligns a tensor
//! only to its own element size, and a header or metadata value can hold bytes anywhere.
//! Every offset costs little more than aligned ones would: nearly every offset is rejected
//! by bit masks built from one cached table load per encoding (bench `leak_pixels`).
//!
//! # How
//!
//! There is one table of windows, keyed by their 16 pixel bytes. Floats are *decoded*
//! back to pixels rather than indexed once per encoding and form: each element is looked
//! up in a small table per encoding that says in which slots (raw, scaled, normalized per
//! channel) it encodes which pixel. Per block of 64 offsets the scan builds bit masks
//! (this element decodes; equals the next one; equals the one after) and, with a few
//! shifts, finds the offsets where 16 consecutive elements decode and are neither all equal
//! nor alternating between two values (which never hold 4 distinct pixels: zero fill,
//! constants, widened half-precision constants). Nearly every offset of real weights stops
//! there; the few left are decoded and looked up like raw bytes. Raw bytes, which always
//! "decode", first pass a 2 MiB set of the 4-byte groups of the training images at the
//! window's 4 group positions, then the Bloom filter. Blocks of zeros are skipped whole.
//!
//! Floats are compared in their encoding: f16 and bf16 elements must be exactly the
//! rounding of the f32 value; f32 elements must lie within 8 units of 2^-24 times the
//! magnitude of the operands (`x`, `x / 255`, `mean`, over `std`) of it, which takes in the
//! same normalization computed in another order (`x * (1 / 255)`, a product with
//! `1 / std`, a fused multiply-add), even where subtracting the mean cancels most digits.
//! Where an encoding maps two pixel values to one number (bf16 with a small `std`, such as
//! MNIST's), windows are also indexed by their canonical pixels in that encoding. For
//! normalized values a run that crosses a channel boundary is decoded with each channel on
//! its side.
//!
//! Lookups go through a Bloom filter (shared with [`crate::records`]) and a fingerprinted
//! open-addressing table; a match is reported only after the training pixels were
//! re-encoded and compared with the scanned bytes element by element, so hash collisions
//! never produce a finding.
//!
//! # Low information
//!
//! A window is not indexed unless it holds at least [`PixelParams::min_distinct`] distinct
//! values and no value more than [`PixelParams::max_equal`] times (defaults 4 and 10).
//! Background, black borders and flat regions would otherwise match zeros and constants in
//! weights. The bound on repeats is tighter than "12 of 16": a window of 12 background
//! pixels and 4 others has only 32 bits of content in the `u8` view, and a pruned model's
//! isolated non-zero f32 in a field of zeros shows exactly that shape (12 zero bytes and 4
//! others); with thousands of edge windows per data set that would be a false alarm per
//! model. With at most 10 equal, at least 6 pixels (48 bits) must match on top.
//!
//! # Findings
//!
//! Matching windows are joined into runs: one [`PixelMatch`] per run of consecutive pixels
//! of one image found consecutively in one encoding and form, with its length. Runs shorter
//! than [`PixelParams::run`] are dropped. When several training images share a window, the
//! first image is named. Nothing printable produced here (matches, stats, errors, `Debug`
//! output, panics) holds a pixel value: findings name images and positions only.

mod codec;
mod table;

use std::collections::HashMap;
use std::fmt;

pub use codec::MAX_CHANNELS;
use codec::{Codec, SLOTS, element, form_slot, slot_form, slot_value};
use table::WindowTable;

use crate::records::Prefilter;

/// Pixels per indexed window: the shortest run that can be found.
pub const WINDOW: usize = 16;

const FULL: u16 = u16::MAX;

/// The training images to look for, borrowed from the caller.
///
/// `Debug` is implemented by hand and prints sizes only, never pixels.
#[derive(Clone, Copy)]
pub struct PixelSource<'a> {
    /// rows × channels × height × width u8 pixels, channel-major (CHW) per image.
    pub pixels: &'a [u8],
    /// Channels per image (1 to [`MAX_CHANNELS`]).
    pub channels: usize,
    /// Rows per channel.
    pub height: usize,
    /// Pixels per row.
    pub width: usize,
    /// Per-channel mean and std of the model's input normalization `(x/255 - mean)/std`,
    /// if any.
    pub normalization: Option<(&'a [f32], &'a [f32])>,
}

impl fmt::Debug for PixelSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PixelSource")
            .field("pixels", &format_args!("[{} bytes]", self.pixels.len()))
            .field("channels", &self.channels)
            .field("height", &self.height)
            .field("width", &self.width)
            .field("normalization", &self.normalization.is_some())
            .finish()
    }
}

/// Tuning of the pixel index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PixelParams {
    /// Shortest run reported, in pixels; at least [`WINDOW`].
    pub run: usize,
    /// A window is indexed only with at least this many distinct pixel values (1 to 16).
    pub min_distinct: usize,
    /// A window is indexed only when no pixel value occurs in it more often than this
    /// (1 to 16).
    pub max_equal: usize,
}

impl Default for PixelParams {
    fn default() -> Self {
        Self {
            run: WINDOW,
            min_distinct: 4,
            max_equal: 10,
        }
    }
}

/// How pixel values were written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PixelEncoding {
    /// One byte per pixel.
    U8,
    /// IEEE 754 binary32, little-endian.
    F32,
    /// IEEE 754 binary16, little-endian.
    F16,
    /// bfloat16, little-endian.
    Bf16,
}

impl PixelEncoding {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
        }
    }

    /// The name used in findings: `u8`, `f32`, `f16`, `bf16`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }
}

/// Which number a pixel value `x` was turned into before it was encoded.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PixelForm {
    /// `x` itself (0 to 255); the only form of [`PixelEncoding::U8`].
    Raw,
    /// `x / 255`.
    Scaled,
    /// `(x / 255 - mean[c]) / std[c]` with the statistics of the pixel's channel `c`.
    Normalized,
}

impl PixelForm {
    /// The name used in findings: `raw`, `scaled`, `normalized`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Scaled => "scaled",
            Self::Normalized => "normalized",
        }
    }
}

/// A verified run of training pixels in the scanned bytes. Names where the pixels came
/// from, never the pixels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PixelMatch {
    /// 0-based training image.
    pub image: usize,
    /// First pixel of the run in the image, as a CHW index (`(c * height + y) * width + x`).
    pub pixel: usize,
    /// Byte offset of the run in the scanned buffer.
    pub offset: usize,
    /// Length of the run in pixels (at least [`PixelParams::run`]).
    pub pixels: usize,
    /// How the pixels were encoded.
    pub encoding: PixelEncoding,
    /// Which number the pixels were turned into.
    pub form: PixelForm,
}

impl PixelMatch {
    /// The L2 finding kind for the report, e.g. `image-pixels (f16, normalized)`.
    pub fn kind(&self) -> String {
        finding_kind(self)
    }
}

/// The L2 finding kind of a match for the report: `image-pixels (ENCODING, FORM)`, e.g.
/// `image-pixels (u8, raw)` or `image-pixels (bf16, normalized)`.
pub fn finding_kind(m: &PixelMatch) -> String {
    format!(
        "image-pixels ({}, {})",
        m.encoding.as_str(),
        m.form.as_str()
    )
}

/// Size of a [`PixelIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PixelStats {
    /// Training images.
    pub images: usize,
    /// Windows of [`WINDOW`] consecutive pixels inside an image, over all images.
    pub windows: usize,
    /// Distinct windows indexed.
    pub windows_indexed: usize,
    /// Windows not indexed because they carry too little information (see
    /// [`PixelParams::min_distinct`] and [`PixelParams::max_equal`]).
    pub skipped_low_information: usize,
    /// Informative windows equal to one of an earlier image or position (the first is
    /// named in findings).
    pub duplicates: usize,
    /// Extra keys of windows whose pixels some encoding cannot tell apart (see the module
    /// documentation).
    pub canonical_keys: usize,
    /// Heap bytes held by the index (pixels, table, filter, decoding tables).
    pub memory_bytes: usize,
}

/// Why a pixel index cannot be built. Messages name sizes and channels, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PixelIndexError {
    /// Channels outside 1 to [`MAX_CHANNELS`], or a zero side.
    Geometry {
        /// Declared channels.
        channels: usize,
        /// Declared height.
        height: usize,
        /// Declared width.
        width: usize,
    },
    /// The pixel buffer is not a whole number of images.
    PartialImage {
        /// Bytes given.
        bytes: usize,
        /// Bytes per image.
        image_bytes: usize,
    },
    /// More pixels than the index addresses (2^32 - 1).
    TooLarge {
        /// Bytes given.
        bytes: usize,
    },
    /// Mean and std are not one finite number per channel with std above zero, or the
    /// normalized values are not finite in f32.
    Normalization {
        /// What is wrong.
        reason: String,
    },
    /// Parameters out of range.
    Params {
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for PixelIndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Geometry {
                channels,
                height,
                width,
            } => write!(
                f,
                "pixel index: images of {channels}×{height}×{width}: channels must be 1 to {MAX_CHANNELS} and each side at least 1"
            ),
            Self::PartialImage { bytes, image_bytes } => write!(
                f,
                "pixel index: {bytes} pixel bytes are not a whole number of {image_bytes}-byte images"
            ),
            Self::TooLarge { bytes } => write!(
                f,
                "pixel index: {bytes} pixel bytes exceed the 2^32 - 1 the index addresses"
            ),
            Self::Normalization { reason } => write!(f, "pixel index: normalization: {reason}"),
            Self::Params { reason } => write!(f, "pixel index: parameters: {reason}"),
        }
    }
}

impl std::error::Error for PixelIndexError {}

/// Image layout.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    channels: usize,
    /// height × width.
    plane: usize,
    /// channels × plane.
    image_len: usize,
    images: usize,
}

impl Geometry {
    fn channel(&self, pixel: usize) -> usize {
        pixel / self.plane
    }
}

/// Windows whose key is their canonical pixels in one encoding and form.
#[derive(Debug, Clone, Copy)]
struct Alias {
    /// Index into [`PixelIndex::codecs`].
    codec: usize,
    form: PixelForm,
}

/// A channel pattern of a normalized window that crosses at least one channel boundary:
/// which of the window's elements lie in which channel.
#[derive(Debug, Clone, Copy)]
struct Crossing {
    /// Per channel: bit k set when element k lies in the channel.
    masks: [u16; MAX_CHANNELS],
    /// The same as byte masks over a window register.
    bytes: [u128; MAX_CHANNELS],
}

/// Over 64 consecutive byte offsets (bit i for offset i): whether the 4 bytes there occur
/// as 4 consecutive pixels of a training image, and [`Bits`] per float encoding.
#[derive(Clone, Copy, Default)]
struct BlockBits {
    gram: u64,
    /// f32, f16, bf16.
    floats: [Bits; 3],
}

impl BlockBits {
    /// The bits of 64 offsets followed by at least 16 zero bytes.
    fn zeros(zero: &ZeroBits) -> BlockBits {
        let mut b = BlockBits::default();
        b.or_zero(zero, u64::MAX);
        b
    }

    /// Sets `bit` as a run of zero bytes does.
    #[inline(always)]
    fn or_zero(&mut self, zero: &ZeroBits, bit: u64) {
        self.or_zero_floats(zero, bit);
        if zero.gram {
            self.gram |= bit;
        }
    }

    /// [`or_zero`](Self::or_zero) without the gram bit.
    #[inline(always)]
    fn or_zero_floats(&mut self, zero: &ZeroBits, bit: u64) {
        for (f, &valid) in self.floats.iter_mut().zip(&zero.valid) {
            if valid {
                f.valid |= bit;
            }
            f.eq |= bit;
            f.eq2 |= bit;
        }
    }
}

/// What zero bytes decode to: whether 4 zero pixels occur in a training image, and whether
/// a zero element of each float encoding decodes to a pixel.
#[derive(Debug, Clone, Copy)]
struct ZeroBits {
    gram: bool,
    valid: [bool; 3],
}

/// Set of the 4-byte groups (4 consecutive pixels) of the training images, as one bit per
/// hash: a quick test that rejects most offsets before the filter's cache miss.
struct Grams {
    bits: Vec<u64>,
    /// 32 - log2(bit count).
    shift: u32,
}

/// At most 2 MiB: it must stay in a core's cache to be worth its lookup.
const MAX_GRAM_BITS_LOG2: u32 = 24;

impl Grams {
    fn build(pixels: &[u8]) -> Grams {
        let want = (pixels.len().saturating_mul(4)).next_power_of_two();
        let log2 = want.trailing_zeros().clamp(12, MAX_GRAM_BITS_LOG2);
        let mut g = Grams {
            bits: vec![0; (1usize << log2) / 64],
            shift: 32 - log2,
        };
        for w in pixels.windows(4) {
            let h = g.slot(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
            g.bits[h >> 6] |= 1 << (h & 63);
        }
        g
    }

    #[inline(always)]
    fn slot(&self, v: u32) -> usize {
        (v.wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }

    #[inline(always)]
    fn contains(&self, v: u32) -> bool {
        let h = self.slot(v);
        self.bits
            .get(h >> 6)
            .is_some_and(|w| (w >> (h & 63)) & 1 == 1)
    }

    fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

/// Per float encoding, over 64 consecutive byte offsets (bit i for offset i): whether
/// the element there decodes to a pixel in some slot, and whether it equals the element one
/// (`eq`) or two (`eq2`) places further.
#[derive(Clone, Copy, Default)]
struct Bits {
    valid: u64,
    eq: u64,
    eq2: u64,
}

/// A verified window: `start` is the global pixel index (image × image_len + pixel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hit {
    offset: usize,
    encoding: PixelEncoding,
    form: PixelForm,
    start: u32,
}

/// Index over training images; see the module documentation.
pub struct PixelIndex {
    params: PixelParams,
    stats: PixelStats,
    geo: Geometry,
    pixels: Vec<u8>,
    /// f32, f16, bf16.
    codecs: [Codec; 3],
    /// Slots in use: raw, scaled, and one per channel when normalized.
    nslots: usize,
    aliases: Vec<Alias>,
    crossings: Vec<Crossing>,
    table: WindowTable,
    filter: Prefilter,
    grams: Grams,
    zero: ZeroBits,
}

impl fmt::Debug for PixelIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PixelIndex")
            .field("params", &self.params)
            .field("stats", &self.stats)
            .field("geometry", &self.geo)
            .field("normalized", &(self.nslots > 2))
            .field("canonical_encodings", &self.aliases)
            .finish_non_exhaustive()
    }
}

/// Offsets handled together: the bits of a [`BlockBits`] word.
const BLOCK: usize = 64;

impl PixelIndex {
    /// Index `src`.
    ///
    /// # Panics
    ///
    /// Where [`try_build`](Self::try_build) returns an error; the message names sizes only.
    pub fn build(src: &PixelSource<'_>, params: PixelParams) -> PixelIndex {
        match Self::try_build(src, params) {
            Ok(index) => index,
            Err(e) => panic!("{e}"),
        }
    }

    /// Index `src`, or say why its shapes, normalization or `params` do not fit.
    pub fn try_build(
        src: &PixelSource<'_>,
        params: PixelParams,
    ) -> Result<PixelIndex, PixelIndexError> {
        check_params(&params)?;
        let geo = check_geometry(src)?;
        let norm = check_normalization(src)?;
        let nslots = 2 + norm.len();
        let f32_codec = Codec::f32(nslots, &norm)
            .map_err(|reason| PixelIndexError::Normalization { reason })?;
        let codecs = [
            f32_codec,
            Codec::f16(nslots, &norm),
            Codec::bf16(nslots, &norm),
        ];
        let aliases = find_aliases(&codecs, nslots);
        let crossings = crossings(geo, !norm.is_empty());
        let mut index = PixelIndex {
            params,
            stats: PixelStats {
                images: geo.images,
                windows: 0,
                windows_indexed: 0,
                skipped_low_information: 0,
                duplicates: 0,
                canonical_keys: 0,
                memory_bytes: 0,
            },
            geo,
            pixels: src.pixels.to_vec(),
            codecs,
            nslots,
            aliases,
            crossings,
            table: WindowTable::with_capacity(0),
            filter: Prefilter::with_capacity(0),
            grams: Grams::build(src.pixels),
            zero: ZeroBits {
                gram: false,
                valid: [false; 3],
            },
        };
        index.zero = ZeroBits {
            gram: index.grams.contains(0),
            valid: [0, 1, 2].map(|c| index.codecs[c].valid(0)),
        };
        index.index_windows();
        Ok(index)
    }

    /// Sizes of the index.
    pub fn stats(&self) -> PixelStats {
        self.stats
    }

    /// Runs of training pixels in `bytes`, scanned with `threads` threads (0 counts as 1).
    ///
    /// Every byte offset is searched in every encoding. Results are sorted by (offset,
    /// encoding, form, image, pixel). The buffer is split into `threads` chunks; each
    /// thread reports the windows that start in its chunk, decoding past its end as far as
    /// a window needs, so a run straddling a boundary is found once.
    pub fn scan(&self, bytes: &[u8], threads: usize) -> Vec<PixelMatch> {
        let threads = threads.max(1);
        let len = bytes.len();
        let chunk = len.div_ceil(threads).max(1);
        let hits = if threads == 1 {
            self.scan_range(bytes, 0, len)
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|k| (k * chunk).min(len)..((k + 1) * chunk).min(len))
                    .filter(|r| !r.is_empty())
                    .map(|r| s.spawn(move || self.scan_range(bytes, r.start, r.end)))
                    .collect();
                let mut all = Vec::new();
                for h in handles {
                    all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
                all
            })
        };
        self.runs(hits)
    }

    // -----------------------------------------------------------------------------------
    // Build

    /// Inserts every informative window (and its canonical keys), then the filter.
    fn index_windows(&mut self) {
        let geo = self.geo;
        let per_image = geo.image_len.saturating_sub(WINDOW - 1);
        let windows = geo.images * per_image;
        let mut table = WindowTable::with_capacity(windows);
        let mut scratch = [0u8; 256];
        let (mut indexed, mut skipped, mut duplicates, mut canonical) = (0, 0, 0, 0);
        for image in 0..geo.images {
            for p in 0..per_image {
                let g = image * geo.image_len + p;
                // Below u32::MAX: checked against the pixel count at build.
                let start = g as u32;
                let key = self.key(0, start);
                if !informative(key, &self.params, &mut scratch) {
                    skipped += 1;
                    continue;
                }
                if self.insert(&mut table, 0, start, key) {
                    indexed += 1;
                } else {
                    duplicates += 1;
                }
                for a in 1..=self.aliases.len() {
                    let kind = a as u8;
                    let alias = self.key(kind, start);
                    if alias != key
                        && informative(alias, &self.params, &mut scratch)
                        && self.insert(&mut table, kind, start, alias)
                    {
                        canonical += 1;
                    }
                }
            }
        }
        let mut filter = Prefilter::with_capacity(table.len());
        for (kind, start) in table.entries() {
            filter.insert(hash128(self.key(kind, start)));
        }
        self.stats.windows = windows;
        self.stats.windows_indexed = indexed;
        self.stats.skipped_low_information = skipped;
        self.stats.duplicates = duplicates;
        self.stats.canonical_keys = canonical;
        self.stats.memory_bytes = self.pixels.len()
            + table.bytes()
            + filter.bytes()
            + self.grams.bytes()
            + self.codecs.iter().map(Codec::bytes).sum::<usize>();
        self.table = table;
        self.filter = filter;
    }

    fn insert(&self, table: &mut WindowTable, kind: u8, start: u32, key: u128) -> bool {
        table.insert(
            hash128(key),
            kind,
            start,
            |k, other| self.key(k, other) == key,
            |k, s| hash128(self.key(k, s)),
        )
    }

    /// The key of the window starting at global pixel `start`: kind 0 its pixels, kind
    /// `a` its canonical pixels in alias `a - 1`. Byte k holds pixel k.
    fn key(&self, kind: u8, start: u32) -> u128 {
        let g = start as usize;
        let mut w = [0u8; WINDOW];
        w.copy_from_slice(&self.pixels[g..g + WINDOW]);
        if kind > 0 {
            let a = self.aliases[usize::from(kind) - 1];
            let codec = &self.codecs[a.codec];
            let p = g % self.geo.image_len;
            for (k, x) in w.iter_mut().enumerate() {
                *x = codec.canon(form_slot(a.form, self.geo.channel(p + k)), *x);
            }
        }
        u128::from_le_bytes(w)
    }

    // -----------------------------------------------------------------------------------
    // Scan

    /// Verified windows starting in `start..end`, reading up to `bytes.len()`.
    ///
    /// Per block of [`BLOCK`] offsets, from bit masks over the block and the next one:
    /// the raw windows whose four 4-byte groups all occur in training images go on to the
    /// filter and the table; per float encoding, the offsets where 16 consecutive elements
    /// decode (in some slot) and are neither all equal nor alternating between two values
    /// are decoded as windows. Nearly every offset of real weights stops at the masks.
    fn scan_range(&self, bytes: &[u8], start: usize, end: usize) -> Vec<Hit> {
        let mut out = Vec::new();
        // Raw windows start where 16 bytes remain.
        let u8_end = end.min((bytes.len() + 1).saturating_sub(WINDOW));
        let mut cur = self.block_bits(bytes, start);
        let mut o = start;
        while o < end {
            let n = BLOCK.min(end - o);
            // Zeros through the next block's lookahead: no window starting here holds 4
            // distinct values, and the next block's bits are known.
            if let Some(span) = bytes.get(o..o + 2 * BLOCK + WINDOW)
                && span.iter().all(|&b| b == 0)
            {
                cur = BlockBits::zeros(&self.zero);
                o += BLOCK;
                continue;
            }
            let next = self.block_bits(bytes, o + BLOCK);
            let keep = if n < BLOCK { (1u64 << n) - 1 } else { u64::MAX };
            let raw = u8_end.saturating_sub(o).min(BLOCK);
            let raw_keep = if raw < BLOCK {
                (1u64 << raw) - 1
            } else {
                u64::MAX
            };
            self.probe_u8(
                bytes,
                o,
                gram_candidates(cur.gram, next.gram) & raw_keep,
                &mut out,
            );
            for (c, codec) in self.codecs.iter().enumerate() {
                let size = codec.encoding.size();
                let mut cand = candidates(cur.floats[c], next.floats[c], size) & keep;
                while cand != 0 {
                    let i = cand.trailing_zeros() as usize;
                    cand &= cand - 1;
                    self.window(codec, o + i, bytes, &mut out);
                }
            }
            cur = next;
            o += BLOCK;
        }
        out
    }

    /// [`BlockBits`] for the offsets `o..o + 64`.
    fn block_bits(&self, bytes: &[u8], o: usize) -> BlockBits {
        let mut b = BlockBits::default();
        let n = bytes.len().saturating_sub(o).min(BLOCK);
        // The gram bits first, in a loop of their own: no branch depends on what it loads,
        // so the processor keeps many of these cache misses in flight.
        if let Some(group) = bytes.get(o..o + n + 3) {
            for (i, w) in group.windows(4).enumerate() {
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                b.gram |= u64::from(self.grams.contains(v)) << i;
            }
        } else if let Some(group) = bytes.get(o..) {
            for (i, w) in group.windows(4).enumerate() {
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                b.gram |= u64::from(self.grams.contains(v)) << i;
            }
        }
        let [c32, c16, cb16] = &self.codecs;
        for i in 0..n {
            let (w, avail) = load(bytes, o + i);
            let bit = 1u64 << i;
            if w == 0 && avail == WINDOW {
                // Zero fill: every element equal, valid as the zero pixel where that is.
                b.or_zero_floats(&self.zero, bit);
                continue;
            }
            if avail >= 4 {
                let v = w as u32;
                let f = &mut b.floats[0];
                f.valid |= u64::from(c32.valid(v)) << i;
                f.eq |= u64::from(avail >= 8 && v == (w >> 32) as u32) << i;
                f.eq2 |= u64::from(avail >= 12 && v == (w >> 64) as u32) << i;
            }
            if avail >= 2 {
                let h = w as u16;
                b.floats[1].valid |= u64::from(c16.valid(u32::from(h))) << i;
                b.floats[2].valid |= u64::from(cb16.valid(u32::from(h))) << i;
                let eq = u64::from(avail >= 4 && h == (w >> 16) as u16) << i;
                let eq2 = u64::from(avail >= 6 && h == (w >> 32) as u16) << i;
                for f in &mut b.floats[1..] {
                    f.eq |= eq;
                    f.eq2 |= eq2;
                }
            }
        }
        b
    }

    /// Raw windows at the offsets `o + i` for the bits i of `cand` (each with 16 bytes in
    /// `bytes`): all filter probes first, then the lookups of those that pass.
    fn probe_u8(&self, bytes: &[u8], o: usize, mut cand: u64, out: &mut Vec<Hit>) {
        let mut at = [0usize; BLOCK];
        let mut hashes = [0u64; BLOCK];
        let mut pass = [false; BLOCK];
        let mut n = 0;
        while cand != 0 {
            let i = cand.trailing_zeros() as usize;
            cand &= cand - 1;
            at[n] = o + i;
            hashes[n] = hash128(load(bytes, o + i).0);
            n += 1;
        }
        self.filter.contains_many(&hashes[..n], &mut pass[..n]);
        for k in (0..n).filter(|&k| pass[k]) {
            let (encoding, form) = (PixelEncoding::U8, PixelForm::Raw);
            self.lookup(hashes[k], encoding, form, at[k], bytes, out);
        }
    }

    /// Decodes the 16 elements at `at` in every slot and looks up the windows that decode
    /// completely (for normalized values also across channel boundaries).
    #[inline(never)]
    fn window(&self, codec: &Codec, at: usize, bytes: &[u8], out: &mut Vec<Hit>) {
        let size = codec.encoding.size();
        let mut valid = [0u16; SLOTS];
        let mut keys = [0u128; SLOTS];
        for k in 0..WINDOW {
            let Some(bits) = element(bytes, at + k * size, size) else {
                return;
            };
            let (m, pixels) = codec.decode_all(bits);
            for slot in 0..self.nslots {
                valid[slot] |= u16::from((m >> slot) & 1) << k;
                keys[slot] |= u128::from(pixels[slot]) << (8 * k);
            }
        }
        let encoding = codec.encoding;
        for slot in 0..self.nslots {
            if valid[slot] == FULL {
                self.probe(keys[slot], encoding, slot_form(slot), at, bytes, out);
            }
        }
        if self.crossings.is_empty() {
            return;
        }
        let valid = &valid[2..self.nslots];
        let keys = &keys[2..self.nslots];
        if valid.iter().fold(0, |a, v| a | v) != FULL {
            return;
        }
        for x in &self.crossings {
            if valid.iter().zip(&x.masks).all(|(v, m)| v & m == *m) {
                let key = keys.iter().zip(&x.bytes).fold(0, |a, (k, b)| a | (k & b));
                self.probe(key, encoding, PixelForm::Normalized, at, bytes, out);
            }
        }
    }

    /// Looks up the window `key` (pixels, decoded in `form`) and records it when the
    /// training pixels, encoded so, are the scanned bytes at `offset`.
    #[inline(always)]
    fn probe(
        &self,
        key: u128,
        encoding: PixelEncoding,
        form: PixelForm,
        offset: usize,
        bytes: &[u8],
        out: &mut Vec<Hit>,
    ) {
        let h = hash128(key);
        if self.filter.contains(h) {
            self.lookup(h, encoding, form, offset, bytes, out);
        }
    }

    #[cold]
    fn lookup(
        &self,
        h: u64,
        encoding: PixelEncoding,
        form: PixelForm,
        offset: usize,
        bytes: &[u8],
        out: &mut Vec<Hit>,
    ) {
        let mut best: Option<u32> = None;
        self.table.find(h, |start| {
            if best.is_none_or(|b| start < b) && self.verify(start, encoding, form, offset, bytes) {
                best = Some(start);
            }
        });
        if let Some(start) = best {
            out.push(Hit {
                offset,
                encoding,
                form,
                start,
            });
        }
    }

    /// Whether the training window at `start`, encoded in `encoding` and `form`, is what
    /// `bytes` holds at `offset` (f32 within the tolerance, else exactly).
    fn verify(
        &self,
        start: u32,
        encoding: PixelEncoding,
        form: PixelForm,
        offset: usize,
        bytes: &[u8],
    ) -> bool {
        let g = start as usize;
        let Some(win) = self.pixels.get(g..g + WINDOW) else {
            return false;
        };
        let codec = match encoding {
            PixelEncoding::U8 => {
                return form == PixelForm::Raw && bytes.get(offset..offset + WINDOW) == Some(win);
            }
            PixelEncoding::F32 => &self.codecs[0],
            PixelEncoding::F16 => &self.codecs[1],
            PixelEncoding::Bf16 => &self.codecs[2],
        };
        if form == PixelForm::Normalized && self.nslots == 2 {
            return false;
        }
        let size = encoding.size();
        let p = g % self.geo.image_len;
        win.iter().enumerate().all(|(k, &x)| {
            let slot = form_slot(form, self.geo.channel(p + k));
            element(bytes, offset + k * size, size)
                .is_some_and(|bits| codec.decode(slot, bits) == Some(codec.canon(slot, x)))
        })
    }

    /// Keeps one hit per (offset, encoding), the first form and image, joins consecutive
    /// windows into runs and drops runs shorter than `params.run`.
    fn runs(&self, mut hits: Vec<Hit>) -> Vec<PixelMatch> {
        hits.sort_by_key(|h| (h.offset, h.encoding, h.form, h.start));
        hits.dedup_by(|b, a| a.offset == b.offset && a.encoding == b.encoding);
        let mut runs: Vec<PixelMatch> = Vec::new();
        // (offset, encoding, form, start) the next window of an open run would have.
        let mut open: HashMap<(usize, PixelEncoding, PixelForm, u32), usize> = HashMap::new();
        for h in hits {
            let i = match open.remove(&(h.offset, h.encoding, h.form, h.start)) {
                Some(i) => {
                    runs[i].pixels += 1;
                    i
                }
                None => {
                    let g = h.start as usize;
                    runs.push(PixelMatch {
                        image: g / self.geo.image_len,
                        pixel: g % self.geo.image_len,
                        offset: h.offset,
                        pixels: WINDOW,
                        encoding: h.encoding,
                        form: h.form,
                    });
                    runs.len() - 1
                }
            };
            let next = (
                h.offset + h.encoding.size(),
                h.encoding,
                h.form,
                h.start + 1,
            );
            open.insert(next, i);
        }
        runs.retain(|r| r.pixels >= self.params.run);
        runs.sort_by_key(|r| (r.offset, r.encoding, r.form, r.image, r.pixel));
        runs
    }
}

/// Offsets (bit i: a window starting at offset i of the block) where 16 consecutive
/// elements of `size` bytes decode, and are neither all equal nor alternating between two
/// values (such windows never hold 4 distinct pixels). `next` is the following block.
#[inline(always)]
fn candidates(cur: Bits, next: Bits, size: usize) -> u64 {
    let join = |a: u64, b: u64| u128::from(a) | (u128::from(b) << 64);
    // Bit i of `run(x, n)`: bits i, i + size, ..., i + (2^n - 1)·size of x all set.
    let run = |mut x: u128, n: u32| {
        for k in 0..n {
            x &= x >> ((size << k) as u32);
        }
        x
    };
    let valid = run(join(cur.valid, next.valid), 4);
    // Elements 0..15 all equal: eq at 0..14 (two runs of 8 overlapping at 7).
    let eq = run(join(cur.eq, next.eq), 3);
    let constant = eq & (eq >> (7 * size) as u32);
    // Element k equal to element k + 2 for k in 0..14: eq2 at 0..13 (8 and 8 from 6).
    let eq2 = run(join(cur.eq2, next.eq2), 3);
    let alternating = eq2 & (eq2 >> (6 * size) as u32);
    (valid & !constant & !alternating) as u64
}

/// Offsets (bit i: a raw window starting at offset i of the block) whose 4-byte groups at
/// i, i + 4, i + 8 and i + 12 all occur in training images. `next` is the following block.
#[inline(always)]
fn gram_candidates(cur: u64, next: u64) -> u64 {
    let g = u128::from(cur) | (u128::from(next) << 64);
    let g = g & (g >> 4);
    (g & (g >> 8)) as u64
}

/// The 16 bytes at `o` (zero-padded past the end) and how many are real.
#[inline(always)]
fn load(bytes: &[u8], o: usize) -> (u128, usize) {
    match bytes.get(o..).and_then(|s| s.first_chunk::<WINDOW>()) {
        Some(c) => (u128::from_le_bytes(*c), WINDOW),
        None => {
            let rest = bytes.get(o..).unwrap_or(&[]);
            let mut b = [0u8; WINDOW];
            b[..rest.len()].copy_from_slice(rest);
            (u128::from_le_bytes(b), rest.len())
        }
    }
}

/// Hash of a window key, for the filter and the table.
#[inline(always)]
fn hash128(w: u128) -> u64 {
    let lo = (w as u64 ^ 0x243F_6A88_85A3_08D3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let hi = ((w >> 64) as u64 ^ 0x1319_8A2E_0370_7344).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let h = (lo ^ hi.rotate_left(32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 29)
}

/// Whether the window `key` (byte k = pixel k) holds enough distinct values, none
/// repeated too often. `scratch` is all zeros on entry and on return.
fn informative(key: u128, params: &PixelParams, scratch: &mut [u8; 256]) -> bool {
    let bytes = key.to_le_bytes();
    let (mut distinct, mut most) = (0, 0);
    for &b in &bytes {
        let c = &mut scratch[usize::from(b)];
        if *c == 0 {
            distinct += 1;
        }
        *c += 1;
        most = most.max(usize::from(*c));
    }
    for &b in &bytes {
        scratch[usize::from(b)] = 0;
    }
    distinct >= params.min_distinct && most <= params.max_equal
}

fn check_params(p: &PixelParams) -> Result<(), PixelIndexError> {
    let reason = if p.run < WINDOW {
        format!("run = {} is below the {WINDOW}-pixel window", p.run)
    } else if !(1..=WINDOW).contains(&p.min_distinct) {
        format!("min_distinct = {} must be 1 to {WINDOW}", p.min_distinct)
    } else if !(1..=WINDOW).contains(&p.max_equal) {
        format!("max_equal = {} must be 1 to {WINDOW}", p.max_equal)
    } else {
        return Ok(());
    };
    Err(PixelIndexError::Params { reason })
}

fn check_geometry(src: &PixelSource<'_>) -> Result<Geometry, PixelIndexError> {
    let bad = PixelIndexError::Geometry {
        channels: src.channels,
        height: src.height,
        width: src.width,
    };
    if !(1..=MAX_CHANNELS).contains(&src.channels) || src.height == 0 || src.width == 0 {
        return Err(bad);
    }
    let Some(image_len) = src
        .height
        .checked_mul(src.width)
        .and_then(|p| p.checked_mul(src.channels))
    else {
        return Err(bad);
    };
    let bytes = src.pixels.len();
    if !bytes.is_multiple_of(image_len) {
        return Err(PixelIndexError::PartialImage {
            bytes,
            image_bytes: image_len,
        });
    }
    if u32::try_from(bytes).is_err() || bytes == u32::MAX as usize {
        return Err(PixelIndexError::TooLarge { bytes });
    }
    Ok(Geometry {
        channels: src.channels,
        plane: src.height * src.width,
        image_len,
        images: bytes / image_len,
    })
}

/// Per channel (mean, std), empty without normalization.
fn check_normalization(src: &PixelSource<'_>) -> Result<Vec<(f32, f32)>, PixelIndexError> {
    let Some((means, stds)) = src.normalization else {
        return Ok(Vec::new());
    };
    let err = |reason: String| Err(PixelIndexError::Normalization { reason });
    if means.len() != src.channels || stds.len() != src.channels {
        return err(format!(
            "{} means and {} stds for {} channels",
            means.len(),
            stds.len(),
            src.channels
        ));
    }
    let norm: Vec<(f32, f32)> = means.iter().copied().zip(stds.iter().copied()).collect();
    for (c, &(mean, std)) in norm.iter().enumerate() {
        if !mean.is_finite() || !std.is_finite() || std <= 0.0 {
            return err(format!(
                "channel {c}: mean must be finite and std finite and above zero"
            ));
        }
        // Monotonic in x: the ends bound every value.
        let finite = [0u8, 255]
            .iter()
            .all(|&x| slot_value(x, 2 + c, &norm).is_finite());
        if !finite {
            return err(format!("channel {c}: normalized pixel values overflow f32"));
        }
    }
    Ok(norm)
}

/// The (encoding, form) pairs in which two pixel values share an encoding.
fn find_aliases(codecs: &[Codec; 3], nslots: usize) -> Vec<Alias> {
    let mut out = Vec::new();
    for (i, codec) in codecs.iter().enumerate() {
        for form in [PixelForm::Raw, PixelForm::Scaled, PixelForm::Normalized] {
            if (0..nslots).any(|s| slot_form(s) == form && codec.merges(s)) {
                out.push(Alias { codec: i, form });
            }
        }
    }
    out
}

/// Channel patterns of windows that cross a channel boundary: none unless `normalized`
/// with at least 2 channels (other forms decode the same in every channel).
fn crossings(geo: Geometry, normalized: bool) -> Vec<Crossing> {
    let mut out = Vec::new();
    let channels = geo.channels;
    if !normalized || channels < 2 {
        return out;
    }
    // A window starting `s` elements before the end of channel c0's plane (s ≤ plane):
    // boundaries at s, s + plane, s + 2·plane, ...
    for c0 in 0..channels {
        for s in 1..WINDOW.min(geo.plane + 1) {
            let mut x = Crossing {
                masks: [0; MAX_CHANNELS],
                bytes: [0; MAX_CHANNELS],
            };
            let mut fits = true;
            for k in 0..WINDOW {
                let c = if k < s {
                    c0
                } else {
                    c0 + 1 + (k - s) / geo.plane
                };
                if c >= channels {
                    fits = false;
                    break;
                }
                x.masks[c] |= 1 << k;
                x.bytes[c] |= 0xFFu128 << (8 * k);
            }
            if fits {
                out.push(x);
            }
        }
    }
    out
}
