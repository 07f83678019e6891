//! Pixel values written as floats: for each float encoding, the bit pattern every pixel
//! value takes in every form, and the way back from a bit pattern to the pixel.
//!
//! A *slot* is one way a pixel value is turned into a number: slot 0 the raw value `x`,
//! slot 1 the scaled value `x / 255`, slot `2 + c` the value normalized with channel `c`'s
//! statistics, `(x / 255 - mean[c]) / std[c]`, all computed in f32 in that order.
//!
//! Two pixel values may round to the same f16 or bf16 (bf16 keeps 8 significant bits, so a
//! normalization with a small `std` spreads 256 values over fewer representable numbers).
//! Every bit pattern then decodes to its *canonical* pixel, the smallest value that
//! encodes to it, and the index looks windows up by their canonical pixels.

use half::{bf16, f16};

use super::{PixelEncoding, PixelForm};

/// Most channels an image may have (gray, RGB, RGBA).
pub const MAX_CHANNELS: usize = 4;

/// Slots: raw, scaled, and normalized per channel.
pub(super) const SLOTS: usize = 2 + MAX_CHANNELS;

/// An f32 element within this many units of 2^-24 times the magnitude of the operands of
/// a pixel's f32 value decodes to that pixel: the operands are `x` (raw), `x / 255`
/// (scaled), and `x / 255` and `mean` over `std` (normalized). Code that computes the same
/// normalization in another order (`x * (1 / 255)`, a multiplication by `1 / std`, a fused
/// multiply-add) lands within a few such units, even where the subtraction of the mean
/// cancels most digits and the result is many units in its own last place away.
/// Neighbouring pixel values are at least 2^16 of these units apart.
///
/// Where the interval reaches across zero (a pixel value equal to the mean), magnitudes
/// below a sixteenth of the tolerance other than zero itself are not taken: a difference
/// of two operands is zero or at least one unit of the larger, and accepting every tiny
/// number would let any four bytes with a small exponent pass as that pixel.
pub(super) const F32_TOLERANCE_UNITS: f64 = 8.0;

/// The form a slot belongs to.
pub(super) fn slot_form(slot: usize) -> PixelForm {
    match slot {
        0 => PixelForm::Raw,
        1 => PixelForm::Scaled,
        _ => PixelForm::Normalized,
    }
}

/// The slot of `form` for a pixel of `channel`.
pub(super) fn form_slot(form: PixelForm, channel: usize) -> usize {
    match form {
        PixelForm::Raw => 0,
        PixelForm::Scaled => 1,
        PixelForm::Normalized => 2 + channel,
    }
}

/// The number pixel value `x` stands for in `slot`; `norm[c]` is channel c's (mean, std).
pub(super) fn slot_value(x: u8, slot: usize, norm: &[(f32, f32)]) -> f32 {
    let v = f32::from(x);
    match slot {
        0 => v,
        1 => v / 255.0,
        s => {
            let (mean, std) = norm[s - 2];
            (v / 255.0 - mean) / std
        }
    }
}

/// Decoding tables of one float encoding.
pub(super) struct Codec {
    /// The encoding these tables decode.
    pub(super) encoding: PixelEncoding,
    nslots: usize,
    /// Per slot: the canonical pixel of each pixel value.
    canon: Vec<[u8; 256]>,
    lookup: Lookup,
}

enum Lookup {
    /// f16 and bf16: direct tables over all 65,536 bit patterns.
    Half {
        /// Per bit pattern: bit `s` set when the pattern encodes a pixel in slot `s`.
        mask: Box<[u8]>,
        /// Per slot and bit pattern: the canonical pixel (meaningful where `mask` says so).
        pixel: Vec<Box<[u8]>>,
    },
    /// f32: each slot's inverse, gated by the 16 top bits of the element.
    F32 {
        /// Bit per 16 top bits (sign, exponent, 7 mantissa bits): set when some pixel's
        /// tolerance interval, in some slot, reaches into that bucket.
        buckets: Box<[u64]>,
        slots: Vec<F32Slot>,
    },
}

/// One slot's f32 values: pixel `x` is about `(v * a + b)` for a value `v`; `v` decodes
/// to `x` when it lies in `lo[x]..=hi[x]` and is zero or at least `floor[x]` in magnitude.
struct F32Slot {
    a: f64,
    b: f64,
    lo: [f64; 256],
    hi: [f64; 256],
    floor: [f64; 256],
}

