//! L2 for images: runs of training pixels planted in weights are found where they are, with
//! their image, pixel, encoding and form; buffers that hold none (random, widened, sparse,
//! zero or constant weights) produce no finding.

use airlock_leak::pixels::{
    PixelEncoding, PixelForm, PixelIndex, PixelIndexError, PixelMatch, PixelParams, PixelSource,
    WINDOW, finding_kind,
};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ImageNet's per-channel statistics.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// MNIST's: in bf16, neighbouring pixel values above about 0.6 share a number.
const MNIST_MEAN: [f32; 1] = [0.1307];
const MNIST_STD: [f32; 1] = [0.3081];

/// Textured images: a wave per image plus noise, so that almost every window is
/// informative.
fn textured(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * c * h * w);
    for _ in 0..n {
        let phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        for i in 0..c * h * w {
            let v = 128.0 + 70.0 * ((i as f32) / 9.0 + phase).sin() + rng.random_range(-40.0..40.0);
            out.push(v.clamp(0.0, 255.0) as u8);
        }
    }
    out
}

/// Digit-like images: black background and a bright blob of varying intensity.
fn dark(n: usize, h: usize, w: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0u8; n * h * w];
    for img in out.chunks_mut(h * w) {
        let (cy, cx) = (rng.random_range(8..h - 8), rng.random_range(8..w - 8));
        for y in 0..h {
            for x in 0..w {
                let d = (y as i32 - cy as i32).pow(2) + (x as i32 - cx as i32).pow(2);
                if d < 30 {
                    img[y * w + x] = rng.random_range(40..=255);
                }
            }
        }
    }
    out
}

