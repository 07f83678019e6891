use super::*;
use airlock_schemas::BandedSubgroup;

fn spec(resamples: u32) -> EvaluationSpec {
    EvaluationSpec {
        bootstrap_resamples: resamples,
        ..EvaluationSpec::default()
    }
}

fn metric(e: &Evaluation, name: &str) -> EstimatedMetric {
    e.metrics
        .iter()
        .find(|m| m.name == name)
        .cloned()
        .expect("metric")
}

/// A deterministic pseudo-random holdout: scores informative of the label, some ties.
fn synthetic(n: usize, seed: u64) -> (Vec<f64>, Vec<f32>) {
    let mut g = rng(seed, 99);
    let mut probs = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let y = g.random::<f64>() < 0.3;
        let p: f64 = (g.random::<f64>() * 0.6 + if y { 0.35 } else { 0.05 }).min(1.0);
        probs.push((p * 100.0).round() / 100.0);
        labels.push(if y { 1.0 } else { 0.0 });
    }
    (probs, labels)
}

fn eval(probs: &[f64], labels: &[f32], s: &EvaluationSpec) -> Evaluation {
    let rows: Vec<usize> = (0..probs.len()).collect();
    evaluate(probs, labels, &rows, &[], s, 7).expect("evaluate")
}

#[test]
fn confusion_and_rates_by_hand() {
    // Threshold 0.5: predicted positive are 0.9, 0.8, 0.6, 0.5 (≥ 0.5).
    let probs = [0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1];
    let labels = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0];
    let e = eval(&probs, &labels, &spec(0));
    assert_eq!(
        e.confusion,
        Confusion {
            true_positives: 3,
            false_positives: 1,
            true_negatives: 3,
            false_negatives: 1,
        }
    );
    let v = |n: &str| metric(&e, n).value.expect("defined");
    assert_eq!(v("sensitivity"), 0.75);
    assert_eq!(v("specificity"), 0.75);
    assert_eq!(v("ppv"), 0.75);
    assert_eq!(v("npv"), 0.75);
    assert_eq!(v("accuracy"), 0.75);
    // Pairs: positives 0.9, 0.8, 0.5, 0.4 against negatives 0.6, 0.3, 0.2, 0.1:
    // 4 + 4 + 3 + 3 = 14 of 16 ordered right.
    assert_eq!(v("roc_auc"), 14.0 / 16.0);
    let brier = [0.01, 0.04, 0.36, 0.25, 0.36, 0.09, 0.04, 0.01]
        .iter()
        .sum::<f64>()
        / 8.0;
    assert!((v("brier") - brier).abs() < 1e-12);
    // No resamples, no intervals.
    assert!(
        e.metrics
            .iter()
            .all(|m| m.low.is_none() && m.high.is_none())
    );
    assert_eq!(
        e.metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        METRIC_NAMES
    );
    e.validate(8).expect("valid");
}

#[test]
fn undefined_rates_are_none() {
    // Nothing reaches the threshold: no positive prediction, PPV undefined.
    let e = eval(&[0.1, 0.2, 0.3], &[0.0, 1.0, 0.0], &spec(50));
    let ppv = metric(&e, "ppv");
    assert_eq!((ppv.value, ppv.low, ppv.high), (None, None, None));
    assert_eq!(metric(&e, "sensitivity").value, Some(0.0));
    e.validate(3).expect("valid");
}

#[test]
fn auc_matches_a_brute_force_pairwise_count() {
    let (probs, labels) = synthetic(700, 3);
    let e = eval(&probs, &labels, &spec(0));
    let (mut pairs, mut right) = (0.0, 0.0);
    for i in 0..probs.len() {
        for j in 0..probs.len() {
            if labels[i] > 0.5 && labels[j] < 0.5 {
                pairs += 1.0;
                if probs[i] > probs[j] {
                    right += 1.0;
                } else if probs[i] == probs[j] {
                    right += 0.5;
                }
            }
        }
    }
    let auc = metric(&e, "roc_auc").value.expect("auc");
    assert!(
        (auc - right / pairs).abs() < 1e-12,
        "{auc} vs {}",
        right / pairs
    );
    let f32s: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
    let other = crate::roc_auc(&f32s, &labels).expect("auc");
    assert!((auc - other).abs() < 1e-9);
}

#[test]
fn weighted_pass_equals_the_expanded_holdout() {
    // Multiplicities are the same as repeating rows: compare against the expanded data.
    let (probs, labels) = synthetic(300, 5);
    let sorted = Sorted::new(&probs, &labels, 0.5);
    let w: Vec<u32> = (0..probs.len()).map(|i| (i * 7 % 4) as u32).collect();
    let (mut p2, mut y2) = (Vec::new(), Vec::new());
    for (pos, &i) in sorted.order.iter().enumerate() {
        for _ in 0..w[pos] {
            p2.push(probs[i]);
            y2.push(labels[i]);
        }
    }
    let weighted = sorted.stats(&w).metrics();
    let expanded = Sorted::new(&p2, &y2, 0.5);
    let direct = expanded.stats(&vec![1; p2.len()]).metrics();
    for k in 0..7 {
        let (a, b) = (weighted[k].expect("a"), direct[k].expect("b"));
        assert!((a - b).abs() < 1e-12, "{} {a} {b}", METRIC_NAMES[k]);
    }
}

