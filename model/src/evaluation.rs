//! The holdout evaluation of the model card (see [`airlock_schemas::Evaluation`]): the
//! confusion counts and the clinical rates at the operating threshold, ROC AUC and the
//! Brier score, each with a percentile bootstrap interval, a calibration curve, and the
//! figures per subgroup with small groups suppressed.
//!
//! The bootstrap sorts the holdout once by score; a resample is a vector of multiplicities
//! over the sorted rows, and each resample's metrics come from one pass over it (O(n),
//! with no sort), so 1000 resamples of a million rows take seconds, not minutes. Each
//! resample draws from its own stream of the training seed, so the intervals do not depend
//! on the number of threads.

use std::collections::BTreeMap;

use airlock_schemas::evaluation::{MAX_GROUPS, METRIC_NAMES, band_labels, group_label};
use airlock_schemas::{
    BootstrapInfo, Calibration, CalibrationBin, Confusion, EstimatedMetric, Evaluation,
    EvaluationSpec, SubgroupRow, SubgroupSpec, SubgroupTable,
};
use rand::Rng;

use crate::{GroupColumn, GroupValues, rng};

/// The first random stream of the bootstrap: resample `b` draws from stream
/// `STREAM_BOOTSTRAP + b` of the training seed (the trainer's own streams are 0 to 3).
const STREAM_BOOTSTRAP: u64 = 1 << 32;

/// The label of an empty cell of a categorical subgroup column.
const EMPTY_LABEL: &str = "(empty)";

/// One `[data] subgroups` entry and its column as loaded.
#[derive(Debug, Clone, Copy)]
pub struct SubgroupInput<'a> {
    /// The entry.
    pub spec: &'a SubgroupSpec,
    /// The column's values, for every row of the table.
    pub column: &'a GroupColumn,
}

/// Evaluate predicted probabilities `probs` against 0/1 `labels` (one per holdout row);
/// `rows[i]` is the table row of holdout row `i` (to find its subgroup values). The
/// bootstrap is seeded from `seed` (the training seed).
///
/// Refused (with a message naming the column, never a value): a categorical subgroup
/// column with more than [`MAX_GROUPS`] distinct values in the holdout, or a value that
/// is not a valid group label.
pub fn evaluate(
    probs: &[f64],
    labels: &[f32],
    rows: &[usize],
    subgroups: &[SubgroupInput<'_>],
    spec: &EvaluationSpec,
    seed: u64,
) -> Result<Evaluation, String> {
    if probs.len() != labels.len() || probs.len() != rows.len() || probs.is_empty() {
        return Err("the holdout is empty, or its scores, labels and rows differ in length".into());
    }
    let sorted = Sorted::new(probs, labels, spec.threshold);
    let ones = vec![1u32; sorted.len()];
    let point = sorted.stats(&ones);
    let estimates = point.metrics();
    let resampled = bootstrap(&sorted, spec.bootstrap_resamples, seed);
    let low_q = (1.0 - spec.confidence) / 2.0;
    let metrics = METRIC_NAMES
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut values: Vec<f64> = resampled.iter().filter_map(|m| m[k]).collect();
            values.sort_by(f64::total_cmp);
            let defined = estimates[k].is_some() && !values.is_empty();
            EstimatedMetric {
                name: (*name).to_owned(),
                value: estimates[k],
                low: defined.then(|| quantile(&values, low_q)),
                high: defined.then(|| quantile(&values, 1.0 - low_q)),
            }
        })
        .collect();
    let subgroups = subgroups
        .iter()
        .map(|s| subgroup_table(&sorted, rows, s, spec))
        .collect::<Result<_, _>>()?;
    Ok(Evaluation {
        threshold: spec.threshold,
        bootstrap: BootstrapInfo {
            resamples: spec.bootstrap_resamples,
            confidence: spec.confidence,
            seed,
        },
        confusion: point.confusion(),
        metrics,
        calibration: calibration(probs, labels, spec.calibration_bins),
        subgroups,
    })
}

