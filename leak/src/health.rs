//! L1's health identifiers: NHS numbers (mod 11), dates of birth, UK postcodes and US
//! ZIP+4 codes. [`crate::pii`] calls these from its byte loop, each only after a cheap
//! byte test on the first character (a digit, an upper-case letter, a month's initial), so
//! that the scan of a model-sized buffer is not slowed down.
//!
//! The rules, and why:
//!
//! - **NHS number**: ten digits, plain (`9434765919`) or grouped 3-3-4 with spaces or
//!   hyphens (`943 476 5919`, `943-476-5919`), whose mod-11 check digit holds (weights 10
//!   down to 2 over the first nine digits; a remainder giving check 10 is never issued), not
//!   all one digit, and not part of a longer digit run or chain of groups. A dashed 3-3-4
//!   number that is a valid North American phone number stays a `phone`. One ten-digit run
//!   in eleven passes the check by chance, so a plain run that is a bare JSON number value
//!   (`"bytes_scanned": 4294967296`) is read as a count, not an NHS number, unless its key
//!   names one (`"nhs_number": 9434765919`).
//! - **Date of birth**: a valid calendar date with a year from 1900 to this year, written
//!   `1984-03-12`, `1984/03/12`, `12/03/1984` or `03/12/1984` (either order), `12.03.1984`,
//!   `12-03-1984`, `12 Mar 1984`, `12th March 1984`, `12-Mar-1984`, `March 12, 1984` or
//!   `Mar. 12 1984`, that has a birth keyword near it on the same line: `birth` anywhere
//!   in a word (`date of birth`, `birth_date`, `DateOfBirth`), `born` starting a word, or
//!   `dob` / `d.o.b` as a word of its own, within [`KEYWORD_BEFORE`] bytes before the date
//!   or [`KEYWORD_AFTER`] bytes after it. A date alone is not flagged: release documents
//!   are full of dates (build times, data cut-offs). A date followed by a time of day
//!   (`2026-12-03T07:01:02Z`, `2026-12-03 07:01`) is a timestamp and not a date of birth,
//!   unless the time is midnight (`1984-03-12T00:00:00Z`), which is how a date-only value
//!   is often serialized. Two-digit years are not read. An identifier column that holds
//!   dates of birth is found in any format by L2, which matches the training data's own
//!   values.
//! - **UK postcode**: the official format, outward code and inward code separated by one
//!   space (`SW1A 1AA`, `M1 1AE`, `B33 8TH`, `GIR 0AA`), upper case, with the format's
//!   letter restrictions (no Q, V or X first; no I, J or Z second; only `ABCDEFGHJKPSTUW`
//!   third and `ABEHMNPRVWXY` fourth; no C, I, K, M, O or V in the inward letters). Without
//!   the space (`SW1A1AA`) the shape is too common in base64 and identifiers to flag.
//! - **ZIP+4**: `12345-6789` on its own (not inside a longer dashed or digit run, not all
//!   zeros in either part). A plain five-digit ZIP code is not flagged: five-digit numbers
//!   are everywhere (counts, ports, sizes); an identifier column of ZIP codes is L2's.

use std::ops::Range;

/// How far before a date a birth keyword is looked for, in bytes (same line).
pub const KEYWORD_BEFORE: usize = 48;
/// How far after a date a birth keyword is looked for, in bytes (same line).
pub const KEYWORD_AFTER: usize = 24;
/// Earliest plausible birth year.
pub const MIN_BIRTH_YEAR: u32 = 1900;

fn at(text: &[u8], i: usize) -> Option<u8> {
    text.get(i).copied()
}

fn is_digit_at(text: &[u8], i: usize) -> bool {
    at(text, i).is_some_and(|b| b.is_ascii_digit())
}

