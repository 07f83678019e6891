//! L1 PII patterns against realistic identifiers (the trainer's demo data) and against the
//! technical text that model artifacts are full of.

use airlock_leak::pii::{PiiHit, PiiKind, find_pii, find_pii_in_bytes, printable_runs};
use airlock_model::demo::{iban_mod97, luhn_check_digit, write_demo_csv};

/// Tiny deterministic generator: tests must not depend on a random crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn hits_of(text: &str) -> Vec<(PiiKind, String)> {
    find_pii(text.as_bytes())
        .into_iter()
        .map(|h| (h.kind, text[h.range].to_owned()))
        .collect()
}

#[test]
fn every_demo_identifier_is_found_with_its_kind_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("demo.csv");
    write_demo_csv(&path, 2000, 11).expect("write demo csv");
    let text = std::fs::read(&path).expect("read demo csv");

    let kinds = [
        ("email", PiiKind::Email),
        ("card_number", PiiKind::CardNumber),
        ("ssn", PiiKind::Ssn),
        ("iban", PiiKind::Iban),
        ("phone", PiiKind::Phone),
    ];
    let mut lines = text.split(|&b| b == b'\n');
    let header: Vec<&[u8]> = lines
        .next()
        .expect("header")
        .split(|&b| b == b',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name.as_bytes())
            .expect("column present")
    };
    let wanted: Vec<(usize, PiiKind)> = kinds.iter().map(|&(n, k)| (col(n), k)).collect();

    let mut expected = Vec::new();
    let mut offset = header.iter().map(|h| h.len() + 1).sum::<usize>();
    let mut rows = 0;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        rows += 1;
        let mut cell_start = offset;
        for (i, cell) in line.split(|&b| b == b',').enumerate() {
            if let Some(&(_, kind)) = wanted.iter().find(|(c, _)| *c == i) {
                expected.push(PiiHit {
                    kind,
                    range: cell_start..cell_start + cell.len(),
                });
                // The cell on its own is found too.
                let alone = find_pii(cell);
                assert_eq!(
                    alone,
                    vec![PiiHit {
                        kind,
                        range: 0..cell.len()
                    }],
                    "row {rows} column {i}"
                );
            }
            cell_start += cell.len() + 1;
        }
        offset += line.len() + 1;
    }
    assert_eq!(rows, 2000);
    expected.sort_by_key(|h| (h.range.start, h.range.end, h.kind));
    let found = find_pii(&text);
    assert_eq!(found.len(), expected.len());
    assert_eq!(found, expected);
}

#[test]
fn identifiers_carved_from_binary_bytes_are_found() {
    let mut rng = XorShift(0x1234_5678);
    let mut bytes: Vec<u8> = (0..4096).map(|_| (rng.next() >> 56) as u8).collect();
    let plants: [(&[u8], PiiKind); 3] = [
        (b"\x00ssn 123-45-6789\x00", PiiKind::Ssn),
        (b"\xffbob.smith@example.com\x01", PiiKind::Email),
        (b"\x00iban DE89370400440532013000\x00", PiiKind::Iban),
    ];
    let mut at = 100;
    let mut expected = Vec::new();
    for (plant, kind) in plants {
        bytes[at..at + plant.len()].copy_from_slice(plant);
        let start = plant
            .iter()
            .position(|&b| b.is_ascii_alphanumeric())
            .expect("text");
        let start = match kind {
            PiiKind::Email => start,
            _ => {
                start
                    + plant[start..]
                        .iter()
                        .position(|&b| b == b' ')
                        .expect("space")
                    + 1
            }
        };
        let end = plant.len() - 1;
        expected.push((kind, at + start..at + end));
        at += 1000;
    }
    let found: Vec<(PiiKind, std::ops::Range<usize>)> = find_pii_in_bytes(&bytes)
        .into_iter()
        .map(|h| (h.kind, h.range))
        .collect();
    for e in &expected {
        assert!(found.contains(e), "missing {e:?} in {found:?}");
    }
    // Every reported range lies in a printable run of at least 8 bytes.
    let runs = printable_runs(&bytes, 8);
    for (_, r) in &found {
        assert!(
            runs.iter()
                .any(|run| run.start <= r.start && r.end <= run.end)
        );
    }
}

