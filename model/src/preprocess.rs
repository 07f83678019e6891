//! Standardization statistics, computed on the training split only (statistics from the
//! validation or holdout rows would leak them into training).

use serde::{Deserialize, Serialize};

/// File name of the statistics in a run directory.
pub const PREPROCESS_FILE: &str = "preprocess.json";

/// Per-feature mean and standard deviation: `x' = (x - mean) / std`.
///
/// These are data-derived: they stay in the run directory and the packager folds them
/// into the first layer rather than shipping them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// One entry per feature, in model input order (per channel for images, over the
    /// training pixels scaled to [0, 1]).
    pub features: Vec<FeatureStats>,
    /// A regression's target statistics: the model is trained on the standardized target
    /// and the scale is folded into its last layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FeatureStats>,
}

/// Statistics of one feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureStats {
    /// Column name.
    pub name: String,
    /// Mean over the training split.
    pub mean: f64,
    /// Population standard deviation over the training split (1 for a constant column).
    pub std: f64,
}

impl Preprocess {
    /// Fit on the rows of `features` (row-major, `width` columns) listed in `rows`.
    pub fn fit(names: &[String], features: &[f32], rows: &[usize]) -> Self {
        let width = names.len();
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0f64; width];
        for &r in rows {
            for (m, &v) in mean.iter_mut().zip(&features[r * width..(r + 1) * width]) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; width];
        for &r in rows {
            for ((s, &v), m) in var
                .iter_mut()
                .zip(&features[r * width..(r + 1) * width])
                .zip(&mean)
            {
                let d = f64::from(v) - m;
                *s += d * d;
            }
        }
        Self {
            features: names
                .iter()
                .zip(mean.iter().zip(var))
                .map(|(name, (&mean, var))| {
                    let std = (var / n).sqrt();
                    FeatureStats {
                        name: name.clone(),
                        mean,
                        std: if std > 1e-12 { std } else { 1.0 },
                    }
                })
                .collect(),
            target: None,
        }
    }

    /// Per-channel statistics of images (`rows` of `pixels`, each `channels × plane` u8
    /// values, channel-major) scaled to [0, 1].
    pub fn fit_channels(pixels: &[u8], channels: usize, plane: usize, rows: &[usize]) -> Self {
        let per = channels * plane;
        let features = (0..channels)
            .map(|c| {
                let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0u64);
                for &r in rows {
                    let start = r * per + c * plane;
                    for &v in &pixels[start..start + plane] {
                        let x = f64::from(v) / 255.0;
                        sum += x;
                        sq += x * x;
                        n += 1;
                    }
                }
                let n = n.max(1) as f64;
                let mean = sum / n;
                let std = (sq / n - mean * mean).max(0.0).sqrt();
                FeatureStats {
                    name: format!("channel.{c}"),
                    mean,
                    std: if std > 1e-12 { std } else { 1.0 },
                }
            })
            .collect();
        Self {
            features,
            target: None,
        }
    }

    /// Images of `rows`, scaled to [0, 1] and normalized per channel, row-major.
    pub fn apply_channels(
        &self,
        pixels: &[u8],
        plane: usize,
        rows: impl IntoIterator<Item = usize>,
    ) -> Vec<f32> {
        let channels = self.features.len();
        let per = channels * plane;
        let mut out = Vec::new();
        for r in rows {
            for (c, s) in self.features.iter().enumerate() {
                let start = r * per + c * plane;
                let inv = 1.0 / s.std;
                out.extend(
                    pixels[start..start + plane]
                        .iter()
                        .map(|&v| ((f64::from(v) / 255.0 - s.mean) * inv) as f32),
                );
            }
        }
        out
    }

    /// The target statistics of a regression, over the training rows of `labels`.
    pub fn fit_target(labels: &[f32], rows: &[usize]) -> FeatureStats {
        let n = rows.len().max(1) as f64;
        let mean = rows.iter().map(|&r| f64::from(labels[r])).sum::<f64>() / n;
        let var = rows
            .iter()
            .map(|&r| (f64::from(labels[r]) - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt();
        FeatureStats {
            name: "target".into(),
            mean,
            std: if std > 1e-12 { std } else { 1.0 },
        }
    }

    /// Standardize the listed rows into a new row-major buffer.
    pub fn apply(&self, features: &[f32], rows: impl IntoIterator<Item = usize>) -> Vec<f32> {
        let width = self.features.len();
        let scale: Vec<(f64, f64)> = self
            .features
            .iter()
            .map(|s| (s.mean, 1.0 / s.std))
            .collect();
        let mut out = Vec::new();
        for r in rows {
            out.extend(
                features[r * width..(r + 1) * width]
                    .iter()
                    .zip(&scale)
                    .map(|(&v, &(m, inv))| ((f64::from(v) - m) * inv) as f32),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_on_given_rows_only() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let x = [1.0, 5.0, 3.0, 5.0, 1000.0, -1000.0];
        let p = Preprocess::fit(&names, &x, &[0, 1]);
        assert_eq!(p.features[0].mean, 2.0);
        assert_eq!(p.features[0].std, 1.0);
        // Constant column: std falls back to 1 instead of dividing by zero.
        assert_eq!(p.features[1].std, 1.0);
        assert_eq!(p.apply(&x, [1]), vec![1.0, 0.0]);
    }
}
