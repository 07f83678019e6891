//! Data-parallel training over two CPU devices takes the steps one device takes: the
//! gradients of the shares of every batch, summed by burn-collective's all-reduce, are
//! the whole batch's, up to the order of floating-point sums.
//!
//! Stated tolerance: after the whole run, every trained weight within 1e-3 of the
//! one-device run's, and every epoch's training loss and the final validation loss
//! within 0.5 % of it. A control (a different seed) lands far outside it, so the
//! comparison can fail.

use airlock_model::{Description, rng};
use airlock_schemas::{CnnSpec, ConvBlock, ImageInput, MlpSpec, ModelSpec, TaskSpec};
use airlock_trainer::{FitInput, FitOutput, fit};
use burn::backend::{Autodiff, Flex};
use rand::Rng;

const WEIGHT_TOLERANCE: f32 = 1e-3;
const LOSS_TOLERANCE: f64 = 0.005;

/// Rows whose label follows a noisy linear rule (binary) or its bucket (three classes).
fn data(rows: usize, width: usize, task: &TaskSpec, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed, 77);
    let mut rule = rng(99, 77);
    let w: Vec<f32> = (0..width).map(|_| rule.random_range(-1.0..1.0)).collect();
    let mut x = Vec::with_capacity(rows * width);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..width).map(|_| r.random_range(-1.0..1.0)).collect();
        let z: f32 =
            row.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + r.random_range(-0.3..0.3);
        y.push(match task {
            TaskSpec::Multiclass { .. } => f32::from(u8::from(z > -0.5) + u8::from(z > 0.5)),
            _ => f32::from(u8::from(z > 0.0)),
        });
        x.extend(row);
    }
    (x, y)
}

fn input(model: ModelSpec, task: TaskSpec, features: usize, train: usize) -> FitInput {
    let description = Description::new(&model, &task, features).expect("description");
    let width = description.input_len();
    let (x_train, y_train) = data(train, width, &task, 1);
    let (x_val, y_val) = data(300, width, &task, 2);
    FitInput {
        description,
        x_train,
        y_train,
        x_val,
        y_val,
        learning_rate: 0.003,
        weight_decay: 1e-4,
        epochs: 3,
        // 700 training rows in batches of 64: ten full batches and one of 60, split 30/30
        // across two devices.
        batch_size: 64,
        seed: 5,
        dp: None,
        initial: None,
        proximal_mu: None,
        hosts: None,
    }
}

fn train(input: &FitInput, devices: usize) -> FitOutput {
    fit::<Autodiff<Flex>>(input, &vec![Default::default(); devices], &mut ()).expect("fit")
}

