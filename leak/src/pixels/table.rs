//! The window table: open addressing over 64-bit slots, each holding a 24-bit fingerprint
//! of the window's hash, the kind of key (the pixels themselves or their canonical form in
//! one encoding) and the window's start, so that neither keys nor hashes are stored: a key
//! is recomputed from the training pixels when needed.

/// A free slot. Starts are below `u32::MAX` (checked at build), so no entry equals it.
const EMPTY: u64 = u64::MAX;

/// Fingerprint bits: the top of the hash, above the bits that pick the slot.
const FP_SHIFT: u32 = 40;

fn pack(hash: u64, kind: u8, start: u32) -> u64 {
    ((hash >> FP_SHIFT) << FP_SHIFT) | (u64::from(kind) << 32) | u64::from(start)
}

/// Distinct window keys and where they start.
pub(super) struct WindowTable {
    slots: Vec<u64>,
    mask: usize,
    len: usize,
}

impl WindowTable {
    /// A table that takes `n` entries without growing.
    pub(super) fn with_capacity(n: usize) -> Self {
        let cap = (n + n / 3 + 1).next_power_of_two().max(16);
        Self {
            slots: vec![EMPTY; cap],
            mask: cap - 1,
            len: 0,
        }
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.slots.len() * 8
    }

    /// Inserts the key of `(kind, start)`, whose hash is `hash`, unless an entry of the same
    /// kind already has the same key (`same(kind, other_start)` says whether it does).
    /// `rehash(kind, start)` gives an entry's hash when the table grows. Returns whether
    /// the entry was added.
    pub(super) fn insert(
        &mut self,
        hash: u64,
        kind: u8,
        start: u32,
        same: impl Fn(u8, u32) -> bool,
        rehash: impl Fn(u8, u32) -> u64,
    ) -> bool {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(&rehash);
        }
        let fp = hash >> FP_SHIFT;
        let mut s = hash as usize & self.mask;
        loop {
            let v = self.slots[s];
            if v == EMPTY {
                self.slots[s] = pack(hash, kind, start);
                self.len += 1;
                return true;
            }
            if v >> FP_SHIFT == fp && entry_kind(v) == kind && same(kind, v as u32) {
                return false;
            }
            s = (s + 1) & self.mask;
        }
    }

    fn grow(&mut self, rehash: &impl Fn(u8, u32) -> u64) {
        let old = std::mem::take(&mut self.slots);
        let cap = old.len() * 2;
        self.slots = vec![EMPTY; cap];
        self.mask = cap - 1;
        for v in old.into_iter().filter(|&v| v != EMPTY) {
            let (kind, start) = (entry_kind(v), v as u32);
            let h = rehash(kind, start);
            let mut s = h as usize & self.mask;
            while self.slots[s] != EMPTY {
                s = (s + 1) & self.mask;
            }
            self.slots[s] = pack(h, kind, start);
        }
    }

    /// Calls `f(start)` for every entry whose fingerprint matches `hash`: a superset of the
    /// entries whose key hashes to `hash`.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut f: impl FnMut(u32)) {
        let fp = hash >> FP_SHIFT;
        let mut s = hash as usize & self.mask;
        loop {
            let v = self.slots[s];
            if v == EMPTY {
                return;
            }
            if v >> FP_SHIFT == fp {
                f(v as u32);
            }
            s = (s + 1) & self.mask;
        }
    }

    /// Every entry as (kind, start).
    pub(super) fn entries(&self) -> impl Iterator<Item = (u8, u32)> + '_ {
        self.slots
            .iter()
            .filter(|&&v| v != EMPTY)
            .map(|&v| (entry_kind(v), v as u32))
    }
}

fn entry_kind(v: u64) -> u8 {
    ((v >> 32) & 0xFF) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_and_growth_keeps_every_entry() {
        // Keys: start % 1000, hashed badly on purpose so that fingerprints collide.
        let hash = |_: u8, start: u32| u64::from(start % 1000).wrapping_mul(0x9E37_79B9);
        let mut t = WindowTable::with_capacity(4);
        let mut added = 0;
        for start in 0..3000u32 {
            let key = start % 1000;
            if t.insert(hash(0, start), 0, start, |_, o| o % 1000 == key, hash) {
                added += 1;
            }
        }
        assert_eq!(added, 1000);
        assert_eq!(t.len(), 1000);
        assert_eq!(t.entries().count(), 1000);
        let mut seen = Vec::new();
        t.find(hash(0, 7), |s| seen.push(s));
        assert!(seen.contains(&7));
        // Another kind with the same key is a distinct entry.
        assert!(t.insert(hash(1, 7), 1, 7, |_, _| true, hash));
    }
}
