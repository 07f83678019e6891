//! Metrics per task, computed on the host in f64.

use airlock_schemas::{
    MAX_RESIDUAL_BINS, MIN_RESIDUAL_BIN_ROWS, MulticlassMetrics, RegressionMetrics, ResidualBin,
    RocPoint, TaskSpec,
};

/// Mean binary cross-entropy of logits against 0/1 labels, computed stably.
pub fn log_loss(logits: &[f32], labels: &[f32]) -> f64 {
    let n = logits.len().max(1) as f64;
    row_losses(&TaskSpec::Binary, logits, labels)
        .iter()
        .sum::<f64>()
        / n
}

/// Fraction of logits on the right side of 0 (probability threshold 0.5).
pub fn accuracy(logits: &[f32], labels: &[f32]) -> f64 {
    let n = logits.len().max(1) as f64;
    logits
        .iter()
        .zip(labels)
        .filter(|&(&z, &y)| (z > 0.0) == (y > 0.5))
        .count() as f64
        / n
}

/// Area under the ROC curve (the Mann-Whitney statistic, ties counted as half).
/// `None` when the labels hold only one class.
pub fn roc_auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut pos, mut neg) = (0u64, 0u64);
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        // Average 1-based rank of the tie group i..=j.
        let rank = (i + j + 2) as f64 / 2.0;
        for &k in &idx[i..=j] {
            if labels[k] > 0.5 {
                pos += 1;
                rank_sum += rank;
            } else {
                neg += 1;
            }
        }
        i = j + 1;
    }
    if pos == 0 || neg == 0 {
        return None;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The ROC curve, from (0, 0) to (1, 1), subsampled to at most `max_points` points.
/// Only rates are kept: no score or row can be recovered from it.
pub fn roc_curve(scores: &[f32], labels: &[f32], max_points: usize) -> Vec<RocPoint> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = labels.iter().filter(|&&y| y > 0.5).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    let mut full = vec![RocPoint { fpr: 0.0, tpr: 0.0 }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] > 0.5 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        full.push(RocPoint {
            fpr: fp / neg,
            tpr: tp / pos,
        });
    }
    if full.len() <= max_points || max_points < 2 {
        return full;
    }
    let last = full.len() - 1;
    (0..max_points)
        .map(|k| full[k * last / (max_points - 1)])
        .collect()
}

/// The task's loss of raw outputs (row-major, `task.outputs()` per row) against labels:
/// binary cross-entropy, categorical cross-entropy, or mean squared error.
pub fn task_loss(task: &TaskSpec, raw: &[f32], labels: &[f32]) -> f64 {
    row_losses(task, raw, labels).iter().sum::<f64>() / labels.len().max(1) as f64
}

/// The task's loss of each row (what [`task_loss`] averages, and what a membership
/// attacker scores): binary cross-entropy of a logit in the stable form
/// `max(z, 0) − z·y + ln(1 + e^−|z|)`, categorical cross-entropy of a row of logits
/// (log-sum-exp from the row's largest), or the squared error.
pub fn row_losses(task: &TaskSpec, raw: &[f32], labels: &[f32]) -> Vec<f64> {
    match task {
        TaskSpec::Binary => raw
            .iter()
            .zip(labels)
            .map(|(&z, &y)| {
                let z = f64::from(z);
                z.max(0.0) - z * f64::from(y) + (-z.abs()).exp().ln_1p()
            })
            .collect(),
        TaskSpec::Multiclass { classes } => raw
            .chunks(classes.len().max(1))
            .zip(labels)
            .map(|(row, &y)| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let lse = f64::from(max)
                    + row
                        .iter()
                        .map(|&z| f64::from(z - max).exp())
                        .sum::<f64>()
                        .ln();
                lse - f64::from(row[y as usize])
            })
            .collect(),
        TaskSpec::Regression => raw
            .iter()
            .zip(labels)
            .map(|(&z, &y)| (f64::from(z) - f64::from(y)).powi(2))
            .collect(),
    }
}

/// The index of each row's largest output.
pub fn argmax_rows(raw: &[f32], k: usize) -> Vec<usize> {
    raw.chunks(k.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &z)| {
                    if z > best.1 { (i, z) } else { best }
                })
                .0
        })
        .collect()
}

/// Accuracy of a classifier's raw outputs (`None` for a regression).
pub fn task_accuracy(task: &TaskSpec, raw: &[f32], labels: &[f32]) -> Option<f64> {
    match task {
        TaskSpec::Binary => Some(accuracy(raw, labels)),
        TaskSpec::Multiclass { classes } => {
            let n = labels.len().max(1) as f64;
            let right = argmax_rows(raw, classes.len())
                .iter()
                .zip(labels)
                .filter(|&(&p, &y)| p == y as usize)
                .count();
            Some(right as f64 / n)
        }
        TaskSpec::Regression => None,
    }
}