/// Pseudo-random f32 weights of about the magnitude of a trained layer.
fn weights(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() + 4 <= len {
        let w: f32 = rng.random_range(-0.08..0.08);
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.resize(len, 0);
    out
}

struct Images {
    pixels: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Images {
    fn rgb(n: usize, side: usize, seed: u64) -> Images {
        Images {
            pixels: textured(n, 3, side, side, seed),
            channels: 3,
            height: side,
            width: side,
            mean: MEAN.to_vec(),
            std: STD.to_vec(),
        }
    }

    fn gray(pixels: Vec<u8>, side: usize, mean: &[f32], std: &[f32]) -> Images {
        Images {
            pixels,
            channels: 1,
            height: side,
            width: side,
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }

    fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn source(&self) -> PixelSource<'_> {
        PixelSource {
            pixels: &self.pixels,
            channels: self.channels,
            height: self.height,
            width: self.width,
            normalization: (!self.mean.is_empty()).then_some((&self.mean[..], &self.std[..])),
        }
    }

    fn index(&self) -> PixelIndex {
        PixelIndex::build(&self.source(), PixelParams::default())
    }

    fn value(&self, x: u8, pixel: usize, form: PixelForm) -> f32 {
        let v = f32::from(x);
        match form {
            PixelForm::Raw => v,
            PixelForm::Scaled => v / 255.0,
            PixelForm::Normalized => {
                let c = pixel / (self.height * self.width);
                (v / 255.0 - self.mean[c]) / self.std[c]
            }
        }
    }

    /// Pixels `pixel..pixel + n` of `image`, written as the model or an attacker would.
    fn encode(
        &self,
        image: usize,
        pixel: usize,
        n: usize,
        enc: PixelEncoding,
        form: PixelForm,
    ) -> Vec<u8> {
        let base = image * self.len();
        let mut out = Vec::new();
        for p in pixel..pixel + n {
            let x = self.pixels[base + p];
            let v = self.value(x, p, form);
            match enc {
                PixelEncoding::U8 => out.push(x),
                PixelEncoding::F32 => out.extend_from_slice(&v.to_le_bytes()),
                PixelEncoding::F16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                PixelEncoding::Bf16 => out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
            }
        }
        out
    }
}

fn plant(buf: &mut [u8], at: usize, what: &[u8]) {
    buf[at..at + what.len()].copy_from_slice(what);
}

fn expect(
    image: usize,
    pixel: usize,
    offset: usize,
    pixels: usize,
    encoding: PixelEncoding,
    form: PixelForm,
) -> Vec<PixelMatch> {
    vec![PixelMatch {
        image,
        pixel,
        offset,
        pixels,
        encoding,
        form,
    }]
}

#[test]
fn a_u8_run_at_an_odd_offset_of_an_f32_tensor_is_found() {
    let imgs = Images::gray(textured(60, 1, 28, 28, 1), 28, &[], &[]);
    let index = imgs.index();
    let mut buf = weights(64 << 10, 2);
    plant(
        &mut buf,
        1001,
        &imgs.encode(7, 100, 16, PixelEncoding::U8, PixelForm::Raw),
    );
    assert_eq!(
        index.scan(&buf, 1),
        expect(7, 100, 1001, 16, PixelEncoding::U8, PixelForm::Raw)
    );
}

#[test]
fn an_f32_scaled_run_off_the_element_alignment_is_found() {
    let imgs = Images::gray(textured(60, 1, 28, 28, 3), 28, &[], &[]);
    let index = imgs.index();
    let mut buf = weights(64 << 10, 4);
    let run = imgs.encode(42, 500, 16, PixelEncoding::F32, PixelForm::Scaled);
    plant(&mut buf, 2003, &run);
    assert_eq!(
        index.scan(&buf, 2),
        expect(42, 500, 2003, 16, PixelEncoding::F32, PixelForm::Scaled)
    );
}

#[test]
fn an_f16_normalized_run_across_a_channel_boundary_is_found() {
    let imgs = Images::rgb(40, 8, 5);
    let index = imgs.index();
    let mut buf = weights(32 << 10, 6);
    // Pixels 56..72: the last row of the red plane and the first of the green one.
    let run = imgs.encode(11, 56, 16, PixelEncoding::F16, PixelForm::Normalized);
    plant(&mut buf, 777, &run);
    assert_eq!(
        index.scan(&buf, 1),
        expect(11, 56, 777, 16, PixelEncoding::F16, PixelForm::Normalized)
    );
}

#[test]
fn a_bf16_normalized_run_is_found_where_bf16_merges_pixel_values() {
    let imgs = Images::gray(textured(60, 1, 28, 28, 7), 28, &MNIST_MEAN, &MNIST_STD);
    let index = imgs.index();
    assert!(index.stats().canonical_keys > 0, "{:?}", index.stats());
    // A window holding a pixel whose bf16 number is that of the value below it.
    let norm = |x: u8| bf16::from_f32((f32::from(x) / 255.0 - MNIST_MEAN[0]) / MNIST_STD[0]);
    let merged = |x: u8| x > 0 && norm(x) == norm(x - 1);
    let (image, pixel) = (0..60)
        .flat_map(|i| (0..784 - 16).map(move |p| (i, p)))
        .find(|&(i, p)| {
            let w = &imgs.pixels[i * 784 + p..i * 784 + p + 16];
            w.iter().any(|&x| merged(x))
                && w.iter().collect::<std::collections::HashSet<_>>().len() > 8
        })
        .expect("a window with a merged value");
    let mut buf = weights(64 << 10, 8);
    let run = imgs.encode(image, pixel, 16, PixelEncoding::Bf16, PixelForm::Normalized);
    plant(&mut buf, 4095, &run);
    let found = index.scan(&buf, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            found[0].offset,
            found[0].encoding,
            found[0].form,
            found[0].pixels
        ),
        (4095, PixelEncoding::Bf16, PixelForm::Normalized, 16)
    );
    // The image named holds the same numbers (the first such image, usually this one).
    let named = imgs.encode(
        found[0].image,
        found[0].pixel,
        16,
        PixelEncoding::Bf16,
        PixelForm::Normalized,
    );
    assert_eq!(named, run);
}

#[test]
fn every_encoding_and_form_is_found_at_every_byte_alignment() {
    let imgs = Images::rgb(30, 8, 9);
    let index = imgs.index();
    let base = weights(16 << 10, 10);
    let mut cases = vec![(PixelEncoding::U8, PixelForm::Raw)];
    for enc in [PixelEncoding::F32, PixelEncoding::F16, PixelEncoding::Bf16] {
        for form in [PixelForm::Raw, PixelForm::Scaled, PixelForm::Normalized] {
            cases.push((enc, form));
        }
    }
    for (enc, form) in cases {
        for shift in 0..4 {
            let at = 3000 + shift;
            let mut buf = base.clone();
            plant(&mut buf, at, &imgs.encode(19, 130, 20, enc, form));
            assert_eq!(
                index.scan(&buf, 1),
                expect(19, 130, at, 20, enc, form),
                "{enc:?} {form:?} at {at}"
            );
        }
    }
}

#[test]
fn a_whole_image_is_one_run_naming_its_image() {
    let imgs = Images::rgb(25, 16, 11);
    let index = imgs.index();
    let n = imgs.len();
    for (enc, form) in [
        (PixelEncoding::U8, PixelForm::Raw),
        (PixelEncoding::F32, PixelForm::Normalized),
        (PixelEncoding::F16, PixelForm::Normalized),
        (PixelEncoding::Bf16, PixelForm::Scaled),
    ] {
        let image = imgs.encode(17, 0, n, enc, form);
        let mut buf = weights(image.len() + 8192, 12);
        plant(&mut buf, 4097, &image);
        assert_eq!(
            index.scan(&buf, 2),
            expect(17, 0, 4097, n, enc, form),
            "{enc:?} {form:?}"
        );
    }
}

#[test]
fn fifteen_pixels_are_below_the_documented_minimum() {
    assert_eq!(WINDOW, 16);
    let imgs = Images::rgb(30, 8, 13);
    let index = imgs.index();
    for (enc, form) in [
        (PixelEncoding::U8, PixelForm::Raw),
        (PixelEncoding::F32, PixelForm::Scaled),
        (PixelEncoding::F16, PixelForm::Normalized),
        (PixelEncoding::Bf16, PixelForm::Normalized),
    ] {
        let mut buf = weights(16 << 10, 14);
        plant(&mut buf, 999, &imgs.encode(3, 10, 15, enc, form));
        assert_eq!(index.scan(&buf, 1), vec![], "{enc:?} {form:?}");
        // One more pixel and it is found: the 15 are not hidden by the surroundings.
        plant(&mut buf, 999, &imgs.encode(3, 10, 16, enc, form));
        assert_eq!(index.scan(&buf, 1).len(), 1, "{enc:?} {form:?}");
    }
}

#[test]
fn f32_values_computed_in_another_order_are_still_found() {
    let imgs = Images::rgb(10, 16, 15);
    let index = imgs.index();
    let n = imgs.len();
    let mut run = Vec::new();
    let mut differ = 0;
    for p in 0..n {
        let x = imgs.pixels[5 * n + p];
        let c = p / 256;
        let other = (f32::from(x) * (1.0 / 255.0) - MEAN[c]) * (1.0 / STD[c]);
        if other != imgs.value(x, p, PixelForm::Normalized) {
            differ += 1;
        }
        run.extend_from_slice(&other.to_le_bytes());
    }
    assert!(
        differ > 0,
        "the other order must round differently somewhere"
    );
    let mut buf = weights(run.len() + 4096, 16);
    plant(&mut buf, 2050, &run);
    assert_eq!(
        index.scan(&buf, 1),
        expect(5, 0, 2050, n, PixelEncoding::F32, PixelForm::Normalized)
    );
}

#[test]
fn a_run_across_thread_chunks_is_found_once() {
    let imgs = Images::gray(textured(50, 1, 32, 32, 17), 32, &[0.5], &[0.25]);
    let index = imgs.index();
    let mut buf = weights(1 << 20, 18);
    let run = imgs.encode(33, 300, 40, PixelEncoding::F32, PixelForm::Normalized);
    let at = buf.len() / 2 - 61;
    plant(&mut buf, at, &run);
    let want = expect(33, 300, at, 40, PixelEncoding::F32, PixelForm::Normalized);
    for threads in [0, 1, 2, 3, 7] {
        assert_eq!(index.scan(&buf, threads), want, "{threads} threads");
    }
}

#[test]
fn random_widened_and_sparse_weights_hold_no_pixels() {
    let imgs = Images::rgb(200, 32, 19);
    let index = imgs.index();
    let gray = Images::gray(dark(500, 28, 28, 20), 28, &MNIST_MEAN, &MNIST_STD);
    let dark_index = gray.index();
    let buf = weights(10 << 20, 21);
    assert_eq!(index.scan(&buf, 2), vec![]);
    assert_eq!(dark_index.scan(&buf, 2), vec![]);
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let mut bytes = vec![0u8; 4 << 20];
    rng.fill(&mut bytes[..]);
    assert_eq!(index.scan(&bytes, 2), vec![]);
    assert_eq!(dark_index.scan(&bytes, 2), vec![]);
    // bf16 and f16 weights widened to f32 (structured low halves), and a pruned tensor.
    for keep in [0xFFFF_0000u32, 0xFFFF_E000] {
        let widened: Vec<u8> = buf[..4 << 20]
            .chunks_exact(4)
            .flat_map(|c| (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & keep).to_le_bytes())
            .collect();
        assert_eq!(index.scan(&widened, 2), vec![]);
        assert_eq!(dark_index.scan(&widened, 2), vec![]);
    }
    let sparse: Vec<u8> = buf[..4 << 20]
        .chunks_exact(4)
        .enumerate()
        .flat_map(|(i, c)| {
            if i % 13 == 0 {
                [c[0], c[1], c[2], c[3]]
            } else {
                [0; 4]
            }
        })
        .collect();
    assert_eq!(index.scan(&sparse, 2), vec![]);
    assert_eq!(dark_index.scan(&sparse, 2), vec![]);
}

#[test]
fn zero_and_constant_tensors_hold_no_pixels() {
    // Constant images too: their windows are never indexed.
    let mut pixels = textured(40, 1, 28, 28, 23);
    pixels.extend(std::iter::repeat_n(0u8, 784));
    pixels.extend(std::iter::repeat_n(255u8, 784));
    pixels.extend(std::iter::repeat_n(7u8, 784));
    let imgs = Images::gray(pixels, 28, &[0.0], &[1.0]);
    let index = imgs.index();
    let len = 1 << 20;
    let repeat = |unit: &[u8]| unit.iter().copied().cycle().take(len).collect::<Vec<u8>>();
    let buffers = [
        vec![0u8; len],
        vec![7u8; len],
        vec![0xFFu8; len],
        repeat(&1.0f32.to_le_bytes()),
        repeat(&(7.0f32 / 255.0).to_le_bytes()),
        repeat(&7.0f32.to_le_bytes()),
        repeat(&f16::from_f32(7.0 / 255.0).to_le_bytes()),
        repeat(&bf16::from_f32(200.0 / 255.0).to_le_bytes()),
        // Two alternating pixel values: 2 distinct, never indexed.
        repeat(&[0, 0, 0, 0, 0x80, 0x80, 0x80, 0x3F]),
    ];
    for (i, buf) in buffers.iter().enumerate() {
        assert_eq!(index.scan(buf, 2), vec![], "buffer {i}");
    }
}

#[test]
fn low_information_windows_are_not_indexed() {
    let mut pixels = vec![0u8; 4 * 784];
    let period = |img: &mut [u8], zeros: usize| {
        for (p, x) in img.iter_mut().enumerate() {
            *x = if p % 16 < zeros {
                0
            } else {
                1 + (p % 16) as u8
            };
        }
    };
    // Image 0: black. Image 1: in every window 10 zeros and 6 other values (indexed: 16
    // rotations, each once). Image 2: 3 distinct values. Image 3: 11 zeros in every window.
    period(&mut pixels[784..2 * 784], 10);
    for (p, x) in pixels[2 * 784..3 * 784].iter_mut().enumerate() {
        *x = if p % 2 == 0 { 9 } else { 10 + (p % 4) as u8 };
    }
    period(&mut pixels[3 * 784..], 11);
    let imgs = Images::gray(pixels, 28, &[], &[]);
    let s = imgs.index().stats();
    let per_image = 784 - 15;
    assert_eq!(s.images, 4);
    assert_eq!(s.windows, 4 * per_image);
    assert_eq!(s.windows_indexed, 16);
    assert_eq!(s.duplicates, per_image - 16);
    assert_eq!(s.skipped_low_information, 3 * per_image);
}

#[test]
fn a_window_shared_by_two_images_names_the_first() {
    let mut pixels = textured(12, 1, 16, 16, 24);
    let (a, b) = pixels.split_at_mut(9 * 256);
    b[..256].copy_from_slice(&a[3 * 256..4 * 256]);
    let imgs = Images::gray(pixels, 16, &[], &[]);
    let index = imgs.index();
    assert!(index.stats().duplicates >= 256 - 15);
    let mut buf = weights(8192, 25);
    plant(
        &mut buf,
        333,
        &imgs.encode(9, 40, 30, PixelEncoding::U8, PixelForm::Raw),
    );
    assert_eq!(
        index.scan(&buf, 1),
        expect(3, 40, 333, 30, PixelEncoding::U8, PixelForm::Raw)
    );
}

#[test]
fn run_drops_shorter_runs_and_keeps_longer_ones() {
    let imgs = Images::gray(textured(20, 1, 16, 16, 26), 16, &[], &[]);
    let params = PixelParams {
        run: 24,
        ..PixelParams::default()
    };
    let index = PixelIndex::build(&imgs.source(), params);
    let mut buf = weights(16384, 27);
    plant(
        &mut buf,
        100,
        &imgs.encode(1, 0, 23, PixelEncoding::F16, PixelForm::Scaled),
    );
    plant(
        &mut buf,
        5001,
        &imgs.encode(2, 9, 24, PixelEncoding::F16, PixelForm::Scaled),
    );
    assert_eq!(
        index.scan(&buf, 1),
        expect(2, 9, 5001, 24, PixelEncoding::F16, PixelForm::Scaled)
    );
}

#[test]
fn bad_sources_and_params_are_refused_naming_sizes_only() {
    let pixels = textured(2, 3, 8, 8, 28);
    let mean = [0.123_456f32, 0.5, 0.5];
    let std = [0.25f32, 0.25, 0.25];
    let good = PixelSource {
        pixels: &pixels,
        channels: 3,
        height: 8,
        width: 8,
        normalization: Some((&mean, &std)),
    };
    let p = PixelParams::default();
    assert!(PixelIndex::try_build(&good, p).is_ok());
    let err = |src: PixelSource<'_>, params: PixelParams| {
        PixelIndex::try_build(&src, params).expect_err("refused")
    };
    assert!(matches!(
        err(
            PixelSource {
                channels: 5,
                ..good
            },
            p
        ),
        PixelIndexError::Geometry { channels: 5, .. }
    ));
    assert!(matches!(
        err(PixelSource { height: 0, ..good }, p),
        PixelIndexError::Geometry { .. }
    ));
    let e = err(
        PixelSource {
            pixels: &pixels[1..],
            ..good
        },
        p,
    );
    assert_eq!(
        e.to_string(),
        "pixel index: 383 pixel bytes are not a whole number of 192-byte images"
    );
    let bad_std = [0.25f32, 0.0, 0.25];
    let e = err(
        PixelSource {
            normalization: Some((&mean, &bad_std)),
            ..good
        },
        p,
    );
    assert!(matches!(e, PixelIndexError::Normalization { .. }));
    assert!(e.to_string().contains("channel 1"), "{e}");
    assert!(!e.to_string().contains("0.123"), "{e}");
    let nan = [f32::NAN, 0.5, 0.5];
    assert!(matches!(
        err(
            PixelSource {
                normalization: Some((&nan, &std)),
                ..good
            },
            p
        ),
        PixelIndexError::Normalization { .. }
    ));
    let tiny = [1e-39f32, 0.25, 0.25];
    assert!(matches!(
        err(
            PixelSource {
                normalization: Some((&mean, &tiny)),
                ..good
            },
            p
        ),
        PixelIndexError::Normalization { .. }
    ));
    let e = err(
        PixelSource {
            normalization: Some((&mean[..2], &std[..2])),
            ..good
        },
        p,
    );
    assert_eq!(
        e.to_string(),
        "pixel index: normalization: 2 means and 2 stds for 3 channels"
    );
    for params in [
        PixelParams { run: 15, ..p },
        PixelParams {
            min_distinct: 0,
            ..p
        },
        PixelParams {
            min_distinct: 17,
            ..p
        },
        PixelParams { max_equal: 0, ..p },
    ] {
        assert!(
            matches!(err(good, params), PixelIndexError::Params { .. }),
            "{params:?}"
        );
    }
}

