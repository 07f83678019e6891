//! The training data of a pipeline in any format, as training, the packager and the scan
//! of what leaves read it: the table, the images, the identifier values and the files'
//! fingerprints.

use std::path::{Path, PathBuf};

use airlock_schemas::{DataFormat, DatasetFile, ImageInput, ModelSpec, PipelineSpec};
use sha2::{Digest, Sha256};

use crate::{DataError, LabelColumn, Table, load_table_with_groups};

/// Decoded training images.
#[derive(Debug, Clone)]
pub struct Images {
    /// rows × channels × height × width bytes, channel-major per image.
    pub pixels: Vec<u8>,
    /// The size every image has.
    pub shape: ImageInput,
}

/// A pipeline's training data.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Feature columns (none for images), labels, subgroup columns.
    pub table: Table,
    /// The images, for `format = "images"`.
    pub images: Option<Images>,
    /// The identifier columns as text, row-major (rows × `[data] identifiers`).
    pub identifier_values: Vec<String>,
    /// Fingerprints of the files read: the data file (or the manifest, then the images).
    pub files: Vec<DatasetFile>,
}

impl Dataset {
    /// Rows (or images).
    pub fn rows(&self) -> usize {
        self.table.labels.as_ref().map_or_else(
            || usize::try_from(self.table.fingerprint.rows).unwrap_or(usize::MAX),
            Vec::len,
        )
    }

    /// The model inputs of `rows` before any normalization: feature values, or pixels
    /// scaled to [0, 1]; row-major.
    pub fn raw_inputs(&self, rows: impl IntoIterator<Item = usize>) -> Vec<f32> {
        match &self.images {
            Some(im) => {
                let per = im.shape.channels * im.shape.height * im.shape.width;
                rows.into_iter()
                    .flat_map(|r| im.pixels[r * per..(r + 1) * per].iter())
                    .map(|&v| f32::from(v) / 255.0)
                    .collect()
            }
            None => {
                let w = self.table.width();
                rows.into_iter()
                    .flat_map(|r| self.table.features[r * w..(r + 1) * w].iter().copied())
                    .collect()
            }
        }
    }
}

/// Load the training data `spec` declares, from `source` (the resolved `[data] source`),
/// with labels when `with_label`, and the identifier columns as text.
pub fn load_dataset(
    spec: &PipelineSpec,
    source: &Path,
    with_label: bool,
) -> Result<Dataset, DataError> {
    let d = &spec.data;
    let label = with_label.then_some(LabelColumn {
        column: &d.label,
        task: &spec.task,
    });
    match d.format {
        DataFormat::Csv => {
            let table = load_table_with_groups(source, &d.features, label, &d.subgroups)?;
            let bytes = read(source)?;
            let identifier_values = csv_identifier_values(source, &bytes, &d.identifiers)?;
            Ok(Dataset {
                files: vec![table.fingerprint.clone()],
                table,
                images: None,
                identifier_values,
            })
        }
        DataFormat::Parquet => {
            let (table, identifier_values) =
                crate::load_parquet(source, &d.features, label, &d.subgroups, &d.identifiers)?;
            Ok(Dataset {
                files: vec![table.fingerprint.clone()],
                table,
                images: None,
                identifier_values,
            })
        }
        DataFormat::Images => {
            let ModelSpec::Cnn(cnn) = &spec.model else {
                return Err(DataError::Unsupported {
                    path: source.to_owned(),
                    format: "images without a CNN",
                });
            };
            let column = d.image_column.as_deref().unwrap_or("file");
            let t = crate::load_images(
                source,
                column,
                &cnn.input,
                label,
                &d.subgroups,
                &d.identifiers,
            )?;
            Ok(Dataset {
                files: vec![t.table.fingerprint.clone(), t.images],
                table: t.table,
                images: Some(Images {
                    pixels: t.pixels,
                    shape: t.shape,
                }),
                identifier_values: t.identifier_values,
            })
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The identifier columns of a CSV as text, exactly as the file holds them, row-major.
pub fn csv_identifier_values(
    path: &Path,
    bytes: &[u8],
    identifiers: &[String],
) -> Result<Vec<String>, DataError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| crate::data::csv_error(path, &e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut idx = Vec::new();
    for id in identifiers {
        let i = header
            .iter()
            .position(|h| h == id)
            .ok_or_else(|| DataError::MissingColumn {
                path: path.to_owned(),
                role: "identifier",
                column: id.clone(),
                header: header.join(","),
            })?;
        idx.push(i);
    }
    let mut values = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| crate::data::csv_error(path, &e))?;
        values.extend(idx.iter().map(|&i| rec.get(i).unwrap_or("").to_owned()));
    }
    Ok(values)
}

/// Checks that the files a run recorded are unchanged (each file's SHA-256; for an image
/// folder entry, the digest over its images). Returns the first file's path.
pub fn check_recorded_files(files: &[DatasetFile]) -> Result<PathBuf, String> {
    let first = files
        .first()
        .ok_or_else(|| "the training record lists no dataset file".to_owned())?;
    let path = Path::new(&first.path);
    let bytes =
        std::fs::read(path).map_err(|e| format!("training data {}: {e}", path.display()))?;
    if hex::encode(Sha256::digest(&bytes)) != first.sha256 {
        return Err(format!(
            "training data {} changed since training (SHA-256 differs)",
            path.display()
        ));
    }
    Ok(path.to_owned())
}

/// Checks that the data as loaded now is what the run recorded: the same files, each with
/// the same SHA-256 (for images, the digest over every image the manifest names).
pub fn check_same_files(recorded: &[DatasetFile], loaded: &[DatasetFile]) -> Result<(), String> {
    if recorded.len() != loaded.len() {
        return Err(format!(
            "the training record lists {} dataset files, the data has {}",
            recorded.len(),
            loaded.len()
        ));
    }
    for (r, l) in recorded.iter().zip(loaded) {
        if r.sha256 != l.sha256 {
            return Err(format!(
                "training data {} changed since training (SHA-256 differs)",
                r.path
            ));
        }
    }
    Ok(())
}
