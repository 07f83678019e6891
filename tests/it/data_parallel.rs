//! Training across hosts (a multi-host SageMaker job): two hosts on 127.0.0.1, each
//! its share of every batch, gradients summed over TCP before every step.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use airlock_model::{Description, rng};
use airlock_schemas::{CnnSpec, ConvBlock, ImageInput, ModelSpec, TaskSpec};
use airlock_trainer::{FitInput, FitOutput, HostGroup, TrainOptions, fit, train_pipeline};
use burn::backend::{Autodiff, Flex};
use rand::Rng;

use crate::helpers::Sandbox;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port")
}

fn options(
    pipeline: &std::path::Path,
    out: std::path::PathBuf,
    hosts: Option<HostGroup>,
) -> TrainOptions {
    TrainOptions {
        pipeline: pipeline.to_owned(),
        out: Some(out),
        device: None,
        cpu_backend: None,
        progress: false,
        hosts,
    }
}

/// Host `rank` of `world` hosts on 127.0.0.1, the first listening on `port`.
fn group_of(port: u16, rank: usize, world: usize) -> HostGroup {
    HostGroup {
        addresses: (0..world)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], if i == 0 { port } else { 0 })))
            .collect(),
        rank,
        timeout: Duration::from_secs(30),
    }
}

fn group(port: u16, rank: usize) -> HostGroup {
    group_of(port, rank, 2)
}

#[test]
fn two_hosts_end_with_the_same_weights_and_learn_like_one() {
    let sb = Sandbox::new();
    let data = sb.demo_data(3000, 5);
    let p = sb.pipeline("p.toml", &data, &[("epochs = 12", "epochs = 4")]);
    let port = free_port();
    let runs: Vec<_> = (0..2)
        .map(|rank| {
            let (p, out) = (p.clone(), sb.join(&format!("host-{rank}")));
            std::thread::spawn(move || train_pipeline(&options(&p, out, Some(group(port, rank)))))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("join").expect("a host trains"))
        .collect();
    // The tensors (weights and Adam moments; the metadata holds the time).
    let ckpt = |dir: &str| crate::helpers::tensors(&sb.join(dir).join("checkpoint.safetensors"));
    let (a, b) = (ckpt("host-0"), ckpt("host-1"));
    assert!(
        !a.is_empty() && a == b,
        "the hosts' weights and moments are bit-identical"
    );
    let one = train_pipeline(&options(&p, sb.join("one"), None)).expect("one host");
    let last = |r: &airlock_trainer::RunSummary| {
        r.record
            .epochs
            .last()
            .map(|e| e.validation_loss)
            .expect("epochs")
    };
    let (two, single) = (last(&runs[0]), last(&one));
    assert!(
        (two - single).abs() < 0.02,
        "2 hosts: validation loss {two}, 1 host: {single}"
    );
    assert_eq!(runs[0].record.epochs.len(), 4);
    // Every host measured the same epochs; the record says how many hosts trained.
    for (e0, e1) in runs[0].record.epochs.iter().zip(&runs[1].record.epochs) {
        assert_eq!(e0.train_loss.to_bits(), e1.train_loss.to_bits());
        assert_eq!(e0.validation_loss.to_bits(), e1.validation_loss.to_bits());
    }
    assert_eq!(runs[0].record.backend.hosts, Some(2));
    assert_eq!(one.record.backend.hosts, None);
    let record = std::fs::read_to_string(one.run_dir.join(airlock_model::RECORD_FILE))
        .expect("the one-host record");
    assert!(
        !record.contains("\"hosts\""),
        "a one-host record is as before"
    );
    let log = std::fs::read_to_string(runs[1].run_dir.join("train.log")).expect("train.log");
    assert!(log.contains("host 2 of 2"), "{log}");
}

#[test]
fn a_host_that_is_alone_or_of_another_run_or_size_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(600, 6);
    let p = sb.pipeline("p.toml", &data, &[("epochs = 12", "epochs = 2")]);
    let other = sb.pipeline("q.toml", &data, &[("epochs = 12", "epochs = 3")]);
    // Alone: the first host gives up at its deadline, with a reason, and writes nothing.
    let mut g = group(free_port(), 0);
    g.timeout = Duration::from_millis(500);
    let e = train_pipeline(&options(&p, sb.join("alone"), Some(g))).expect_err("alone");
    assert!(e.to_string().contains("host 2 did not join"), "{e}");
    assert!(!sb.join("alone").exists());
    // A second host with no first one gives up too.
    let mut g = group(free_port(), 1);
    g.timeout = Duration::from_millis(500);
    let e = train_pipeline(&options(&p, sb.join("lost"), Some(g))).expect_err("no first");
    assert!(e.to_string().contains("cannot reach host 1"), "{e}");

    // A host training another run (3 epochs, not 2), or told of another number of
    // hosts, is refused by the first, and both say why, well before their timeouts.
    let cases = [
        (other.clone(), group(0, 1), "trains another run"),
        (
            p.clone(),
            group_of(0, 1, 3),
            "told of 3 hosts, this run has 2",
        ),
    ];
    for (theirs, mut their_group, why) in cases {
        let port = free_port();
        their_group.addresses[0].set_port(port);
        let started = Instant::now();
        let first = {
            let (p, out) = (p.clone(), sb.join(&format!("a-{port}")));
            std::thread::spawn(move || train_pipeline(&options(&p, out, Some(group(port, 0)))))
        };
        let second = train_pipeline(&options(&theirs, sb.join("b"), Some(their_group)));
        let first = first.join().expect("join").expect_err("the first refuses");
        let second = second.expect_err("the second is refused");
        assert!(first.to_string().contains(why), "{first}");
        assert!(
            second.to_string().contains("host 1 refused host 2")
                && second.to_string().contains(why),
            "{second}"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "nothing hangs");
    }
}