#[test]
fn intervals_contain_the_estimate_and_narrow_with_more_rows() {
    let width = |n: usize| {
        let (probs, labels) = synthetic(n, 11);
        let e = eval(&probs, &labels, &spec(400));
        for m in &e.metrics {
            let (v, l, h) = (
                m.value.expect("v"),
                m.low.expect("low"),
                m.high.expect("high"),
            );
            assert!(l <= v && v <= h, "{}: {l} {v} {h}", m.name);
        }
        e.validate(n as u64).expect("valid");
        let auc = metric(&e, "roc_auc");
        auc.high.expect("h") - auc.low.expect("l")
    };
    let (small, large) = (width(200), width(5000));
    assert!(large < small / 2.0, "{small} -> {large}");
    // The same seed gives the same intervals.
    let (probs, labels) = synthetic(300, 2);
    assert_eq!(
        eval(&probs, &labels, &spec(100)),
        eval(&probs, &labels, &spec(100))
    );
}

#[test]
fn calibration_by_hand() {
    let probs = [0.05, 0.15, 0.12, 0.95, 0.91];
    let labels = [0.0, 1.0, 0.0, 1.0, 0.0];
    let e = eval(
        &probs,
        &labels,
        &EvaluationSpec {
            calibration_bins: 10,
            ..spec(0)
        },
    );
    let b = &e.calibration.bins;
    assert_eq!(b.len(), 10);
    assert_eq!(
        b.iter().map(|b| b.rows).collect::<Vec<_>>(),
        [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    );
    assert_eq!(b[2].mean_predicted, None);
    assert!((b[1].mean_predicted.expect("m") - 0.135).abs() < 1e-12);
    assert_eq!(b[1].observed_rate, Some(0.5));
    // ECE: (1·0.05 + 2·0.365 + 2·0.43) / 5.
    let ece = (0.05 + 2.0 * 0.365 + 2.0 * 0.43) / 5.0;
    assert!((e.calibration.expected_calibration_error - ece).abs() < 1e-12);
}

fn categorical(values: &[&str]) -> GroupColumn {
    let mut distinct: Vec<String> = Vec::new();
    let ids = values
        .iter()
        .map(|v| {
            let i = distinct.iter().position(|d| d == v).unwrap_or_else(|| {
                distinct.push((*v).to_owned());
                distinct.len() - 1
            });
            i as u32
        })
        .collect();
    GroupColumn {
        name: "site".into(),
        values: GroupValues::Categorical {
            values: distinct,
            ids,
        },
    }
}

#[test]
fn small_groups_are_suppressed_without_label_or_figures() {
    // Sites a (30 rows), b (25), c (12), d (10): c and d are below 20.
    let mut sites = vec!["a"; 30];
    sites.extend(vec!["b"; 25]);
    sites.extend(vec!["c"; 12]);
    sites.extend(vec!["d"; 10]);
    let (probs, labels) = synthetic(sites.len(), 4);
    let column = categorical(&sites);
    let s = SubgroupSpec::Column("site".into());
    let rows: Vec<usize> = (0..sites.len()).collect();
    let input = [SubgroupInput {
        spec: &s,
        column: &column,
    }];
    let e = evaluate(&probs, &labels, &rows, &input, &spec(0), 1).expect("ok");
    let t = &e.subgroups[0];
    assert_eq!(
        t.groups
            .iter()
            .map(|g| g.group.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(t.suppressed_groups, 2);
    assert_eq!(t.groups[0].rows, 30);
    let text = serde_json::to_string(t).expect("json");
    assert!(!text.contains("\"c\"") && !text.contains("\"d\""), "{text}");
    e.validate(77).expect("valid");
    // A run directory is attacker input: validation holds the suppression rules and the
    // rates to counts, whatever wrote the record.
    for (tamper, says) in [
        (
            (|t: &mut SubgroupTable| t.suppressed_groups = 1) as fn(&mut SubgroupTable),
            "could be told apart",
        ),
        (
            |t: &mut SubgroupTable| t.suppressed_groups = 0,
            "suppressed groups but",
        ),
        (
            |t: &mut SubgroupTable| t.groups[0].accuracy += 1e-4,
            "not a count",
        ),
    ] {
        let mut bad = e.clone();
        tamper(&mut bad.subgroups[0]);
        let err = bad.validate(77).expect_err("refused");
        assert!(err.contains(says), "{err}");
    }

    // A single small group would be exposed by subtraction from the holdout size: the
    // next smallest is suppressed with it.
    assert_eq!(shown_groups(&[30, 25, 3], 20), [0]);
    assert_eq!(shown_groups(&[30, 25, 21], 20), [0, 1, 2]);
    // Two small ones of 1 row each: together still fewer than 20 rows.
    assert_eq!(shown_groups(&[30, 25, 24, 1, 1], 20), [0, 1]);
    assert_eq!(shown_groups(&[5], 20), Vec::<usize>::new());
}

#[test]
fn age_bands_are_labelled_and_counted() {
    let ages: Vec<f64> = (0..200).map(|i| f64::from(18 + (i % 70))).collect();
    let (probs, labels) = synthetic(ages.len(), 8);
    let column = GroupColumn {
        name: "age".into(),
        values: GroupValues::Numeric(ages.clone()),
    };
    let s = SubgroupSpec::Banded(BandedSubgroup {
        column: "age".into(),
        bands: vec![30.0, 45.0, 60.0],
    });
    let rows: Vec<usize> = (0..ages.len()).collect();
    let input = [SubgroupInput {
        spec: &s,
        column: &column,
    }];
    let e = evaluate(&probs, &labels, &rows, &input, &spec(0), 1).expect("ok");
    let t = &e.subgroups[0];
    let got: Vec<(&str, u64)> = t
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.rows))
        .collect();
    let count = |lo: f64, hi: f64| ages.iter().filter(|&&a| a >= lo && a < hi).count() as u64;
    assert_eq!(
        got,
        [
            ("< 30", count(0.0, 30.0)),
            ("30–44", count(30.0, 45.0)),
            ("45–59", count(45.0, 60.0)),
            ("≥ 60", count(60.0, 200.0)),
        ]
    );
    assert_eq!(t.bands, Some(vec![30.0, 45.0, 60.0]));
    // Per-group AUC agrees with the whole-holdout function on the group's rows.
    let young: Vec<usize> = rows.iter().copied().filter(|&r| ages[r] < 30.0).collect();
    let gp: Vec<f32> = young.iter().map(|&r| probs[r] as f32).collect();
    let gy: Vec<f32> = young.iter().map(|&r| labels[r]).collect();
    let want = crate::roc_auc(&gp, &gy).expect("auc");
    assert!((t.groups[0].roc_auc.expect("auc") - want).abs() < 1e-9);
    e.validate(200).expect("valid");

    // Fractional ages: half-open labels.
    let column = GroupColumn {
        name: "age".into(),
        values: GroupValues::Numeric(ages.iter().map(|a| a + 0.5).collect()),
    };
    let input = [SubgroupInput {
        spec: &s,
        column: &column,
    }];
    let e = evaluate(&probs, &labels, &rows, &input, &spec(0), 1).expect("ok");
    assert_eq!(e.subgroups[0].groups[1].group, "30–<45");
}

#[test]
fn too_many_values_or_bad_labels_are_refused() {
    let values: Vec<String> = (0..65).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let column = categorical(&refs);
    let s = SubgroupSpec::Column("site".into());
    let (probs, labels) = synthetic(refs.len(), 1);
    let rows: Vec<usize> = (0..refs.len()).collect();
    let input = [SubgroupInput {
        spec: &s,
        column: &column,
    }];
    let err = evaluate(&probs, &labels, &rows, &input, &spec(0), 1).expect_err("65 values");
    assert!(err.contains("more than 64 distinct values"), "{err}");
    // 64 are fine.
    let err = evaluate(
        &probs[..64],
        &labels[..64],
        &rows[..64],
        &input,
        &spec(0),
        1,
    );
    assert!(err.is_ok(), "{err:?}");

    for bad in [
        "has \"quote\"",
        "john@example.com",
        "tab\there",
        &"x".repeat(33),
    ] {
        let column = categorical(&[bad, "ok"]);
        let input = [SubgroupInput {
            spec: &s,
            column: &column,
        }];
        let err = evaluate(&[0.2, 0.7], &[0.0, 1.0], &[0, 1], &input, &spec(0), 1)
            .expect_err("bad label");
        assert!(
            err.contains("not a valid group label") && !err.contains(bad),
            "{err}"
        );
    }
}

/// Timing of the evaluation with 1000 resamples: `cargo test -p airlock-model --
/// --ignored --nocapture evaluation_timing`.
#[test]
#[ignore = "timing, run by hand"]
fn evaluation_timing() {
    for n in [7_500, 1_000_000] {
        let (probs, labels) = synthetic(n, 21);
        let t = std::time::Instant::now();
        let e = eval(&probs, &labels, &spec(1000));
        eprintln!(
            "{n} rows, 1000 resamples: {:.3} s (AUC interval {:?}..{:?})",
            t.elapsed().as_secs_f64(),
            metric(&e, "roc_auc").low,
            metric(&e, "roc_auc").high
        );
    }
}