impl F32Slot {
    #[inline(always)]
    fn decode(&self, v: f32) -> Option<u8> {
        let v = f64::from(v);
        let xf = v * self.a + self.b;
        // NaN fails both comparisons.
        if !(xf > -0.5 && xf < 255.5) {
            return None;
        }
        // xf + 0.5 is in (0, 256): truncation rounds to nearest (no libm call).
        let x = usize::from((xf + 0.5) as u8);
        let inside = self.lo[x] <= v && v <= self.hi[x];
        (inside && (v == 0.0 || v.abs() >= self.floor[x])).then_some(x as u8)
    }
}

impl Codec {
    /// The f16 tables for `nslots` slots.
    pub(super) fn f16(nslots: usize, norm: &[(f32, f32)]) -> Codec {
        Self::half(PixelEncoding::F16, nslots, norm, |v| {
            f16::from_f32(v).to_bits()
        })
    }

    /// The bf16 tables for `nslots` slots.
    pub(super) fn bf16(nslots: usize, norm: &[(f32, f32)]) -> Codec {
        Self::half(PixelEncoding::Bf16, nslots, norm, |v| {
            bf16::from_f32(v).to_bits()
        })
    }

    fn half(
        encoding: PixelEncoding,
        nslots: usize,
        norm: &[(f32, f32)],
        encode: fn(f32) -> u16,
    ) -> Codec {
        let mut mask = vec![0u8; 1 << 16].into_boxed_slice();
        let mut pixel = vec![vec![0u8; 1 << 16].into_boxed_slice(); nslots];
        let mut canon = vec![[0u8; 256]; nslots];
        for (slot, canon) in canon.iter_mut().enumerate() {
            let bit = 1u8 << slot;
            for x in 0..=255u8 {
                let b = usize::from(encode(slot_value(x, slot, norm)));
                // Values ascend: the first pixel to claim a pattern is its smallest.
                if mask[b] & bit == 0 {
                    mask[b] |= bit;
                    pixel[slot][b] = x;
                }
                canon[usize::from(x)] = pixel[slot][b];
            }
        }
        Codec {
            encoding,
            nslots,
            canon,
            lookup: Lookup::Half { mask, pixel },
        }
    }

    /// The f32 tables for `nslots` slots, or why the normalization leaves pixel values
    /// that f32 cannot tell apart (every slot value must be finite).
    pub(super) fn f32(nslots: usize, norm: &[(f32, f32)]) -> Result<Codec, String> {
        let mut buckets = vec![0u64; 1 << 10].into_boxed_slice();
        let mut slots = Vec::with_capacity(nslots);
        for slot in 0..nslots {
            let f = f32_slot(slot, norm).ok_or_else(|| {
                format!(
                    "channel {}: normalized pixel values are not distinct in f32",
                    slot.saturating_sub(2)
                )
            })?;
            for x in 0..256 {
                let (lo, hi, floor) = (f.lo[x], f.hi[x], f.floor[x]);
                if lo < 0.0 && hi > 0.0 {
                    mark_buckets(&mut buckets, lo, -floor);
                    mark_buckets(&mut buckets, 0.0, 0.0);
                    mark_buckets(&mut buckets, floor, hi);
                } else {
                    mark_buckets(&mut buckets, lo, hi);
                }
            }
            slots.push(f);
        }
        Ok(Codec {
            encoding: PixelEncoding::F32,
            nslots,
            canon: (0..nslots)
                .map(|_| std::array::from_fn(|x| x as u8))
                .collect(),
            lookup: Lookup::F32 { buckets, slots },
        })
    }

    /// The slots `bits` encodes a pixel in (bit `s` for slot `s`, 0 if none) and the
    /// canonical pixel in each of them (0 in the others).
    #[inline(always)]
    pub(super) fn decode_all(&self, bits: u32) -> (u8, [u8; SLOTS]) {
        let mut out = [0u8; SLOTS];
        match &self.lookup {
            Lookup::Half { mask, pixel } => {
                let i = (bits & 0xFFFF) as usize;
                let m = mask.get(i).copied().unwrap_or(0);
                if m != 0 {
                    for (slot, o) in out.iter_mut().enumerate().take(self.nslots) {
                        *o = pixel[slot][i];
                    }
                }
                (m, out)
            }
            Lookup::F32 { buckets, slots } => {
                let b = (bits >> 16) as usize;
                if buckets[b >> 6] & (1 << (b & 63)) == 0 {
                    return (0, out);
                }
                let v = f32::from_bits(bits);
                let mut m = 0u8;
                for (slot, s) in slots.iter().enumerate() {
                    if let Some(x) = s.decode(v) {
                        m |= 1 << slot;
                        out[slot] = x;
                    }
                }
                (m, out)
            }
        }
    }

