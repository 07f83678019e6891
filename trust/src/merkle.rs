//! RFC 9162 Merkle trees (the hashing of Certificate Transparency 2.0) and C2SP
//! `tlog-checkpoint` signed notes.
//!
//! - Leaves: `SHA-256(0x00 || entry)`; nodes: `SHA-256(0x01 || left || right)`; the root of
//!   `n` leaves splits at the largest power of two below `n` (RFC 9162 §2.1.1); the empty
//!   tree's root is `SHA-256("")`.
//! - Inclusion proofs (`PATH`, §2.1.3) and consistency proofs (`PROOF`, §2.1.4) are made
//!   from a [`Tree`] that keeps every complete subtree's root, so a proof costs O(log² n)
//!   hashes however long the log is, and verified with the RFC's own algorithms.
//! - A checkpoint (C2SP `tlog-checkpoint`) is the note `origin\nsize\nbase64(root)\n`
//!   plus extension lines, signed in the C2SP `signed-note` format: a blank line, then
//!   `— <key name> base64(key hash ‖ Ed25519 signature)` per signature, the key hash being
//!   the first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::keys::Signer;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (`n` ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// A Merkle tree over a log's leaves that keeps the root of every complete subtree
/// (`levels[k][i]` covers leaves `i·2^k .. (i+1)·2^k`): appending costs O(1) amortized,
/// any prefix's root and any proof O(log² n).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over these leaf hashes.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new();
        for l in leaves {
            t.push(l);
        }
        t
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut level = 0;
        let mut hash = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let len = self.levels[level].len();
            if len % 2 == 1 {
                return;
            }
            hash = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            level += 1;
        }
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.root_at(self.size()).unwrap_or_else(empty_root)
    }

    /// The root of the tree of the first `n` leaves (`None` past the end).
    pub fn root_at(&self, n: u64) -> Option<Hash> {
        match n {
            0 => Some(empty_root()),
            n if n <= self.size() => Some(self.subtree(0, n)),
            _ => None,
        }
    }

    /// `MTH(D[start:end])` for a range the RFC's recursion visits (`start` a multiple of
    /// the largest power of two not above `end - start`), inside the tree.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            return self.levels[level][(start >> level) as usize];
        }
        let k = split(n);
        node_hash(
            &self.subtree(start, start + k),
            &self.subtree(start + k, end),
        )
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves
    /// (RFC 9162 §2.1.3.1), nearest the leaf first. `None` if out of range.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.size() {
            return None;
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Some(proof)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// The consistency proof between the trees of the first `old` and the first `new`
    /// leaves (RFC 9162 §2.1.4.1). Empty when `old` is 0 or equals `new`; `None` if
    /// `old > new` or `new` is past the end.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        if old > new || new > self.size() {
            return None;
        }
        let mut proof = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Some(proof)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

/// Check that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), String> {
    if index >= size {
        return Err(format!("leaf {index} is not in a tree of {size} leaves"));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err("the inclusion proof is longer than the tree is deep".into());
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err("the inclusion proof is shorter than the tree is deep".into());
    }
    if &r != root {
        return Err(format!(
            "the inclusion proof of leaf {index} leads to root {}, not the checkpoint's {}",
            hex::encode(r),
            hex::encode(root)
        ));
    }
    Ok(())
}

/// Check that the tree of `old` leaves with root `old_root` is a prefix of the tree of
/// `new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), String> {
    if old > new {
        return Err(format!(
            "a tree of {new} leaves cannot extend one of {old}: the log was truncated"
        ));
    }
    if old == new || old == 0 {
        if !proof.is_empty() {
            return Err("a consistency proof from an empty or equal tree must be empty".into());
        }
        if old == new && old_root != new_root {
            return Err(format!(
                "two trees of {old} leaves with different roots: the log was forked or rewritten"
            ));
        }
        if old == 0 && *old_root != empty_root() {
            return Err("the root of an empty tree is SHA-256 of nothing".into());
        }
        return Ok(());
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err("the consistency proof is empty".into());
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err("the consistency proof is longer than the tree is deep".into());
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err("the consistency proof is shorter than the tree is deep".into());
    }
    if &fr != old_root || &sr != new_root {
        return Err(format!(
            "the tree of {new} leaves does not extend the tree of {old}: the log was forked or rewritten after it"
        ));
    }
    Ok(())
}

