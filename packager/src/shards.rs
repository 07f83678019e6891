//! Per-shard SHA-256 digests, computed and checked on every core.

use std::sync::atomic::{AtomicUsize, Ordering};

use airlock_schemas::ShardDigests;
use sha2::{Digest, Sha256};

/// Digest `bytes` in `shard_size` pieces on `threads` threads.
pub fn shard_digests(bytes: &[u8], shard_size: u64, threads: usize) -> ShardDigests {
    let size = usize::try_from(shard_size.max(1)).unwrap_or(usize::MAX);
    let shards: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(size).collect()
    };
    let digests = parallel_map(&shards, threads, |s| hex::encode(Sha256::digest(s)));
    ShardDigests {
        length: bytes.len() as u64,
        shard_size,
        sha256: digests,
    }
}

/// Indices of shards of `bytes` whose digest differs from `expected` (all of them, and
/// an extra `usize::MAX`, when the length or shard count differs).
pub fn check_shards(bytes: &[u8], expected: &ShardDigests, threads: usize) -> Vec<usize> {
    let size = usize::try_from(expected.shard_size).unwrap_or(0);
    if size == 0
        || bytes.len() as u64 != expected.length
        || bytes.len().div_ceil(size).max(1) != expected.sha256.len()
    {
        return vec![usize::MAX];
    }
    let shards: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(size).collect()
    };
    let ok = parallel_map(&shards, threads, |s| hex::encode(Sha256::digest(s)));
    ok.iter()
        .zip(&expected.sha256)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect()
}

/// Map `f` over `items` on up to `threads` scoped threads, keeping order.
pub fn parallel_map<T: Sync, R: Send + Default + Clone>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut out = vec![R::default(); items.len()];
    let results: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (i, r) in results.into_iter().flatten() {
        out[i] = r;
    }
    out
}
