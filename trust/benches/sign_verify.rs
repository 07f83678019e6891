//! `make bench`: sign and verify throughput of a large model file next to
//! `openssl dgst -sha256` on the same file, in the same run.
//!
//! Sign = stream the file through the whole-file SHA-256 (the statement subject) and per-shard digests,
//! DSSE-sign the statement. Verify, as `verify` does it for the model with
//! `ModelBytes::DigestOnly` (`airlock verify`, `review`, `approve`, the gate, `pull`): stream
//! the file through every shard digest on every core, parse the digested header strictly,
//! check the DSSE signature. Verify with `ModelBytes::Keep` (`serve`, `publish`, which use the
//! verified bytes): the same, reading the file once into memory and keeping it. Usage: cargo bench -p airlock-packager --bench sign_verify [-- SIZE_MIB]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use airlock_safetensors::{Dtype, OwnedTensor, is_canonical_len, parse_header, write_canonical};
use airlock_trust::shards::{
    read_with_shard_digests, safetensors_prefix, stream_safetensors_digests,
    stream_whole_and_shard_digests,
};
use airlock_trust::{dsse, keys};

const SHARD: u64 = 16 * 1024 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(Ok(1024), |s| s.parse())?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");

    // A synthetic model: 8 f32 tensors of pseudo-random weights, canonical layout.
    let per = mib * 1024 * 1024 / 8 / 4;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let tensors: Vec<OwnedTensor> = (0..8)
        .map(|i| {
            let data: Vec<u8> = (0..per)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (((x >> 40) as f32 / 16_777_216.0 - 0.5) * 0.1).to_le_bytes()
                })
                .collect();
            OwnedTensor {
                name: format!("layers.{i}.weight"),
                dtype: Dtype::F32,
                shape: vec![per],
                data,
            }
        })
        .collect();
    std::fs::write(&path, write_canonical(&tensors, &BTreeMap::new())?)?;
    drop(tensors);
    let size = std::fs::metadata(&path)?.len() as f64;
    let gbs = |secs: f64| size / secs / 1e9;
    println!(
        "model file: {:.0} MiB, {threads} threads, shard size {} MiB",
        size / 1048576.0,
        SHARD >> 20
    );

    let key = keys::generate(&dir.path().join("builder"))?;
    let signer = keys::Signer::load(&key.private_key)?;
    let trusted = vec![(signer.key_id().to_owned(), signer.verifying_key())];

    let best = |f: &mut dyn FnMut() -> Result<(), Box<dyn std::error::Error>>| -> Result<f64, Box<dyn std::error::Error>> {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };

    let openssl = best(&mut || {
        let out = Command::new("openssl")
            .arg("dgst")
            .arg("-sha256")
            .arg(&path)
            .output()?;
        if !out.status.success() {
            return Err("openssl dgst failed".into());
        }
        Ok(())
    })?;

    let mut statement = Vec::new();
    let sign = best(&mut || {
        let (whole, shards) = stream_whole_and_shard_digests(&path, SHARD, threads)?;
        statement = serde_json::to_vec(&serde_json::json!({"subject": whole, "shards": shards}))?;
        let _env = dsse::sign("application/vnd.in-toto+json", &statement, &signer);
        Ok(())
    })?;
    let env = dsse::sign("application/vnd.in-toto+json", &statement, &signer);
    let expected: serde_json::Value = serde_json::from_slice(&statement)?;
    let expected: airlock_schemas::ShardDigests =
        serde_json::from_value(expected["shards"].clone())?;

    let keep = best(&mut || {
        dsse::verify(&env, "application/vnd.in-toto+json", &trusted)?;
        let (bytes, got) = read_with_shard_digests(&std::fs::File::open(&path)?, SHARD, threads)?;
        if got != expected {
            return Err("shard digests differ".into());
        }
        let len = bytes.len();
        if !is_canonical_len(&parse_header(safetensors_prefix(&bytes), len)?, len) {
            return Err("not canonical".into());
        }
        Ok(())
    })?;
    let stream = best(&mut || {
        dsse::verify(&env, "application/vnd.in-toto+json", &trusted)?;
        let got = stream_safetensors_digests(&std::fs::File::open(&path)?, SHARD, threads, false)?;
        if got.shards != expected {
            return Err("shard digests differ".into());
        }
        let len = usize::try_from(got.shards.length)?;
        if !is_canonical_len(&parse_header(safetensors_prefix(&got.prefix), len)?, len) {
            return Err("not canonical".into());
        }
        Ok(())
    })?;

    println!(
        "openssl dgst -sha256 (one core)   {:>6.2} GB/s",
        gbs(openssl)
    );
    println!(
        "airlock sign                      {:>6.2} GB/s  ({:.2}x openssl)",
        gbs(sign),
        openssl / sign
    );
    println!(
        "airlock verify ({threads} threads)        {:>6.2} GB/s  ({:.2}x openssl)  DigestOnly: streamed, model not kept",
        gbs(stream),
        openssl / stream
    );
    println!(
        "  keeping the model (serve)       {:>6.2} GB/s  ({:.2}x openssl)  Keep: read once into memory",
        gbs(keep),
        openssl / keep
    );
    Ok(())
}
