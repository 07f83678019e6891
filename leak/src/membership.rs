//! L3: membership inference. Two attacks: the loss threshold (an attacker who sees the
//! model's loss on a record guesses "it was in the training set" when the loss is low), the
//! literature's baseline, and RMIA (Zarifzadeh, Liu, Chang, Shokri, "Low-Cost
//! High-Power Membership Inference Attacks", ICML 2024), which calibrates each record
//! against reference models trained without it and against a population, and finds far
//! more members at low false-positive rates. If either beats chance by much, the model
//! memorized its training rows.

/// Result of the membership-inference check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MembershipResult {
    /// AUC of `−loss` separating members from non-members (0.5 = chance).
    pub auc: f64,
    /// Best advantage over all thresholds: max(TPR − FPR).
    pub advantage: f64,
    /// Members scored.
    pub members: usize,
    /// Non-members scored.
    pub non_members: usize,
}

/// Run the attack on per-record losses of members and non-members. The larger group is
/// subsampled (evenly spaced, deterministic) to the size of the smaller, so that the AUC
/// and advantage do not depend on the split ratio. `None` when either group is empty.
pub fn loss_threshold_attack(
    member_losses: &[f64],
    non_member_losses: &[f64],
) -> Option<MembershipResult> {
    let k = member_losses.len().min(non_member_losses.len());
    if k == 0 {
        return None;
    }
    let pick = |v: &[f64]| -> Vec<f64> { (0..k).map(|i| v[i * v.len() / k]).collect() };
    let (m, n) = (pick(member_losses), pick(non_member_losses));
    let scores: Vec<f32> = m.iter().chain(&n).map(|&l| (-l) as f32).collect();
    let labels: Vec<f32> = std::iter::repeat_n(1.0, k)
        .chain(std::iter::repeat_n(0.0, k))
        .collect();
    let auc = airlock_model::roc_auc(&scores, &labels)?;
    let advantage = airlock_model::roc_curve(&scores, &labels, usize::MAX)
        .iter()
        .map(|p| p.tpr - p.fpr)
        .fold(0.0f64, f64::max);
    Some(MembershipResult {
        auc,
        advantage,
        members: k,
        non_members: k,
    })
}

/// RMIA's offline scaling: with reference models that never saw a record (OUT models),
/// the record's probability under a model that did is approximated as
/// `a·p_out + (1 − a)`, so `Pr(x) = ½((1 + a)·p_out + (1 − a))`. The paper tunes `a`
/// per dataset between 0.2 and 1 (0.33 for its tabular Purchase-100); that value is used.
pub const RMIA_OFFLINE_A: f64 = 0.33;

/// One record as RMIA sees it: its probability under the target model and its mean
/// probability under the reference models (`exp(−loss)` of the true label: a class's
/// probability, or a Gaussian likelihood for a value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmiaRecord {
    /// `Pr(x | θ_target)`.
    pub target: f64,
    /// Mean of `Pr(x | θ_ref)` over the reference models, none of which trained on `x`.
    pub reference: f64,
}

impl RmiaRecord {
    /// The likelihood ratio `Pr(x | θ) / Pr(x)`, `Pr(x)` from the OUT references scaled by
    /// `a` ([`RMIA_OFFLINE_A`]).
    fn ratio(self, a: f64) -> f64 {
        let px = 0.5 * ((1.0 + a) * self.reference + (1.0 - a));
        self.target / px.max(f64::MIN_POSITIVE)
    }
}

/// What RMIA found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmiaResult {
    /// AUC of the RMIA score separating members from non-members (0.5 = chance).
    pub auc: f64,
    /// The largest true-positive rate at a false-positive rate of at most 1 %: how many
    /// members an attacker finds while almost never accusing a non-member.
    pub tpr_at_1pct_fpr: f64,
    /// The same at a false-positive rate of at most 0.1 % (meaningful with a thousand
    /// non-members or more; reported, not judged).
    pub tpr_at_0_1pct_fpr: f64,
    /// Best advantage over all thresholds: max(TPR − FPR).
    pub advantage: f64,
    /// Members scored.
    pub members: usize,
    /// Non-members scored.
    pub non_members: usize,
    /// Population records each target is compared with.
    pub population: usize,
}

/// RMIA's score of each target: the fraction of population records `z` whose likelihood
/// ratio the target's beats (`LR(x) / LR(z) ≥ γ` with `γ = 1`), by one sort and a binary
/// search per target.
pub fn rmia_scores(targets: &[RmiaRecord], population: &[RmiaRecord], a: f64) -> Vec<f64> {
    let mut z: Vec<f64> = population.iter().map(|r| r.ratio(a)).collect();
    z.sort_by(f64::total_cmp);
    let n = z.len().max(1) as f64;
    targets
        .iter()
        .map(|x| {
            let lr = x.ratio(a);
            z.partition_point(|&v| v.total_cmp(&lr).is_le()) as f64 / n
        })
        .collect()
}

