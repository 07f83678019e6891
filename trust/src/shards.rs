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
    let digests = parallel_map(&shards, threads, |s| sha256_hex(s));
    ShardDigests {
        length: bytes.len() as u64,
        shard_size,
        sha256: digests,
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Map `f` over `items` on up to `threads` scoped threads, keeping order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
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
        out[i] = Some(r);
    }
    out.into_iter().flatten().collect()
}

/// Bytes read and hashed per step: small enough to stay in the core's cache between the
/// copy from the page cache and the hash.
const PIECE: usize = 1 << 20;

/// Digest the file at `path` in `shard_size` shards on `threads` threads, streaming each
/// shard through a small per-thread buffer. Nothing like the whole file is ever held in
/// memory: fresh memory for a large file costs more in page faults than hashing it.
pub fn stream_shard_digests(
    path: &std::path::Path,
    shard_size: u64,
    threads: usize,
) -> std::io::Result<ShardDigests> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    stream_file_shard_digests(&file, len, shard_size, threads, 0).map(|(d, _)| d)
}

/// [`stream_shard_digests`] of the first `len` bytes of an open `file` (positional reads,
/// so the handle can be shared), also returning a copy of its first `head` bytes taken from
/// the very buffers that were hashed. A file shorter than `len` is an error.
fn stream_file_shard_digests(
    file: &std::fs::File,
    len: u64,
    shard_size: u64,
    threads: usize,
    head: u64,
) -> std::io::Result<(ShardDigests, Vec<u8>)> {
    use std::os::unix::fs::FileExt;
    let size = shard_size.max(1);
    let count = usize::try_from(len.div_ceil(size).max(1))
        .map_err(|_| std::io::Error::other("too many shards"))?;
    let shards: Vec<(u64, u64)> = (0..count as u64)
        .map(|i| (i * size, ((i + 1) * size).min(len)))
        .collect();
    let head = head.min(len);
    let results = parallel_map(
        &shards,
        threads,
        |&(start, end)| -> Result<(String, Vec<u8>), String> {
            let mut buf = vec![0u8; PIECE];
            let mut h = Sha256::new();
            let mut kept = Vec::new();
            let mut at = start;
            while at < end {
                let n = usize::try_from((end - at).min(PIECE as u64)).unwrap_or(PIECE);
                file.read_exact_at(&mut buf[..n], at)
                    .map_err(|e| e.to_string())?;
                h.update(&buf[..n]);
                if at < head {
                    let k = usize::try_from((head - at).min(n as u64)).unwrap_or(n);
                    kept.extend_from_slice(&buf[..k]);
                }
                at += n as u64;
            }
            Ok((hex::encode(h.finalize()), kept))
        },
    );
    let mut sha256 = Vec::with_capacity(count);
    let mut prefix = Vec::new();
    for r in results {
        let (d, kept) = r.map_err(std::io::Error::other)?;
        sha256.push(d);
        prefix.extend_from_slice(&kept);
    }
    Ok((
        ShardDigests {
            length: len,
            shard_size,
            sha256,
        },
        prefix,
    ))
}

/// Whole-file SHA-256 of the first `len` bytes of an open `file`, streamed with positional
/// reads (the handle can be shared with other readers). A file shorter than `len` is an
/// error.
fn stream_file_digest(file: &std::fs::File, len: u64) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; PIECE];
    let mut h = Sha256::new();
    let mut at = 0;
    while at < len {
        let n = usize::try_from((len - at).min(PIECE as u64)).unwrap_or(PIECE);
        file.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hex::encode(h.finalize()))
}

/// What [`stream_safetensors_digests`] computed of a safetensors file without keeping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedDigests {
    /// The shard digests (its `length` is the number of bytes digested).
    pub shards: ShardDigests,
    /// The whole-file SHA-256, when asked for.
    pub whole: Option<String>,
    /// The length prefix and header (see [`safetensors_prefix`]), copied from the buffers
    /// the shard digests were computed on: the strict header check runs on digested bytes.
    pub prefix: Vec<u8>,
}

