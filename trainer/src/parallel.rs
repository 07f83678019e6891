//! Data-parallel training: one thread per device, each with a replica of the model,
//! gradients summed with burn-collective's all-reduce (see [`crate::training::fit`]).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Mutex;

use burn::collective::{CollectiveConfig, finish_collective, register, reset_collective};
use burn::module::Module;

use airlock_infer::Net;

use crate::TrainError;
use crate::training::{FitInput, FitOutput, Peer, Progress, collective_error, train_replica};

/// burn's collective server is one per process and backend: one data-parallel run at a
/// time (tests train concurrently in one process).
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Train `model`'s replicas on `devices` (two or more), the first leading.
pub(crate) fn data_parallel<B: crate::adam::TrainBackend>(
    input: &FitInput,
    model: Net<B>,
    devices: &[B::Device],
    progress: &mut dyn Progress,
) -> Result<FitOutput, TrainError> {
    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let count = devices.len();
    // Replicas are forks of one module: the same weights and the same parameter ids, in
    // which order the all-reduce visits gradients.
    let replicas: Vec<Net<B>> = devices.iter().map(|d| model.clone().fork(d)).collect();
    drop(model);
    let mut replicas = replicas.into_iter();
    let lead_model = replicas.next().expect("at least two devices");
    std::thread::scope(|scope| {
        let workers: Vec<_> = replicas
            .zip(devices.iter().enumerate().skip(1))
            .map(|(replica, (index, device))| {
                let peer = Peer { index, count };
                scope.spawn(move || run_peer(input, replica, device, peer, &mut ()))
            })
            .collect();
        let lead = run_peer(
            input,
            lead_model,
            &devices[0],
            Peer { index: 0, count },
            progress,
        );
        let mut failure = None;
        for w in workers {
            match w.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(panic) => resume_unwind(panic),
            }
        }
        match (lead, failure) {
            (Ok(Some(out)), None) => Ok(out),
            (Err(e), _) | (Ok(_), Some(e)) => Err(e),
            (Ok(None), None) => unreachable!("peer 0 leads"),
        }
    })
}

/// One replica from registration to the end of training. A replica that panics resets
/// the collective, so that the others return an error instead of waiting for it forever;
/// its panic then reaches the caller.
fn run_peer<B: crate::adam::TrainBackend>(
    input: &FitInput,
    model: Net<B>,
    device: &B::Device,
    peer: Peer,
    progress: &mut dyn Progress,
) -> Result<Option<FitOutput>, TrainError> {
    let config = CollectiveConfig::default().with_num_devices(peer.count);
    let id = burn::collective::PeerId::from(peer.index);
    let run = catch_unwind(AssertUnwindSafe(|| {
        register::<B::InnerBackend>(id, device.clone(), config)
            .map_err(|e| collective_error(peer, e))?;
        let out = train_replica(input, model, device, Some(peer), progress)?;
        finish_collective::<B::InnerBackend>(id).map_err(|e| collective_error(peer, e))?;
        Ok(out)
    }));
    match run {
        Ok(Ok(out)) => Ok(out),
        // The others may be waiting for this replica in an all-reduce: wake them (they
        // return an error too, unless they failed the same way already).
        Ok(Err(e)) => {
            reset_collective::<B::InnerBackend>();
            Err(e)
        }
        Err(panic) => {
            reset_collective::<B::InnerBackend>();
            resume_unwind(panic)
        }
    }
}
