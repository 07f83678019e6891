//! L3: loss-threshold membership inference. An attacker who sees the model's loss on a
//! record guesses "it was in the training set" when the loss is low; if that guess beats
//! chance by much, the model memorized its training rows.

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
}