/// The longest checkpoint note read.
pub const MAX_CHECKPOINT_BYTES: usize = 16 * 1024;

/// A checkpoint: a log's origin, size and root, and extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (no whitespace, no `+`).
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root.
    pub root: Hash,
    /// Extension lines (non-empty, in order).
    pub extensions: Vec<String>,
}

/// A checkpoint whose signature held, and who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The key id (airlock's hex SHA-256 of the public key) whose signature held.
    pub keyid: String,
}

/// Whether `s` may be an origin or a key name: non-empty, no whitespace, no `+`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The four-byte key hash of an Ed25519 key named `name` (C2SP signed-note).
pub fn key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl Checkpoint {
    /// The note's text: `origin\nsize\nbase64(root)\n` and one line per extension.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// The signed note: the body, a blank line, and the signature of `signer` under the
    /// key name `name` (the origin, by airlock's convention).
    pub fn sign(&self, signer: &Signer) -> String {
        let body = self.body();
        let sig = signer.sign(body.as_bytes());
        let mut blob = key_hash(&self.origin, &signer.verifying_key()).to_vec();
        blob.extend_from_slice(&sig);
        format!(
            "{body}\n\u{2014} {} {}\n",
            self.origin,
            STANDARD.encode(blob)
        )
    }

    /// Parse a signed note's checkpoint strictly without checking any signature: for a
    /// note whose signature was checked before, or that this process signed.
    pub fn parse_note(note: &str) -> Result<Self, String> {
        if note.len() > MAX_CHECKPOINT_BYTES {
            return Err("the checkpoint is too large".into());
        }
        let (body, _) = note
            .split_once("\n\n")
            .ok_or("the checkpoint has no blank line before its signatures")?;
        Self::parse_body(&format!("{body}\n"))
    }

    /// Parse a signed note's body strictly (no signature checked): see [`open`].
    fn parse_body(body: &str) -> Result<Self, String> {
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or("the checkpoint's text does not end with a newline")?
            .split('\n')
            .collect();
        if lines.len() < 3 {
            return Err("a checkpoint has an origin, a size and a root hash line".into());
        }
        let origin = lines[0];
        if !valid_name(origin) {
            return Err(format!("origin {origin:?} is empty or has spaces or '+'"));
        }
        let size_line = lines[1];
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(format!("size {size_line:?} is not a decimal number"));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| format!("size {size_line:?} is too large"))?;
        let root: Hash = STANDARD
            .decode(lines[2])
            .ok()
            .and_then(|b| b.try_into().ok())
            .filter(|r: &Hash| STANDARD.encode(r) == lines[2])
            .ok_or_else(|| format!("root {:?} is not a base64 SHA-256 hash", lines[2]))?;
        let extensions: Vec<String> = lines[3..].iter().map(|l| (*l).to_owned()).collect();
        if extensions.iter().any(String::is_empty) {
            return Err("a checkpoint's extension lines are not empty".into());
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// Open a signed checkpoint note: parse it strictly and accept it only if it carries a
/// valid signature under the key name `origin` (its own origin) by one of `keys` (airlock
/// key id, key). Signatures by other keys are ignored, as the signed-note format asks.
pub fn open(note: &str, keys: &[(String, VerifyingKey)]) -> Result<SignedCheckpoint, String> {
    if note.len() > MAX_CHECKPOINT_BYTES {
        return Err(format!(
            "the checkpoint is {} bytes, more than {MAX_CHECKPOINT_BYTES}",
            note.len()
        ));
    }
    let (body, sigs) = note
        .split_once("\n\n")
        .ok_or("the checkpoint has no blank line before its signatures")?;
    let body = format!("{body}\n");
    let checkpoint = Checkpoint::parse_body(&body)?;
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or("the checkpoint's signature lines do not end with a newline")?;
    let mut found_line = false;
    for line in sigs.split('\n') {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| format!("signature line {line:?} does not start with '— '"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| format!("signature line {line:?} has no key name"))?;
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| format!("signature line {line:?} is not base64"))?;
        if !valid_name(name) || blob.len() < 5 {
            return Err(format!("signature line {line:?} is malformed"));
        }
        found_line = true;
        if name != checkpoint.origin || blob.len() != 4 + 64 {
            continue;
        }
        let sig = Signature::from_slice(&blob[4..]).map_err(|e| e.to_string())?;
        for (keyid, key) in keys {
            if key_hash(name, key) == blob[..4] && key.verify(body.as_bytes(), &sig).is_ok() {
                return Ok(SignedCheckpoint {
                    checkpoint,
                    keyid: keyid.clone(),
                });
            }
        }
    }
    if !found_line {
        return Err("the checkpoint carries no signature".into());
    }
    Err(format!(
        "no signature on the checkpoint of {} is by a key that may sign it",
        checkpoint.origin
    ))
}

/// Hex of a hash.
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

/// A hash from 64 lowercase hex digits.
pub fn from_hex(s: &str) -> Result<Hash, String> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("{s:?} is not 64 lowercase hex digits"));
    }
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).map_err(|e| e.to_string())?;
    Ok(h)
}

