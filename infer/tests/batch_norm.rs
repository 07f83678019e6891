//! airlock's training batch norm ([`airlock_infer::batch_norm`]) computes what burn's
//! `BatchNorm` does in training: the same outputs, gradients and running statistics.

use airlock_infer::batch_norm;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor, TensorData};

/// A batch norm over `c` channels with the given affine parameters and running stats.
fn norm<B: AutodiffBackend>(values: &[Vec<f32>; 4], device: &B::Device) -> BatchNorm<B> {
    let t = |v: &Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v.clone(), [v.len()]), device);
    BatchNorm {
        gamma: Param::from_tensor(t(&values[0])),
        beta: Param::from_tensor(t(&values[1])),
        running_mean: RunningState::new(t(&values[2])),
        running_var: RunningState::new(t(&values[3])),
        momentum: 0.1,
        epsilon: 1e-5,
    }
}

fn host<B: burn::prelude::Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 values")
}

fn max_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Outputs, input gradient, gamma and beta gradients, running mean and variance after
/// two training steps (the second uses the running stats the first updated).
fn run<B: AutodiffBackend>(ours: bool, x: &[Tensor<B, 4>; 2], n: &BatchNorm<B>) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for x in x {
        let x = x.clone().require_grad();
        let y = if ours {
            batch_norm(n, x.clone())
        } else {
            n.forward(x.clone())
        };
        // A loss whose gradient differs per element.
        let weights = Tensor::<B, 4>::ones(y.dims(), &y.device()).cumsum(3);
        let grads = (y.clone() * weights).sum().backward();
        out.push(host(y));
        out.push(host(x.grad(&grads).expect("input gradient")));
        out.push(host(n.gamma.val().grad(&grads).expect("gamma gradient")));
        out.push(host(n.beta.val().grad(&grads).expect("beta gradient")));
    }
    out.push(host(n.running_mean.value()));
    out.push(host(n.running_var.value()));
    out
}

fn check<B: AutodiffBackend>(device: &B::Device) {
    let c = 5;
    let values = [
        (0..c).map(|i| 0.5 + 0.3 * i as f32).collect(),
        (0..c).map(|i| -0.2 * i as f32).collect(),
        (0..c).map(|i| 0.1 * i as f32).collect(),
        (0..c).map(|i| 1.0 + 0.5 * i as f32).collect(),
    ];
    let x: [Tensor<B, 4>; 2] = std::array::from_fn(|k| {
        Tensor::<B, 4>::random([3, c, 6, 7], Distribution::Normal(k as f64, 2.0), device)
    });
    let reference = run(false, &x, &norm::<B>(&values, device));
    let ours = run(true, &x, &norm::<B>(&values, device));
    let names = ["output", "input grad", "gamma grad", "beta grad"];
    for (i, (r, o)) in reference.iter().zip(&ours).enumerate() {
        let name = names
            .get(i % 4)
            .filter(|_| i < 8)
            .copied()
            .unwrap_or("running stats");
        let scale = r.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let gap = max_gap(r, o);
        assert!(
            gap <= 1e-5 * scale,
            "{name} (#{i}) differs by {gap} (scale {scale})"
        );
    }
    // The running statistics moved (the comparison above is not of two untouched states).
    assert!(max_gap(&ours[8], &values[2]) > 1e-3);
}

#[test]
fn matches_burn_batch_norm_on_flex() {
    check::<Autodiff<Flex>>(&Default::default());
}

#[test]
fn matches_burn_batch_norm_on_ndarray() {
    check::<Autodiff<NdArray>>(&Default::default());
}

#[test]
fn evaluation_is_burn_batch_norm() {
    let device = Default::default();
    let values = [
        vec![1.5, 0.5],
        vec![0.1, -0.3],
        vec![0.2, -1.0],
        vec![2.0, 0.5],
    ];
    let n = norm::<Autodiff<Flex>>(&values, &device);
    let x = Tensor::<Flex, 4>::random([2, 2, 3, 3], Distribution::Default, &device);
    let valid = burn::module::AutodiffModule::valid(&n);
    assert_eq!(host(batch_norm(&valid, x.clone())), host(valid.forward(x)));
}
