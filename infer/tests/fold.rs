//! The released model computes what the trained one did, for every family and task: the
//! description's folding (input statistics, batch norm, a regression's target scale) is
//! exact, checked through burn on random models and inputs.

use airlock_infer::{predict_outputs, to_net, to_net_pair};
use airlock_model::{Description, FeatureStats, Preprocess, rng};
use airlock_schemas::{CnnSpec, ConvBlock, ImageInput, MlpSpec, ModelSpec, TaskSpec};
use burn::backend::Flex;
use rand::Rng;

fn stats(n: usize, r: &mut rand_chacha::ChaCha8Rng) -> Vec<FeatureStats> {
    (0..n)
        .map(|i| FeatureStats {
            name: format!("f{i}"),
            mean: r.random_range(-3.0..3.0),
            std: r.random_range(0.2..4.0),
        })
        .collect()
}

/// Trained outputs on normalized inputs against released outputs on raw inputs (a
/// regression's put back in standardized units), the largest difference.
fn fold_gap(model: &ModelSpec, task: &TaskSpec, features: usize, seed: u64) -> f32 {
    fold_gap_with(model, task, features, seed, false)
}

/// [`fold_gap`]; with `dead`, the trained model first gets units no output depends on
/// (their outgoing weights zeroed, their incoming ones left as trained), which the fold's
/// [`Description::zero_dead_units`] must zero without changing an output.
fn fold_gap_with(
    model: &ModelSpec,
    task: &TaskSpec,
    features: usize,
    seed: u64,
    dead: bool,
) -> f32 {
    let d = Description::new(model, task, features).expect("description");
    let mut r = rng(seed, 9);
    let mut trained = d.init(&mut r);
    let mut planted = 0;
    if dead {
        let widths = d.dense_widths();
        let mut zero = |name: &str, keep: &dyn Fn(usize) -> bool| {
            let (_, v) = trained
                .tensors
                .iter_mut()
                .find(|(t, _)| t.name == name)
                .expect(name);
            v.iter_mut()
                .enumerate()
                .filter(|(i, _)| !keep(*i))
                .for_each(|(_, x)| *x = 0.0);
        };
        // Unit 3 of the last hidden dense layer: column 3 of the output layer.
        let last = widths.len() - 2;
        let w = widths[last];
        zero(&format!("layers.{last}.weight"), &|i| i % w != 3);
        planted += 1;
        if let [first, .., last_block] = d.conv() {
            // Channel 1 of the last block: its plane of the first dense layer's columns.
            let plane = widths[0] / last_block.channels;
            zero("layers.0.weight", &|i| (i % widths[0]) / plane != 1);
            // Channel 2 of the first block: input channel 2 of the second.
            let k2 = d.conv()[1].kernel * d.conv()[1].kernel;
            zero("conv.1.weight", &|i| (i / k2) % first.channels != 2);
            planted += 2;
        }
    }
    // Batch-norm statistics and affine parameters that are not the identity.
    for (decl, v) in &mut trained.tensors {
        if decl.name.ends_with("running_var") {
            v.iter_mut().for_each(|x| *x = r.random_range(0.1..3.0));
        } else if decl.name.contains(".norm.") {
            v.iter_mut().for_each(|x| *x = r.random_range(-1.0..1.0));
        }
    }
    let inputs = match d.input {
        airlock_model::InputKind::Features(n) => n,
        airlock_model::InputKind::Image(i) => i.channels,
    };
    let mut pre = Preprocess {
        features: stats(inputs, &mut r),
        target: None,
    };
    if matches!(task, TaskSpec::Regression) {
        pre.target = Some(FeatureStats {
            name: "target".into(),
            mean: 120.0,
            std: 35.0,
        });
    }
    let released = d.fold(&trained, &pre).expect("fold");
    assert_eq!(
        released.tensors.iter().map(|t| &t.0).collect::<Vec<_>>(),
        d.released().iter().collect::<Vec<_>>()
    );
    let rows = 16;
    let width = d.input_len();
    let plane = width / inputs;
    let raw: Vec<f32> = (0..rows * width)
        .map(|_| r.random_range(0.0..1.0))
        .collect();
    let normalized: Vec<f32> = raw
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = match d.input {
                airlock_model::InputKind::Features(n) => i % n,
                airlock_model::InputKind::Image(_) => (i % width) / plane,
            };
            let s = &pre.features[f];
            ((f64::from(x) - s.mean) / s.std) as f32
        })
        .collect();
    let dev = Default::default();
    let a = predict_outputs(
        &to_net::<Flex>(&d, &trained, false, &dev),
        &normalized,
        width,
        &dev,
    );
    let mut b = predict_outputs(
        &to_net::<Flex>(&d, &released, true, &dev),
        &raw,
        width,
        &dev,
    );
    // Folding in place (no copy of the trained tensors) releases the same tensors, keeps
    // beside them exactly what the trained model was, and the pair of networks built from
    // it (sharing the unchanged tensors) computes what the separate ones do, bit for bit.
    let mut folded = d.fold_owned(trained.clone(), &pre).expect("fold_owned");
    assert_eq!(folded.released, released);
    let zeroed: usize = d.zero_dead_units(&mut folded).iter().map(|(_, n)| n).sum();
    assert_eq!(zeroed, planted, "dead units zeroed");
    for (decl, v) in &trained.tensors {
        let kept = folded
            .trained_rest
            .get(&decl.name)
            .or_else(|| folded.released.get(&decl.name))
            .expect("every trained tensor is kept or released");
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(kept), bits(v), "{}", decl.name);
    }
    let (t, r) = to_net_pair::<Flex>(&d, folded, &dev);
    assert_eq!(predict_outputs(&t, &normalized, width, &dev), a);
    let zeroed_out = predict_outputs(&r, &raw, width, &dev);
    let moved = zeroed_out
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved <= 1e-6,
        "zeroing dead units moved an output by {moved}"
    );
    if let Some(t) = &pre.target {
        b.iter_mut()
            .for_each(|z| *z = ((f64::from(*z) - t.mean) / t.std) as f32);
    }
    assert_eq!(a.len(), rows * d.outputs());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cnn(padding: usize) -> ModelSpec {
    ModelSpec::Cnn(CnnSpec {
        input: ImageInput {
            channels: 3,
            height: 12,
            width: 12,
        },
        conv: vec![
            ConvBlock {
                channels: 4,
                kernel: 3,
                stride: 1,
                padding,
                pool: Some(2),
                batch_norm: true,
            },
            ConvBlock {
                channels: 5,
                kernel: 3,
                stride: 1,
                padding: 0,
                pool: None,
                batch_norm: true,
            },
        ],
        hidden: vec![7],
        dropout: 0.0,
    })
}