    /// Whether `bits` encodes a pixel in some slot.
    #[inline(always)]
    pub(super) fn valid(&self, bits: u32) -> bool {
        match &self.lookup {
            Lookup::Half { mask, .. } => {
                mask.get((bits & 0xFFFF) as usize).is_some_and(|&m| m != 0)
            }
            Lookup::F32 { .. } => self.decode_all(bits).0 != 0,
        }
    }

    /// The canonical pixel `bits` decodes to in `slot`, if it encodes one.
    pub(super) fn decode(&self, slot: usize, bits: u32) -> Option<u8> {
        match &self.lookup {
            Lookup::Half { mask, pixel } => {
                let i = (bits & 0xFFFF) as usize;
                (mask[i] & (1 << slot) != 0).then(|| pixel[slot][i])
            }
            Lookup::F32 { slots, .. } => slots[slot].decode(f32::from_bits(bits)),
        }
    }

    /// The canonical pixel of pixel value `x` in `slot`.
    pub(super) fn canon(&self, slot: usize, x: u8) -> u8 {
        self.canon[slot][usize::from(x)]
    }

    /// Whether some pixel value of `slot` shares its encoding with another.
    pub(super) fn merges(&self, slot: usize) -> bool {
        self.canon[slot]
            .iter()
            .enumerate()
            .any(|(x, &c)| usize::from(c) != x)
    }

    /// Bytes held by the tables.
    pub(super) fn bytes(&self) -> usize {
        let canon = self.canon.len() * 256;
        canon
            + match &self.lookup {
                Lookup::Half { mask, pixel } => {
                    mask.len() + pixel.iter().map(|p| p.len()).sum::<usize>()
                }
                Lookup::F32 { buckets, slots } => {
                    buckets.len() * 8 + slots.len() * size_of::<F32Slot>()
                }
            }
    }
}

/// The f32 decoding of `slot`, or `None` when its pixel values are not finite or not
/// apart by more than four tolerances.
fn f32_slot(slot: usize, norm: &[(f32, f32)]) -> Option<F32Slot> {
    let (a, b, mean, std) = match slot {
        0 => (1.0, 0.0, 0.0, 1.0 / 255.0),
        1 => (255.0, 0.0, 0.0, 1.0),
        s => {
            let (mean, std) = norm[s - 2];
            let (mean, std) = (f64::from(mean), f64::from(std));
            (255.0 * std, 255.0 * mean, mean.abs(), std)
        }
    };
    let unit = F32_TOLERANCE_UNITS / f64::from(1u32 << 24);
    let exact: [f64; 256] = std::array::from_fn(|x| f64::from(slot_value(x as u8, slot, norm)));
    // Operands: x / 255 and the mean, over std (raw: x, as std is 1/255 there).
    let tol: [f64; 256] = std::array::from_fn(|x| unit * (x as f64 / 255.0 + mean) / std);
    let apart = exact
        .windows(2)
        .zip(tol.windows(2))
        .all(|(e, t)| e[1] - e[0] > 4.0 * (t[0] + t[1]));
    if exact.iter().any(|e| !e.is_finite()) || !apart {
        return None;
    }
    Some(F32Slot {
        a,
        b,
        lo: std::array::from_fn(|x| exact[x] - tol[x]),
        hi: std::array::from_fn(|x| exact[x] + tol[x]),
        floor: std::array::from_fn(|x| {
            if exact[x].abs() < tol[x] {
                tol[x] / 16.0
            } else {
                0.0
            }
        }),
    })
}

/// Sets the bucket bit of every f32 in `lo..=hi` (widened by one unit each way so that
/// the rounding to f32 cannot leave an end out).
fn mark_buckets(buckets: &mut [u64], lo: f64, hi: f64) {
    let mut set = |b: u32| buckets[(b >> 6) as usize] |= 1 << (b & 63);
    let (lo, hi) = (widen(lo as f32, -1), widen(hi as f32, 1));
    // Positive part: magnitudes from max(lo, 0) to hi; negative part: from |min(hi, -0)|
    // to |lo|, under the sign bit.
    if hi >= 0.0 {
        let from = lo.max(0.0).to_bits() >> 16;
        for b in from..=(hi.to_bits() >> 16) {
            set(b);
        }
    }
    if lo <= 0.0 {
        let from = (-hi).max(0.0).to_bits() >> 16;
        for b in from..=((-lo).to_bits() >> 16) {
            set(0x8000 | b);
        }
    }
}

/// The f32 `units` places after `v` in value order (saturating at infinity).
fn widen(v: f32, units: i32) -> f32 {
    let next = if units > 0 {
        v.next_up()
    } else {
        v.next_down()
    };
    if next.is_finite() { next } else { v }
}

