//! Image-folder training data: a manifest CSV (one row per image: the image's file name,
//! the label, subgroup and identifier columns) beside a folder of PNG or JPEG images, each
//! decoded to `u8` pixels of exactly the declared size.
//!
//! Every image is named relative to the manifest's folder and read only as a plain file
//! inside it: an absolute name, a `..` component, a symbolic link (the file or a folder on
//! its way), anything but a regular file, a file over [`MAX_IMAGE_FILE_BYTES`], a format
//! other than PNG or JPEG (by its first bytes), a malformed image, and an image of another
//! size or channel count than declared are refused. Nothing is converted silently: an RGB
//! image for a grayscale model is an error, not a grayscale image.
//!
//! Errors name the manifest row and the image's file name. File names are the site's
//! naming of its files, not a cell of the data; a site whose file names hold identifiers
//! (`smith_john_1984.png`) will see them in error messages, and should rename the files.

use std::io::{Cursor, Read as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use airlock_schemas::{DatasetFile, ImageInput, MAX_IMAGE_SIDE, SubgroupSpec};
use image::codecs::jpeg::JpegDecoder;
use image::codecs::png::PngDecoder;
use image::{ColorType, ImageDecoder, Limits};
use sha2::{Digest, Sha256};

use crate::data::{CsvRead, TextColumn, load_csv};
use crate::{DataError, LabelColumn, Table};

/// Largest image file read (bytes).
pub const MAX_IMAGE_FILE_BYTES: u64 = 32 << 20;
/// Most images a manifest may list.
pub const MAX_IMAGES: u64 = 1_000_000;
/// Most decoded pixel bytes held for one manifest (rows × channels × height × width).
pub const MAX_PIXEL_BYTES: u64 = 16 << 30;
/// Longest image file name in a manifest (bytes).
pub const MAX_IMAGE_NAME_BYTES: usize = 1024;

/// Images decoded to u8, channel-major (CHW) per image, images one after the other.
#[derive(Clone)]
pub struct ImageTable {
    /// Labels, subgroup columns and the manifest's fingerprint (features empty,
    /// feature_names empty).
    pub table: Table,
    /// rows × channels × height × width bytes.
    pub pixels: Vec<u8>,
    /// The declared image size.
    pub shape: ImageInput,
    /// The images as one fingerprint entry: path = the manifest's folder, sha256 = SHA-256
    /// over (for each manifest row in order) the file name, a NUL, the SHA-256 hex of the
    /// file's bytes, a newline; bytes = total image bytes; rows = images; columns = [].
    pub images: DatasetFile,
    /// Identifier columns of the manifest as text, row-major (rows × identifiers.len()),
    /// exactly as the manifest holds them.
    pub identifier_values: Vec<String>,
}

impl std::fmt::Debug for ImageTable {
    /// Sizes and fingerprints only: no pixels, no identifier values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageTable")
            .field("rows", &self.rows())
            .field("shape", &self.shape)
            .field("manifest", &self.table.fingerprint)
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

impl ImageTable {
    /// Number of images.
    pub fn rows(&self) -> usize {
        self.pixels.len() / image_len(&self.shape).max(1)
    }

    /// Bytes of one decoded image (channels × height × width).
    pub fn image_len(&self) -> usize {
        image_len(&self.shape)
    }

    /// The decoded pixels of image `row` (CHW).
    pub fn image(&self, row: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[row * n..(row + 1) * n]
    }
}

fn image_len(shape: &ImageInput) -> usize {
    shape.channels * shape.height * shape.width
}

/// Why an image was refused. The messages say what is wrong with the image, never what it
/// shows.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Over [`MAX_IMAGE_FILE_BYTES`].
    #[error("the image is {bytes} bytes; at most {MAX_IMAGE_FILE_BYTES} are read")]
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// Neither PNG nor JPEG by its first bytes.
    #[error("not a PNG or JPEG image (by its first bytes)")]
    UnknownFormat,
    /// Not the declared width and height.
    #[error(
        "the image is {actual_width}×{actual_height} pixels (width×height); the model takes {width}×{height}"
    )]
    WrongSize {
        /// Declared width.
        width: usize,
        /// Declared height.
        height: usize,
        /// The image's width.
        actual_width: u32,
        /// The image's height.
        actual_height: u32,
    },
    /// Not the declared channels (or not 8 bits per channel, or with an alpha channel).
    #[error("the image is {actual}; the model takes {expected}")]
    WrongColor {
        /// The image's pixel format.
        actual: &'static str,
        /// What the model takes.
        expected: &'static str,
    },
    /// The decoder refused it (truncated, corrupt, over the decoder's limits).
    #[error("malformed {format} image: {message}")]
    Malformed {
        /// `PNG` or `JPEG`.
        format: &'static str,
        /// The decoder's message (about the encoding, not the picture).
        message: String,
    },
}