/// The refusals of [`evaluate`] that depend on the holdout's subgroup values only (too
/// many distinct values, a value that is not a group label): checked before training, so
/// that a bad column is refused before any time is spent.
pub fn check_subgroups(rows: &[usize], subgroups: &[SubgroupInput<'_>]) -> Result<(), String> {
    for s in subgroups {
        assign_groups(rows, s)?;
    }
    Ok(())
}

/// The holdout sorted by score, ascending, with the runs of tied scores.
struct Sorted {
    /// Holdout row index (into the caller's slices) of each sorted position.
    order: Vec<usize>,
    probs: Vec<f64>,
    positive: Vec<bool>,
    /// `(start, end)` of each run of equal scores.
    ties: Vec<(usize, usize)>,
    /// The first sorted position predicted positive (score ≥ threshold).
    first_predicted_positive: usize,
}

impl Sorted {
    fn new(probs: &[f64], labels: &[f32], threshold: f64) -> Self {
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[a].total_cmp(&probs[b]));
        let p: Vec<f64> = order.iter().map(|&i| probs[i]).collect();
        let positive = order.iter().map(|&i| labels[i] > 0.5).collect();
        let mut ties = Vec::new();
        let mut start = 0;
        for i in 1..=p.len() {
            if i == p.len() || p[i] != p[start] {
                ties.push((start, i));
                start = i;
            }
        }
        let first_predicted_positive = p.partition_point(|&x| x < threshold);
        Self {
            order,
            probs: p,
            positive,
            ties,
            first_predicted_positive,
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    /// The weighted statistics of one pass, each sorted position counted `w[i]` times.
    fn stats(&self, w: &[u32]) -> Stats {
        let mut s = Stats::default();
        let mut neg_below = 0.0f64;
        for &(a, b) in &self.ties {
            let (mut pw, mut nw) = (0u64, 0u64);
            for (off, &k) in w[a..b].iter().enumerate() {
                let (i, k) = (a + off, u64::from(k));
                if k == 0 {
                    continue;
                }
                let y = self.positive[i];
                let err = self.probs[i] - if y { 1.0 } else { 0.0 };
                s.squared_error += k as f64 * err * err;
                let predicted = i >= self.first_predicted_positive;
                match (y, predicted) {
                    (true, true) => s.tp += k,
                    (true, false) => s.fn_ += k,
                    (false, true) => s.fp += k,
                    (false, false) => s.tn += k,
                }
                if y {
                    pw += k;
                } else {
                    nw += k;
                }
            }
            s.auc_pairs += pw as f64 * (neg_below + nw as f64 / 2.0);
            neg_below += nw as f64;
        }
        s
    }
}

/// Weighted counts from one pass over the sorted holdout.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    tp: u64,
    fp: u64,
    tn: u64,
    fn_: u64,
    /// Positive-negative pairs ordered right (ties count half).
    auc_pairs: f64,
    squared_error: f64,
}

impl Stats {
    fn confusion(&self) -> Confusion {
        Confusion {
            true_positives: self.tp,
            false_positives: self.fp,
            true_negatives: self.tn,
            false_negatives: self.fn_,
        }
    }

    /// The metrics in [`METRIC_NAMES`] order; `None` where undefined.
    fn metrics(&self) -> [Option<f64>; 7] {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let pos = self.tp + self.fn_;
        let neg = self.tn + self.fp;
        let n = pos + neg;
        let auc = (pos > 0 && neg > 0).then(|| self.auc_pairs / (pos as f64 * neg as f64));
        [
            auc,
            ratio(self.tp + self.tn, n),
            ratio(self.tp, pos),
            ratio(self.tn, neg),
            ratio(self.tp, self.tp + self.fp),
            ratio(self.tn, self.tn + self.fn_),
            (n > 0).then(|| self.squared_error / n as f64),
        ]
    }
}

/// The metrics of `resamples` bootstrap resamples, in resample order (independent of the
/// number of threads: resample `b` draws from its own stream).
fn bootstrap(sorted: &Sorted, resamples: u32, seed: u64) -> Vec<[Option<f64>; 7]> {
    let b = resamples as usize;
    if b == 0 {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 16)
        .min(b);
    let per = b.div_ceil(threads);
    let one = |range: std::ops::Range<usize>| {
        let n = sorted.len();
        let mut w = vec![0u32; n];
        range
            .map(|r| {
                w.fill(0);
                let mut g = rng(seed, STREAM_BOOTSTRAP + r as u64);
                if let Ok(n32) = u32::try_from(n) {
                    for _ in 0..n {
                        w[g.random_range(0..n32) as usize] += 1;
                    }
                } else {
                    for _ in 0..n {
                        w[g.random_range(0..n)] += 1;
                    }
                }
                sorted.stats(&w).metrics()
            })
            .collect::<Vec<_>>()
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per).min(b)..((t + 1) * per).min(b);
                s.spawn(move || one(range))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The `q` quantile of sorted `values` (linear interpolation between order statistics).
fn quantile(values: &[f64], q: f64) -> f64 {
    let h = (values.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    values[lo] + (h - lo as f64) * (values[hi] - values[lo])
}

/// The calibration curve over `bins` equal-width bins, and the expected calibration error.
fn calibration(probs: &[f64], labels: &[f32], bins: u32) -> Calibration {
    let k = bins.max(1) as usize;
    let mut rows = vec![0u64; k];
    let mut predicted = vec![0.0f64; k];
    let mut observed = vec![0u64; k];
    for (&p, &y) in probs.iter().zip(labels) {
        let i = ((p * k as f64).floor().max(0.0) as usize).min(k - 1);
        rows[i] += 1;
        predicted[i] += p;
        observed[i] += u64::from(y > 0.5);
    }
    let n = probs.len().max(1) as f64;
    let mut ece = 0.0;
    let bins = (0..k)
        .map(|i| {
            let r = rows[i];
            let mean = (r > 0).then(|| (predicted[i] / r as f64).clamp(0.0, 1.0));
            let rate = (r > 0).then(|| observed[i] as f64 / r as f64);
            if let (Some(m), Some(o)) = (mean, rate) {
                ece += r as f64 / n * (o - m).abs();
            }
            CalibrationBin {
                lower: i as f64 / k as f64,
                upper: (i + 1) as f64 / k as f64,
                rows: r,
                mean_predicted: mean,
                observed_rate: rate,
            }
        })
        .collect();
    Calibration {
        bins,
        expected_calibration_error: ece.clamp(0.0, 1.0),
    }
}

/// Each holdout row's group (an index into the returned labels), in the order the table
/// lists them: bands low to high, values in sorted order.
fn assign_groups(
    rows: &[usize],
    s: &SubgroupInput<'_>,
) -> Result<(Vec<String>, Vec<usize>), String> {
    let column = s.spec.column();
    match (&s.column.values, s.spec) {
        (GroupValues::Numeric(v), SubgroupSpec::Banded(b)) => {
            let integral = rows.iter().all(|&r| v[r].fract() == 0.0);
            let labels = band_labels(&b.bands, integral);
            let groups = rows
                .iter()
                .map(|&r| b.bands.partition_point(|&e| e <= v[r]))
                .collect();
            Ok((labels, groups))
        }
        (GroupValues::Categorical { values, ids }, SubgroupSpec::Column(_)) => {
            let mut distinct: BTreeMap<&str, usize> = BTreeMap::new();
            for &r in rows {
                let v = values[ids[r] as usize].as_str();
                let v = if v.is_empty() { EMPTY_LABEL } else { v };
                distinct.insert(v, 0);
                if distinct.len() > MAX_GROUPS {
                    return Err(format!(
                        "subgroup column {column:?} has more than {MAX_GROUPS} distinct values in \
                         the holdout: too many groups to report (and small ones would single out \
                         rows); band it if it is numeric, or pick a coarser column"
                    ));
                }
            }
            for (i, (label, index)) in distinct.iter_mut().enumerate() {
                group_label(label).map_err(|e| {
                    format!("subgroup column {column:?}: a value is not a valid group label: {e}")
                })?;
                *index = i;
            }
            let groups = rows
                .iter()
                .map(|&r| {
                    let v = values[ids[r] as usize].as_str();
                    distinct[if v.is_empty() { EMPTY_LABEL } else { v }]
                })
                .collect();
            Ok((distinct.into_keys().map(str::to_owned).collect(), groups))
        }
        _ => Err(format!(
            "subgroup column {column:?} was loaded for another kind of subgroup"
        )),
    }
}

/// One subgroup table: the figures of every group with at least `min_group_rows` rows.
fn subgroup_table(
    sorted: &Sorted,
    rows: &[usize],
    s: &SubgroupInput<'_>,
    spec: &EvaluationSpec,
) -> Result<SubgroupTable, String> {
    let (labels, group_of) = assign_groups(rows, s)?;
    // Each group's sorted positions, ascending by score.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); labels.len()];
    for (pos, &i) in sorted.order.iter().enumerate() {
        members[group_of[i]].push(pos);
    }
    let sizes: Vec<u64> = members.iter().map(|m| m.len() as u64).collect();
    let shown = shown_groups(&sizes, spec.min_group_rows);
    let nonempty = sizes.iter().filter(|&&n| n > 0).count() as u64;
    let groups: Vec<SubgroupRow> = shown
        .iter()
        .map(|&g| group_row(sorted, &labels[g], &members[g]))
        .collect();
    Ok(SubgroupTable {
        column: s.spec.column().to_owned(),
        bands: match s.spec {
            SubgroupSpec::Banded(b) => Some(b.bands.clone()),
            SubgroupSpec::Column(_) => None,
        },
        min_group_rows: spec.min_group_rows,
        suppressed_groups: nonempty - groups.len() as u64,
        groups,
    })
}

/// The groups shown (indices, in order), given each group's rows: those with at least
/// `min_rows`; then, while exactly one group is suppressed or the suppressed ones hold
/// fewer than `min_rows` rows together, the smallest shown group is suppressed too
/// (complementary suppression: the holdout's size is in the card, so the rows of the
/// suppressed groups together follow from the shown ones).
fn shown_groups(sizes: &[u64], min_rows: u64) -> Vec<usize> {
    let mut shown: Vec<usize> = (0..sizes.len()).filter(|&g| sizes[g] >= min_rows).collect();
    loop {
        let hidden: Vec<u64> = (0..sizes.len())
            .filter(|g| sizes[*g] > 0 && !shown.contains(g))
            .map(|g| sizes[g])
            .collect();
        let hidden_rows: u64 = hidden.iter().sum();
        let exposed = hidden.len() == 1 || (hidden_rows > 0 && hidden_rows < min_rows);
        if !exposed || shown.is_empty() {
            return shown;
        }
        let smallest = (0..shown.len())
            .min_by_key(|&k| (sizes[shown[k]], std::cmp::Reverse(shown[k])))
            .unwrap_or(0);
        shown.remove(smallest);
    }
}

/// One group's figures, from its sorted positions.
fn group_row(sorted: &Sorted, label: &str, members: &[usize]) -> SubgroupRow {
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    let (mut pairs, mut neg_below) = (0.0f64, 0.0f64);
    let mut i = 0;
    while i < members.len() {
        let score = sorted.probs[members[i]];
        let (mut pw, mut nw) = (0u64, 0u64);
        while i < members.len() && sorted.probs[members[i]] == score {
            let pos = members[i];
            let y = sorted.positive[pos];
            let predicted = pos >= sorted.first_predicted_positive;
            match (y, predicted) {
                (true, true) => tp += 1,
                (true, false) => fn_ += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
            }
            if y {
                pw += 1;
            } else {
                nw += 1;
            }
            i += 1;
        }
        pairs += pw as f64 * (neg_below + nw as f64 / 2.0);
        neg_below += nw as f64;
    }
    let (pos, neg) = (tp + fn_, tn + fp);
    SubgroupRow {
        group: label.to_owned(),
        rows: members.len() as u64,
        positives: pos,
        roc_auc: (pos > 0 && neg > 0).then(|| pairs / (pos as f64 * neg as f64)),
        accuracy: (tp + tn) as f64 / members.len().max(1) as f64,
        sensitivity: (pos > 0).then(|| tp as f64 / pos as f64),
        specificity: (neg > 0).then(|| tn as f64 / neg as f64),
    }
}

#[cfg(test)]
mod tests;
