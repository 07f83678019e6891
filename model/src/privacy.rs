//! The privacy accountant of DP-SGD: Rényi differential privacy of the sampled Gaussian
//! mechanism (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled
//! Gaussian Mechanism"), composed over the training steps and converted to (ε, δ) with
//! the conversion of Balle et al. 2020 ("Hypothesis Testing Interpretations and Rényi
//! Differential Privacy", Theorem 21), as Opacus's RDP accountant computes them.
//!
//! One step of DP-SGD samples each training row with probability `q` (Poisson sampling),
//! clips each row's gradient to a norm `C` and adds Gaussian noise of standard deviation
//! `σ·C` to their sum. Its RDP at order `α` is `log(A_α) / (α − 1)` with
//! `A_α = E_{z∼μ₀}[(μ(z)/μ₀(z))^α]`, `μ = (1 − q)·μ₀ + q·μ₁`, `μ₀ = N(0, σ²)`,
//! `μ₁ = N(1, σ²)`: a finite binomial sum for integer `α`, a convergent series of two
//! sums with Gaussian tail factors for fractional `α`. All of it is computed in log space.

use std::f64::consts::PI;

/// Rényi orders the accountant optimizes over (Opacus's defaults): 1.1 to 10.9 by tenths,
/// then 12 to 63.
pub fn default_orders() -> Vec<f64> {
    (1..100)
        .map(|x| 1.0 + f64::from(x) / 10.0)
        .chain((12..64).map(f64::from))
        .collect()
}

/// Why the accountant could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountantError {
    /// An input outside its domain.
    #[error("{what} = {value} is out of range ({range})")]
    OutOfRange {
        /// Which input.
        what: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range, in words.
        range: &'static str,
    },
    /// No noise multiplier up to the search's ceiling meets the target.
    #[error(
        "no noise multiplier up to {max_sigma} reaches ε = {target_epsilon} at δ = {delta} in {steps} steps at sampling rate {sample_rate}"
    )]
    Unreachable {
        /// Target ε.
        target_epsilon: f64,
        /// δ.
        delta: f64,
        /// Sampling rate.
        sample_rate: f64,
        /// Steps.
        steps: u64,
        /// The largest multiplier tried.
        max_sigma: f64,
    },
    /// The fractional-order series did not converge (it always does for valid inputs).
    #[error("the RDP series at order {alpha} did not converge")]
    NoConvergence {
        /// The order.
        alpha: f64,
    },
}

fn check(
    what: &'static str,
    value: f64,
    ok: bool,
    range: &'static str,
) -> Result<(), AccountantError> {
    if ok {
        Ok(())
    } else {
        Err(AccountantError::OutOfRange { what, value, range })
    }
}

/// `log(exp(a) + exp(b))`.
fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// `log(exp(a) − exp(b))` for `a ≥ b` (`−∞` when equal).
fn log_sub(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    if a <= b {
        return f64::NEG_INFINITY;
    }
    // log(e^a − e^b) = a + log(1 − e^(b − a))
    a + (-(b - a).exp()).ln_1p()
}

/// `log(erfc(x))`, accurate where `erfc` underflows (its asymptotic series beyond 25).
fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        libm::erfc(x).ln()
    } else {
        log_erfc_series(x)
    }
}

/// The asymptotic series of `log(erfc(x))` for large `x`:
/// `erfc(x) = e^(−x²) / (x √π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸) − …)`.
fn log_erfc_series(x: f64) -> f64 {
    let r = 1.0 / (2.0 * x * x);
    let series = 1.0 - r + 3.0 * r * r - 15.0 * r * r * r + 105.0 * r * r * r * r;
    -x * x - x.ln() - 0.5 * PI.ln() + series.ln()
}

/// `log|C(α, i)|` and the sign of `C(α, i)` for real `α > 0` and integer `i ≥ 0`.
fn log_binom(alpha: f64, i: u64) -> (f64, f64) {
    let i = i as f64;
    let (a, sa) = libm::lgamma_r(alpha + 1.0);
    let (b, sb) = libm::lgamma_r(i + 1.0);
    let (c, sc) = libm::lgamma_r(alpha - i + 1.0);
    (a - b - c, f64::from(sa * sb * sc))
}