/// Digest an open safetensors `file` in `shard_size` shards on `threads` threads by
/// streaming (nothing like the whole file is held: the speed of [`stream_shard_digests`]),
/// keeping only its length prefix and header. With `whole`, the whole-file SHA-256 is
/// computed at the same time on one of the threads. The file's length is taken once, when
/// this starts; a file that shrinks meanwhile is an error.
pub fn stream_safetensors_digests(
    file: &std::fs::File,
    shard_size: u64,
    threads: usize,
    whole: bool,
) -> std::io::Result<StreamedDigests> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    // How much of the start is the prefix: 8 bytes of header length, then the header,
    // capped at the strict reader's limit (a longer claim fails the header check anyway).
    let head = if len < 8 {
        len
    } else {
        let mut n = [0u8; 8];
        file.read_exact_at(&mut n, 0)?;
        let header = u64::from_le_bytes(n).min(airlock_safetensors::MAX_HEADER_SIZE as u64 + 1);
        header.saturating_add(8).min(len)
    };
    let ((shards, prefix), whole) = if !whole {
        (
            stream_file_shard_digests(file, len, shard_size, threads, head)?,
            None,
        )
    } else if threads < 2 {
        (
            stream_file_shard_digests(file, len, shard_size, 1, head)?,
            Some(stream_file_digest(file, len)?),
        )
    } else {
        std::thread::scope(|s| -> std::io::Result<_> {
            let w = s.spawn(|| stream_file_digest(file, len));
            let shards = stream_file_shard_digests(file, len, shard_size, threads - 1, head);
            let w = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            Ok((shards?, Some(w)))
        })?
    };
    Ok(StreamedDigests {
        shards,
        whole,
        prefix,
    })
}

/// Whole-file SHA-256 of `path`, streamed.
pub fn stream_digest(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; PIECE];
    let mut h = Sha256::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The first `8 + N` bytes of a safetensors file (its length prefix and header), with N
/// capped at the strict reader's limit, and the file's length.
pub fn read_safetensors_prefix(path: &std::path::Path) -> std::io::Result<(Vec<u8>, usize)> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| std::io::Error::other("file too large"))?;
    let mut n = [0u8; 8];
    if len < 8 {
        return Ok((std::fs::read(path)?, len));
    }
    file.read_exact_at(&mut n, 0)?;
    let header = u64::from_le_bytes(n).min(airlock_safetensors::MAX_HEADER_SIZE as u64 + 1);
    let want = usize::try_from(header)
        .unwrap_or(usize::MAX)
        .saturating_add(8)
        .min(len);
    let mut prefix = vec![0u8; want];
    file.read_exact_at(&mut prefix, 0)?;
    Ok((prefix, len))
}

/// Whole-file SHA-256 (for `sha256sum` users) and shard digests of `bytes`, computed at
/// the same time: the whole-file digest on one thread, the shards on the others.
pub fn whole_and_shard_digests(
    bytes: &[u8],
    shard_size: u64,
    threads: usize,
) -> (String, ShardDigests) {
    if threads < 2 {
        return (sha256_hex(bytes), shard_digests(bytes, shard_size, 1));
    }
    std::thread::scope(|s| {
        let whole = s.spawn(|| sha256_hex(bytes));
        let shards = shard_digests(bytes, shard_size, threads - 1);
        (
            whole
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            shards,
        )
    })
}

/// [`whole_and_shard_digests`] for a file, streamed: the whole-file digest on one thread
/// while the others digest the shards.
pub fn stream_whole_and_shard_digests(
    path: &std::path::Path,
    shard_size: u64,
    threads: usize,
) -> std::io::Result<(String, ShardDigests)> {
    if threads < 2 {
        return Ok((
            stream_digest(path)?,
            stream_shard_digests(path, shard_size, 1)?,
        ));
    }
    std::thread::scope(|s| {
        let whole = s.spawn(|| stream_digest(path));
        let shards = stream_shard_digests(path, shard_size, threads - 1)?;
        Ok((
            whole
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))?,
            shards,
        ))
    })
}

