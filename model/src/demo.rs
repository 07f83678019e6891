//! Synthetic on-prem data: a card-transaction table that looks like what a bank may not
//! move. Every identifier is well-formed (cards pass Luhn, IBANs pass mod-97, SSNs use
//! issuable ranges) so that the packager's leak checks are tested against realistic values.
//! [`write_scans`] writes an image folder: synthetic grayscale scans with a learnable
//! finding and a manifest of synthetic patient identifiers.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use airlock_schemas::IoError;

mod scans;

pub use scans::{
    SCAN_CLASSES, SCAN_COLUMNS, SCAN_IDENTIFIERS, SCAN_IMAGE_DIR, SCAN_MANIFEST, SCAN_MRN_PATTERN,
    SCAN_ROWS, SCAN_SIDE, SCAN_SITES, SCAN_YEAR, ScanSummary, write_scans,
};

/// Column names of the demo table, in file order.
pub const DEMO_COLUMNS: [&str; 22] = [
    "transaction_id",
    "full_name",
    "email",
    "card_number",
    "ssn",
    "iban",
    "phone",
    "age",
    "zip",
    "amount",
    "merchant_category",
    "hour",
    "distance_from_home_km",
    "txn_count_24h",
    "amount_to_avg_ratio",
    "is_online",
    "is_foreign",
    "card_present",
    "account_age_days",
    "days_since_last_txn",
    "failed_pin_attempts",
    "fraud",
];

/// The demo table's identifier columns (direct and quasi-identifiers), as the shipped
/// pipeline lists them.
pub const DEMO_IDENTIFIERS: [&str; 8] = [
    "full_name",
    "email",
    "card_number",
    "ssn",
    "iban",
    "phone",
    "age",
    "zip",
];

/// The demo table's numeric feature columns, in the shipped pipeline's order.
pub const DEMO_FEATURES: [&str; 12] = [
    "amount",
    "merchant_category",
    "hour",
    "distance_from_home_km",
    "txn_count_24h",
    "amount_to_avg_ratio",
    "is_online",
    "is_foreign",
    "card_present",
    "account_age_days",
    "days_since_last_txn",
    "failed_pin_attempts",
];

const FIRST: [&str; 40] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Amelia",
    "Lukas",
    "Sofia",
    "Mateo",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Hannah",
    "Felix",
    "Clara",
    "Jonas",
    "Mia",
    "Elias",
    "Lea",
    "Ahmed",
    "Fatima",
    "Wei",
    "Yuki",
    "Priya",
];
const LAST: [&str; 40] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Muller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Nguyen",
    "Kim",
    "Patel",
    "Tanaka",
    "Kowalski",
];
const DOMAINS: [&str; 6] = [
    "example.com",
    "mail.example.org",
    "post.example.net",
    "inbox.example.com",
    "example.de",
    "example.co.uk",
];

/// Write `rows` synthetic transactions to `out` (CSV with a header), deterministically for
/// `seed`. Written to a temporary file beside `out` and renamed into place, so `out` is
/// either absent or complete.
pub fn write_demo_csv(out: &Path, rows: usize, seed: u64) -> Result<DemoSummary, IoError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    write_transactions(out, (0..rows).map(|i| Transaction::sample(&mut rng, i)))
}

/// What [`write_demo_csv`] wrote.
#[derive(Debug, Clone, Copy)]
pub struct DemoSummary {
    /// Data rows written.
    pub rows: usize,
    /// Rows labelled fraud.
    pub frauds: usize,
}

/// The demo federation's sites, each a bank whose customers transact differently: online
/// shoppers, in-store shoppers, travellers. Each site's data is skewed toward its own kind,
/// so a model trained at one site alone sees too little of the others.
pub const DEMO_SITES: [&str; 3] = ["online-bank", "retail-bank", "travel-bank"];

/// Write `rows` synthetic transactions of demo site `site` (an index into [`DEMO_SITES`]:
/// online purchases; domestic in-store purchases; in-store purchases abroad)
/// to `out`, deterministically for `seed`, as [`write_demo_csv`] writes them. Transaction
/// ids are distinct across sites.
pub fn write_demo_site_csv(
    out: &Path,
    rows: usize,
    seed: u64,
    site: usize,
) -> Result<DemoSummary, IoError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x51_7e00 + site as u64));
    let mut kept = Vec::with_capacity(rows);
    let mut i = 0usize;
    while kept.len() < rows {
        let t = Transaction::sample(&mut rng, (site + 1) * 10_000_000 + i);
        i += 1;
        let own = match site % DEMO_SITES.len() {
            0 => t.is_online,
            1 => t.card_present && !t.is_foreign,
            _ => t.is_foreign && !t.is_online,
        };
        let keep = if own { 0.97 } else { 0.03 };
        if rng.random::<f64>() < keep {
            kept.push(t);
        }
    }
    write_transactions(out, kept)
}