#[test]
fn folding_is_exact_for_every_family_and_task() {
    let mlp = ModelSpec::Mlp(MlpSpec {
        hidden: vec![16, 8],
        dropout: 0.0,
    });
    let classes = TaskSpec::Multiclass {
        classes: vec!["a".into(), "b".into(), "c".into()],
    };
    for (name, model, task) in [
        ("mlp binary", &mlp, TaskSpec::Binary),
        ("mlp multiclass", &mlp, classes.clone()),
        ("mlp regression", &mlp, TaskSpec::Regression),
        ("cnn binary, folded input", &cnn(0), TaskSpec::Binary),
        (
            "cnn multiclass, padded first block",
            &cnn(1),
            classes.clone(),
        ),
        ("cnn regression", &cnn(0), TaskSpec::Regression),
    ] {
        for seed in 0..3 {
            let gap = fold_gap(model, &task, 6, seed);
            assert!(gap < 1e-3, "{name} (seed {seed}): outputs differ by {gap}");
        }
    }
}

#[test]
fn a_padded_first_block_ships_its_input_statistics_as_declared_aggregates() {
    let d = Description::new(&cnn(1), &TaskSpec::Binary, 0).expect("description");
    let names: Vec<String> = d.released().into_iter().map(|t| t.name).collect();
    assert_eq!(names[..2], ["input.mean", "input.std"]);
    assert!(names.iter().all(|n| !n.contains(".norm.")), "{names:?}");
    let d = Description::new(&cnn(0), &TaskSpec::Binary, 0).expect("description");
    assert!(d.released().iter().all(|t| !t.name.starts_with("input.")));
}

#[test]
fn units_no_output_depends_on_ship_as_zeros_and_change_no_output() {
    let mlp = ModelSpec::Mlp(MlpSpec {
        hidden: vec![16, 8],
        dropout: 0.0,
    });
    for (name, model) in [("mlp", &mlp), ("cnn", &cnn(0)), ("cnn padded", &cnn(1))] {
        for seed in 0..2 {
            let gap = fold_gap_with(model, &TaskSpec::Binary, 6, seed, true);
            assert!(gap < 1e-3, "{name} (seed {seed}): outputs differ by {gap}");
        }
    }
}
