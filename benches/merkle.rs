//! `make bench`: the audit log's RFC 9162 Merkle tree (issue 20).
//!
//! For logs of 10^3, 10^5 and 10^6 entries (JSON lines of about 400 bytes, like audit
//! entries):
//!
//! 1. building the tree: hashing every line into its leaf and pushing the leaves
//!    (`Tree::from_leaves`), then the root (`Tree::root`);
//! 2. inclusion proofs of random leaves in the whole tree: their size (hashes, raw bytes,
//!    and the JSON `InclusionProof` with its signed checkpoint) and the time to verify one
//!    (`leaf_hash` of the line and `verify_inclusion`), median and p99; and the same with
//!    the checkpoint's signature checked too (`merkle::open`), as a verifier offline does;
//! 3. consistency proofs between random pairs of sizes: size and verify time;
//! 4. the checkpoint: signing (`Checkpoint::sign`) and opening (`merkle::open`, Ed25519).
//!
//! The aim: verifying an inclusion proof takes under 1 ms at 10^6 entries.
//!
//! Usage: cargo bench --profile dev --bench merkle [-- SIZES...] (default 1000 100000 1000000)

use std::time::Instant;

use airlock_schemas::InclusionProof;
use airlock_trust::keys::{Signer, generate};
use airlock_trust::merkle::{
    self, Checkpoint, Hash, Tree, from_hex, leaf_hash, to_hex, verify_consistency, verify_inclusion,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Proofs (inclusion, consistency) timed per size.
const PROOFS: usize = 1000;
/// Checkpoint signatures checked.
const OPENS: usize = 1000;
/// Bytes per log line, about.
const LINE: usize = 400;

/// Log line `i` (seq `i + 1`): a JSON object of about [`LINE`] bytes, all lines different.
fn line(i: u64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (a, b, c, d) = (mix(i), mix(i ^ 1 << 62), mix(i ^ 2 << 62), mix(i ^ 3 << 62));
    out.clear();
    let _ = write!(
        out,
        "{{\"seq\":{},\"time\":\"2026-12-05T10:{:02}:{:02}Z\",\"action\":\"approve\",\
         \"actor\":\"officer-{}\",\"release\":\"fraud-detector@1.{}.0\",\
         \"sha256\":\"{a:016x}{b:016x}{c:016x}{d:016x}\",\"prev\":\"{d:016x}{c:016x}{b:016x}{a:016x}\",\
         \"note\":\"",
        i + 1,
        (i / 60) % 60,
        i % 60,
        a % 7,
        i % 1000,
    );
    while out.len() < LINE - 2 {
        out.push(b'a' + (out.len() % 26) as u8);
    }
    out.extend_from_slice(b"\"}");
}

/// Median and p99 of durations in seconds, in µs.
fn quantiles(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    let q = |p: f64| {
        t.get(((t.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |v| v * 1e6)
    };
    (q(0.5), q(0.99))
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

fn main() -> Res<()> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![1_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let dir = tempfile::tempdir()?;
    let key = generate(&dir.path().join("log"))?;
    let signer = Signer::load(&key.private_key)?;
    let keys = vec![(signer.key_id().to_owned(), signer.verifying_key())];
    let origin = "airlock.audit/audit.log";
    let mut rng = ChaCha8Rng::seed_from_u64(20);

    println!("issue 20: the audit log's Merkle tree (RFC 9162), {PROOFS} random proofs per size");
    println!(
        "  {:>9} {:>8} {:>9} | {:<58} | {:<31}",
        "", "", "", "inclusion proof of a random leaf", "consistency proof, random sizes"
    );
    println!(
        "  {:>9} {:>8} {:>9} | {:>6} {:>6} {:>6} {:>8} {:>8} {:>9} {:>9} | {:>6} {:>6} {:>8} {:>8}",
        "entries",
        "lines MB",
        "build ms",
        "hashes",
        "bytes",
        "JSON B",
        "p50 µs",
        "p99 µs",
        "+sig p50",
        "+sig p99",
        "hashes",
        "bytes",
        "p50 µs",
        "p99 µs"
    );
    let mut buf = Vec::with_capacity(LINE + 64);
    for &n in &sizes {
        // The log's lines, then the tree over them (leaf hashing included) and its root.
        let mut text = Vec::with_capacity(n as usize * LINE);
        let mut ends = Vec::with_capacity(n as usize);
        for i in 0..n {
            line(i, &mut buf);
            text.extend_from_slice(&buf);
            ends.push(text.len());
        }
        let entry = |i: u64| {
            let i = i as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &text[start..ends[i]]
        };
        let ((tree, root), build) = time(|| {
            let tree = Tree::from_leaves((0..n).map(|i| leaf_hash(entry(i))));
            let root = tree.root();
            (tree, root)
        });
        let checkpoint = Checkpoint {
            origin: origin.into(),
            size: n,
            root,
            extensions: vec!["time 2026-12-05T10:00:00Z".into()],
        }
        .sign(&signer);

        // Inclusion proofs of random leaves in the whole tree.
        let (mut hashes, mut json, mut plain, mut signed) = (0, 0, Vec::new(), Vec::new());
        for _ in 0..PROOFS {
            let i = rng.random_range(0..n);
            let proof = tree.inclusion_proof(i, n).ok_or("no inclusion proof")?;
            let doc = serde_json::to_string(&InclusionProof {
                seq: i + 1,
                entry: String::from_utf8(entry(i).to_vec())?,
                tree_size: n,
                hashes: proof.iter().map(to_hex).collect(),
                checkpoint: checkpoint.clone(),
            })?;
            hashes += proof.len();
            json += doc.len();
            let (ok, t) = time(|| verify_inclusion(&leaf_hash(entry(i)), i, n, &proof, &root));
            ok?;
            plain.push(t);
            // As a verifier offline: the JSON, the checkpoint's signature, then the path.
            let (ok, t) = time(|| -> Res<()> {
                let p: InclusionProof = serde_json::from_str(&doc)?;
                let c = merkle::open(&p.checkpoint, &keys)?.checkpoint;
                let path = p
                    .hashes
                    .iter()
                    .map(|h| from_hex(h))
                    .collect::<Result<Vec<Hash>, _>>()?;
                verify_inclusion(
                    &leaf_hash(p.entry.as_bytes()),
                    p.seq - 1,
                    c.size,
                    &path,
                    &c.root,
                )?;
                Ok(())
            });
            ok?;
            signed.push(t);
        }
        let (ip50, ip99) = quantiles(plain);
        let (sp50, sp99) = quantiles(signed);
        let mean_hashes = hashes as f64 / PROOFS as f64;

        // Consistency proofs between random pairs of sizes.
        let (mut chashes, mut ctimes) = (0, Vec::new());
        for _ in 0..PROOFS {
            let new = rng.random_range(2..=n.max(2)).min(n);
            let old = rng.random_range(1..new.max(2)).min(new);
            let proof = tree
                .consistency_proof(old, new)
                .ok_or("no consistency proof")?;
            let old_root = tree.root_at(old).ok_or("no root")?;
            let new_root = tree.root_at(new).ok_or("no root")?;
            chashes += proof.len();
            let (ok, t) = time(|| verify_consistency(old, new, &proof, &old_root, &new_root));
            ok?;
            ctimes.push(t);
        }
        let (cp50, cp99) = quantiles(ctimes);
        let mean_chashes = chashes as f64 / PROOFS as f64;

        println!(
            "  {n:>9} {:>8.1} {:>9.1} | {:>6.1} {:>6.0} {:>6.0} {:>8.2} {:>8.2} {:>9.1} {:>9.1} | {:>6.1} {:>6.0} {:>8.2} {:>8.2}",
            text.len() as f64 / 1e6,
            build * 1e3,
            mean_hashes,
            mean_hashes * 32.0,
            json as f64 / PROOFS as f64,
            ip50,
            ip99,
            sp50,
            sp99,
            mean_chashes,
            mean_chashes * 32.0,
            cp50,
            cp99,
        );
    }

    // The checkpoint: signing and opening (Ed25519, the key hash, strict parsing).
    let c = Checkpoint {
        origin: origin.into(),
        size: 1_000_000,
        root: leaf_hash(b"root"),
        extensions: vec!["time 2026-12-05T10:00:00Z".into()],
    };
    let (mut sign, mut open) = (Vec::new(), Vec::new());
    let mut note = String::new();
    for _ in 0..OPENS {
        let (s, t) = time(|| c.sign(&signer));
        sign.push(t);
        note = s;
        let (ok, t) = time(|| merkle::open(&note, &keys));
        ok?;
        open.push(t);
    }
    let (s50, s99) = quantiles(sign);
    let (o50, o99) = quantiles(open);
    println!(
        "  checkpoint ({} bytes): sign p50 {s50:.1} µs p99 {s99:.1} µs; open (Ed25519 verify) p50 {o50:.1} µs p99 {o99:.1} µs",
        note.len()
    );
    println!(
        "  (mean hashes and raw bytes per proof; JSON B: the InclusionProof with its line and signed checkpoint;\n   \
         p50/p99: leaf hash + RFC 9162 path; +sig: JSON parse, checkpoint signature, hex, leaf hash, path)"
    );
    Ok(())
}
