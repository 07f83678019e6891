//! L1: PII patterns in strings and in printable runs carved out of bytes.
//!
//! Hand-written scanners for the identifiers a bank or a hospital may not ship: e-mail
//! addresses, payment card numbers (Luhn), US social security numbers, IBANs (ISO 13616
//! mod 97), phone numbers, and the health identifiers of [`crate::health`]: NHS numbers
//! (mod 11), dates of birth (next to a birth keyword), UK postcodes and US ZIP+4 codes.
//! Every candidate is validated (checksum, issuable ranges, calendar, token boundaries) so
//! that the false-positive rate on the text found in model artifacts (version strings,
//! timestamps, digests, base64, printed floats) stays low: a leak check that cries wolf
//! gets switched off. A site adds its own medical record number formats as regular
//! expressions (`[leak] mrn_patterns`), through a [`PiiScanner`].
//!
//! The scanners work on bytes and only know ASCII: any other byte is a separator.

use std::ops::Range;

use crate::health;

/// The kinds of identifiers [`find_pii`] reports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PiiKind {
    /// `local@domain.tld`.
    Email,
    /// A Luhn-valid payment card number (13–19 digits).
    CardNumber,
    /// A US social security number in the dashed form `ddd-dd-dddd`.
    Ssn,
    /// An international bank account number that passes ISO 13616 mod 97.
    Iban,
    /// An international (`+` country code) or North American phone number.
    Phone,
    /// An NHS number (ten digits, mod-11 check digit), plain or grouped 3-3-4.
    NhsNumber,
    /// A plausible date of birth with a birth keyword near it.
    DateOfBirth,
    /// A UK postcode in the official format (`SW1A 1AA`).
    Postcode,
    /// A US ZIP+4 code (`12345-6789`).
    #[serde(rename = "zip-plus-4")]
    ZipPlus4,
    /// A match of one of the site's medical record number patterns.
    Mrn,
}

impl PiiKind {
    /// Stable kebab-case name, as serialized.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::CardNumber => "card-number",
            PiiKind::Ssn => "ssn",
            PiiKind::Iban => "iban",
            PiiKind::Phone => "phone",
            PiiKind::NhsNumber => "nhs-number",
            PiiKind::DateOfBirth => "date-of-birth",
            PiiKind::Postcode => "postcode",
            PiiKind::ZipPlus4 => "zip-plus-4",
            PiiKind::Mrn => "mrn",
        }
    }

    /// Every kind, in order.
    pub const ALL: [PiiKind; 10] = [
        PiiKind::Email,
        PiiKind::CardNumber,
        PiiKind::Ssn,
        PiiKind::Iban,
        PiiKind::Phone,
        PiiKind::NhsNumber,
        PiiKind::DateOfBirth,
        PiiKind::Postcode,
        PiiKind::ZipPlus4,
        PiiKind::Mrn,
    ];
}

/// One validated identifier: its kind and where it sits in the scanned bytes. The value
/// itself is deliberately not stored, so that a hit can be printed or logged safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiHit {
    /// What was found.
    pub kind: PiiKind,
    /// Byte range of the identifier in the scanned text.
    pub range: Range<usize>,
}

/// Validated PII in `text` (bytes, ASCII-oriented; non-ASCII bytes are separators), with
/// the built-in detectors only (no site MRN patterns: see [`PiiScanner`]).
///
/// Hits are sorted by start offset, then end offset, then kind. Every hit sits on token
/// boundaries: it is neither preceded nor followed by an ASCII alphanumeric byte.
pub fn find_pii(text: &[u8]) -> Vec<PiiHit> {
    let mut hits = builtin_hits(text);
    sort_hits(&mut hits);
    hits
}

fn sort_hits(hits: &mut [PiiHit]) {
    hits.sort_by_key(|h| (h.range.start, h.range.end, h.kind));
}

/// L1 as configured for a site: the built-in detectors of [`find_pii`] and the site's
/// medical record number patterns (`[leak] mrn_patterns`, validated by
/// [`airlock_schemas::PipelineSpec::mrn_regex`]). Reusable on any bytes: documents, tensors, requests.
///
/// `Debug` shows the compiled patterns, which are the site's formats, never data.
#[derive(Debug, Clone, Default)]
pub struct PiiScanner {
    mrn: Option<regex::bytes::Regex>,
    mrn_patterns: usize,
}

impl PiiScanner {
    /// The built-in detectors and the site's `mrn_patterns`; fails (and the caller
    /// refuses) when the patterns break the rules of [`airlock_schemas::PipelineSpec::mrn_regex`].
    pub fn new(mrn_patterns: &[String]) -> Result<Self, String> {
        Ok(Self {
            mrn: airlock_schemas::PipelineSpec::mrn_regex(mrn_patterns)?,
            mrn_patterns: mrn_patterns.len(),
        })
    }

    /// How many site MRN patterns this scanner holds.
    pub fn mrn_patterns(&self) -> usize {
        self.mrn_patterns
    }

