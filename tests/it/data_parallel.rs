//! Training across hosts (a multi-host SageMaker job): two hosts on 127.0.0.1, each
//! its share of every batch, gradients summed over TCP before every step.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use airlock_trainer::{HostGroup, TrainOptions, train_pipeline};

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

fn group(port: u16, rank: usize) -> HostGroup {
    HostGroup {
        addresses: vec![
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ],
        rank,
        timeout: Duration::from_secs(30),
    }
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
}

#[test]
fn a_host_that_is_alone_or_of_another_run_is_refused() {
    let sb = Sandbox::new();
    let data = sb.demo_data(600, 6);
    let p = sb.pipeline("p.toml", &data, &[("epochs = 12", "epochs = 2")]);
    let other = sb.pipeline("q.toml", &data, &[("epochs = 12", "epochs = 3")]);
    // Alone: the first host gives up at its deadline, with a reason, and writes nothing.
    let mut g = group(free_port(), 0);
    g.timeout = Duration::from_millis(500);
    let e = train_pipeline(&options(&p, sb.join("alone"), Some(g))).expect_err("alone");
    assert!(e.to_string().contains("did not join"), "{e}");
    assert!(!sb.join("alone").exists());
    // A host training another run (3 epochs, not 2) is refused by the first.
    let port = free_port();
    let first = {
        let p = p.clone();
        let out = sb.join("a");
        std::thread::spawn(move || train_pipeline(&options(&p, out, Some(group(port, 0)))))
    };
    let second = train_pipeline(&options(&other, sb.join("b"), Some(group(port, 1))));
    assert!(first.join().expect("join").is_err());
    assert!(second.is_err());
}
