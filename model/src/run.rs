//! What a run directory holds, by name, and the seeded randomness a run is reproduced from.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// File name of the training record in a run directory.
pub const RECORD_FILE: &str = "training-record.json";
/// A DP-SGD run's noise secret (64 hex digits): it seeds the batch sampling and the noise.
/// It never leaves the premises (the packager reads it to replay training; nothing it
/// signs holds more than its SHA-256), and it is written readable by its owner only.
pub const DP_SECRET_FILE: &str = "dp-secret";
/// File name of the copy of the pipeline file a run was trained from.
pub const PIPELINE_SNAPSHOT_FILE: &str = "pipeline.toml";
/// File name of the human-readable log in a run directory.
pub const LOG_FILE: &str = "train.log";

/// The random stream the train/validation/holdout split is drawn from.
const STREAM_SPLIT: u64 = 0;

/// The ChaCha8 generator for `seed`, on its `stream`: each use of randomness in a run
/// (initial weights, the split, shuffling, dropout) has its own stream, so a run depends
/// on its seed alone.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// The row indices of the train, validation and holdout splits of `n` rows: a shuffle
/// seeded by the pipeline's seed, cut at `n_train` and `n_train + n_val`. The packager
/// calls this with the sizes in the training record to find the same members again.
pub fn split_rows(
    n: usize,
    n_train: usize,
    n_val: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng(seed, STREAM_SPLIT));
    let hold = idx.split_off(n_train.min(n) + n_val.min(n.saturating_sub(n_train)));
    let val = idx.split_off(n_train.min(n));
    (idx, val, hold)
}