/// Read the whole of `file` into memory and digest it in `shard_size` shards on `threads`
/// threads, in one pass: each thread reads its shard piece by piece into the buffer and
/// hashes each piece while it is still in the core's cache. Returns the bytes that were
/// digested, so that nothing needs to read the file again. Exactly `len` bytes are read
/// (the length seen when the file was opened); a file that shrinks meanwhile is an error.
pub fn read_with_shard_digests(
    file: &std::fs::File,
    shard_size: u64,
    threads: usize,
) -> std::io::Result<(Vec<u8>, ShardDigests)> {
    use std::os::unix::fs::FileExt;
    use std::sync::Mutex;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| std::io::Error::other("file too large"))?;
    let size = usize::try_from(shard_size.max(1)).unwrap_or(usize::MAX);
    // Zeroed memory from the allocator is mapped lazily: the pages are touched for the
    // first time by the threads that read into them, in parallel.
    let mut buf = vec![0u8; len];
    let sha256 = {
        let shards: Vec<(u64, Mutex<&mut [u8]>)> = if len == 0 {
            vec![(0, Mutex::new(&mut buf[..]))]
        } else {
            buf.chunks_mut(size)
                .enumerate()
                .map(|(i, c)| ((i * size) as u64, Mutex::new(c)))
                .collect()
        };
        let results = parallel_map(
            &shards,
            threads,
            |(start, shard)| -> Result<String, String> {
                let mut shard = shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut h = Sha256::new();
                let mut at = *start;
                for piece in shard.chunks_mut(PIECE) {
                    file.read_exact_at(piece, at).map_err(|e| e.to_string())?;
                    h.update(&*piece);
                    at += piece.len() as u64;
                }
                Ok(hex::encode(h.finalize()))
            },
        );
        results
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?
    };
    Ok((
        buf,
        ShardDigests {
            length: len as u64,
            shard_size,
            sha256,
        },
    ))
}

/// The length prefix and header of in-memory safetensors bytes (see
/// [`read_safetensors_prefix`]): the first `8 + N` bytes, N capped at the strict reader's
/// limit.
pub fn safetensors_prefix(bytes: &[u8]) -> &[u8] {
    let Some(n) = bytes.get(..8) else {
        return bytes;
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(n);
    let header = u64::from_le_bytes(le).min(airlock_safetensors::MAX_HEADER_SIZE as u64 + 1);
    let want = usize::try_from(header)
        .unwrap_or(usize::MAX)
        .saturating_add(8)
        .min(bytes.len());
    &bytes[..want]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_and_digesting_in_one_pass_gives_the_bytes_and_the_same_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [0usize, 1, 4095, 4096, 4097, 3 * PIECE + 17] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &bytes).expect("write");
            for (shard, threads) in [(4096u64, 1usize), (4096, 4), (PIECE as u64 * 2, 3)] {
                let f = std::fs::File::open(&p).expect("open");
                let (got, d) = read_with_shard_digests(&f, shard, threads).expect("read");
                assert_eq!(got, bytes, "{len} {shard} {threads}");
                assert_eq!(
                    d,
                    shard_digests(&bytes, shard, 1),
                    "{len} {shard} {threads}"
                );
                assert_eq!(d, stream_shard_digests(&p, shard, threads).expect("stream"));
            }
        }
    }

    #[test]
    fn streamed_safetensors_digests_equal_the_one_pass_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Header lengths: none (too short), small, and one that claims more than the file.
        let mut files: Vec<Vec<u8>> = vec![Vec::new(), vec![7u8; 5]];
        for (header, len) in [(2u64, 3 * PIECE + 17), (5000, 9000), (u64::MAX, 100)] {
            let mut b: Vec<u8> = (0..len).map(|i| (i * 13 + i / 253) as u8).collect();
            b[..8].copy_from_slice(&header.to_le_bytes());
            files.push(b);
        }
        for (i, bytes) in files.iter().enumerate() {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, bytes).expect("write");
            let f = std::fs::File::open(&p).expect("open");
            for (shard, threads) in [(4096u64, 1usize), (4096, 2), (4096, 4), (1 << 21, 3)] {
                for whole in [false, true] {
                    let s = stream_safetensors_digests(&f, shard, threads, whole).expect("stream");
                    let (_, d) = read_with_shard_digests(&f, shard, threads).expect("read");
                    assert_eq!(s.shards, d, "{i} {shard} {threads}");
                    assert_eq!(s.prefix, safetensors_prefix(bytes), "{i} {shard} {threads}");
                    assert_eq!(s.whole, whole.then(|| sha256_hex(bytes)));
                }
            }
        }
    }
}