/// Write `rows` as CSV with a header to a temporary file beside `out`, renamed into place,
/// so `out` is either absent or complete.
fn write_transactions(
    out: &Path,
    rows: impl IntoIterator<Item = Transaction>,
) -> Result<DemoSummary, IoError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|source| IoError::new("create directory", dir, source))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|source| IoError::new("create a temporary file in", dir, source))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(tmp));
    w.write_record(DEMO_COLUMNS)
        .map_err(|e| IoError::new("write", out, e.into()))?;
    let (mut count, mut frauds) = (0usize, 0usize);
    for t in rows {
        count += 1;
        frauds += usize::from(t.fraud);
        w.write_record(t.fields())
            .map_err(|e| IoError::new("write", out, e.into()))?;
    }
    let buf = w
        .into_inner()
        .map_err(|e| IoError::new("write", out, e.into_error()))?;
    let tmp = buf
        .into_inner()
        .map_err(|e| IoError::new("write", out, e.into_error()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|source| IoError::new("sync", out, source))?;
    tmp.persist(out)
        .map_err(|e| IoError::new("rename into", out, e.error))?;
    Ok(DemoSummary {
        rows: count,
        frauds,
    })
}

struct Transaction {
    id: usize,
    full_name: String,
    email: String,
    card_number: String,
    ssn: String,
    iban: String,
    phone: String,
    age: u32,
    zip: String,
    amount: f64,
    merchant_category: u32,
    hour: u32,
    distance_km: f64,
    txn_count_24h: u32,
    amount_to_avg_ratio: f64,
    is_online: bool,
    is_foreign: bool,
    card_present: bool,
    account_age_days: u32,
    days_since_last_txn: f64,
    failed_pin_attempts: u32,
    fraud: bool,
}

impl Transaction {
    fn sample(rng: &mut ChaCha8Rng, id: usize) -> Self {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let email = format!(
            "{}.{}{}@{}",
            first.to_lowercase(),
            last.to_lowercase(),
            rng.random_range(1..1000),
            DOMAINS[rng.random_range(0..DOMAINS.len())]
        );
        let age = rng.random_range(18..91);
        let zip = format!("{:05}", rng.random_range(1001..99951));

        // A hidden risk factor: some transactions come from a compromised card, which
        // shifts many observable features at once (the pattern the model must learn).
        let compromised = rng.random::<f64>() < 0.12;
        let is_online = rng.random::<f64>() < if compromised { 0.75 } else { 0.35 };
        let card_present = !is_online && rng.random::<f64>() < 0.9;
        let is_foreign = rng.random::<f64>() < if compromised { 0.35 } else { 0.06 };
        let hour = if compromised && rng.random::<f64>() < 0.45 {
            rng.random_range(0..6)
        } else {
            ((12.0 + 4.5 * normal(rng)).round().rem_euclid(24.0)) as u32
        };
        let avg_amount = (3.6 + 0.6 * normal(rng)).exp();
        let ratio = if compromised {
            (0.9 + 0.9 * normal(rng)).exp()
        } else {
            (0.5 * normal(rng)).exp()
        };
        let amount = (avg_amount * ratio * 100.0).round() / 100.0;
        let distance_km = if compromised {
            (3.5 + 1.5 * normal(rng)).exp()
        } else {
            (1.5 + 1.0 * normal(rng)).exp()
        };
        let txn_count_24h = poisson(rng, if compromised { 5.0 } else { 2.0 });
        let merchant_category = if compromised && rng.random::<f64>() < 0.5 {
            // Electronics, gift cards, jewellery, travel: easy to resell.
            [5, 7, 11, 14][rng.random_range(0..4)]
        } else {
            rng.random_range(0..18)
        };
        let account_age_days = (365.0 * (1.0 + 1.2 * normal(rng)).exp()).min(20_000.0) as u32 + 1;
        let days_since_last_txn = (rng.random::<f64>().max(1e-9).ln() * -3.0 * 10.0).round() / 10.0;
        let failed_pin_attempts = if card_present {
            poisson(rng, if compromised { 0.9 } else { 0.08 })
        } else {
            0
        };

        // Fraud is likelier on compromised cards and on risky combinations, with noise:
        // the label is learnable but not a function of the features.
        let risky_merchant = matches!(merchant_category, 5 | 7 | 11 | 14);
        let logit = -4.4
            + if compromised { 3.4 } else { 0.0 }
            + 0.9 * (ratio.ln()).max(0.0)
            + if hour < 6 { 0.7 } else { 0.0 }
            + 0.35 * (distance_km.ln() - 2.0).max(0.0)
            + 0.12 * f64::from(txn_count_24h)
            + if is_online && is_foreign { 1.0 } else { 0.0 }
            + if risky_merchant && is_online {
                0.6
            } else {
                0.0
            }
            - 0.35 * (f64::from(account_age_days) / 365.0).ln().min(1.5)
            + 0.5 * f64::from(failed_pin_attempts)
            + 0.4 * normal(rng);
        let fraud = rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp());

