//! Synthetic scans: 64×64 grayscale "chest" images with a learnable finding, and a
//! manifest whose identifier columns look like what a hospital may not move (names,
//! medical record numbers, birth dates).
//!
//! Each image is a noisy textured body (an ellipse) with two darker lungs; every image has
//! a few faint vessel dots, and the finding is drawn in a lung: `clear` (none), `nodule` (a
//! small bright disc) or `mass` (a larger, irregular bright blob of overlapping lobes), in
//! proportions of about 50/30/20. The pixels are computed with `+ - × ÷` and square roots
//! only (no `sin`, `exp` or `ln`, whose last bit may differ between platforms), so the same
//! seed gives the same PNG bytes wherever the same `image` and `png` crate versions encode
//! them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use image::ImageEncoder as _;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use airlock_schemas::IoError;

use super::{FIRST, LAST};

/// Side of a scan, in pixels (scans are square, one channel).
pub const SCAN_SIDE: usize = 64;
/// Scans `airlock demo-data --kind scans` writes by default.
pub const SCAN_ROWS: usize = 1500;
/// The findings, in the order a multi-class pipeline lists them (`task.classes`).
pub const SCAN_CLASSES: [&str; 3] = ["clear", "nodule", "mass"];
/// The manifest's columns, in file order.
pub const SCAN_COLUMNS: [&str; 8] = [
    "file",
    "finding",
    "patient_name",
    "mrn",
    "birth_date",
    "sex",
    "age",
    "site",
];
/// The manifest's identifier columns (direct and quasi-identifiers), as a pipeline lists
/// them. `sex` and `site` are the subgroup columns (with `age` banded).
pub const SCAN_IDENTIFIERS: [&str; 4] = ["patient_name", "mrn", "birth_date", "age"];
/// The medical record number format of the scans (`MRN-0012345`), for `[leak]
/// mrn_patterns`.
pub const SCAN_MRN_PATTERN: &str = "MRN-[0-9]{7}";
/// The manifest's file name in the folder `write_scans` writes.
pub const SCAN_MANIFEST: &str = "manifest.csv";
/// The folder, beside the manifest, holding the images.
pub const SCAN_IMAGE_DIR: &str = "images";
/// The sites the scans come from (a subgroup column).
pub const SCAN_SITES: [&str; 3] = ["north", "central", "south"];
/// The scans are dated 30 June of this year: ages are as of then.
pub const SCAN_YEAR: u32 = 2025;

/// What [`write_scans`] wrote.
#[derive(Debug, Clone)]
pub struct ScanSummary {
    /// The manifest written.
    pub manifest: PathBuf,
    /// Scans written.
    pub rows: usize,
    /// Scans per finding, in [`SCAN_CLASSES`] order.
    pub per_class: [usize; 3],
}

/// Write `n` synthetic scans, deterministically for `seed`, into `dir`: the images as
/// `images/scan-NNNNN.png` and the manifest [`SCAN_MANIFEST`] (columns [`SCAN_COLUMNS`]).
/// Any manifest already there is removed first and the new one is written to a temporary
/// file and renamed into place last, so a manifest present lists complete images.
pub fn write_scans(dir: &Path, n: usize, seed: u64) -> Result<ScanSummary, IoError> {
    let images = dir.join(SCAN_IMAGE_DIR);
    std::fs::create_dir_all(&images)
        .map_err(|source| IoError::new("create directory", &images, source))?;
    let manifest = dir.join(SCAN_MANIFEST);
    match std::fs::remove_file(&manifest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(IoError::new("remove", &manifest, e));
        }
        _ => {}
    }
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|source| IoError::new("create a temporary file in", dir, source))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(tmp));
    w.write_record(SCAN_COLUMNS)
        .map_err(|e| IoError::new("write", &manifest, e.into()))?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut mrns = HashSet::new();
    let mut per_class = [0usize; 3];
    for i in 0..n {
        let p = Patient::sample(&mut rng, &mut mrns);
        let finding = finding(&mut rng);
        per_class[finding] += 1;
        let png = encode_png(&render(&mut rng, finding))
            .map_err(|e| IoError::new("encode", &images, std::io::Error::other(e)))?;
        let file = format!("{SCAN_IMAGE_DIR}/scan-{:05}.png", i + 1);
        let path = dir.join(&file);
        std::fs::write(&path, png).map_err(|source| IoError::new("write", &path, source))?;
        w.write_record(p.fields(&file, SCAN_CLASSES[finding]))
            .map_err(|e| IoError::new("write", &manifest, e.into()))?;
    }
    let buf = w
        .into_inner()
        .map_err(|e| IoError::new("write", &manifest, e.into_error()))?;
    let tmp = buf
        .into_inner()
        .map_err(|e| IoError::new("write", &manifest, e.into_error()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|source| IoError::new("sync", &manifest, source))?;
    tmp.persist(&manifest)
        .map_err(|e| IoError::new("rename into", &manifest, e.error))?;
    Ok(ScanSummary {
        manifest,
        rows: n,
        per_class,
    })
}