/// RMIA on members and non-members, the population each is compared with being the
/// non-members themselves (records of the same distribution in no reference model's
/// training set), each non-member compared with the others only. As with the loss
/// threshold, the larger group is subsampled evenly to the smaller's size. `None` with
/// fewer than two non-members or no member.
pub fn rmia_attack(
    members: &[RmiaRecord],
    non_members: &[RmiaRecord],
    a: f64,
) -> Option<RmiaResult> {
    let k = members.len().min(non_members.len());
    if k == 0 || non_members.len() < 2 {
        return None;
    }
    let pick =
        |v: &[RmiaRecord]| -> Vec<RmiaRecord> { (0..k).map(|i| v[i * v.len() / k]).collect() };
    let n = non_members.len() as f64;
    // A member beats a share of all n; a non-member, of the n − 1 others (it ties with
    // itself, which would otherwise add 1/n to every non-member's score).
    let member_scores = rmia_scores(&pick(members), non_members, a);
    let non_member_scores = rmia_scores(&pick(non_members), non_members, a)
        .into_iter()
        .map(|s| ((s * n - 1.0) / (n - 1.0)).max(0.0));
    let scores: Vec<f32> = member_scores
        .into_iter()
        .chain(non_member_scores)
        .map(|s| s as f32)
        .collect();
    let population = non_members;
    let labels: Vec<f32> = std::iter::repeat_n(1.0, k)
        .chain(std::iter::repeat_n(0.0, k))
        .collect();
    let auc = airlock_model::roc_auc(&scores, &labels)?;
    let curve = airlock_model::roc_curve(&scores, &labels, usize::MAX);
    let advantage = curve.iter().map(|p| p.tpr - p.fpr).fold(0.0f64, f64::max);
    let tpr_at = |fpr: f64| {
        curve
            .iter()
            .filter(|p| p.fpr <= fpr)
            .map(|p| p.tpr)
            .fold(0.0f64, f64::max)
    };
    let (tpr_at_1pct_fpr, tpr_at_0_1pct_fpr) = (tpr_at(0.01), tpr_at(0.001));
    Some(RmiaResult {
        auc,
        tpr_at_1pct_fpr,
        tpr_at_0_1pct_fpr,
        advantage,
        members: k,
        non_members: k,
        population: population.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memorized_members_are_detected_and_chance_is_not() {
        let members: Vec<f64> = (0..500).map(|i| 0.001 * f64::from(i % 7)).collect();
        let others: Vec<f64> = (0..500).map(|i| 0.5 + 0.01 * f64::from(i % 13)).collect();
        let r = loss_threshold_attack(&members, &others).expect("runs");
        assert!(r.auc > 0.99 && r.advantage > 0.99, "{r:?}");
        let same: Vec<f64> = (0..500).map(|i| f64::from(i % 17)).collect();
        let r = loss_threshold_attack(&same, &same).expect("runs");
        assert!((r.auc - 0.5).abs() < 1e-9 && r.advantage < 0.01, "{r:?}");
        assert!(loss_threshold_attack(&[], &same).is_none());
    }

    /// A record as a model with probability `p` of the true label sees it.
    fn rec(target: f64, reference: f64) -> RmiaRecord {
        RmiaRecord { target, reference }
    }

    #[test]
    fn rmia_finds_members_the_references_find_hard_and_not_chance() {
        // Members: records every model finds hard (p_ref 0.2) that the target learned
        // (0.9); the loss threshold cannot tell them from easy non-members (target 0.9,
        // references 0.9), RMIA can.
        let members: Vec<RmiaRecord> = (0..300)
            .map(|i| rec(0.9, 0.2 + 0.0001 * f64::from(i)))
            .collect();
        let easy: Vec<RmiaRecord> = (0..150)
            .map(|i| rec(0.9, 0.9 - 0.0001 * f64::from(i)))
            .collect();
        let hard: Vec<RmiaRecord> = (0..150)
            .map(|i| rec(0.2, 0.2 + 0.0001 * f64::from(i)))
            .collect();
        let non_members: Vec<RmiaRecord> = easy.iter().chain(&hard).copied().collect();
        let r = rmia_attack(&members, &non_members, RMIA_OFFLINE_A).expect("runs");
        assert!(r.auc > 0.99 && r.tpr_at_1pct_fpr > 0.99, "{r:?}");
        let loss = |v: &[RmiaRecord]| -> Vec<f64> { v.iter().map(|r| -r.target.ln()).collect() };
        let baseline = loss_threshold_attack(&loss(&members), &loss(&non_members)).expect("runs");
        assert!(baseline.auc < 0.8, "the baseline is weaker: {baseline:?}");

        // Chance: members and non-members drawn alike.
        let alike: Vec<RmiaRecord> = (0..400)
            .map(|i| {
                let u = f64::from((i * 37) % 400) / 400.0;
                rec(0.05 + 0.9 * u, 0.05 + 0.9 * (1.0 - u))
            })
            .collect();
        // (Each member is compared with all 400, each non-member with the 399 others:
        // chance, to within the one comparison.)
        let r = rmia_attack(&alike, &alike, RMIA_OFFLINE_A).expect("runs");
        assert!(
            (r.auc - 0.5).abs() < 0.01 && r.tpr_at_1pct_fpr <= 0.02,
            "{r:?}"
        );
        assert!(rmia_attack(&[], &alike, RMIA_OFFLINE_A).is_none());
        assert!(rmia_attack(&alike, &alike[..1], RMIA_OFFLINE_A).is_none());
    }

    #[test]
    fn rmia_score_is_the_fraction_of_the_population_beaten() {
        let population = [rec(0.1, 0.5), rec(0.5, 0.5), rec(0.9, 0.5)];
        let s = rmia_scores(
            &[rec(0.5, 0.5), rec(0.05, 0.5), rec(0.95, 0.5)],
            &population,
            0.33,
        );
        assert_eq!(s, vec![2.0 / 3.0, 0.0, 1.0]);
    }
}