#[test]
fn generated_cards_and_ibans_in_all_printed_forms() {
    let mut rng = XorShift(99);
    for _ in 0..500 {
        let mut d: Vec<u8> = vec![4];
        while d.len() < 15 {
            d.push((rng.next() % 10) as u8);
        }
        d.push(luhn_check_digit(&d));
        let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
        if s.bytes().all(|b| b == s.as_bytes()[0]) {
            continue;
        }
        let spaced = format!("{} {} {} {}", &s[0..4], &s[4..8], &s[8..12], &s[12..16]);
        let dashed = spaced.replace(' ', "-");
        for form in [&s, &spaced, &dashed] {
            let text = format!("card: {form}, thanks");
            assert_eq!(hits_of(&text), vec![(PiiKind::CardNumber, form.clone())]);
        }

        let bban: String = (0..18)
            .map(|_| char::from(b'0' + (rng.next() % 10) as u8))
            .collect();
        let check = 98 - iban_mod97(&format!("DE00{bban}"));
        let iban = format!("DE{check:02}{bban}");
        let printed: Vec<String> = iban
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let printed = printed.join(" ");
        for form in [&iban, &printed] {
            let text = format!("IBAN {form}.");
            assert_eq!(hits_of(&text), vec![(PiiKind::Iban, form.clone())]);
        }
    }
}

/// Minimal standard base64 (no dependency needed for a test fixture).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn no_false_alarms_on_floats_digests_base64_dates_and_versions() {
    let mut rng = XorShift(0xDEAD_BEEF);
    let mut text = String::new();
    for i in 0..50_000 {
        let v = rng.normal() * 10f64.powi((rng.next() % 7) as i32 - 3);
        let f = v as f32;
        match i % 6 {
            0 => text.push_str(&format!("{v}, ")),
            1 => text.push_str(&format!("{f:?} ")),
            2 => text.push_str(&format!("{v:.17}\n")),
            3 => text.push_str(&format!("{v:e};")),
            4 => text.push_str(&format!("[{f}, {:.9}]", f * 3.0)),
            _ => text.push_str(&format!("{:+.6} ", v)),
        }
    }
    assert_eq!(hits_of(&text), vec![], "floats");

    let mut text = String::new();
    for i in 0..5_000u64 {
        let digest: String = (0..4).map(|_| format!("{:016x}", rng.next())).collect();
        text.push_str(&digest);
        text.push(' ');
        text.push_str(&digest[..32].to_uppercase());
        text.push(' ');
        text.push_str(&format!("sha256:{digest} {}\n", &digest[..40]));
        let secs = 1_700_000_000 + i * 7919;
        let (d, s) = (secs / 86_400, secs % 86_400);
        text.push_str(&format!(
            "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z 2026-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+01:00 {secs}000\n",
            1 + d % 12,
            1 + d % 28,
            s / 3600,
            s / 60 % 60,
            s % 60,
            1 + d % 12,
            1 + d % 28,
            s / 3600,
            s / 60 % 60,
            s % 60,
            rng.next() % 1_000_000,
        ));
        text.push_str(&format!(
            "v{}.{}.{} {}.{}.{}.{} ",
            i % 10,
            i % 37,
            i,
            i % 256,
            (i * 7) % 256,
            (i * 13) % 256,
            (i * 17) % 256
        ));
    }
    assert_eq!(hits_of(&text), vec![], "digests, dates, versions");

    let blob: Vec<u8> = (0..600_000).map(|_| (rng.next() >> 56) as u8).collect();
    let b64 = base64(&blob);
    assert_eq!(hits_of(&b64), vec![], "base64");
    // The raw bytes too, as a carving scan would see them.
    assert_eq!(find_pii_in_bytes(&blob), vec![], "random bytes");
}