/// Reads the `size`-byte little-endian element at `at`.
#[inline(always)]
pub(super) fn element(bytes: &[u8], at: usize, size: usize) -> Option<u32> {
    let s = bytes.get(at..at.checked_add(size)?)?;
    Some(match size {
        4 => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        2 => u32::from(u16::from_le_bytes([s[0], s[1]])),
        _ => u32::from(s[0]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_and_raw_encodings_never_merge_pixels() {
        for codec in [
            Codec::f32(2, &[]).expect("f32"),
            Codec::f16(2, &[]),
            Codec::bf16(2, &[]),
        ] {
            assert!(!codec.merges(0), "{:?} raw", codec.encoding);
            assert!(!codec.merges(1), "{:?} scaled", codec.encoding);
        }
    }

    #[test]
    fn bf16_with_a_small_std_merges_pixels_and_decodes_to_the_smallest() {
        // MNIST's normalization: bf16 keeps too few bits above 2 to tell 1/255 steps apart.
        let norm = [(0.1307, 0.3081)];
        let codec = Codec::bf16(3, &norm);
        assert!(codec.merges(2));
        let merged = (0..=255u8)
            .find(|&x| codec.canon(2, x) != x)
            .expect("a merged value");
        let bits = u32::from(bf16::from_f32(slot_value(merged, 2, &norm)).to_bits());
        assert_eq!(codec.decode(2, bits), Some(codec.canon(2, merged)));
        assert!(codec.canon(2, merged) < merged);
    }

    #[test]
    fn f32_tolerates_other_orders_of_computation_but_not_the_next_pixel() {
        let norm = [(0.485, 0.229)];
        let codec = Codec::f32(3, &norm).expect("f32");
        let exact = (77.0f32 / 255.0).to_bits();
        for d in 0..=2 {
            assert_eq!(codec.decode(1, exact + d), Some(77));
            assert_eq!(codec.decode(1, exact - d), Some(77));
        }
        assert_eq!(codec.decode(1, (77.5f32 / 255.0).to_bits()), None);
        assert_eq!(codec.decode(0, 77.0f32.to_bits()), Some(77));
        assert_eq!(codec.decode(0, 77.5f32.to_bits()), None);
        assert_eq!(codec.decode(0, f32::NAN.to_bits()), None);
        // Near the mean the subtraction cancels: another order is many units away in the
        // result's own last place, and still decodes.
        for x in 0..=255u8 {
            let other = (f32::from(x) * (1.0 / 255.0) - 0.485) * (1.0 / 0.229);
            assert_eq!(codec.decode(2, other.to_bits()), Some(x), "{x}");
            let (m, p) = codec.decode_all(other.to_bits());
            assert!(m & 4 != 0 && p[2] == x, "{x}");
        }
        assert_eq!(codec.decode_all(0.0123f32.to_bits()).0, 0);
    }

    #[test]
    fn f32_takes_tiny_numbers_only_near_a_pixel_equal_to_the_mean() {
        let codec = Codec::f32(3, &[(0.2, 0.25)]).expect("f32");
        // 51 / 255 is the mean: zero and a few units of 0.2 around it decode to 51.
        assert_eq!(codec.decode(2, 0.0f32.to_bits()), Some(51));
        assert_eq!(codec.decode(2, 6.0e-8f32.to_bits()), Some(51));
        assert_eq!(codec.decode(2, (-6.0e-8f32).to_bits()), Some(51));
        assert_eq!(codec.decode(2, 1.0e-20f32.to_bits()), None);
        assert_eq!(codec.decode(2, 1.0e-30f32.to_bits()), None);
        // Raw and scaled zero are exactly zero.
        assert_eq!(codec.decode(0, 0.0f32.to_bits()), Some(0));
        assert_eq!(codec.decode(1, 1.0e-9f32.to_bits()), None);
        assert_eq!(codec.decode(0, 1.0e-9f32.to_bits()), None);
        // Few patterns pass the buckets: random bits rarely cost a decode.
        let Lookup::F32 { buckets, .. } = &codec.lookup else {
            panic!("f32 lookup");
        };
        let set: u32 = buckets.iter().map(|w| w.count_ones()).sum();
        assert!(set < 65536 / 20, "{set} buckets of 65536");
    }

    #[test]
    fn f32_refuses_a_normalization_that_merges_pixels() {
        assert!(Codec::f32(3, &[(1.0e6, 1.0)]).is_err());
        assert!(Codec::f32(3, &[(0.5, 1.0e-39)]).is_err());
    }
}
