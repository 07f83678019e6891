//! FedProx: a site's local training from the round's global weights with the proximal term
//! μ/2 ‖w − w_global‖² stays nearer the global weights than without it, and nearer still
//! with a larger μ.

use airlock_model::{Description, Params, rng};
use airlock_schemas::{MlpSpec, ModelSpec, TaskSpec};
use airlock_trainer::{FitInput, fit};
use burn::backend::{Autodiff, Flex};
use rand::Rng;

fn input(initial: Params, mu: Option<f64>) -> FitInput {
    let model = ModelSpec::Mlp(MlpSpec {
        hidden: vec![16],
        dropout: 0.0,
    });
    let description = Description::new(&model, &TaskSpec::Binary, 6).expect("description");
    let mut r = rng(3, 9);
    let mut rows = |n: usize| {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let row: Vec<f32> = (0..6).map(|_| r.random_range(-1.0..1.0)).collect();
            y.push(f32::from(u8::from(row[0] - row[1] > 0.0)));
            x.extend(row);
        }
        (x, y)
    };
    let (x_train, y_train) = rows(600);
    let (x_val, y_val) = rows(100);
    FitInput {
        description,
        x_train,
        y_train,
        x_val,
        y_val,
        learning_rate: 0.01,
        weight_decay: 0.0,
        epochs: 3,
        batch_size: 32,
        seed: 4,
        dp: None,
        initial: Some(initial),
        proximal_mu: mu,
        hosts: None,
    }
}

fn distance(a: &Params, b: &Params) -> f64 {
    a.tensors
        .iter()
        .zip(&b.tensors)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(p, q)| f64::from(p - q).powi(2)))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn the_proximal_term_keeps_local_training_near_the_global_model() {
    let model = ModelSpec::Mlp(MlpSpec {
        hidden: vec![16],
        dropout: 0.0,
    });
    let d = Description::new(&model, &TaskSpec::Binary, 6).expect("description");
    let global = d.init(&mut rng(11, 1));
    let run = |mu| {
        fit::<Autodiff<Flex>>(&input(global.clone(), mu), &[Default::default()], &mut ())
            .expect("fit")
            .params
    };
    let free = distance(&run(None), &global);
    let near = distance(&run(Some(1.0)), &global);
    let nearer = distance(&run(Some(10.0)), &global);
    assert!(free > 0.1, "plain local training should move: {free}");
    assert!(near < free, "μ = 1 moved {near}, plain {free}");
    assert!(nearer < 0.5 * near, "μ = 10 moved {nearer}, μ = 1 {near}");
}