/// Decode one PNG or JPEG (from memory) to CHW u8 of exactly `shape` (grayscale stays 1
/// channel; an RGB image for a 1-channel model is refused, and vice versa — no silent
/// conversion), for serving too.
///
/// The size is read from the header and checked before any pixel is decoded, and the
/// decoder runs under [`Limits`] sized for `shape`, so a small file that declares a huge
/// image (a decompression bomb) is refused without allocating it.
pub fn decode_image(bytes: &[u8], shape: &ImageInput) -> Result<Vec<u8>, ImageError> {
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(ImageError::TooLarge {
            bytes: bytes.len() as u64,
        });
    }
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']) {
        let d = PngDecoder::with_limits(Cursor::new(bytes), header_limits())
            .map_err(malformed("PNG"))?;
        decode_with(d, shape, "PNG")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        let d = JpegDecoder::new(Cursor::new(bytes)).map_err(malformed("JPEG"))?;
        decode_with(d, shape, "JPEG")
    } else {
        Err(ImageError::UnknownFormat)
    }
}

/// Limits while a header is read: metadata chunks (text, ICC profiles) are bounded too.
fn header_limits() -> Limits {
    let mut l = Limits::default();
    l.max_alloc = Some(64 << 20);
    l
}

fn malformed(format: &'static str) -> impl Fn(image::ImageError) -> ImageError {
    move |e| ImageError::Malformed {
        format,
        message: e.to_string(),
    }
}

/// Check the header's size and pixel format against `shape`, then decode under limits for
/// exactly that image.
fn decode_with<D: ImageDecoder>(
    mut d: D,
    shape: &ImageInput,
    format: &'static str,
) -> Result<Vec<u8>, ImageError> {
    let (w, h) = d.dimensions();
    if (w as usize, h as usize) != (shape.width, shape.height) {
        return Err(ImageError::WrongSize {
            width: shape.width,
            height: shape.height,
            actual_width: w,
            actual_height: h,
        });
    }
    let channels = match d.color_type() {
        ColorType::L8 => 1,
        ColorType::Rgb8 => 3,
        _ => 0,
    };
    if channels != shape.channels {
        return Err(ImageError::WrongColor {
            actual: color_name(d.color_type()),
            expected: if shape.channels == 1 {
                "1 channel (8-bit grayscale)"
            } else {
                "3 channels (8-bit RGB)"
            },
        });
    }
    let len = image_len(shape);
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(2 * len as u64 + (1 << 20));
    d.set_limits(limits).map_err(malformed(format))?;
    let mut hwc = vec![0u8; len];
    if d.total_bytes() != len as u64 {
        return Err(ImageError::Malformed {
            format,
            message: "the decoder's output size does not match its header".into(),
        });
    }
    d.read_image(&mut hwc).map_err(malformed(format))?;
    Ok(to_chw(hwc, shape))
}

/// What a pixel format is called in [`ImageError::WrongColor`].
fn color_name(c: ColorType) -> &'static str {
    match c {
        ColorType::L8 => "1 channel (8-bit grayscale)",
        ColorType::Rgb8 => "3 channels (8-bit RGB)",
        ColorType::La8 => "8-bit grayscale with alpha",
        ColorType::Rgba8 => "8-bit RGB with alpha",
        ColorType::L16 => "16-bit grayscale",
        ColorType::La16 => "16-bit grayscale with alpha",
        ColorType::Rgb16 => "16-bit RGB",
        ColorType::Rgba16 => "16-bit RGB with alpha",
        _ => "a pixel format the model does not take",
    }
}

/// Interleaved (HWC) pixels to channel-major (CHW).
fn to_chw(hwc: Vec<u8>, shape: &ImageInput) -> Vec<u8> {
    let c = shape.channels;
    if c == 1 {
        return hwc;
    }
    let plane = shape.height * shape.width;
    let mut chw = vec![0u8; hwc.len()];
    for (p, px) in hwc.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            chw[k * plane + p] = v;
        }
    }
    chw
}