/// A finding's index in [`SCAN_CLASSES`]: about 50% clear, 30% nodule, 20% mass.
fn finding(rng: &mut ChaCha8Rng) -> usize {
    match rng.random::<f64>() {
        u if u < 0.5 => 0,
        u if u < 0.8 => 1,
        _ => 2,
    }
}

/// The synthetic patient of one scan.
struct Patient {
    name: String,
    mrn: String,
    birth: (u32, u32, u32),
    sex: &'static str,
    site: &'static str,
}

impl Patient {
    fn sample(rng: &mut ChaCha8Rng, mrns: &mut HashSet<u32>) -> Self {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let mrn = loop {
            let m = rng.random_range(1..10_000_000u32);
            if mrns.insert(m) {
                break m;
            }
        };
        let year = rng.random_range(1935..=2006);
        let month = rng.random_range(1..=12);
        let day = rng.random_range(1..=days_in_month(year, month));
        let site = match rng.random::<f64>() {
            u if u < 0.45 => SCAN_SITES[0],
            u if u < 0.8 => SCAN_SITES[1],
            _ => SCAN_SITES[2],
        };
        Self {
            name: format!("{first} {last}"),
            mrn: format!("MRN-{mrn:07}"),
            birth: (year, month, day),
            sex: if rng.random::<bool>() { "F" } else { "M" },
            site,
        }
    }

    /// Age on the scan date, 30 June [`SCAN_YEAR`].
    fn age(&self) -> u32 {
        let (y, m, d) = self.birth;
        SCAN_YEAR - y - u32::from((m, d) > (6, 30))
    }

