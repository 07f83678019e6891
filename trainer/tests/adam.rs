//! The trainer's in-place Adam against burn's: the same weights and moments to the bit.

use airlock_trainer::{AdamSettings, TrainerAdam};
use burn::backend::{Flex, NdArray};
use burn::optim::SimpleOptimizer;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};

fn random(rng: &mut rand::rngs::StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn bits<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<u32> {
    t.to_data()
        .to_vec::<f32>()
        .expect("f32")
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// Five steps of both optimizers from the same weights and gradients; every step's
/// weights and moments must be bit-identical.
fn same_steps<B: Backend>(weight_decay: Option<f32>) {
    let device = Default::default();
    let settings = AdamSettings {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay,
    };
    let ours = TrainerAdam::new(settings, true);
    let burns = settings.burn_config().build();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let shape = [33, 17];
    let start = random(&mut rng, 33 * 17, 1.0);
    let tensor = |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, shape), &device);
    let (mut a, mut b) = (tensor(start.clone()), tensor(start));
    let (mut sa, mut sb) = (None, None);
    for step in 1..=5 {
        // Gradients of all magnitudes, zeros included.
        let mut g = random(&mut rng, 33 * 17, 10f32.powi(step - 3));
        g[step as usize] = 0.0;
        let lr = 1e-3 * f64::from(step);
        let (na, nsa) = SimpleOptimizer::<B>::step(&ours, lr, a, tensor(g.clone()), sa);
        let (nb, nsb) = SimpleOptimizer::<B>::step(&burns, lr, b, tensor(g), sb);
        assert_eq!(bits(&na), bits(&nb), "weights after step {step}");
        let (ma, mb) = (
            nsa.as_ref().expect("state").momentum.clone(),
            nsb.as_ref().expect("state").momentum.clone(),
        );
        assert_eq!(ma.time, mb.time);
        assert_eq!(
            bits(&ma.moment_1),
            bits(&mb.moment_1),
            "m after step {step}"
        );
        assert_eq!(
            bits(&ma.moment_2),
            bits(&mb.moment_2),
            "v after step {step}"
        );
        (a, b, sa, sb) = (na, nb, nsa, nsb);
    }
    // A control: a different rate gives different weights.
    let g = random(&mut rng, 33 * 17, 1.0);
    let (na, _) = SimpleOptimizer::<B>::step(&ours, 1e-2, a, tensor(g.clone()), sa);
    let (nb, _) = SimpleOptimizer::<B>::step(&burns, 1e-3, b, tensor(g), sb);
    assert_ne!(bits(&na), bits(&nb));
}

#[test]
fn in_place_adam_is_burns_adam_to_the_bit_on_flex() {
    same_steps::<Flex>(None);
    same_steps::<Flex>(Some(1e-4));
}

#[test]
fn in_place_adam_is_burns_adam_to_the_bit_on_ndarray() {
    same_steps::<NdArray>(None);
    same_steps::<NdArray>(Some(0.01));
}