/// The extension line of an airlock checkpoint that says when it was signed
/// (`time <RFC 3339>`): the signing key must have been usable then.
pub const TIME_EXTENSION: &str = "time ";

impl Checkpoint {
    /// When it says it was signed (its `time` extension line), if it says.
    pub fn time(&self) -> Option<time::OffsetDateTime> {
        self.extensions.iter().find_map(|e| {
            let t = e.strip_prefix(TIME_EXTENSION)?;
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
    }
}

/// Open a checkpoint signed by a key of `role` in `trust` that was usable when it says it
/// signed (a checkpoint without a `time` line, or dated in the future, is refused).
pub fn open_trusted(
    note: &str,
    trust: &crate::Trust,
    role: airlock_schemas::KeyRole,
) -> Result<SignedCheckpoint, String> {
    let signed = open(note, &trust.keys_with_role(role))?;
    let t = signed
        .checkpoint
        .time()
        .ok_or("the checkpoint does not say when it was signed (no `time` line)")?;
    if t > time::OffsetDateTime::now_utc() + time::Duration::minutes(5) {
        return Err("the checkpoint is dated in the future".into());
    }
    trust
        .usable_key(&signed.keyid, role, t, t)
        .map_err(|why| format!("checkpoint: {why}"))?;
    Ok(signed)
}

/// Check an entry's inclusion proof offline: the checkpoint is signed by a usable key of
/// `role`, its size is the proof's, and the entry's leaf is at `seq - 1` of its tree.
/// Returns the entry (parsed strictly) and the checkpoint.
pub fn verify_entry_proof(
    p: &airlock_schemas::InclusionProof,
    trust: &crate::Trust,
    role: airlock_schemas::KeyRole,
) -> Result<(airlock_schemas::AuditEntry, SignedCheckpoint), String> {
    let signed = open_trusted(&p.checkpoint, trust, role)?;
    let c = &signed.checkpoint;
    if c.size != p.tree_size {
        return Err(format!(
            "the proof is for a tree of {} entries but its checkpoint is of {}",
            p.tree_size, c.size
        ));
    }
    let entry: airlock_schemas::AuditEntry = airlock_schemas::strict_json::from_str(&p.entry)
        .map_err(|e| format!("the proven entry is not an audit entry ({e})"))?;
    if entry.seq != p.seq || p.seq == 0 {
        return Err(format!(
            "the proven entry has seq {}, the proof says {}",
            entry.seq, p.seq
        ));
    }
    let hashes = p
        .hashes
        .iter()
        .map(|h| from_hex(h))
        .collect::<Result<Vec<Hash>, String>>()?;
    verify_inclusion(
        &leaf_hash(p.entry.as_bytes()),
        p.seq - 1,
        c.size,
        &hashes,
        &c.root,
    )
    .map_err(|e| format!("entry {} of {}: {e}", p.seq, c.origin))?;
    Ok((entry, signed))
}

/// Check a consistency proof offline against the newer tree's signed checkpoint; the
/// older root is the proof's word until compared with a checkpoint of that size.
pub fn verify_consistency_proof(
    p: &airlock_schemas::ConsistencyProof,
    trust: &crate::Trust,
    role: airlock_schemas::KeyRole,
) -> Result<SignedCheckpoint, String> {
    let signed = open_trusted(&p.checkpoint, trust, role)?;
    let c = &signed.checkpoint;
    if c.size != p.tree_size {
        return Err(format!(
            "the proof is to a tree of {} entries but its checkpoint is of {}",
            p.tree_size, c.size
        ));
    }
    let hashes = p
        .hashes
        .iter()
        .map(|h| from_hex(h))
        .collect::<Result<Vec<Hash>, String>>()?;
    verify_consistency(
        p.from_size,
        c.size,
        &hashes,
        &from_hex(&p.from_root)?,
        &c.root,
    )?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `MTH` straight from RFC 9162's recursive definition.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn data(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
    }

    #[test]
    fn roots_match_the_rfc_definition_at_every_size() {
        let d = data(70);
        let t = Tree::from_leaves(d.iter().map(|x| leaf_hash(x)));
        for n in 0..=70 {
            assert_eq!(t.root_at(n as u64).expect("test"), mth(&d[..n]), "size {n}");
        }
        assert_eq!(t.root_at(71), None);
        // The RFC 6962 / 9162 test vector: the empty tree.
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_a_wrong_one_does_not() {
        let d = data(33);
        let t = Tree::from_leaves(d.iter().map(|x| leaf_hash(x)));
        for n in 1..=33u64 {
            let root = t.root_at(n).expect("test");
            for i in 0..n {
                let p = t.inclusion_proof(i, n).expect("test");
                let leaf = t.leaf(i).expect("test");
                verify_inclusion(&leaf, i, n, &p, &root).expect("test");
                // Another leaf, another index, a cut or extended proof: refused.
                assert!(verify_inclusion(&leaf_hash(b"x"), i, n, &p, &root).is_err());
                if n > 1 {
                    assert!(verify_inclusion(&leaf, (i + 1) % n, n, &p, &root).is_err());
                    assert!(verify_inclusion(&leaf, i, n, &p[..p.len() - 1], &root).is_err());
                }
                let mut longer = p.clone();
                longer.push(root);
                assert!(verify_inclusion(&leaf, i, n, &longer, &root).is_err());
            }
            for m in 0..=n {
                let p = t.consistency_proof(m, n).expect("test");
                let old = t.root_at(m).expect("test");
                verify_consistency(m, n, &p, &old, &root).expect("test");
                if m > 0 && m < n {
                    let forked = t.root_at(m - 1).expect("test");
                    assert!(verify_consistency(m, n, &p, &forked, &root).is_err());
                    assert!(verify_consistency(m, n, &p[1..], &old, &root).is_err());
                }
            }
        }
        assert!(verify_consistency(5, 4, &[], &empty_root(), &empty_root()).is_err());
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_edits_and_other_keys() {
        let dir = tempfile::tempdir().expect("test");
        let k = crate::keys::generate(&dir.path().join("a")).expect("test");
        let signer = Signer::load(&k.private_key).expect("test");
        let other = crate::keys::generate(&dir.path().join("b")).expect("test");
        let other = Signer::load(&other.private_key).expect("test");
        let c = Checkpoint {
            origin: "airlock.audit/audit.log".into(),
            size: 42,
            root: leaf_hash(b"r"),
            extensions: vec!["time 2026-12-05T00:00:00Z".into()],
        };
        let note = c.sign(&signer);
        let keys = vec![(signer.key_id().to_owned(), signer.verifying_key())];
        let opened = open(&note, &keys).expect("test");
        assert_eq!(opened.checkpoint, c);
        assert!(note.starts_with("airlock.audit/audit.log\n42\n"));
        // Another key's signature, an edited size, a missing signature: refused.
        let others = vec![(other.key_id().to_owned(), other.verifying_key())];
        assert!(open(&note, &others).is_err());
        assert!(open(&note.replacen("\n42\n", "\n43\n", 1), &keys).is_err());
        assert!(open(&note.replacen("\n42\n", "\n042\n", 1), &keys).is_err());
        assert!(open(&c.body(), &keys).is_err());
        // A witness's cosignature beside it is ignored, not an error.
        let cosigned = format!("{note}\u{2014} witness.example AAAAAAAA\n");
        assert!(open(&cosigned, &keys).is_ok());
    }
}