/// `log A_α` for integer `α`: `Σ_{i=0}^{α} C(α, i) q^i (1 − q)^(α−i) e^((i² − i)/(2σ²))`.
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    let a = alpha as f64;
    for i in 0..=alpha {
        let f = i as f64;
        let (log_coef, _) = log_binom(a, i);
        let s =
            log_coef + f * q.ln() + (a - f) * (1.0 - q).ln() + (f * f - f) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

/// `log A_α` for fractional `α` (Mironov et al. 2019, Section 3.3): two series summed
/// until their terms fall below `e^−30`.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> Result<f64, AccountantError> {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let half = 0.5f64.ln();
    for i in 0..100_000u64 {
        let f = i as f64;
        let (log_coef, sign) = log_binom(alpha, i);
        let j = alpha - f;
        let log_t0 = log_coef + f * q.ln() + j * (1.0 - q).ln();
        let log_t1 = log_coef + j * q.ln() + f * (1.0 - q).ln();
        let log_e0 = half + log_erfc((f - z0) / (std::f64::consts::SQRT_2 * sigma));
        let log_e1 = half + log_erfc((z0 - j) / (std::f64::consts::SQRT_2 * sigma));
        let log_s0 = log_t0 + (f * f - f) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        if sign > 0.0 {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
        }
        if log_s0.max(log_s1) < -30.0 {
            return Ok(log_add(log_a0, log_a1));
        }
    }
    Err(AccountantError::NoConvergence { alpha })
}

/// The RDP of one step of the sampled Gaussian mechanism at order `alpha`, with
/// sampling rate `q` and noise multiplier `sigma`.
pub fn rdp_step(q: f64, sigma: f64, alpha: f64) -> Result<f64, AccountantError> {
    check("sampling rate", q, (0.0..=1.0).contains(&q), "0 to 1")?;
    check(
        "noise multiplier",
        sigma,
        sigma >= 0.0 && !sigma.is_nan(),
        "0 or more",
    )?;
    check("order", alpha, alpha > 1.0, "above 1")?;
    if q == 0.0 {
        return Ok(0.0);
    }
    if sigma == 0.0 || alpha.is_infinite() {
        return Ok(f64::INFINITY);
    }
    if q == 1.0 {
        return Ok(alpha / (2.0 * sigma * sigma));
    }
    let log_a = if alpha.fract() == 0.0 && alpha < 1e6 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)?
    };
    Ok(log_a / (alpha - 1.0))
}

/// ε spent after `steps` steps at sampling rate `q` and noise multiplier `sigma`, at
/// `delta`, and the order that gave it: the smallest over [`default_orders`] of
/// `T·RDP(α) − (log δ + log α)/(α − 1) + log((α − 1)/α)`.
pub fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> Result<(f64, f64), AccountantError> {
    check(
        "delta",
        delta,
        delta > 0.0 && delta < 1.0,
        "strictly between 0 and 1",
    )?;
    let mut best = (f64::INFINITY, f64::NAN);
    for alpha in default_orders() {
        let rdp = rdp_step(q, sigma, alpha)? * steps as f64;
        let eps = rdp - (delta.ln() + alpha.ln()) / (alpha - 1.0) + ((alpha - 1.0) / alpha).ln();
        if eps < best.0 {
            best = (eps, alpha);
        }
    }
    // ε is never negative; a tiny budget can compute so through the conversion's terms.
    Ok((best.0.max(0.0), best.1))
}