/// Read the manifest at `manifest` (a CSV: `image_column` names each image relative to the
/// manifest's folder; the label, subgroup and identifier columns as for any CSV) and decode
/// every image to `shape`, in parallel.
pub fn load_images(
    manifest: &Path,
    image_column: &str,
    shape: &ImageInput,
    label: Option<LabelColumn<'_>>,
    subgroups: &[SubgroupSpec],
    identifiers: &[String],
) -> Result<ImageTable, DataError> {
    if image_len(shape) == 0
        || !matches!(shape.channels, 1 | 3)
        || shape.height > MAX_IMAGE_SIDE
        || shape.width > MAX_IMAGE_SIDE
    {
        return Err(DataError::ImageShape {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        });
    }
    let text: Vec<TextColumn<'_>> = std::iter::once(TextColumn {
        name: image_column,
        role: "image",
    })
    .chain(identifiers.iter().map(|name| TextColumn {
        name,
        role: "identifier",
    }))
    .collect();
    let CsvRead { table, text, lines } = load_csv(manifest, &[], label, subgroups, &text)?;
    check_counts(manifest, table.fingerprint.rows, shape)?;

    let width = 1 + identifiers.len();
    let mut names = Vec::with_capacity(lines.len());
    let mut identifier_values = Vec::with_capacity(lines.len() * identifiers.len());
    for row in text.chunks_exact(width) {
        names.push(row[0].trim().to_owned());
        identifier_values.extend_from_slice(&row[1..]);
    }
    let dir = match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut pixels = vec![0u8; names.len() * image_len(shape)];
    let files =
        decode_all(&dir, &names, shape, &mut pixels).map_err(|(i, problem)| DataError::Image {
            path: manifest.to_owned(),
            row: i as u64 + 1,
            line: lines[i],
            file: names[i].clone(),
            problem,
        })?;
    if let Some((i, problem)) = first_duplicate(&files, &lines) {
        return Err(DataError::Image {
            path: manifest.to_owned(),
            row: i as u64 + 1,
            line: lines[i],
            file: names[i].clone(),
            problem,
        });
    }
    Ok(ImageTable {
        table,
        pixels,
        shape: *shape,
        images: images_fingerprint(&dir, &names, &files),
        identifier_values,
    })
}

/// Refuse a manifest over [`MAX_IMAGES`] rows or [`MAX_PIXEL_BYTES`] of decoded pixels.
fn check_counts(manifest: &Path, rows: u64, shape: &ImageInput) -> Result<(), DataError> {
    let too_many = |limit: String| DataError::TooManyImages {
        path: manifest.to_owned(),
        rows,
        limit,
    };
    if rows > MAX_IMAGES {
        return Err(too_many(format!("at most {MAX_IMAGES} are loaded")));
    }
    if rows.saturating_mul(image_len(shape) as u64) > MAX_PIXEL_BYTES {
        return Err(too_many(format!(
            "{rows} images of {}×{}×{} bytes are over the {MAX_PIXEL_BYTES}-byte bound on decoded pixels",
            shape.channels, shape.height, shape.width
        )));
    }
    Ok(())
}

/// The first row whose image file is byte-identical to an earlier row's (the same file
/// named twice, or a copy): one image in two rows could land in the training split and
/// the holdout at once, and the membership check would score a member as a non-member.
fn first_duplicate(files: &[FileDigest], lines: &[u64]) -> Option<Refusal> {
    let mut seen = std::collections::HashMap::with_capacity(files.len());
    files.iter().enumerate().find_map(|(i, (digest, _))| {
        seen.insert(digest.as_str(), i).map(|first| {
            (
                i,
                format!(
                    "the image is byte-identical to row {}'s (line {}); list each image once",
                    first + 1,
                    lines[first]
                ),
            )
        })
    })
}

/// The images' fingerprint entry (see [`ImageTable::images`]).
fn images_fingerprint(dir: &Path, names: &[String], files: &[FileDigest]) -> DatasetFile {
    let mut h = Sha256::new();
    for (name, (hex, _)) in names.iter().zip(files) {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(hex.as_bytes());
        h.update(b"\n");
    }
    DatasetFile {
        path: dir.display().to_string(),
        sha256: hex::encode(h.finalize()),
        bytes: files.iter().map(|(_, b)| b).sum(),
        rows: names.len() as u64,
        columns: Vec::new(),
    }
}

/// An image file's SHA-256 hex and size.
type FileDigest = (String, u64);
/// A refused row: its 0-based index and what is wrong with it.
type Refusal = (usize, String);