    /// What this scanner looks for, for a leak report's parameters (kinds and how they are
    /// validated; the site's patterns are counted, not quoted).
    pub fn describe(&self) -> Vec<String> {
        let mut d: Vec<String> = [
            "email",
            "card-number (Luhn)",
            "ssn",
            "iban (mod 97)",
            "phone",
            "nhs-number (mod 11)",
            "date-of-birth (valid date near a birth keyword)",
            "postcode (UK format)",
            "zip-plus-4",
        ]
        .map(str::to_owned)
        .to_vec();
        if self.mrn_patterns > 0 {
            d.push(format!("mrn ({} site pattern(s))", self.mrn_patterns));
        }
        d
    }

    /// Validated PII in `text`, sorted like [`find_pii`]'s hits. A match of a site MRN
    /// pattern is a hit wherever it is (the patterns are refused if they match ordinary
    /// text), except an empty match, which no valid pattern makes.
    pub fn find(&self, text: &[u8]) -> Vec<PiiHit> {
        let mut hits = builtin_hits(text);
        if let Some(re) = &self.mrn {
            hits.extend(
                re.find_iter(text)
                    .filter(|m| !m.is_empty())
                    .map(|m| PiiHit {
                        kind: PiiKind::Mrn,
                        range: m.range(),
                    }),
            );
        }
        sort_hits(&mut hits);
        hits
    }