fn is_alnum_at(text: &[u8], i: usize) -> bool {
    at(text, i).is_some_and(|b| b.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------
// NHS numbers

/// The mod-11 check of a ten-digit NHS number (ASCII digits).
pub fn nhs_check_digit_holds(digits: &[u8; 10]) -> bool {
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = (11 - sum % 11) % 11;
    check != 10 && check == u32::from(digits[9] - b'0')
}

/// Whether the ten digits of `groups` (byte ranges of `text`, ten digits in all) make an
/// NHS number.
pub(crate) fn nhs_valid(text: &[u8], groups: &[(usize, usize)]) -> bool {
    let mut digits = [0u8; 10];
    let mut n = 0;
    for &(s, e) in groups {
        for &b in &text[s..e] {
            if n == 10 {
                return false;
            }
            digits[n] = b;
            n += 1;
        }
    }
    n == 10 && digits.iter().any(|&d| d != digits[0]) && nhs_check_digit_holds(&digits)
}

/// Whether the digit run `start..end` is a bare JSON number value (`"key": 1234567890`)
/// whose key does not name an NHS number: then it is a count or a size, not an identifier.
pub(crate) fn is_json_count(text: &[u8], start: usize, end: usize) -> bool {
    let mut p = start;
    while p > 0 && text[p - 1] == b' ' {
        p -= 1;
    }
    if p == 0 || text[p - 1] != b':' {
        return false;
    }
    p -= 1;
    while p > 0 && text[p - 1] == b' ' {
        p -= 1;
    }
    if p == 0 || text[p - 1] != b'"' {
        return false;
    }
    let key_end = p - 1;
    let from = key_end.saturating_sub(64);
    let Some(open) = text[from..key_end].iter().rposition(|&b| b == b'"') else {
        return false;
    };
    let key = &text[from + open + 1..key_end];
    let mut q = end;
    while at(text, q) == Some(b' ') {
        q += 1;
    }
    let closes = matches!(at(text, q), None | Some(b',' | b'}' | b']' | b'\n' | b'\r'));
    closes && !key.windows(3).any(|w| w.eq_ignore_ascii_case(b"nhs"))
}

// ---------------------------------------------------------------------------------------
// UK postcodes and ZIP+4

fn upper_in(b: Option<u8>, allowed: &[u8]) -> bool {
    b.is_some_and(|b| allowed.contains(&b))
}

const POSTCODE_FIRST: &[u8] = b"ABCDEFGHIJKLMNOPRSTUWYZ";
const POSTCODE_SECOND: &[u8] = b"ABCDEFGHKLMNOPQRSTUVWXY";
const POSTCODE_THIRD: &[u8] = b"ABCDEFGHJKPSTUW";
const POSTCODE_FOURTH: &[u8] = b"ABEHMNPRVWXY";
const POSTCODE_INWARD: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// A UK postcode starting at `start` (an upper-case letter on a token boundary).
pub(crate) fn postcode_at(text: &[u8], start: usize) -> Option<Range<usize>> {
    let closed = |end: usize| !(is_alnum_at(text, end) || at(text, end) == Some(b'@'));
    if text[start..].starts_with(b"GIR 0AA") && !(start > 0 && text[start - 1] == b'@') {
        return closed(start + 7).then_some(start..start + 7);
    }
    // After an `@` it would be part of an address.
    if !upper_in(at(text, start), POSTCODE_FIRST) || (start > 0 && text[start - 1] == b'@') {
        return None;
    }
    // The outward code: A9, A99, A9A, AA9, AA99 or AA9A.
    let two_letters = upper_in(at(text, start + 1), POSTCODE_SECOND);
    let d = if two_letters { start + 2 } else { start + 1 };
    if !is_digit_at(text, d) {
        return None;
    }
    let last = if two_letters {
        POSTCODE_FOURTH
    } else {
        POSTCODE_THIRD
    };
    let space = if is_digit_at(text, d + 1) || upper_in(at(text, d + 1), last) {
        d + 2
    } else {
        d + 1
    };
    let end = space + 4;
    let inward = at(text, space) == Some(b' ')
        && is_digit_at(text, space + 1)
        && upper_in(at(text, space + 2), POSTCODE_INWARD)
        && upper_in(at(text, space + 3), POSTCODE_INWARD);
    (inward && closed(end)).then_some(start..end)
}

/// Whether five digits, a dash and four digits make a ZIP+4 code (neither part all zeros).
pub(crate) fn zip_plus_4_valid(zip: &[u8], plus4: &[u8]) -> bool {
    zip.len() == 5 && plus4.len() == 4 && zip != b"00000" && plus4 != b"0000"
}

// ---------------------------------------------------------------------------------------
// Dates of birth

/// This year (UTC), from the system clock; [`MIN_BIRTH_YEAR`] if the clock is before 1970.
pub fn current_year() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    u32::try_from(year).unwrap_or(MIN_BIRTH_YEAR)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// A real calendar day in a plausible birth year.
pub fn plausible_birth_date(year: u32, month: u32, day: u32) -> bool {
    calendar_day(year, month, day) && not_future(year)
}

/// A real calendar day from [`MIN_BIRTH_YEAR`] on (no clock read: the scan asks
/// [`not_future`] last, for the few dates that have a birth keyword near them).
fn calendar_day(year: u32, month: u32, day: u32) -> bool {
    year >= MIN_BIRTH_YEAR
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
}

/// Whether `year` is not after this year.
pub(crate) fn not_future(year: u32) -> bool {
    year <= current_year()
}

/// Up to `max` digits at `p` as a number, with the end offset; `None` without a digit or
/// with more than `max`.
fn number(text: &[u8], p: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let mut e = p;
    let mut v = 0u32;
    while is_digit_at(text, e) {
        if e - p == max {
            return None;
        }
        v = v * 10 + u32::from(text[e] - b'0');
        e += 1;
    }
    (e - p >= min).then_some((v, e))
}

const MONTHS: [&[u8]; 12] = [
    b"january",
    b"february",
    b"march",
    b"april",
    b"may",
    b"june",
    b"july",
    b"august",
    b"september",
    b"october",
    b"november",
    b"december",
];

/// Whether the three bytes at `p` start a month's name (either case): the cheap test
/// before [`month_at`], a few byte operations.
pub(crate) fn starts_month(text: &[u8], p: usize) -> bool {
    const ABBREVS: [[u8; 3]; 12] = [
        *b"jan", *b"feb", *b"mar", *b"apr", *b"may", *b"jun", *b"jul", *b"aug", *b"sep", *b"oct",
        *b"nov", *b"dec",
    ];
    match text.get(p..p + 3) {
        Some(&[a, b, c]) => ABBREVS.contains(&[a | 0x20, b | 0x20, c | 0x20]),
        _ => false,
    }
}

/// A month's name at `p` (full, three-letter abbreviation, or `Sept`, either case, with an
/// optional `.` after an abbreviation), not followed by a letter: (month, end).
fn month_at(text: &[u8], p: usize) -> Option<(u32, usize)> {
    let mut e = p;
    while e < text.len() && e - p < 10 && text[e].is_ascii_alphabetic() {
        e += 1;
    }
    let word = &text[p..e];
    if word.len() < 3 || is_alnum_at(text, e) {
        return None;
    }
    for (i, name) in MONTHS.iter().enumerate() {
        let full = word.eq_ignore_ascii_case(name);
        let abbrev = word.len() == 3 && word.eq_ignore_ascii_case(&name[..3])
            || i == 8 && word.eq_ignore_ascii_case(b"sept");
        if full || abbrev {
            let end = if !full && at(text, e) == Some(b'.') {
                e + 1
            } else {
                e
            };
            return Some((i as u32 + 1, end));
        }
    }
    None
}

/// An ordinal suffix (`st`, `nd`, `rd`, `th`, either case) at `p`: its end, or `p`.
fn skip_ordinal(text: &[u8], p: usize) -> usize {
    match text.get(p..p + 2) {
        Some(s)
            if [b"st", b"nd", b"rd", b"th"]
                .iter()
                .any(|o| s.eq_ignore_ascii_case(&o[..]))
                && !is_alnum_at(text, p + 2) =>
        {
            p + 2
        }
        _ => p,
    }
}

/// Whether a time of day starts at `p` (`T`/`t`/space, then `hh:mm`), and if so whether it
/// is midnight (every digit of `hh:mm[:ss[.fff]]` a zero).
fn time_after(text: &[u8], p: usize) -> Option<bool> {
    if !matches!(at(text, p), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let q = p + 1;
    let shape = is_digit_at(text, q)
        && is_digit_at(text, q + 1)
        && at(text, q + 2) == Some(b':')
        && is_digit_at(text, q + 3)
        && is_digit_at(text, q + 4);
    if !shape {
        return None;
    }
    let mut e = q + 5;
    while matches!(at(text, e), Some(b'0'..=b'9' | b':' | b'.')) {
        e += 1;
    }
    Some(text[q..e].iter().all(|&b| matches!(b, b'0' | b':' | b'.')))
}

/// A date starting at `start` (a digit on a token boundary, not the fraction of a
/// decimal): its range and year, if it is a real calendar day from [`MIN_BIRTH_YEAR`] on,
/// closed on the right (a midnight time may follow). The birth keyword ([`dob_context`])
/// and the year's not being in the future ([`not_future`]) are checked by the caller.
pub(crate) fn numeric_date_at(text: &[u8], start: usize) -> Option<(Range<usize>, u32)> {
    // Not the tail of a longer chain: `5-1984-03-12`, `1.12.03.1984`.
    if start >= 2
        && matches!(text[start - 1], b'-' | b'/' | b'.')
        && text[start - 2].is_ascii_digit()
    {
        return None;
    }
    let (first, p) = number(text, start, 1, 4)?;
    let sep = at(text, p)?;
    let (end, year) = match sep {
        b'-' | b'/' | b'.' if p - start == 4 => {
            // Year first: 1984-03-12, 1984/03/12, 1984.03.12.
            let (month, q) = number(text, p + 1, 1, 2)?;
            if at(text, q) != Some(sep) {
                return None;
            }
            let (day, e) = number(text, q + 1, 1, 2)?;
            calendar_day(first, month, day).then_some((e, first))?
        }
        b'-' | b'/' | b'.' if p - start <= 2 => {
            if let Some((second, q)) = number(text, p + 1, 1, 2) {
                if at(text, q) != Some(sep) {
                    return None;
                }
                let (year, e) = number(text, q + 1, 4, 4)?;
                // Day first or month first: either reading may be the one written.
                (calendar_day(year, second, first) || calendar_day(year, first, second))
                    .then_some((e, year))?
            } else if sep == b'-' {
                day_month_name_year(text, first, p)?
            } else {
                return None;
            }
        }
        // 12 Mar 1984, 12th March 1984.
        _ if p - start <= 2 && (sep == b' ' || sep.is_ascii_alphabetic()) => {
            day_month_name_year(text, first, p)?
        }
        _ => return None,
    };
    date_closes(text, end).then_some((start..end, year))
}

/// `12 Mar 1984`, `12th March 1984`, `12-Mar-1984`: `day` ends at `p`; (end, year).
fn day_month_name_year(text: &[u8], day: u32, p: usize) -> Option<(usize, u32)> {
    let p = skip_ordinal(text, p);
    let sep = at(text, p)?;
    if !matches!(sep, b' ' | b'-') {
        return None;
    }
    let (month, q) = month_at(text, p + 1)?;
    if at(text, q) != Some(sep) {
        return None;
    }
    let (year, e) = number(text, q + 1, 4, 4)?;
    calendar_day(year, month, day).then_some((e, year))
}

/// `March 12, 1984`, `Mar. 12 1984`, `march 12th, 1984`, starting at `start` (a month's
/// initial on a token boundary): its range and year, as [`numeric_date_at`].
pub(crate) fn month_name_date_at(text: &[u8], start: usize) -> Option<(Range<usize>, u32)> {
    let (month, p) = month_at(text, start)?;
    if at(text, p) != Some(b' ') {
        return None;
    }
    let (day, q) = number(text, p + 1, 1, 2)?;
    let mut q = skip_ordinal(text, q);
    if at(text, q) == Some(b',') {
        q += 1;
    }
    if at(text, q) != Some(b' ') {
        return None;
    }
    let (year, e) = number(text, q + 1, 4, 4)?;
    (calendar_day(year, month, day) && date_closes(text, e)).then_some((start..e, year))
}

/// Whether a date ending at `end` is closed: not continued by a letter, a digit or another
/// date part, and not followed by a time of day unless that time is midnight.
fn date_closes(text: &[u8], end: usize) -> bool {
    if let Some(midnight) = time_after(text, end) {
        return midnight;
    }
    match at(text, end) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || b == b'@' => false,
        Some(b'-' | b'/' | b'.' | b':') => !is_digit_at(text, end + 1),
        Some(_) => true,
    }
}

/// Whether a birth keyword is near the date `range` on its line (see the module's rules).
pub(crate) fn dob_context(text: &[u8], range: &Range<usize>) -> bool {
    let mut from = range.start.saturating_sub(KEYWORD_BEFORE);
    if let Some(nl) = text[from..range.start].iter().rposition(|&b| b == b'\n') {
        from += nl + 1;
    }
    let mut to = (range.end + KEYWORD_AFTER).min(text.len());
    if let Some(nl) = text[range.end..to].iter().position(|&b| b == b'\n') {
        to = range.end + nl;
    }
    has_keyword(&text[from..range.start]) || has_keyword(&text[range.end..to])
}

fn has_keyword(window: &[u8]) -> bool {
    let letter = |i: Option<usize>| {
        i.and_then(|i| window.get(i))
            .is_some_and(u8::is_ascii_alphabetic)
    };
    for i in 0..window.len() {
        let rest = &window[i..];
        let starts = |k: &[u8]| rest.len() >= k.len() && rest[..k.len()].eq_ignore_ascii_case(k);
        let word_start = !letter(i.checked_sub(1));
        if starts(b"birth") {
            return true;
        }
        if word_start && starts(b"born") {
            return true;
        }
        if word_start && starts(b"dob") && !letter(Some(i + 3)) {
            return true;
        }
        if word_start && starts(b"d.o.b") {
            return true;
        }
    }
    false
}