/// The noise multiplier to train with: the smallest (to within a bisection that stops
/// when ε is within 0.01 below the target) for which `steps` steps at sampling rate `q`
/// spend at most `target_epsilon` at `delta`. The search doubles from 10 up to 10⁶.
pub fn noise_multiplier(
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
) -> Result<f64, AccountantError> {
    check(
        "target epsilon",
        target_epsilon,
        target_epsilon > 0.0 && target_epsilon.is_finite(),
        "above 0",
    )?;
    const MAX_SIGMA: f64 = 1e6;
    const TOLERANCE: f64 = 0.01;
    let (mut low, mut high) = (0.0f64, 10.0f64);
    let mut eps_high = epsilon(q, high, steps, delta)?.0;
    while eps_high > target_epsilon {
        high *= 2.0;
        if high > MAX_SIGMA {
            return Err(AccountantError::Unreachable {
                target_epsilon,
                delta,
                sample_rate: q,
                steps,
                max_sigma: MAX_SIGMA,
            });
        }
        eps_high = epsilon(q, high, steps, delta)?.0;
    }
    while target_epsilon - eps_high > TOLERANCE {
        let mid = (low + high) / 2.0;
        let eps = epsilon(q, mid, steps, delta)?.0;
        if eps < target_epsilon {
            high = mid;
            eps_high = eps;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batches_are_the_gaussian_mechanism() {
        // q = 1: RDP(α) = α / (2σ²) exactly.
        for (sigma, alpha) in [(1.0, 2.0), (0.7, 3.5), (4.0, 32.0)] {
            let r = rdp_step(1.0, sigma, alpha).expect("rdp");
            assert!((r - alpha / (2.0 * sigma * sigma)).abs() < 1e-12);
        }
        assert_eq!(rdp_step(0.0, 1.0, 2.0), Ok(0.0));
        assert_eq!(rdp_step(0.1, 0.0, 2.0), Ok(f64::INFINITY));
    }

    #[test]
    fn integer_and_fractional_orders_agree_where_they_meet() {
        // The fractional series at α = k ± 1e-9 is continuous with the binomial sum at k.
        for (q, sigma) in [(0.01, 1.1), (0.05, 0.8), (0.2, 2.0)] {
            for k in [2.0, 3.0, 8.0, 20.0] {
                let int = rdp_step(q, sigma, k).expect("int");
                for a in [k - 1e-7, k + 1e-7] {
                    let frac = rdp_step(q, sigma, a).expect("frac");
                    assert!(
                        (frac - int).abs() <= 1e-5 * int.abs().max(1e-12),
                        "q {q} σ {sigma} α {a}: {frac} vs {int}"
                    );
                }
            }
        }
    }

    #[test]
    fn more_noise_or_fewer_steps_spend_less() {
        let delta = 1e-5;
        let mut last = f64::INFINITY;
        for sigma in [0.6, 0.8, 1.0, 1.5, 3.0] {
            let e = epsilon(0.01, sigma, 1000, delta).expect("eps").0;
            assert!(e < last, "σ {sigma}: {e} ≥ {last}");
            last = e;
        }
        let e1 = epsilon(0.01, 1.0, 100, delta).expect("eps").0;
        let e2 = epsilon(0.01, 1.0, 1000, delta).expect("eps").0;
        assert!(e1 < e2);
    }

    #[test]
    fn the_noise_multiplier_found_meets_the_target_tightly() {
        for target in [1.0, 3.0, 8.0] {
            let sigma = noise_multiplier(target, 1e-5, 256.0 / 60_000.0, 14_060).expect("sigma");
            let spent = epsilon(256.0 / 60_000.0, sigma, 14_060, 1e-5)
                .expect("eps")
                .0;
            assert!(
                spent <= target && target - spent <= 0.01,
                "{target}: σ {sigma} spends {spent}"
            );
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(rdp_step(1.5, 1.0, 2.0).is_err());
        assert!(rdp_step(0.5, -1.0, 2.0).is_err());
        assert!(rdp_step(0.5, 1.0, 1.0).is_err());
        assert!(epsilon(0.5, 1.0, 10, 0.0).is_err());
        assert!(epsilon(0.5, 1.0, 10, 1.0).is_err());
        assert!(noise_multiplier(0.0, 1e-5, 0.01, 100).is_err());
        // Full batches, a million steps, ε = 0.01: no multiplier up to 10⁶ does it.
        assert!(matches!(
            noise_multiplier(1e-6, 1e-5, 1.0, 1_000_000_000),
            Err(AccountantError::Unreachable { .. })
        ));
    }

    #[test]
    fn log_erfc_is_continuous_where_it_switches_to_the_series() {
        // Where erfc is still representable, the series is what libm computes.
        for x in [15.0, 20.0, 25.0, 26.0] {
            let (exact, series) = (libm::erfc(x).ln(), log_erfc_series(x));
            assert!(
                (exact - series).abs() < 1e-9 * exact.abs(),
                "{x}: {exact} vs {series}"
            );
        }
        assert!(log_erfc(200.0).is_finite());
        assert!((log_erfc(-3.0) - libm::erfc(-3.0).ln()).abs() < 1e-15);
    }
}