    /// [`Self::find_in_bytes`] on up to `threads` threads: `bytes` is cut into parts at
    /// bytes that are not printable (no run crosses one), each part scanned on its own
    /// thread, the hits put back in order: exactly [`Self::find_in_bytes`]'s hits.
    pub fn find_in_bytes_parallel(&self, bytes: &[u8], threads: usize) -> Vec<PiiHit> {
        let parts = threads.max(1);
        if parts == 1 || bytes.len() < (1 << 20) {
            return self.find_in_bytes(bytes);
        }
        let mut cuts = vec![0];
        for k in 1..parts {
            let nominal = (bytes.len() / parts * k).max(*cuts.last().unwrap_or(&0));
            let cut = bytes[nominal..]
                .iter()
                .position(|b| !(0x20..=0x7E).contains(b))
                .map_or(bytes.len(), |p| nominal + p);
            cuts.push(cut);
        }
        cuts.push(bytes.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = cuts
                .windows(2)
                .map(|w| {
                    let (start, end) = (w[0], w[1]);
                    s.spawn(move || {
                        let mut hits = self.find_in_bytes(&bytes[start..end]);
                        for h in &mut hits {
                            h.range = h.range.start + start..h.range.end + start;
                        }
                        hits
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }

    /// [`Self::find`] over every printable run of binary `bytes`, as
    /// [`find_pii_in_bytes`] does.
    pub fn find_in_bytes(&self, bytes: &[u8]) -> Vec<PiiHit> {
        let mut hits = Vec::new();
        for run in printable_runs(bytes, 8) {
            let base = run.start;
            let text = &bytes[run];
            hits.extend(
                self.find(text)
                    .into_iter()
                    .filter(|h| match h.kind {
                        PiiKind::Email => plausible_binary_email(&text[h.range.clone()]),
                        // A postcode is short and unchecked: in gigabytes of float32 it
                        // turns up by chance, in a run that is float data (see below).
                        PiiKind::Postcode => !float_exponent_stride(text),
                        _ => true,
                    })
                    .map(|h| PiiHit {
                        kind: h.kind,
                        range: h.range.start + base..h.range.end + base,
                    }),
            );
        }
        hits
    }
}

/// The built-in detectors' hits in `text`, unsorted.
fn builtin_hits(text: &[u8]) -> Vec<PiiHit> {
    let mut hits = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i < n {
        let b = text[i];
        let token_start = i == 0 || !text[i - 1].is_ascii_alphanumeric();
        let found = match b {
            b'@' => email_at(text, i).map(|r| (PiiKind::Email, r)),
            b'+' if token_start => intl_phone_at(text, i).map(|r| (PiiKind::Phone, r)),
            b'(' if token_start => nanp_paren_at(text, i).map(|r| (PiiKind::Phone, r)),
            b'A'..=b'Z' if token_start => iban_at(text, i)
                .map(|r| (PiiKind::Iban, r))
                .or_else(|| health::postcode_at(text, i).map(|r| (PiiKind::Postcode, r)))
                .or_else(|| month_dob_at(text, i)),
            b'a'..=b'z' if token_start => month_dob_at(text, i),
            b'0'..=b'9' if token_start => {
                match digits_at(text, i) {
                    DigitScan::Hit(kind, r) => Some((kind, r)),
                    DigitScan::Miss(next) => match numeric_dob_at(text, i) {
                        Some(r) => Some((PiiKind::DateOfBirth, r)),
                        // Nothing starts at this group: later groups of the same chain
                        // are tried on their own, so resume right after this one.
                        None => {
                            i = next;
                            continue;
                        }
                    },
                }
            }
            _ => None,
        };
        match found {
            Some((kind, range)) => {
                i = range.end.max(i + 1);
                hits.push(PiiHit { kind, range });
            }
            None => i += 1,
        }
    }
    hits
}

/// A date of birth starting with a digit at `i` (a token start).
fn numeric_dob_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    if !numeric_left_ok(text, i) {
        return None;
    }
    health::numeric_date_at(text, i)
        .filter(|(r, year)| health::dob_context(text, r) && health::not_future(*year))
        .map(|(r, _)| r)
}

/// A date of birth starting with a month's name at `i` (a token start).
fn month_dob_at(text: &[u8], i: usize) -> Option<(PiiKind, Range<usize>)> {
    if !health::starts_month(text, i) || (i > 0 && text[i - 1] == b'@') {
        return None;
    }
    health::month_name_date_at(text, i)
        .filter(|(r, year)| health::dob_context(text, r) && health::not_future(*year))
        .map(|(r, _)| (PiiKind::DateOfBirth, r))
}

/// Runs of printable ASCII (0x20..=0x7E) at least `min_len` long, as ranges into `bytes`.
///
/// For `min_len` of 8 or more (what tensor payloads are scanned with), only 4-byte blocks
/// at multiples of 4 are tested at first: any 8 consecutive bytes hold such a block whole,
/// so a run that long holds a block of four printable bytes, and only around those is the
/// run measured byte by byte. Over float tensors (a printable byte in about three of eight,
/// a printable block in about one of fifty) this reads each byte once at word speed.
pub fn printable_runs(bytes: &[u8], min_len: usize) -> Vec<Range<usize>> {
    if min_len < 8 {
        return printable_runs_bytewise(bytes, min_len);
    }
    let printable = |b: u8| (0x20..=0x7E).contains(&b);
    let mut runs = Vec::new();
    let mut i = 0;
    while let Some(block) = bytes.get(i..i + 4) {
        let w = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        if !all_printable(w) {
            i += 4;
            continue;
        }
        // The block is inside a run that starts after the previous run's end (a
        // non-printable byte, or before any run): measure it both ways.
        let mut start = i;
        while start > 0 && printable(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = i + 4;
        while end < bytes.len() && printable(bytes[end]) {
            end += 1;
        }
        if end - start >= min_len {
            runs.push(start..end);
        }
        // Every block that starts inside the run is part of it; the block holding `end`
        // holds a non-printable byte.
        i = end.next_multiple_of(4);
    }
    runs
}

/// Whether all four bytes of `w` are printable ASCII (0x20..=0x7E), without branches: no
/// byte has its top bit; adding 0x60 sets every top bit (each byte is 0x20 or more); adding
/// 0x01 sets none (each byte is below 0x7F). Bytes below 0x80 never carry into the next.
fn all_printable(w: u32) -> bool {
    const HIGH: u32 = 0x8080_8080;
    w & HIGH == 0
        && w.wrapping_add(0x6060_6060) & HIGH == HIGH
        && w.wrapping_add(0x0101_0101) & HIGH == 0
}

/// [`printable_runs`] one byte at a time (any `min_len`).
fn printable_runs_bytewise(bytes: &[u8], min_len: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let printable = (0x20..=0x7E).contains(&b);
        match (printable, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= min_len.max(1) {
                    runs.push(s..i);
                }
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start
        && bytes.len() - s >= min_len.max(1)
    {
        runs.push(s..bytes.len());
    }
    runs
}

/// [`find_pii`] over every printable run of binary `bytes` (tensor payloads; min_len 8),
/// ranges relative to `bytes`.
///
/// Float tensors are not text, yet hundreds of megabytes of them hold short printable runs
/// by chance, and e-mail's shape is easy to hit: small floats put `-`, `.` or `/` in every
/// fourth byte (the exponent), so strings like `e@J.TL` turn up every ~15 MB of optimizer
/// state. In binary payloads an e-mail therefore counts only when it is at least
/// [`MIN_BINARY_EMAIL`] bytes long and its domain is in one case, as addresses written
/// into a byte tensor are; the checksummed patterns (cards, IBANs) need no such rule.
pub fn find_pii_in_bytes(bytes: &[u8]) -> Vec<PiiHit> {
    PiiScanner::default().find_in_bytes(bytes)
}

/// Shortest e-mail address reported inside binary payloads.
pub const MIN_BINARY_EMAIL: usize = 10;

fn plausible_binary_email(addr: &[u8]) -> bool {
    let domain = addr.rsplit(|&b| b == b'@').next().unwrap_or_default();
    let lower = domain.iter().any(u8::is_ascii_lowercase);
    let upper = domain.iter().any(u8::is_ascii_uppercase);
    // The exponent byte of a small float32 is in `,` ..= `9`; when every 4th byte of the
    // match is one, its dots and dashes are exponents, not an address (4.3 GB of optimizer
    // state still held two such 10-byte "addresses").
    addr.len() >= MIN_BINARY_EMAIL && !(lower && upper) && !float_stride(addr, b'9')
}

/// Whether every 4th byte of the printable run `run`, at some phase and at least twice, is
/// in `,` ..= `?`: the high byte of a positive float32 between 2^-39 and 2 (weights, Adam's
/// moments). A run of float data has that stride; text with a postcode in it does not (its
/// letters and spaces fall on every phase). 4.3 GB of a 1 GiB model's checkpoint held one
/// "postcode" (`U4 0JZ`, in `.U4 0JZ$/`, whose `.`, `0` and `/` are exponents).
fn float_exponent_stride(run: &[u8]) -> bool {
    float_stride(run, b'?')
}

/// Whether every 4th byte of `bytes`, at some phase and at least twice, is in `,` ..= `hi`
/// (the high byte of small positive float32s).
fn float_stride(bytes: &[u8], hi: u8) -> bool {
    (0..4).any(|phase| {
        bytes.len() > phase + 4
            && bytes
                .iter()
                .skip(phase)
                .step_by(4)
                .all(|b| (b','..=hi).contains(b))
    })
}

fn at(text: &[u8], i: usize) -> Option<u8> {
    text.get(i).copied()
}

fn is_digit_at(text: &[u8], i: usize) -> bool {
    at(text, i).is_some_and(|b| b.is_ascii_digit())
}

/// A numeric identifier may end at `end` only if what follows cannot continue the token:
/// no alphanumeric, no `@` (it would be an e-mail local part), no `.digit` (it would be the
/// integer part of a decimal number).
fn numeric_right_ok(text: &[u8], end: usize) -> bool {
    match at(text, end) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || b == b'@' => false,
        Some(b'.') => !is_digit_at(text, end + 1),
        Some(_) => true,
    }
}

/// A numeric identifier may start at `start` only if it is not the fractional part of a
/// decimal number (`digit.`) nor part of an e-mail domain.
fn numeric_left_ok(text: &[u8], start: usize) -> bool {
    if start == 0 {
        return true;
    }
    match text[start - 1] {
        b if b.is_ascii_alphanumeric() || b == b'@' => false,
        b'.' => !(start >= 2 && text[start - 2].is_ascii_digit()),
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------
// E-mail

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn email_at(text: &[u8], at_pos: usize) -> Option<Range<usize>> {
    let mut s = at_pos;
    while s > 0 && is_local_char(text[s - 1]) {
        s -= 1;
    }
    // Punctuation before the first alphanumeric is context ("-- bob@…"), not address.
    while s < at_pos && !text[s].is_ascii_alphanumeric() {
        s += 1;
    }
    let local = &text[s..at_pos];
    if local.is_empty()
        || local.len() > 64
        || local.ends_with(b".")
        || local.windows(2).any(|w| w == b"..")
    {
        return None;
    }

    let mut e = at_pos + 1;
    while e < text.len() && (text[e].is_ascii_alphanumeric() || matches!(text[e], b'.' | b'-')) {
        e += 1;
    }
    // A sentence may end right after the address.
    while e > at_pos + 1 && matches!(text[e - 1], b'.' | b'-') {
        e -= 1;
    }
    let domain = &text[at_pos + 1..e];
    if domain.is_empty() || domain.len() > 253 {
        return None;
    }
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 || label.starts_with(b"-") || label.ends_with(b"-")
        {
            return None;
        }
        labels += 1;
        last = label;
    }
    if labels < 2 || last.len() < 2 || !last.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    Some(s..e)
}

// ---------------------------------------------------------------------------------------
// Phone numbers

fn is_phone_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

fn intl_phone_at(text: &[u8], plus: usize) -> Option<Range<usize>> {
    if plus > 0 && text[plus - 1] == b'@' {
        return None;
    }
    let mut p = plus + 1;
    // Country codes never start with 0.
    if !matches!(at(text, p), Some(b'1'..=b'9')) {
        return None;
    }
    let mut digits = 0usize;
    let mut seps = 0usize;
    let mut dots = 0usize;
    let end;
    loop {
        while is_digit_at(text, p) {
            p += 1;
            digits += 1;
        }
        if digits > 17 {
            return None;
        }
        let group_end = p;
        // A separator is one of space, dash, dot, or a parenthesis possibly next to one of
        // those ("+1 (415) 555-2671").
        let mut q = p;
        while q < text.len() && q - p < 2 && is_phone_sep(text[q]) {
            q += 1;
        }
        let sep = &text[p..q];
        let parens = sep.iter().filter(|&&b| b == b'(' || b == b')').count();
        let valid_sep = sep.len() == 1 || (sep.len() == 2 && parens == 1);
        if valid_sep && is_digit_at(text, q) {
            seps += 1;
            dots += usize::from(sep == b".");
            p = q;
            continue;
        }
        end = group_end;
        break;
    }
    // Country code (1–3 digits) plus 8–14 more digits.
    if !(9..=17).contains(&digits) {
        return None;
    }
    // "+123.456789" is a signed decimal, not a phone number.
    if seps == 1 && dots == 1 {
        return None;
    }
    if !numeric_right_ok(text, end) {
        return None;
    }
    Some(plus..end)
}

/// `(ddd) ddd-dddd` (the space is optional).
fn nanp_paren_at(text: &[u8], open: usize) -> Option<Range<usize>> {
    let area = text.get(open + 1..open + 4)?;
    if !all_digits(area) || text.get(open + 4) != Some(&b')') {
        return None;
    }
    let mut p = open + 5;
    if at(text, p) == Some(b' ') {
        p += 1;
    }
    let rest = text.get(p..p + 8)?;
    if !all_digits(&rest[..3]) || rest[3] != b'-' || !all_digits(&rest[4..]) {
        return None;
    }
    let end = p + 8;
    if !nanp_valid(area[0], rest[0]) || !numeric_right_ok(text, end) {
        return None;
    }
    // "(415) 555-2671-9" is a longer dashed number.
    if at(text, end) == Some(b'-') && is_digit_at(text, end + 1) {
        return None;
    }
    Some(open..end)
}

fn nanp_valid(area_first: u8, exchange_first: u8) -> bool {
    (b'2'..=b'9').contains(&area_first) && (b'2'..=b'9').contains(&exchange_first)
}

fn all_digits(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

// ---------------------------------------------------------------------------------------
// Digit chains: card numbers, SSNs, dashed NANP phone numbers.

enum DigitScan {
    Hit(PiiKind, Range<usize>),
    /// No identifier starts here; resume scanning at this offset.
    Miss(usize),
}

/// The longest chain worth parsing: a card has at most 19 digits, so at most 19 groups.
const MAX_GROUPS: usize = 20;

/// `start` is a digit on a token boundary. Parses the chain of digit groups joined by a
/// single space or dash (the same separator throughout) and tries every identifier that
/// starts with its first group.
fn digits_at(text: &[u8], start: usize) -> DigitScan {
    let mut groups: [(usize, usize); MAX_GROUPS] = [(0, 0); MAX_GROUPS];
    let mut count = 0;
    let mut sep: Option<u8> = None;
    let mut p = start;
    // Whether the chain ended on a proper boundary after its last group.
    let last_closed;
    loop {
        let gs = p;
        while is_digit_at(text, p) {
            p += 1;
        }
        groups[count] = (gs, p);
        count += 1;
        match at(text, p) {
            Some(s @ (b' ' | b'-'))
                if sep.is_none_or(|x| x == s) && is_digit_at(text, p + 1) && count < MAX_GROUPS =>
            {
                sep = Some(s);
                p += 1;
            }
            _ => {
                last_closed = numeric_right_ok(text, p);
                break;
            }
        }
    }
    let first_end = groups[0].1;
    if !numeric_left_ok(text, start) {
        return DigitScan::Miss(first_end);
    }
    let groups = &groups[..count];
    // A candidate made of the first k groups ends on a boundary if another group follows
    // (separated by the chain's separator) or if the chain itself ends on one.
    let closes = |k: usize| k < count || last_closed;
    let mut lens_buf = [0usize; MAX_GROUPS];
    for (l, (s, e)) in lens_buf.iter_mut().zip(groups) {
        *l = e - s;
    }
    let lens = &lens_buf[..count];

    if sep == Some(b'-') && count >= 3 {
        let prefix_dash = start >= 1 && text[start - 1] == b'-';
        // SSN: exactly ddd-dd-dddd, not a piece of a longer dashed number.
        if lens[..3] == [3, 2, 4] && count == 3 && closes(3) && !prefix_dash {
            let s = &text[start..groups[2].1];
            if ssn_valid(s) {
                return DigitScan::Hit(PiiKind::Ssn, start..groups[2].1);
            }
        }
        // NANP: ddd-ddd-dddd, or 1-ddd-ddd-dddd with the trunk prefix.
        if lens[..3] == [3, 3, 4]
            && count == 3
            && closes(3)
            && !prefix_dash
            && nanp_valid(text[start], text[groups[1].0])
        {
            return DigitScan::Hit(PiiKind::Phone, start..groups[2].1);
        }
        if count == 4
            && lens == [1, 3, 3, 4].as_slice()
            && text[start] == b'1'
            && closes(4)
            && !prefix_dash
            && nanp_valid(text[groups[1].0], text[groups[2].0])
        {
            return DigitScan::Hit(PiiKind::Phone, start..groups[3].1);
        }
    }

    if let Some(kind) = health_digits(text, groups, lens, sep, last_closed) {
        return DigitScan::Hit(kind, start..groups[count - 1].1);
    }

    // Card numbers: longest plausible prefix first.
    for k in (1..=count).rev() {
        if !closes(k) || !card_shape(&lens[..k]) {
            continue;
        }
        let end = groups[k - 1].1;
        if card_valid(text, &groups[..k]) {
            return DigitScan::Hit(PiiKind::CardNumber, start..end);
        }
    }
    DigitScan::Miss(first_end)
}

/// NHS numbers and ZIP+4 codes: the whole chain `groups` (lengths `lens`, joined by
/// `sep`), closed on the right, never a piece of a longer chain.
fn health_digits(
    text: &[u8],
    groups: &[(usize, usize)],
    lens: &[usize],
    sep: Option<u8>,
    closed: bool,
) -> Option<PiiKind> {
    let start = groups[0].0;
    let end = groups[groups.len() - 1].1;
    // `5-…` or `5 …` before the chain would make it part of a longer one.
    let continues_left =
        |s: u8| start >= 2 && text[start - 1] == s && text[start - 2].is_ascii_digit();
    if !closed || sep.is_some_and(continues_left) {
        return None;
    }
    match (lens, sep) {
        // A sign makes it a number: `+0123456789`, `-9434765919`.
        ([10], None) if !signed(text, start) && !health::is_json_count(text, start, end) => {
            health::nhs_valid(text, groups).then_some(PiiKind::NhsNumber)
        }
        ([3, 3, 4], Some(_)) => health::nhs_valid(text, groups).then_some(PiiKind::NhsNumber),
        ([5, 4], Some(b'-')) => {
            let (zip, plus4) = (&text[groups[0].0..groups[0].1], &text[groups[1].0..end]);
            health::zip_plus_4_valid(zip, plus4).then_some(PiiKind::ZipPlus4)
        }
        _ => None,
    }
}

/// Whether a sign precedes `start`.
fn signed(text: &[u8], start: usize) -> bool {
    start >= 1 && matches!(text[start - 1], b'+' | b'-')
}

fn ssn_valid(s: &[u8]) -> bool {
    let area = &s[0..3];
    let group = &s[4..6];
    let serial = &s[7..11];
    area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000"
}

/// Contiguous 13–19 digits, or the printed groupings: fours with a shorter last group
/// (4-4-4-4, 4-4-4-1, 4-4-4-4-3) and the American Express / Diners 4-6-5 and 4-6-4.
fn card_shape(lens: &[usize]) -> bool {
    let total: usize = lens.iter().sum();
    if !(13..=19).contains(&total) {
        return false;
    }
    match lens {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

fn card_valid(text: &[u8], groups: &[(usize, usize)]) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0;
    for &(s, e) in groups {
        for &b in &text[s..e] {
            digits[n] = b - b'0';
            n += 1;
        }
    }
    let digits = &digits[..n];
    // Major industry identifier: 2 (Mastercard 2-series), 3 (Amex, Diners, JCB), 4 (Visa),
    // 5 (Mastercard), 6 (Discover, UnionPay). Restricting to these keeps millisecond
    // timestamps (1…) and zero-padded counters (0…) out of the report.
    if !(2..=6).contains(&digits[0]) || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    luhn_valid(digits)
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------------------
// IBAN

/// Registered IBAN lengths (SWIFT IBAN registry). A candidate from a listed country must
/// have exactly this length, which rules out most accidental mod-97 hits.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HN", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

fn is_iban_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// Whether a group of IBAN characters ending at `end` is closed: a lowercase letter or an
/// `@` would make it part of a larger token.
fn iban_right_ok(text: &[u8], end: usize) -> bool {
    !matches!(at(text, end), Some(b) if b.is_ascii_alphanumeric() || b == b'@')
}

fn iban_at(text: &[u8], start: usize) -> Option<Range<usize>> {
    let head = text.get(start..start + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    if start > 0 && text[start - 1] == b'@' {
        return None;
    }
    let mut e = start;
    while e < text.len() && is_iban_char(text[e]) {
        e += 1;
    }
    if e - start > 4 {
        // Electronic form: one run of 15–34 characters.
        if iban_right_ok(text, e) && iban_valid(&text[start..e]) {
            return Some(start..e);
        }
        return None;
    }
    // Printed form: groups of four separated by single spaces, the last one shorter.
    let mut buf = [0u8; 34];
    let mut len = 0;
    let mut ends: Vec<(usize, usize)> = Vec::new(); // (chars so far, byte end)
    let mut p = start;
    loop {
        let gs = p;
        while p < text.len() && is_iban_char(text[p]) {
            p += 1;
        }
        let glen = p - gs;
        if glen == 0 || glen > 4 || len + glen > 34 || !iban_right_ok(text, p) {
            break;
        }
        buf[len..len + glen].copy_from_slice(&text[gs..p]);
        len += glen;
        ends.push((len, p));
        if glen < 4 || at(text, p) != Some(b' ') {
            break;
        }
        p += 1;
    }
    ends.iter()
        .rev()
        .find(|&&(chars, _)| iban_valid(&buf[..chars]))
        .map(|&(_, end)| start..end)
}

fn iban_valid(iban: &[u8]) -> bool {
    if !(15..=34).contains(&iban.len()) {
        return false;
    }
    match IBAN_LENGTHS.iter().find(|(cc, _)| iban[..2] == cc[..]) {
        Some(&(_, len)) if iban.len() != len => return false,
        Some(_) => {}
        // An unlisted country made only of hex characters is far more likely an
        // upper-case digest than an account number.
        None if iban.iter().all(|b| b.is_ascii_hexdigit()) => return false,
        None => {}
    }
    mod97(iban) == 1
}

/// ISO 13616 / ISO 7064 mod 97-10 over the rearranged IBAN (letters as 10..35).
fn mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(4);
    tail.iter().chain(head).fold(0u32, |acc, &c| {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        if v >= 10 {
            (acc * 100 + v) % 97
        } else {
            (acc * 10 + v) % 97
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, String)> {
        find_pii(text.as_bytes())
            .into_iter()
            .map(|h| (h.kind, text[h.range].to_owned()))
            .collect()
    }

    fn one(text: &str, kind: PiiKind, value: &str) {
        assert_eq!(kinds(text), vec![(kind, value.to_owned())], "in {text:?}");
    }

    #[test]
    fn names_are_kebab_case_and_match_serde() {
        for k in PiiKind::ALL {
            let json = serde_json::to_string(&k).expect("serialize");
            assert_eq!(json, format!("\"{}\"", k.name()));
        }
    }

    #[test]
    fn emails() {
        one(
            "mail bob.smith+x@mail.example.org.",
            PiiKind::Email,
            "bob.smith+x@mail.example.org",
        );
        one("<a@b.co>", PiiKind::Email, "a@b.co");
        assert!(kinds("pkg@1.2.3 user@localhost @handle a@b.c x@-a.com").is_empty());
    }

    #[test]
    fn emails_in_binary_payloads_need_a_plausible_shape() {
        // Byte strings seen in the optimizer state of a 53M-parameter checkpoint.
        for noise in [
            &b"\x8a8\t8@aI7.Jr\xb7"[..],
            b"\x93\x15\xb5*=X\xf6.\x93H`0e@J.TL\xd9/",
            b"\xd8%1-m\x95\x15-q@U.Hu+/\xd8",
            b"\xab\x1b2@C.is\xab.\xd2\xf8",
            // 4.3 GB of optimizer state: separators exactly on the exponent bytes.
            b"\x0c\x16*Z\r\x93/O@Q-FAP.OZ\xe4.\xe7&",
            b"\x94b,b.o-P@R.SJ\xc2,\x88",
        ] {
            assert!(find_pii_in_bytes(noise).is_empty(), "{noise:?}");
        }
        // Real addresses written into a byte tensor are still found, in either case.
        for text in [
            &b"\x00\x01john.smith@example.com\x00"[..],
            b"\xffMARY.LEE@BANK.CO.UK\xff",
        ] {
            let hits = find_pii_in_bytes(text);
            assert_eq!(hits.len(), 1, "{text:?}");
            assert_eq!(hits[0].kind, PiiKind::Email);
        }
    }

    #[test]
    fn the_parallel_binary_scan_finds_exactly_what_the_serial_one_does() {
        let scanner = PiiScanner::default();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut bytes: Vec<u8> = (0..3 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        // Identifiers everywhere, some across where the parts would be cut, and a long
        // all-printable stretch that pushes a cut forward.
        let text = b" john.smith@example.com SW1A 1AA 4111 1111 1111 1111 ";
        for at in (0..bytes.len() - 64)
            .step_by(98_304)
            .chain([1 << 20, (3 << 20) / 2 - 20])
        {
            bytes[at..at + text.len()].copy_from_slice(text);
        }
        bytes[(2 << 20) - 5000..(2 << 20) + 5000].fill(b'a');
        let serial = scanner.find_in_bytes(&bytes);
        assert!(serial.len() > 90, "{}", serial.len());
        for threads in [1, 2, 3, 7] {
            assert_eq!(
                scanner.find_in_bytes_parallel(&bytes, threads),
                serial,
                "{threads}"
            );
        }
    }

    #[test]
    fn postcodes_in_binary_payloads_are_not_float_noise() {
        // A 1 GiB model's Adam second moments (exp_avg_sq), the run around the "postcode".
        let noise = b"H\xf9,0\x1a\xd1>/L\xc3X-\xb0~\x0b0r\xdeS/\xa7\xac\xfd.U4 0JZ$/\x17\x0f\x1c0\xafG\x9f/";
        assert!(find_pii_in_bytes(noise).is_empty());
        assert_eq!(
            kinds("ship to U4 0JZ today"),
            vec![(PiiKind::Postcode, "U4 0JZ".to_owned())]
        );
        // Postcodes written into a byte tensor, alone or in text, are still found.
        for text in [
            &b"\x00\x01to SW1A 1AA, UK\x00\xff"[..],
            b"\xfe\xffSW1A 1AA\x00\x00",
            b"\x9c\x93EC1A 1BB\x01\x01\x01\xbf",
        ] {
            let hits = find_pii_in_bytes(text);
            assert_eq!(hits.len(), 1, "{text:?}");
            assert_eq!(hits[0].kind, PiiKind::Postcode, "{text:?}");
        }
    }

    #[test]
    fn cards() {
        one("4111111111111111", PiiKind::CardNumber, "4111111111111111");
        one(
            "card 4111 1111 1111 1111, exp",
            PiiKind::CardNumber,
            "4111 1111 1111 1111",
        );
        one(
            "4111-1111-1111-1111",
            PiiKind::CardNumber,
            "4111-1111-1111-1111",
        );
        one(
            "amex 3782 822463 10005",
            PiiKind::CardNumber,
            "3782 822463 10005",
        );
        one(
            "ref 99 5555 5555 5555 4444",
            PiiKind::CardNumber,
            "5555 5555 5555 4444",
        );
        // Luhn-invalid, all equal, too short, inside a token, mixed separators.
        assert!(
            kinds("4111111111111112 4444444444444444 411111111111 x4111111111111111").is_empty()
        );
        assert!(kinds("4111 1111-1111 1111 4111111111111111a").is_empty());
        // Decimal context.
        assert!(kinds("0.4111111111111111 4111111111111111.5").is_empty());
    }

    #[test]
    fn ssns() {
        one("ssn: 123-45-6789;", PiiKind::Ssn, "123-45-6789");
        assert!(kinds("000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000").is_empty());
        assert!(kinds("123456789 123 45 6789 1123-45-6789 123-45-67890 9-123-45-6789").is_empty());
    }

    #[test]
    fn ibans() {
        one(
            "DE89370400440532013000",
            PiiKind::Iban,
            "DE89370400440532013000",
        );
        one(
            "IBAN: GB82 WEST 1234 5698 7654 32 (GBP)",
            PiiKind::Iban,
            "GB82 WEST 1234 5698 7654 32",
        );
        one(
            "DE89 3704 0044 0532 0130 00 PAID",
            PiiKind::Iban,
            "DE89 3704 0044 0532 0130 00",
        );
        assert!(
            kinds("DE89370400440532013001 GB82WEST12345698765432x DE893704004405320130").is_empty()
        );
    }

    #[test]
    fn phones() {
        one("+1-415-555-2671", PiiKind::Phone, "+1-415-555-2671");
        one("tel +44 20 7946 0958.", PiiKind::Phone, "+44 20 7946 0958");
        one("+1 (415) 555-2671", PiiKind::Phone, "+1 (415) 555-2671");
        one("+14155552671", PiiKind::Phone, "+14155552671");
        one("call (415) 555-2671", PiiKind::Phone, "(415) 555-2671");
        one("415-555-2671", PiiKind::Phone, "415-555-2671");
        one("1-800-555-1234", PiiKind::Phone, "1-800-555-1234");
        assert!(kinds("(115) 555-2671 415-155-2671 +0123456789 +1234567 1e+123456789").is_empty());
        assert!(kinds("+123.456000 +12345678901234567890").is_empty());
    }

    #[test]
    fn no_false_positives_on_technical_text() {
        let text = "version 1.2.3 v10.22.333 2026-11-29T05:00:00Z 2026-11-29 05:00:00.123456+01:00 \
            1732856400000 sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 \
            D41D8CD98F00B204E9800998ECF8427E DE12A3B4C5D6E7F8091A2B3C4D5E6F70 \
            550e8400-e29b-41d4-a716-446655440000 192.168.100.200:8080 \
            0.123456789 -0.98765432101234567 1.2345678901234567e-05 3.141592653589793 \
            [0.1234567890123456, 12345.678901234567] layers.0.attn.q_proj.weight \
            model-00001-of-00004.safetensors 1234567890123456789012";
        assert_eq!(kinds(text), vec![]);
    }

    #[test]
    fn all_printable_agrees_with_the_byte_test_on_every_byte_in_every_lane() {
        for b in 0..=255u8 {
            for lane in 0..4 {
                for fill in [b' ', b'~', b'a'] {
                    let mut w = [fill; 4];
                    w[lane] = b;
                    assert_eq!(
                        all_printable(u32::from_le_bytes(w)),
                        (0x20..=0x7E).contains(&b),
                        "byte {b:#x} in lane {lane}"
                    );
                }
            }
        }
    }

    #[test]
    fn blockwise_runs_equal_bytewise_runs_on_random_and_structured_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for case in 0..400 {
            let n = rng.random_range(0..300);
            // Mostly printable in some cases, so that long runs, runs at both ends and
            // runs of exactly 7, 8 and 9 bytes all occur.
            let p = [0.3, 0.7, 0.9, 0.97][case % 4];
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.random_bool(p) {
                        rng.random_range(0x20..=0x7E)
                    } else {
                        [0u8, 0x1F, 0x7F, 0x80, 0xFF][rng.random_range(0..5)]
                    }
                })
                .collect();
            for min_len in [8, 9, 12, 16] {
                assert_eq!(
                    printable_runs(&bytes, min_len),
                    printable_runs_bytewise(&bytes, min_len),
                    "case {case}, min_len {min_len}"
                );
            }
        }
        for n in 0..40 {
            let all = vec![b'x'; n];
            assert_eq!(printable_runs(&all, 8), printable_runs_bytewise(&all, 8));
        }
    }

    #[test]
    fn printable_runs_respect_min_len() {
        let b = b"ab\x00abcdefgh\xffabcdefghij";
        assert_eq!(printable_runs(b, 8), vec![3..11, 12..22]);
        assert_eq!(printable_runs(b, 2), vec![0..2, 3..11, 12..22]);
        let mut bytes = vec![0u8, 0xff, 7];
        bytes.extend_from_slice(b"ssn=123-45-6789");
        bytes.push(0x80);
        let hits = find_pii_in_bytes(&bytes);
        assert_eq!(
            hits,
            vec![PiiHit {
                kind: PiiKind::Ssn,
                range: 7..18
            }]
        );
    }

    #[test]
    fn non_ascii_bytes_are_separators() {
        let mut bytes = "é".as_bytes().to_vec();
        bytes.extend_from_slice(b"123-45-6789");
        bytes.extend_from_slice("ü".as_bytes());
        assert_eq!(
            find_pii(&bytes),
            vec![PiiHit {
                kind: PiiKind::Ssn,
                range: 2..13
            }]
        );
    }
}
