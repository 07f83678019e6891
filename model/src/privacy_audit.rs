//! The one-run privacy audit of Steinke, Nasr and Jagielski ("Privacy Auditing with One (1)
//! Training Run", NeurIPS 2023): `m` canaries are each trained on with probability ½,
//! independently; afterwards an auditor who sees only the model guesses, for the `r`
//! canaries it is surest about, whether each was trained on. If training is (ε, δ)-DP,
//! the number of right guesses `W` satisfies (their Theorem 5.2)
//!
//! `P[W ≥ v] ≤ P[Bin(r, p) ≥ v] + 2mδ · max_{i=1..v} P[v − i ≤ Bin(r, p) < v] / i`,
//! `p = e^ε / (1 + e^ε)`,
//!
//! so `v` right guesses refute every ε whose bound falls below the significance level.
//! The largest ε not refuted at 95 % confidence is the audit's lower bound: a training run
//! whose claimed ε is below it did not do what it claims (noise switched off, clipping
//! skipped, a budget misreported).

/// Natural logs of `0!` to `n!`.
fn log_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    out.push(0.0);
    let mut acc = 0.0f64;
    for i in 1..=n {
        acc += (i as f64).ln();
        out.push(acc);
    }
    out
}

/// `log P[Bin(r, p) = k]` for every k in 0..=r.
fn log_pmf(r: usize, p: f64, lf: &[f64]) -> Vec<f64> {
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    (0..=r)
        .map(|k| lf[r] - lf[k] - lf[r - k] + k as f64 * lp + (r - k) as f64 * lq)
        .collect()
}

/// The p-value of `v` right guesses out of `r`, with `m` canaries, if training is
/// (ε, δ)-DP (the bound above, at most 1).
pub fn p_value(m: usize, r: usize, v: usize, epsilon: f64, delta: f64) -> f64 {
    if v == 0 {
        return 1.0;
    }
    if v > r {
        return 0.0;
    }
    let p = 1.0 / (1.0 + (-epsilon).exp());
    let lf = log_factorials(r);
    let pmf: Vec<f64> = log_pmf(r, p, &lf).into_iter().map(f64::exp).collect();
    let tail: f64 = pmf[v..].iter().sum();
    // max over i of P[v − i ≤ Bin < v] / i.
    let mut below = 0.0f64;
    let mut alpha = 0.0f64;
    for i in 1..=v {
        below += pmf[v - i];
        alpha = alpha.max(below / i as f64);
    }
    (tail + 2.0 * m as f64 * delta * alpha).min(1.0)
}

/// The largest ε that `v` right guesses out of `r` (with `m` canaries) do not refute at
/// `confidence` (e.g. 0.95): 0 when even ε = 0 is not refuted. Bisection to 1e-4.
pub fn epsilon_lower_bound(m: usize, r: usize, v: usize, delta: f64, confidence: f64) -> f64 {
    let alpha = 1.0 - confidence;
    if p_value(m, r, v, 0.0, delta) > alpha {
        return 0.0;
    }
    let (mut low, mut high) = (0.0f64, 1.0f64);
    while p_value(m, r, v, high, delta) <= alpha {
        high *= 2.0;
        if high > 1e3 {
            return high;
        }
    }
    while high - low > 1e-4 {
        let mid = 0.5 * (low + high);
        if p_value(m, r, v, mid, delta) <= alpha {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

/// The auditor's guesses: with canary `scores` (higher: more likely trained on), it
/// guesses "in" for the `k` highest and "out" for the `k` lowest, and counts the right
/// ones against `included`. Returns (guesses, right).
pub fn guess(scores: &[f64], included: &[bool], k: usize) -> (usize, usize) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let k = k.min(scores.len() / 2);
    let right = order[..k].iter().filter(|&&i| included[i]).count()
        + order[order.len() - k..]
            .iter()
            .filter(|&&i| !included[i])
            .count();
    (2 * k, right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_value_is_the_binomial_tail_without_delta() {
        // ε = 0: a fair coin. P[Bin(10, ½) ≥ 9] = 11 / 1024.
        let p = p_value(100, 10, 9, 0.0, 0.0);
        assert!((p - 11.0 / 1024.0).abs() < 1e-12, "{p}");
        // δ adds its term, and the bound is monotone in ε.
        assert!(p_value(100, 10, 9, 0.0, 1e-3) > p);
        assert!(p_value(100, 10, 9, 1.0, 0.0) > p);
        assert_eq!(p_value(100, 10, 0, 1.0, 0.0), 1.0);
    }

    #[test]
    fn lower_bound_grows_with_the_right_guesses() {
        // Steinke et al. Figure 1's regime: 1000 canaries, 100 guesses.
        let m = 1000;
        let lb = |v| epsilon_lower_bound(m, 100, v, 1e-5, 0.95);
        assert_eq!(lb(50), 0.0, "chance refutes nothing");
        assert!(lb(70) > 0.3 && lb(70) < lb(90), "{} {}", lb(70), lb(90));
        assert!(lb(100) > 2.5, "{}", lb(100));
        // The bound is the edge: just below it is refuted, just above it is not.
        let e = lb(90);
        assert!(p_value(m, 100, 90, e - 1e-3, 1e-5) <= 0.05);
        assert!(p_value(m, 100, 90, e + 1e-3, 1e-5) > 0.05);
    }

    #[test]
    fn guesses_take_both_ends() {
        let scores = [0.9, 0.1, 0.8, 0.2, 0.5, 0.55];
        let included = [true, false, true, true, false, true];
        // In: 0.9 (right), 0.8 (right); out: 0.1 (right), 0.2 (wrong).
        assert_eq!(guess(&scores, &included, 2), (4, 3));
        // At most half from each end: in 0.9, 0.8, 0.55 (all right); out 0.1, 0.2, 0.5.
        assert_eq!(guess(&scores, &included, 10), (6, 5));
    }
}