fn largest_weight_gap(a: &FitOutput, b: &FitOutput) -> f32 {
    assert_eq!(a.params.tensors.len(), b.params.tensors.len());
    a.params
        .tensors
        .iter()
        .zip(&b.params.tensors)
        .flat_map(|((da, va), (db, vb))| {
            assert_eq!(da.name, db.name);
            va.iter().zip(vb).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0, f32::max)
}

fn final_validation_loss(out: &FitOutput) -> f64 {
    out.epochs.last().expect("an epoch").validation_loss
}

fn assert_same_training(one: &FitOutput, many: &FitOutput, what: &str) {
    assert_eq!(one.optimizer_step, many.optimizer_step, "{what}: steps");
    assert_eq!(one.epochs.len(), many.epochs.len());
    let gap = largest_weight_gap(one, many);
    assert!(gap < WEIGHT_TOLERANCE, "{what}: weights differ by {gap}");
    let (l1, l2) = (final_validation_loss(one), final_validation_loss(many));
    assert!(
        (l1 - l2).abs() <= LOSS_TOLERANCE * l1,
        "{what}: validation loss {l1} on one device, {l2} on several"
    );
    for (e1, e2) in one.epochs.iter().zip(&many.epochs) {
        assert!(
            (e1.train_loss - e2.train_loss).abs() <= LOSS_TOLERANCE * e1.train_loss,
            "{what}: epoch {} training loss {} vs {}",
            e1.epoch,
            e1.train_loss,
            e2.train_loss
        );
        assert_eq!(
            e1.train_accuracy.is_some(),
            e2.train_accuracy.is_some(),
            "{what}"
        );
    }
}

#[test]
fn two_cpu_devices_train_the_mlp_one_device_trains() {
    let model = ModelSpec::Mlp(MlpSpec {
        hidden: vec![32, 16],
        dropout: 0.1,
    });
    let run = input(model, TaskSpec::Binary, 12, 700);
    let one = train(&run, 1);
    let two = train(&run, 2);
    assert_same_training(&one, &two, "binary MLP");
    assert!(final_validation_loss(&one) < 0.6, "the model learned");

    // Control: another seed is far outside the tolerance.
    let other = train(&FitInput { seed: 6, ..run }, 1);
    assert!(largest_weight_gap(&one, &other) > 100.0 * WEIGHT_TOLERANCE);
}

#[test]
fn three_devices_and_a_last_batch_smaller_than_the_devices() {
    // 641 rows in batches of 64: the last batch has one row, so two of three devices
    // have an empty share and step with a zero-weighted row.
    let model = ModelSpec::Mlp(MlpSpec {
        hidden: vec![16],
        dropout: 0.0,
    });
    let run = input(model, TaskSpec::Binary, 12, 641);
    let one = train(&run, 1);
    let three = train(&run, 3);
    assert_same_training(&one, &three, "three devices");
}

#[test]
fn two_cpu_devices_train_a_multiclass_cnn_one_device_trains() {
    let model = ModelSpec::Cnn(CnnSpec {
        input: ImageInput {
            channels: 1,
            height: 6,
            width: 6,
        },
        conv: vec![ConvBlock {
            channels: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
            pool: Some(2),
            batch_norm: false,
        }],
        hidden: vec![8],
        dropout: 0.0,
    });
    let task = TaskSpec::Multiclass {
        classes: vec!["a".into(), "b".into(), "c".into()],
    };
    let run = input(model, task, 0, 700);
    let one = train(&run, 1);
    let two = train(&run, 2);
    assert_same_training(&one, &two, "multiclass CNN");
}

/// `[training] devices` through `airlock train`'s code path: the run says where it
/// trained, and the record lists the devices.
#[test]
fn a_pipeline_with_two_devices_records_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("transactions.csv");
    airlock_model::demo::write_demo_csv(&data, 1500, 7).expect("demo data");
    let shipped = include_str!("../../pipelines/fraud-detector.toml");
    let text = shipped
        .replacen("../data/transactions.csv", "transactions.csv", 1)
        .replacen("epochs = 12", "epochs = 1", 1)
        .replacen("device = \"cpu\"", "devices = [\"cpu\", \"cpu\"]", 1);
    let pipeline = dir.path().join("fraud-detector.toml");
    std::fs::write(&pipeline, text).expect("pipeline");
    let run = airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
        pipeline: pipeline.clone(),
        out: Some(dir.path().join("run")),
        device: None,
        cpu_backend: None,
        progress: false,
        hosts: None,
    })
    .expect("train on two devices");
    assert_eq!(run.record.backend.device, "cpu");
    assert_eq!(run.record.backend.devices, ["cpu", "cpu"]);
    let log = std::fs::read_to_string(run.run_dir.join("train.log")).expect("train.log");
    assert!(log.contains("on cpu + cpu"), "{log}");

    // `--device` overrides the list with one device, and the record says one.
    let one = airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
        pipeline,
        out: Some(dir.path().join("run-one")),
        device: Some("cpu".into()),
        cpu_backend: None,
        progress: false,
        hosts: None,
    })
    .expect("train on one device");
    assert!(one.record.backend.devices.is_empty());
}