    fn fields(&self, file: &str, finding: &str) -> [String; 8] {
        let (y, m, d) = self.birth;
        [
            file.to_owned(),
            finding.to_owned(),
            self.name.clone(),
            self.mrn.clone(),
            format!("{y:04}-{m:02}-{d:02}"),
            self.sex.to_owned(),
            self.age().to_string(),
            self.site.to_owned(),
        ]
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An axis-aligned ellipse.
#[derive(Clone, Copy)]
struct Ellipse {
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
}

impl Ellipse {
    /// 1 inside, 0 outside, a smooth edge about a pixel wide.
    fn weight(&self, x: f64, y: f64) -> f64 {
        let (dx, dy) = ((x - self.cx) / self.rx, (y - self.cy) / self.ry);
        let q = (dx * dx + dy * dy).sqrt();
        let edge = 1.5 / self.rx.min(self.ry);
        smoothstep(1.0 + edge, 1.0 - edge, q)
    }

    /// A point inside, at up to `reach` of the radii from the centre.
    fn point(&self, rng: &mut ChaCha8Rng, reach: f64) -> (f64, f64) {
        (
            self.cx + self.rx * reach * uniform(rng, -1.0, 1.0),
            self.cy + self.ry * reach * uniform(rng, -1.0, 1.0),
        )
    }
}

/// A bright disc: 1 inside radius `r`, 0 beyond, a smooth edge.
fn disc(cx: f64, cy: f64, r: f64, x: f64, y: f64) -> f64 {
    let d = ((x - cx) * (x - cx) + (y - cy) * (y - cy)).sqrt();
    smoothstep(r + 0.7, r - 0.7, d)
}

/// 0 at `e0`, 1 at `e1`, a cubic in between (either order).
fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Roughly normal noise with standard deviation `sd` (a sum of three uniforms).
fn noise(rng: &mut ChaCha8Rng, sd: f64) -> f64 {
    let s: f64 = (0..3).map(|_| rng.random::<f64>()).sum();
    (s - 1.5) * 2.0 * sd
}

/// A coarse random grid, read with bilinear interpolation: a smooth tissue texture in
/// [-1, 1].
struct Texture([[f64; 9]; 9]);

impl Texture {
    fn sample(rng: &mut ChaCha8Rng) -> Self {
        let mut g = [[0.0; 9]; 9];
        for row in &mut g {
            for v in row {
                *v = uniform(rng, -1.0, 1.0);
            }
        }
        Self(g)
    }

    fn at(&self, x: f64, y: f64) -> f64 {
        let scale = 8.0 / SCAN_SIDE as f64;
        let (gx, gy) = (x * scale, y * scale);
        let (ix, iy) = ((gx as usize).min(7), (gy as usize).min(7));
        let (fx, fy) = (gx - ix as f64, gy - iy as f64);
        let g = &self.0;
        let top = g[iy][ix] * (1.0 - fx) + g[iy][ix + 1] * fx;
        let bottom = g[iy + 1][ix] * (1.0 - fx) + g[iy + 1][ix + 1] * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Bright spots drawn over the lungs: each `(x, y, radius, brightness)`.
type Spots = Vec<(f64, f64, f64, f64)>;

/// The vessel dots (every class) and the finding's spots (none, a nodule, a mass's lobes).
fn spots(rng: &mut ChaCha8Rng, lungs: &[Ellipse; 2], finding: usize) -> Spots {
    let mut out = Spots::new();
    for _ in 0..rng.random_range(3..7) {
        let (x, y) = lungs[rng.random_range(0..2)].point(rng, 0.7);
        out.push((x, y, uniform(rng, 0.6, 1.2), uniform(rng, 20.0, 40.0)));
    }
    let lung = lungs[rng.random_range(0..2)];
    match finding {
        1 => {
            let (x, y) = lung.point(rng, 0.55);
            out.push((x, y, uniform(rng, 1.6, 3.0), uniform(rng, 55.0, 130.0)));
        }
        2 => {
            let (x, y) = lung.point(rng, 0.35);
            let level = uniform(rng, 70.0, 115.0);
            for _ in 0..rng.random_range(3..6) {
                let (dx, dy) = (uniform(rng, -3.0, 3.0), uniform(rng, -3.5, 3.5));
                out.push((x + dx, y + dy, uniform(rng, 3.0, 5.0), level));
            }
        }
        _ => {}
    }
    out
}

/// One scan's pixels, row-major.
fn render(rng: &mut ChaCha8Rng, finding: usize) -> Vec<u8> {
    let body = Ellipse {
        cx: 32.0 + uniform(rng, -2.0, 2.0),
        cy: 33.0 + uniform(rng, -2.0, 2.0),
        rx: 27.0 + uniform(rng, -2.0, 2.0),
        ry: 24.0 + uniform(rng, -2.0, 2.0),
    };
    let lung = |rng: &mut ChaCha8Rng, side: f64| Ellipse {
        cx: body.cx + side * (10.5 + uniform(rng, -1.0, 1.0)),
        cy: body.cy - 1.0 + uniform(rng, -1.0, 1.0),
        rx: 8.0 + uniform(rng, -1.0, 1.0),
        ry: 14.0 + uniform(rng, -1.5, 1.5),
    };
    let lungs = [lung(rng, -1.0), lung(rng, 1.0)];
    let (tissue, air) = (uniform(rng, 95.0, 115.0), uniform(rng, 32.0, 48.0));
    let texture = Texture::sample(rng);
    let spots = spots(rng, &lungs, finding);
    let mut px = Vec::with_capacity(SCAN_SIDE * SCAN_SIDE);
    for yi in 0..SCAN_SIDE {
        for xi in 0..SCAN_SIDE {
            let (x, y) = (xi as f64 + 0.5, yi as f64 + 0.5);
            let inside = body.weight(x, y);
            let in_lung = lungs[0].weight(x, y).max(lungs[1].weight(x, y)) * inside;
            let t = texture.at(x, y);
            let mut v = 12.0 + inside * (tissue + 12.0 * t - 12.0);
            v -= in_lung * (tissue - air + 6.0 * t);
            let spot = spots
                .iter()
                .map(|&(cx, cy, r, level)| level * disc(cx, cy, r, x, y))
                .fold(0.0, f64::max);
            v += inside * spot + noise(rng, 6.0);
            px.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    px
}

/// A grayscale PNG of one scan.
fn encode_png(px: &[u8]) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    let side = SCAN_SIDE as u32;
    PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
        .write_image(px, side, side, image::ExtendedColorType::L8)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(
            SCAN_MANIFEST.to_owned(),
            std::fs::read(dir.join(SCAN_MANIFEST)).expect("manifest"),
        )];
        let mut names: Vec<_> = std::fs::read_dir(dir.join(SCAN_IMAGE_DIR))
            .expect("images")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        for n in names {
            let bytes = std::fs::read(dir.join(SCAN_IMAGE_DIR).join(&n)).expect("read");
            out.push((n, bytes));
        }
        out
    }

    #[test]
    fn write_scans_is_deterministic_byte_for_byte() {
        let (a, b, c) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let sa = write_scans(a.path(), 40, 11).expect("a");
        write_scans(b.path(), 40, 11).expect("b");
        write_scans(c.path(), 40, 12).expect("c");
        let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
        assert_eq!(fa.len(), 41);
        assert_eq!(sa.rows, 40);
        assert_eq!(sa.per_class.iter().sum::<usize>(), 40);
        assert!(fa == fb, "same seed, different bytes");
        assert!(fa != fc, "another seed wrote the same files");
        // Rewriting into the same folder gives the same bytes again.
        write_scans(a.path(), 40, 11).expect("again");
        assert!(files(a.path()) == fb);
    }

    #[test]
    fn identifiers_are_well_formed_and_mrns_match_the_pattern() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut mrns = HashSet::new();
        let re = airlock_schemas::PipelineSpec::mrn_regex(&[SCAN_MRN_PATTERN.to_owned()])
            .expect("the pattern passes the pipeline's rules")
            .expect("one pattern");
        for _ in 0..2000 {
            let p = Patient::sample(&mut rng, &mut mrns);
            let f = p.fields("images/x.png", "clear");
            assert!(re.is_match(f[3].as_bytes()), "{}", f[3]);
            assert_eq!(f[3].len(), 11);
            let (y, m, d) = p.birth;
            assert!((1..=days_in_month(y, m)).contains(&d));
            assert!((18..=90).contains(&p.age()), "{}", p.age());
        }
        assert_eq!(mrns.len(), 2000, "MRNs are unique");
    }

    /// Pixels of a scan brighter than any lung tissue or vessel dot can be.
    fn bright(px: &[u8]) -> usize {
        px.iter().filter(|&&v| v >= 150).count()
    }

    #[test]
    fn findings_are_drawn_and_balanced() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut counts = [0usize; 3];
        let mut bright_sum = [0usize; 3];
        for _ in 0..1500 {
            let f = finding(&mut rng);
            counts[f] += 1;
            bright_sum[f] += bright(&render(&mut rng, f));
        }
        let share = counts.map(|c| c as f64 / 1500.0);
        assert!((share[0] - 0.5).abs() < 0.04, "{share:?}");
        assert!((share[1] - 0.3).abs() < 0.04, "{share:?}");
        assert!((share[2] - 0.2).abs() < 0.04, "{share:?}");
        let mean = [0, 1, 2].map(|k| bright_sum[k] as f64 / counts[k] as f64);
        // A nodule adds a few bright pixels (some nodules are faint), a mass many; a clear
        // scan has none: tissue, lungs, vessel dots and noise stay below 150.
        assert!(mean[0] < 0.5, "{mean:?}");
        assert!(mean[1] > 1.0 && mean[1] < 20.0, "{mean:?}");
        assert!(mean[2] > 3.0 * mean[1], "{mean:?}");
    }
}