#[test]
fn hosts_refuse_dp_sgd_and_several_devices_before_training() {
    let sb = Sandbox::new();
    let data = sb.demo_data(600, 7);
    let dp = sb.pipeline(
        "dp.toml",
        &data,
        &[(
            "[leak]",
            "[privacy]\nmode = \"dp-sgd\"\ntarget_epsilon = 3.0\n\n[leak]",
        )],
    );
    let devices = sb.pipeline(
        "devices.toml",
        &data,
        &[("device = \"cpu\"", "devices = [\"cpu\", \"cpu\"]")],
    );
    for (p, why) in [(dp, "[privacy]"), (devices, "one device per host")] {
        // No second host exists: the refusal comes before any connection is tried.
        let e = train_pipeline(&options(&p, sb.join("out"), Some(group(free_port(), 0))))
            .expect_err("refused");
        assert!(e.is_bad_input() && e.to_string().contains(why), "{e}");
        assert!(!sb.join("out").exists());
    }
}

/// Rows whose label is a bucket of a noisy linear rule (three classes).
fn rows(n: usize, width: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (mut r, mut rule) = (rng(seed, 77), rng(99, 77));
    let w: Vec<f32> = (0..width).map(|_| rule.random_range(-1.0..1.0)).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let row: Vec<f32> = (0..width).map(|_| r.random_range(-1.0..1.0)).collect();
        let z: f32 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
        y.push(f32::from(u8::from(z > -0.5) + u8::from(z > 0.5)));
        x.extend(row);
    }
    (x, y)
}

fn bits(out: &FitOutput) -> Vec<u32> {
    let params = out.params.tensors.iter().flat_map(|(_, v)| v.iter());
    let moments = out
        .optimizer
        .iter()
        .flat_map(|(_, m)| m.exp_avg.iter().chain(&m.exp_avg_sq));
    params.chain(moments).map(|x| x.to_bits()).collect()
}

/// A CNN with batch norm, through `fit`: each host normalizes its share by its own
/// statistics, and the running statistics every host keeps are the first host's, so the
/// hosts validate alike and end bit-identical, running statistics included.
#[test]
fn hosts_training_a_batch_norm_cnn_end_bit_identical() {
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
            batch_norm: true,
        }],
        hidden: vec![8],
        dropout: 0.1,
    });
    let task = TaskSpec::Multiclass {
        classes: vec!["a".into(), "b".into(), "c".into()],
    };
    let description = Description::new(&model, &task, 0).expect("description");
    let width = description.input_len();
    let ((x_train, y_train), (x_val, y_val)) = (rows(301, width, 1), rows(120, width, 2));
    let input = FitInput {
        description,
        x_train,
        y_train,
        x_val,
        y_val,
        learning_rate: 0.003,
        weight_decay: 1e-4,
        epochs: 2,
        batch_size: 64,
        seed: 5,
        dp: None,
        initial: None,
        proximal_mu: None,
        hosts: None,
    };
    let port = free_port();
    let outs: Vec<FitOutput> = (0..2)
        .map(|rank| {
            let input = FitInput {
                hosts: Some(group(port, rank)),
                ..input.clone()
            };
            std::thread::spawn(move || {
                fit::<Autodiff<Flex>>(&input, &[Default::default()], &mut ())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("join").expect("a host trains"))
        .collect();
    assert_eq!(bits(&outs[0]), bits(&outs[1]), "bit-identical hosts");
    for (a, b) in outs[0].epochs.iter().zip(&outs[1].epochs) {
        assert_eq!(a.validation_loss.to_bits(), b.validation_loss.to_bits());
    }
    let one = fit::<Autodiff<Flex>>(&input, &[Default::default()], &mut ()).expect("one host");
    assert_eq!(one.optimizer_step, outs[0].optimizer_step);
    let (l1, l2) = (
        one.epochs[1].validation_loss,
        outs[0].epochs[1].validation_loss,
    );
    assert!((l1 - l2).abs() < 0.05 * l1, "1 host {l1}, 2 hosts {l2}");
}