/// Read and decode every image into its slot of `pixels`, on up to as many threads as
/// there are cores. Returns each file's SHA-256 hex and size, or the first refused row's
/// index (0-based) and what is wrong with it.
fn decode_all(
    dir: &Path,
    names: &[String],
    shape: &ImageInput,
    pixels: &mut [u8],
) -> Result<Vec<FileDigest>, Refusal> {
    let len = image_len(shape);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 16)
        .min(names.len().max(1));
    let chunk = names.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<FileDigest>, Refusal>> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .zip(pixels.chunks_mut(chunk * len))
            .enumerate()
            .map(|(k, (names, out))| {
                s.spawn(move || {
                    let mut files = Vec::with_capacity(names.len());
                    for (j, (name, slot)) in names.iter().zip(out.chunks_exact_mut(len)).enumerate()
                    {
                        let file =
                            load_one(dir, name, shape, slot).map_err(|p| (k * chunk + j, p))?;
                        files.push(file);
                    }
                    Ok(files)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut files = Vec::with_capacity(names.len());
    let mut first_error: Option<Refusal> = None;
    for r in results {
        match r {
            Ok(f) => files.extend(f),
            Err(e) if first_error.as_ref().is_none_or(|f| e.0 < f.0) => first_error = Some(e),
            Err(_) => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

/// Read, hash and decode one image into `out`.
fn load_one(
    dir: &Path,
    name: &str,
    shape: &ImageInput,
    out: &mut [u8],
) -> Result<FileDigest, String> {
    let bytes = read_image_file(dir, name)?;
    let pixels = decode_image(&bytes, shape).map_err(|e| e.to_string())?;
    out.copy_from_slice(&pixels);
    Ok((hex::encode(Sha256::digest(&bytes)), bytes.len() as u64))
}

/// `name` as a path relative to the manifest's folder that stays inside it.
fn relative_name(name: &str) -> Result<&Path, String> {
    if name.is_empty() {
        return Err("the image column is empty".into());
    }
    if name.len() > MAX_IMAGE_NAME_BYTES {
        return Err(format!(
            "the file name is longer than {MAX_IMAGE_NAME_BYTES} bytes"
        ));
    }
    if name.contains('\0') {
        return Err("the file name holds a NUL byte".into());
    }
    let path = Path::new(name);
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(
                    "a `..` component would leave the manifest's folder: images are named relative to it, inside it"
                        .into(),
                );
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(
                    "an absolute path: images are named relative to the manifest's folder".into(),
                );
            }
        }
    }
    Ok(path)
}

/// Read image `name` from `dir`: a regular file reached without following any symbolic
/// link, at most [`MAX_IMAGE_FILE_BYTES`].
fn read_image_file(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let rel = relative_name(name)?;
    let mut sub = dir.to_owned();
    let components: Vec<_> = rel.components().collect();
    for c in &components[..components.len().saturating_sub(1)] {
        sub.push(c);
        let m = std::fs::symlink_metadata(&sub).map_err(|e| io_problem(&e))?;
        if !m.file_type().is_dir() {
            return Err(format!(
                "a folder on its way is {}, not a folder",
                kind(m.file_type())
            ));
        }
    }
    let path = dir.join(rel);
    let before = std::fs::symlink_metadata(&path).map_err(|e| io_problem(&e))?;
    if !before.file_type().is_file() {
        return Err(format!(
            "it is {}, not a regular file",
            kind(before.file_type())
        ));
    }
    if before.len() > MAX_IMAGE_FILE_BYTES {
        return Err(ImageError::TooLarge {
            bytes: before.len(),
        }
        .to_string());
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| io_problem(&e))?;
    let after = f.metadata().map_err(|e| io_problem(&e))?;
    if !after.file_type().is_file() || after.dev() != before.dev() || after.ino() != before.ino() {
        return Err("the file was replaced while it was being read".into());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(after.len()).unwrap_or(0));
    f.take(MAX_IMAGE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_problem(&e))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(ImageError::TooLarge {
            bytes: bytes.len() as u64,
        }
        .to_string());
    }
    Ok(bytes)
}

/// An I/O error as a problem: the OS's message (which names no path or content).
fn io_problem(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        return "no such file in the manifest's folder".into();
    }
    format!("cannot read it: {e}")
}

/// What a file system entry is, for a refusal.
fn kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_symlink() {
        "a symbolic link (images are read only as plain files in the manifest's folder)"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use airlock_schemas::{BandedSubgroup, ImageInput, SubgroupSpec, TaskSpec};
    use image::ImageEncoder as _;
    use image::codecs::png::PngEncoder;

    use super::*;
    use crate::demo;

    const GRAY: ImageInput = ImageInput {
        channels: 1,
        height: 64,
        width: 64,
    };
    const RGB: ImageInput = ImageInput {
        channels: 3,
        height: 64,
        width: 64,
    };

    fn png(w: u32, h: u32, color: image::ExtendedColorType, px: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(px, w, h, color)
            .expect("encode");
        out
    }

    /// A 64×64 grayscale PNG whose pixel (x, y) is `(x + 2y + seed) mod 256`.
    fn gray_png(seed: u8) -> Vec<u8> {
        let px: Vec<u8> = (0..64 * 64)
            .map(|i| ((i % 64 + 2 * (i / 64)) as u8).wrapping_add(seed))
            .collect();
        png(64, 64, image::ExtendedColorType::L8, &px)
    }

    fn rgb_png(w: u32, h: u32) -> Vec<u8> {
        let px: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        png(w, h, image::ExtendedColorType::Rgb8, &px)
    }

    fn classes() -> TaskSpec {
        TaskSpec::Multiclass {
            classes: demo::SCAN_CLASSES.map(str::to_owned).to_vec(),
        }
    }

    /// A folder with `manifest.csv` (`file,finding,mrn`) listing `rows` (file, finding), each
    /// row's MRN `MRN-SECRET-<row>`, and the files `files` (name, bytes).
    fn folder(rows: &[(&str, &str)], files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = String::from("file,finding,mrn\n");
        for (i, (file, finding)) in rows.iter().enumerate() {
            m.push_str(&format!("{file},{finding},MRN-SECRET-{i}\n"));
        }
        std::fs::write(dir.path().join("manifest.csv"), m).expect("manifest");
        for (name, bytes) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, bytes).expect("image");
        }
        dir
    }

    fn load(dir: &Path, shape: &ImageInput) -> Result<ImageTable, DataError> {
        let task = classes();
        load_images(
            &dir.join("manifest.csv"),
            "file",
            shape,
            Some(LabelColumn {
                column: "finding",
                task: &task,
            }),
            &[],
            &["mrn".to_owned()],
        )
    }

    /// Load a folder whose row 2 is `name` (row 1 a good image) and return the refusal.
    fn refuse_second(name: &str, files: &[(&str, Vec<u8>)]) -> String {
        let mut all = vec![("a.png", gray_png(0))];
        all.extend(files.iter().cloned());
        let dir = folder(&[("a.png", "clear"), (name, "mass")], &all);
        let err = load(dir.path(), &GRAY).expect_err("refused");
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                DataError::Image {
                    row: 2,
                    line: 3,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains(&format!("{name:?}")), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
        msg
    }

    #[test]
    fn demo_scans_load_end_to_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = demo::write_scans(dir.path(), 60, 3).expect("scans");
        let task = classes();
        let ids: Vec<String> = demo::SCAN_IDENTIFIERS.map(str::to_owned).to_vec();
        let groups = [
            SubgroupSpec::Banded(BandedSubgroup {
                column: "age".into(),
                bands: vec![45.0, 65.0],
            }),
            SubgroupSpec::Column("sex".into()),
            SubgroupSpec::Column("site".into()),
        ];
        let label = LabelColumn {
            column: "finding",
            task: &task,
        };
        let load = || load_images(&s.manifest, "file", &GRAY, Some(label), &groups, &ids);
        let t = load().expect("load");
        assert_eq!(
            (t.rows(), t.table.rows(), t.pixels.len()),
            (60, 60, 60 * 4096)
        );
        assert_eq!(t.table.groups.len(), 3);
        assert!(t.table.feature_names.is_empty() && t.table.features.is_empty());

        // Labels, identifiers and pixels are the manifest's and the files'.
        let mut r = csv::Reader::from_path(&s.manifest).expect("manifest");
        let mut sum = Sha256::new();
        let mut bytes = 0;
        for (i, rec) in r.records().enumerate() {
            let rec = rec.expect("row");
            let class = demo::SCAN_CLASSES.iter().position(|c| *c == &rec[1]);
            assert_eq!(
                t.table.labels.as_ref().expect("labels")[i],
                class.expect("class") as f32
            );
            assert_eq!(
                t.identifier_values[i * 4..i * 4 + 4],
                [&rec[2], &rec[3], &rec[4], &rec[6]]
            );
            let file = std::fs::read(dir.path().join(&rec[0])).expect("image");
            assert_eq!(t.image(i), decode_image(&file, &GRAY).expect("decode"));
            sum.update(format!(
                "{}\0{}\n",
                &rec[0],
                hex::encode(Sha256::digest(&file))
            ));
            bytes += file.len() as u64;
        }
        assert_eq!(t.images.sha256, hex::encode(sum.finalize()));
        assert_eq!((t.images.bytes, t.images.rows), (bytes, 60));
        assert_eq!(t.images.path, dir.path().display().to_string());
        assert!(t.images.columns.is_empty());
        assert_eq!(t.table.fingerprint.columns, demo::SCAN_COLUMNS);

        // The same folder fingerprints the same; the Debug form shows no identifier.
        let again = load().expect("again");
        assert_eq!(
            (again.images, again.table.fingerprint),
            (t.images.clone(), t.table.fingerprint.clone())
        );
        assert_eq!(again.pixels, t.pixels);
        let debug = format!("{t:?}");
        assert!(!debug.contains(&t.identifier_values[1]), "{debug}");
    }

    #[test]
    fn loading_2000_scans_is_fast() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = demo::write_scans(dir.path(), 2000, 1).expect("scans");
        let task = classes();
        let start = std::time::Instant::now();
        let t = load_images(
            &s.manifest,
            "file",
            &GRAY,
            Some(LabelColumn {
                column: "finding",
                task: &task,
            }),
            &[],
            &[],
        )
        .expect("load");
        let took = start.elapsed();
        eprintln!("loaded 2000 64×64 PNGs in {took:?}");
        assert_eq!(t.rows(), 2000);
        assert!(took.as_secs_f64() < 1.0, "{took:?}");
    }

    #[test]
    fn a_wrong_size_names_the_row_and_file_and_both_sizes() {
        let small = png(32, 48, image::ExtendedColorType::L8, &[7; 32 * 48]);
        let msg = refuse_second("small.png", &[("small.png", small)]);
        assert!(msg.contains("32×48") && msg.contains("64×64"), "{msg}");
    }

    #[test]
    fn channels_are_never_converted() {
        let msg = refuse_second("rgb.png", &[("rgb.png", rgb_png(64, 64))]);
        assert!(msg.contains("3 channels (8-bit RGB)"), "{msg}");
        assert!(msg.contains("the model takes 1 channel"), "{msg}");
        let err = decode_image(&gray_png(0), &RGB).expect_err("gray for RGB");
        assert!(
            err.to_string()
                .contains("the image is 1 channel (8-bit grayscale); the model takes 3 channels"),
            "{err}"
        );
        let rgba = png(64, 64, image::ExtendedColorType::Rgba8, &[9; 64 * 64 * 4]);
        let err = decode_image(&rgba, &RGB).expect_err("alpha");
        assert!(err.to_string().contains("8-bit RGB with alpha"), "{err}");
        let deep = png(64, 64, image::ExtendedColorType::L16, &[1; 64 * 64 * 2]);
        let err = decode_image(&deep, &GRAY).expect_err("16-bit");
        assert!(err.to_string().contains("16-bit grayscale"), "{err}");
    }

    #[test]
    fn unknown_formats_and_truncated_images_are_refused() {
        let gif = b"GIF89a\x40\x00\x40\x00\x00\x00\x00;".to_vec();
        let msg = refuse_second("x.gif", &[("x.gif", gif)]);
        assert!(msg.contains("not a PNG or JPEG"), "{msg}");
        let msg = refuse_second("empty.png", &[("empty.png", Vec::new())]);
        assert!(msg.contains("not a PNG or JPEG"), "{msg}");
        let full = gray_png(3);
        let msg = refuse_second("cut.png", &[("cut.png", full[..full.len() / 2].to_vec())]);
        assert!(msg.contains("malformed PNG image"), "{msg}");
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(&[5; 64 * 64], 64, 64, image::ExtendedColorType::L8)
            .expect("jpeg");
        let err = decode_image(&jpeg[..jpeg.len() / 3], &GRAY).expect_err("cut jpeg");
        assert!(
            matches!(err, ImageError::Malformed { format: "JPEG", .. }),
            "{err}"
        );
    }

    #[test]
    fn an_image_listed_twice_or_copied_is_refused() {
        let msg = refuse_second("a.png", &[]);
        assert!(msg.contains("byte-identical to row 1's (line 2)"), "{msg}");
        let msg = refuse_second("copy.png", &[("copy.png", gray_png(0))]);
        assert!(msg.contains("byte-identical to row 1's"), "{msg}");
        // Different images with the same label are fine.
        let dir = folder(
            &[("a.png", "clear"), ("b.png", "clear")],
            &[("a.png", gray_png(0)), ("b.png", gray_png(1))],
        );
        load(dir.path(), &GRAY).expect("two different images");
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = dir.path().join("data");
        std::fs::create_dir(&inner).expect("mkdir");
        std::fs::write(dir.path().join("x.png"), gray_png(0)).expect("outside");
        std::fs::write(inner.join("a.png"), gray_png(0)).expect("a");
        for (name, problem) in [
            ("../x.png", "`..` component"),
            ("sub/../../x.png", "`..` component"),
            ("/etc/x.png", "absolute path"),
        ] {
            std::fs::write(
                inner.join("manifest.csv"),
                format!("file,finding,mrn\na.png,clear,MRN-SECRET\n{name},mass,MRN-SECRET\n"),
            )
            .expect("manifest");
            let msg = load(&inner, &GRAY).expect_err(name).to_string();
            assert!(msg.contains(problem) && msg.contains("row 2"), "{msg}");
            assert!(msg.contains(&format!("{name:?}")), "{msg}");
        }
    }

    #[test]
    fn links_folders_and_missing_files_are_refused() {
        let dir = folder(
            &[("a.png", "clear"), ("link.png", "mass")],
            &[("a.png", gray_png(0)), ("sub/b.png", gray_png(1))],
        );
        std::os::unix::fs::symlink(dir.path().join("a.png"), dir.path().join("link.png"))
            .expect("symlink");
        let msg = load(dir.path(), &GRAY).expect_err("link").to_string();
        assert!(
            msg.contains("symbolic link") && msg.contains("row 2"),
            "{msg}"
        );

        // A linked folder on the way is refused too (the file itself is plain).
        let d = folder(
            &[("a.png", "clear"), ("linked/b.png", "mass")],
            &[("a.png", gray_png(0)), ("sub/b.png", gray_png(1))],
        );
        std::os::unix::fs::symlink(d.path().join("sub"), d.path().join("linked"))
            .expect("dir link");
        let msg = load(d.path(), &GRAY)
            .expect_err("linked folder")
            .to_string();
        assert!(
            msg.contains("a folder on its way is a symbolic link"),
            "{msg}"
        );
        // A plain subfolder is fine.
        let ok = folder(&[("sub/b.png", "nodule")], &[("sub/b.png", gray_png(1))]);
        assert_eq!(load(ok.path(), &GRAY).expect("subfolder").rows(), 1);

        let msg = refuse_second("missing.png", &[]);
        assert!(
            msg.contains("no such file in the manifest's folder"),
            "{msg}"
        );
        let msg = refuse_second("sub", &[("sub/c.png", gray_png(2))]);
        assert!(msg.contains("a folder, not a regular file"), "{msg}");
        let msg = refuse_second("", &[]);
        assert!(msg.contains("the image column is empty"), "{msg}");
    }

    #[test]
    fn a_file_over_the_size_limit_is_not_read() {
        let dir = folder(
            &[("a.png", "clear"), ("big.png", "mass")],
            &[("a.png", gray_png(0))],
        );
        let f = std::fs::File::create(dir.path().join("big.png")).expect("create");
        f.set_len(MAX_IMAGE_FILE_BYTES + 1).expect("sparse");
        let msg = load(dir.path(), &GRAY).expect_err("big").to_string();
        assert!(
            msg.contains(&format!("at most {MAX_IMAGE_FILE_BYTES}")),
            "{msg}"
        );
        let err =
            decode_image(&vec![0; MAX_IMAGE_FILE_BYTES as usize + 1], &GRAY).expect_err("big");
        assert!(matches!(err, ImageError::TooLarge { .. }), "{err}");
    }

    /// A PNG whose header declares `w × h` grayscale pixels and whose data is a few bytes:
    /// a decoder that trusted the header would allocate `w × h` bytes.
    fn bomb_png(w: u32, h: u32) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let crc = crc32(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        // A zlib stream of a few zero bytes (stored block).
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0, 0, 0, 0, 0, 1],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn a_huge_header_is_refused_before_decoding() {
        let bomb = bomb_png(60_000, 60_000);
        let start = std::time::Instant::now();
        let err = decode_image(&bomb, &GRAY).expect_err("bomb");
        assert!(start.elapsed().as_secs_f64() < 0.5);
        assert!(
            matches!(
                err,
                ImageError::WrongSize {
                    actual_width: 60_000,
                    actual_height: 60_000,
                    ..
                }
            ),
            "{err}"
        );
        let msg = refuse_second("bomb.png", &[("bomb.png", bomb)]);
        assert!(msg.contains("60000×60000"), "{msg}");
        // The same header at the declared size is read (and its data found short).
        let err = decode_image(&bomb_png(64, 64), &GRAY).expect_err("short data");
        assert!(
            matches!(err, ImageError::Malformed { format: "PNG", .. }),
            "{err}"
        );
    }

    #[test]
    fn png_and_jpeg_decode_channel_major() {
        let px: Vec<u8> = (0..64 * 64 * 3).map(|i| (i % 251) as u8).collect();
        let chw = decode_image(&rgb_png(64, 64), &RGB).expect("rgb png");
        let plane = 64 * 64;
        for p in [0, 1, 777, plane - 1] {
            for c in 0..3 {
                assert_eq!(chw[c * plane + p], px[3 * p + c]);
            }
        }
        let gray = decode_image(&gray_png(5), &GRAY).expect("gray png");
        assert_eq!((gray[0], gray[1], gray[64]), (5, 6, 7));

        let mut jpeg = Vec::new();
        let solid: Vec<u8> = [200u8, 60, 20].repeat(64 * 64);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .write_image(&solid, 64, 64, image::ExtendedColorType::Rgb8)
            .expect("jpeg");
        let chw = decode_image(&jpeg, &RGB).expect("rgb jpeg");
        for (c, want) in [200i32, 60, 20].into_iter().enumerate() {
            let mean = chw[c * plane..(c + 1) * plane]
                .iter()
                .map(|&v| i32::from(v))
                .sum::<i32>()
                / plane as i32;
            assert!((mean - want).abs() <= 4, "channel {c}: {mean} vs {want}");
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .write_image(&[128; 64 * 64], 64, 64, image::ExtendedColorType::L8)
            .expect("gray jpeg");
        let gray = decode_image(&jpeg, &GRAY).expect("gray jpeg");
        assert!(gray.iter().all(|&v| v.abs_diff(128) <= 2));
        let err = decode_image(
            &jpeg,
            &ImageInput {
                channels: 1,
                height: 32,
                width: 64,
            },
        );
        assert!(matches!(err, Err(ImageError::WrongSize { .. })));
    }

    #[test]
    fn the_first_bad_row_is_reported_whatever_the_threads() {
        let mut rows = Vec::new();
        let mut files = Vec::new();
        let names: Vec<String> = (0..40).map(|i| format!("s{i:02}.png")).collect();
        for (i, n) in names.iter().enumerate() {
            rows.push((n.as_str(), "clear"));
            let bytes = if i == 4 || i == 30 {
                rgb_png(64, 64)
            } else {
                gray_png(i as u8)
            };
            files.push((n.as_str(), bytes));
        }
        let dir = folder(&rows, &files);
        for _ in 0..3 {
            let err = load(dir.path(), &GRAY).expect_err("bad rows");
            assert!(matches!(err, DataError::Image { row: 5, .. }), "{err}");
        }
    }

    #[test]
    fn manifest_columns_and_limits_are_checked() {
        let dir = folder(&[("a.png", "clear")], &[("a.png", gray_png(0))]);
        let task = classes();
        let label = Some(LabelColumn {
            column: "finding",
            task: &task,
        });
        let m = dir.path().join("manifest.csv");
        let err = load_images(&m, "path", &GRAY, label, &[], &[]).expect_err("no image column");
        assert!(
            err.to_string().contains("no image column \"path\""),
            "{err}"
        );
        let err = load_images(&m, "file", &GRAY, label, &[], &["name".into()]).expect_err("no id");
        assert!(
            err.to_string().contains("no identifier column \"name\""),
            "{err}"
        );
        let bad = ImageInput {
            channels: 2,
            height: 64,
            width: 64,
        };
        assert!(matches!(
            load_images(&m, "file", &bad, label, &[], &[]),
            Err(DataError::ImageShape { channels: 2, .. })
        ));
        assert!(matches!(
            check_counts(&m, MAX_IMAGES + 1, &GRAY),
            Err(DataError::TooManyImages { .. })
        ));
        let big = ImageInput {
            channels: 3,
            height: 4096,
            width: 4096,
        };
        let err = check_counts(&m, 400, &big).expect_err("over the pixel bound");
        assert!(err.to_string().contains("bound on decoded pixels"), "{err}");
        check_counts(&m, MAX_IMAGES, &GRAY).expect("a million 64×64 scans fit");
        // A label the task does not know is the CSV loader's refusal, without the value.
        let d = folder(&[("a.png", "SECRET-FINDING")], &[("a.png", gray_png(0))]);
        let err = load(d.path(), &GRAY).expect_err("label");
        assert!(matches!(err, DataError::BadLabel { row: 1, .. }), "{err}");
        assert!(!err.to_string().contains("SECRET"));
    }
}