        Self {
            id: 100_000 + id,
            full_name: format!("{first} {last}"),
            email,
            card_number: card_number(rng),
            ssn: ssn(rng),
            iban: iban(rng),
            phone: format!(
                "+1-{}{:02}-{}{:02}-{:04}",
                rng.random_range(2..10),
                rng.random_range(0..100),
                rng.random_range(2..10),
                rng.random_range(0..100),
                rng.random_range(0..10_000)
            ),
            age,
            zip,
            amount,
            merchant_category,
            hour,
            distance_km: (distance_km * 100.0).round() / 100.0,
            txn_count_24h,
            amount_to_avg_ratio: (ratio * 1000.0).round() / 1000.0,
            is_online,
            is_foreign,
            card_present,
            account_age_days,
            days_since_last_txn,
            failed_pin_attempts,
            fraud,
        }
    }

    fn fields(&self) -> [String; 22] {
        let b = |v: bool| if v { "1" } else { "0" }.to_owned();
        [
            self.id.to_string(),
            self.full_name.clone(),
            self.email.clone(),
            self.card_number.clone(),
            self.ssn.clone(),
            self.iban.clone(),
            self.phone.clone(),
            self.age.to_string(),
            self.zip.clone(),
            format!("{:.2}", self.amount),
            self.merchant_category.to_string(),
            self.hour.to_string(),
            format!("{:.2}", self.distance_km),
            self.txn_count_24h.to_string(),
            format!("{:.3}", self.amount_to_avg_ratio),
            b(self.is_online),
            b(self.is_foreign),
            b(self.card_present),
            self.account_age_days.to_string(),
            format!("{:.1}", self.days_since_last_txn),
            self.failed_pin_attempts.to_string(),
            b(self.fraud),
        ]
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; one of the pair is enough here.
    let u1 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    // Knuth's method: fine for the small rates used here.
    let l = (-lambda).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Luhn check digit for the digits of `payload`.
pub fn luhn_check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn card_number(rng: &mut ChaCha8Rng) -> String {
    let mut digits: Vec<u8> = if rng.random::<bool>() {
        vec![4]
    } else {
        vec![5, rng.random_range(1..6)]
    };
    while digits.len() < 15 {
        digits.push(rng.random_range(0..10));
    }
    digits.push(luhn_check_digit(&digits));
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fn ssn(rng: &mut ChaCha8Rng) -> String {
    let area = loop {
        let a = rng.random_range(1..900);
        if a != 666 {
            break a;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.random_range(1..100),
        rng.random_range(1..10_000)
    )
}

/// ISO 13616 mod-97 of an IBAN given without spaces (country, check digits, BBAN).
pub fn iban_mod97(iban: &str) -> u32 {
    let (head, tail) = iban.split_at(4.min(iban.len()));
    tail.chars().chain(head.chars()).fold(0u32, |acc, c| {
        let v = c.to_digit(36).unwrap_or(0);
        if v >= 10 {
            (acc * 100 + v) % 97
        } else {
            (acc * 10 + v) % 97
        }
    })
}

fn iban(rng: &mut ChaCha8Rng) -> String {
    let (country, bban) = if rng.random::<f64>() < 0.7 {
        let bban: String = (0..18)
            .map(|_| char::from(b'0' + rng.random_range(0..10)))
            .collect();
        ("DE", bban)
    } else {
        let bank: String = (0..4)
            .map(|_| char::from(b'A' + rng.random_range(0..26)))
            .collect();
        let digits: String = (0..14)
            .map(|_| char::from(b'0' + rng.random_range(0..10)))
            .collect();
        ("GB", format!("{bank}{digits}"))
    };
    let check = 98 - iban_mod97(&format!("{country}00{bban}"));
    format!("{country}{check:02}{bban}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luhn_valid(s: &str) -> bool {
        let d: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
        let (payload, check) = d.split_at(d.len() - 1);
        luhn_check_digit(payload) == check[0]
    }

    #[test]
    fn identifiers_are_well_formed() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..500 {
            let c = card_number(&mut rng);
            assert_eq!(c.len(), 16);
            assert!(luhn_valid(&c), "{c}");
            let i = iban(&mut rng);
            assert_eq!(iban_mod97(&i), 1, "{i}");
            let s = ssn(&mut rng);
            assert!(!s.starts_with("000") && !s.starts_with("666"));
        }
        // Known-good examples.
        assert!(luhn_valid("4111111111111111"));
        assert_eq!(iban_mod97("GB82WEST12345698765432"), 1);
        assert_eq!(iban_mod97("DE89370400440532013000"), 1);
    }

    #[test]
    fn fields_match_columns() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = Transaction::sample(&mut rng, 0);
        assert_eq!(t.fields().len(), DEMO_COLUMNS.len());
    }
}