#[test]
#[should_panic(expected = "pixel index: images of 0×8×8")]
fn build_panics_with_the_error() {
    let pixels = [0u8; 64];
    let _ = PixelIndex::build(
        &PixelSource {
            pixels: &pixels,
            channels: 0,
            height: 8,
            width: 8,
            normalization: None,
        },
        PixelParams::default(),
    );
}

#[test]
fn debug_output_and_findings_hold_no_pixel_values() {
    let pixels: Vec<u8> = (0..4 * 256).map(|i| (i * 37 % 251) as u8 + 3).collect();
    let imgs = Images::gray(pixels, 16, &[], &[]);
    let src = format!("{:?}", imgs.source());
    assert_eq!(
        src,
        "PixelSource { pixels: [1024 bytes], channels: 1, height: 16, width: 16, normalization: false }"
    );
    let index = imgs.index();
    let dbg = format!("{index:?}");
    assert!(dbg.starts_with("PixelIndex { params:"), "{dbg}");
    let m = PixelMatch {
        image: 1,
        pixel: 2,
        offset: 3,
        pixels: 16,
        encoding: PixelEncoding::F16,
        form: PixelForm::Normalized,
    };
    assert_eq!(finding_kind(&m), "image-pixels (f16, normalized)");
    assert_eq!(
        PixelMatch {
            encoding: PixelEncoding::U8,
            form: PixelForm::Raw,
            ..m.clone()
        }
        .kind(),
        "image-pixels (u8, raw)"
    );
    assert_eq!(
        serde_json::to_string(&m).expect("json"),
        r#"{"image":1,"pixel":2,"offset":3,"pixels":16,"encoding":"f16","form":"normalized"}"#
    );
}

#[test]
fn no_images_or_images_smaller_than_a_window_index_nothing() {
    let buf = weights(4096, 29);
    for (pixels, side) in [(Vec::new(), 28), (textured(10, 1, 3, 3, 30), 3)] {
        let imgs = Images::gray(pixels, side, &[], &[]);
        let index = imgs.index();
        let s = index.stats();
        assert_eq!((s.windows, s.windows_indexed), (0, 0));
        assert_eq!(index.scan(&buf, 2), vec![]);
        assert_eq!(index.scan(&[], 1), vec![]);
    }
}