/// Holdout metrics of a multi-class classifier from its raw outputs.
pub fn multiclass_metrics(k: usize, raw: &[f32], labels: &[f32]) -> MulticlassMetrics {
    let mut confusion = vec![vec![0u64; k]; k];
    for (p, &y) in argmax_rows(raw, k).into_iter().zip(labels) {
        confusion[y as usize][p] += 1;
    }
    let n: u64 = confusion.iter().flatten().sum();
    let right: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let f1 = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: u64 = confusion.iter().map(|r| r[c]).sum();
            let actual: u64 = confusion[c].iter().sum();
            let denom = predicted as f64 + actual as f64;
            if denom == 0.0 { 0.0 } else { 2.0 * tp / denom }
        })
        .sum::<f64>()
        / k.max(1) as f64;
    let task = TaskSpec::Multiclass {
        classes: (0..k).map(|i| i.to_string()).collect(),
    };
    MulticlassMetrics {
        loss: task_loss(&task, raw, labels),
        accuracy: right as f64 / n.max(1) as f64,
        macro_f1: f1,
        confusion,
    }
}

/// Holdout metrics of a regression from its predictions (in the label's units).
pub fn regression_metrics(predicted: &[f32], labels: &[f32]) -> RegressionMetrics {
    let n = labels.len();
    let nf = n.max(1) as f64;
    let res: Vec<f64> = predicted
        .iter()
        .zip(labels)
        .map(|(&p, &y)| f64::from(y) - f64::from(p))
        .collect();
    let mse = res.iter().map(|r| r * r).sum::<f64>() / nf;
    let mae = res.iter().map(|r| r.abs()).sum::<f64>() / nf;
    let mean = labels.iter().map(|&y| f64::from(y)).sum::<f64>() / nf;
    let ss_tot = labels
        .iter()
        .map(|&y| (f64::from(y) - mean).powi(2))
        .sum::<f64>();
    let r2 = if ss_tot > 0.0 {
        1.0 - mse * nf / ss_tot
    } else {
        0.0
    };
    // Equal-count bins over the rows sorted by prediction, each of at least
    // MIN_RESIDUAL_BIN_ROWS rows: an aggregate plot, never a single row.
    let min = MIN_RESIDUAL_BIN_ROWS as usize;
    let bins = (n / min).min(MAX_RESIDUAL_BINS);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| predicted[a].total_cmp(&predicted[b]));
    let residuals = (0..bins)
        .map(|b| {
            let rows = &order[b * n / bins..(b + 1) * n / bins];
            let m = rows.len() as f64;
            ResidualBin {
                rows: rows.len() as u64,
                predicted: rows.iter().map(|&r| f64::from(predicted[r])).sum::<f64>() / m,
                mean_residual: rows.iter().map(|&r| res[r]).sum::<f64>() / m,
                rms_residual: (rows.iter().map(|&r| res[r] * res[r]).sum::<f64>() / m).sqrt(),
            }
        })
        .collect();
    RegressionMetrics {
        loss: mse,
        rmse: mse.sqrt(),
        mae,
        r2: r2.min(1.0),
        residuals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_values() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[0.0, 0.0, 1.0, 1.0]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.0)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[0.0, 1.0]), Some(0.5));
        // 0.35 beats 0.1 but not 0.4: 3 of 4 pairs ordered right.
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.1, 0.2], &[1.0, 1.0]), None);
    }

    #[test]
    fn curve_runs_corner_to_corner() {
        let s: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let y: Vec<f32> = (0..1000).map(|i| f32::from(u8::from(i % 3 == 0))).collect();
        let c = roc_curve(&s, &y, 101);
        assert_eq!(c.len(), 101);
        assert_eq!((c[0].fpr, c[0].tpr), (0.0, 0.0));
        assert_eq!((c[100].fpr, c[100].tpr), (1.0, 1.0));
        assert!(
            c.windows(2)
                .all(|w| w[0].fpr <= w[1].fpr && w[0].tpr <= w[1].tpr)
        );
    }

    #[test]
    fn loss_is_stable_for_large_logits() {
        let l = log_loss(&[1000.0, -1000.0], &[1.0, 0.0]);
        assert!(l.is_finite() && l < 1e-12);
        assert!((log_loss(&[0.0], &[1.0]) - std::f64::consts::LN_2).abs() < 1e-12);
    }
}
