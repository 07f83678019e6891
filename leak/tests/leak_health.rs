//! L1's health identifiers (NHS numbers, dates of birth, UK postcodes, ZIP+4) and the
//! site's medical record number patterns: known-valid vectors, near misses, the rules of
//! `[leak] mrn_patterns` at pipeline load, findings that never echo a value, and no finding
//! on a signed release bundle.

use std::path::Path;

use airlock_leak::health::{nhs_check_digit_holds, plausible_birth_date};
use airlock_leak::outgoing::IdentifierIndex;
use airlock_leak::pii::{PiiKind, PiiScanner, find_pii, find_pii_in_bytes};
use airlock_schemas::PipelineSpec;

fn hits_of(text: &str) -> Vec<(PiiKind, String)> {
    find_pii(text.as_bytes())
        .into_iter()
        .map(|h| (h.kind, text[h.range].to_owned()))
        .collect()
}

fn one(text: &str, kind: PiiKind, value: &str) {
    assert_eq!(hits_of(text), vec![(kind, value.to_owned())], "in {text:?}");
}

fn none(text: &str) {
    assert_eq!(hits_of(text), vec![], "in {text:?}");
}

/// The check digit of nine digits, or `None` where it would be 10 (never issued).
fn nhs_check(nine: &[u8]) -> Option<u8> {
    let sum: u32 = nine
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    match (11 - sum % 11) % 11 {
        10 => None,
        c => Some(c as u8),
    }
}

fn digits(d: &[u8]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

#[test]
fn nhs_numbers_with_a_valid_check_digit_are_found_in_every_written_form() {
    for (text, value) in [
        ("NHS no. 943 476 5919, seen", "943 476 5919"),
        ("nhs 401 023 2137", "401 023 2137"),
        ("9434765919", "9434765919"),
        ("id=4010232137;", "4010232137"),
        // Not a valid NANP phone number (exchange starts with 0): the NHS number.
        ("ref 401-023-2137.", "401-023-2137"),
        (r#"{"nhs": "9434765919"}"#, "9434765919"),
        // A bare JSON number whose key names it.
        (r#"{"nhs_number": 9434765919}"#, "9434765919"),
    ] {
        one(text, PiiKind::NhsNumber, value);
    }
    // A dashed 3-3-4 number that is a valid North American phone number stays a phone.
    one("call 943-476-5919", PiiKind::Phone, "943-476-5919");
}

#[test]
fn nhs_near_misses_are_not_found() {
    assert!(nhs_check_digit_holds(b"9434765919"));
    assert!(!nhs_check_digit_holds(b"9434765918"));
    // Wrong check digit, in every form.
    for t in ["943 476 5918", "9434765910", "401-023-2138", "401 023 2136"] {
        none(t);
    }
    // Nine digits whose check digit would be 10: no tenth digit makes them valid.
    let nine = (0u32..)
        .map(|n| {
            let s = format!("{:09}", 400_000_000 + n * 7);
            s.bytes().map(|b| b - b'0').collect::<Vec<u8>>()
        })
        .find(|d| nhs_check(d).is_none())
        .expect("some prefix has check digit 10");
    for last in 0..10u8 {
        let mut d = nine.clone();
        d.push(last);
        let s = digits(&d);
        none(&s);
        none(&format!("{} {} {}", &s[..3], &s[3..6], &s[6..]));
    }
    // Inside longer digit runs or chains, decimals, words; all one digit; signed; counts.
    for t in [
        "94347659190",
        "19434765919",
        "943 476 59190",
        "1943 476 5919",
        "12 943 476 5919",
        "5-401-023-2137",
        "401-023-2137-5",
        "0.9434765919",
        "9434765919.5",
        "x9434765919",
        "9434765919x",
        "0000000000",
        "-9434765919",
        "943 476-5919",
        r#"{"bytes_scanned": 9434765919}"#,
        r#"{"bytes_scanned": 9434765919, "n": 1}"#,
    ] {
        none(t);
    }
}

#[test]
fn generated_nhs_numbers_are_found_plain_and_spaced() {
    let mut x: u64 = 0x5EED;
    let mut found = 0;
    while found < 300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let nine: Vec<u8> = format!("{:09}", x % 1_000_000_000)
            .bytes()
            .map(|b| b - b'0')
            .collect();
        let Some(c) = nhs_check(&nine) else { continue };
        let mut d = nine;
        d.push(c);
        if d.iter().all(|&v| v == d[0]) {
            continue;
        }
        let s = digits(&d);
        let spaced = format!("{} {} {}", &s[..3], &s[3..6], &s[6..]);
        one(&format!("NHS {s}."), PiiKind::NhsNumber, &s);
        one(&format!("NHS {spaced}."), PiiKind::NhsNumber, &spaced);
        // Off by one in the check digit: no longer valid.
        let mut wrong = d.clone();
        wrong[9] = (wrong[9] + 1) % 10;
        none(&format!("NHS {}.", digits(&wrong)));
        found += 1;
    }
}

#[test]
fn dates_of_birth_next_to_a_birth_keyword_are_found_in_common_formats() {
    for (text, value) in [
        ("DOB: 1984-03-12", "1984-03-12"),
        ("patient_dob=1984/03/12;", "1984/03/12"),
        ("date of birth 12/03/1984", "12/03/1984"),
        ("born 03/12/1984", "03/12/1984"),
        // Day first only (25 is no month), month first only (13 is no month... as a day).
        ("D.O.B. 25/12/1984", "25/12/1984"),
        ("birth date 12/25/1984", "12/25/1984"),
        ("birth_date=12.03.1984", "12.03.1984"),
        ("BirthDate 12-03-1984", "12-03-1984"),
        ("Born on 12 Mar 1984 in Leeds", "12 Mar 1984"),
        ("born 12th March 1984", "12th March 1984"),
        ("dob 1-Sep-1984", "1-Sep-1984"),
        ("date_of_birth: March 12, 1984", "March 12, 1984"),
        ("dateOfBirth mar. 12 1984", "mar. 12 1984"),
        ("Sept 3rd, 1984 (date of birth)", "Sept 3rd, 1984"),
        (r#"{"birth_date": "1984-03-12"}"#, "1984-03-12"),
        // Midnight: how a date-only value is often serialized.
        (r#"{"birth_date": "1984-03-12T00:00:00Z"}"#, "1984-03-12"),
        ("DOB 2000-02-29", "2000-02-29"),
        ("DOB 1984-02-29", "1984-02-29"),
        ("DOB 1900-01-01", "1900-01-01"),
    ] {
        one(text, PiiKind::DateOfBirth, value);
    }
    assert!(plausible_birth_date(1984, 3, 12));
    assert!(!plausible_birth_date(1984, 2, 30));
}

#[test]
fn dates_without_a_keyword_timestamps_and_invalid_dates_are_not_found() {
    for t in [
        // No keyword: release documents are full of dates.
        "1984-03-12",
        "trained 12/03/1984",
        "data cut-off March 12, 1984",
        // Timestamps: a date followed by a time of day.
        "born 2026-12-03T07:01:02Z",
        "DOB 1984-03-12T07:01:02.123+01:00",
        "DOB 1984-03-12 07:01",
        r#"{"birth_date": "1984-03-12T00:00:01Z"}"#,
        // Invalid calendar dates, implausible years, two-digit years.
        "DOB 1984-02-30",
        "DOB 1900-02-29",
        "DOB 1983-02-29",
        "DOB 1984-13-01",
        "DOB 13/13/1984",
        "DOB 31/04/1984",
        "DOB 1899-12-31",
        "DOB 2999-01-01",
        "DOB 12/03/84",
        "born 31 Feb 1984",
        "born Smarch 12, 1984",
        // Longer chains and tokens.
        "DOB 1984-03-12-5",
        "DOB 5-1984-03-12",
        "DOB 1.12.03.1984",
        "DOB 1984-03-123",
        "DOB 12/03/19845",
        "DOB x1984-03-12",
        "DOB 1984-03-12x",
        // The keyword inside another word, on another line, or too far away.
        "adobe 1984-03-12",
        "stubborn 1984-03-12",
        "dobby 1984-03-12",
        "date of birth:\n1984-03-12",
        "birth ......................................................... 1984-03-12",
    ] {
        none(t);
    }
}

#[test]
fn uk_postcodes_in_the_official_format_are_found() {
    for pc in [
        "SW1A 1AA", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "W1A 0AX", "EC1A 1BB", "GIR 0AA",
    ] {
        one(&format!("to {pc}, UK"), PiiKind::Postcode, pc);
        one(pc, PiiKind::Postcode, pc);
    }
}

#[test]
fn postcode_lookalikes_are_not_found() {
    for t in [
        // Letters the format excludes: Q, V, X first; I, J, Z second; third and fourth
        // position letters; C, I, K, M, O, V in the inward code.
        "QA1 1AA",
        "VA1 1AA",
        "XA1 1AA",
        "AI1 1AA",
        "AZ1 1AA",
        "W1I 0AX",
        "EC1C 1BB",
        "SW1A 1CA",
        "SW1A 1AK",
        "M1 1AO",
        // No space, two spaces, lower case, too long, inside a token.
        "SW1A1AA",
        "SW1A  1AA",
        "sw1a 1aa",
        "SW1A 1AAB",
        "SW1A 12A",
        "ABC1 1AA",
        "XSW1A 1AA",
        "SW1A 1AA9",
        "a@SW1A 1AA",
        // What release documents say.
        "L1 pii-patterns",
        "L2 exact-records",
        "ISO 8601",
        "SHA256 1AB",
        "AES256 GCM",
    ] {
        none(t);
    }
}

#[test]
fn zip_plus_4_codes_are_found_but_not_inside_longer_numbers() {
    one("12345-6789", PiiKind::ZipPlus4, "12345-6789");
    one(
        "Beverly Hills, CA 90210-1234.",
        PiiKind::ZipPlus4,
        "90210-1234",
    );
    for t in [
        "90210",
        "123456-6789",
        "12345-67890",
        "1-12345-6789",
        "12345-6789-1",
        "12345 6789",
        "00000-1234",
        "12345-0000",
        "x12345-6789",
        "0.12345-6789",
        "12345-6789.5",
    ] {
        none(t);
    }
}

fn scanner(patterns: &[&str]) -> Result<PiiScanner, String> {
    PiiScanner::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>())
}

#[test]
fn mrn_patterns_find_every_match_in_text_and_in_binary_payloads() {
    let s = scanner(&["MRN[0-9]{8}", r"RX\d{3}-\d{4}-[A-Z]"]).expect("valid patterns");
    assert_eq!(s.mrn_patterns(), 2);
    let text = b"seen MRN12345678 and RX123-4567-B, MRN1234567 is too short";
    let hits: Vec<(PiiKind, &[u8])> = s
        .find(text)
        .into_iter()
        .map(|h| (h.kind, &text[h.range]))
        .collect();
    assert_eq!(
        hits,
        vec![
            (PiiKind::Mrn, &b"MRN12345678"[..]),
            (PiiKind::Mrn, &b"RX123-4567-B"[..])
        ]
    );
    // The built-in scanner knows no site pattern.
    assert!(find_pii(text).is_empty());
    let mut bytes = vec![0u8, 0xff, 0x80];
    bytes.extend_from_slice(b"id:MRN87654321");
    bytes.push(0);
    let found = s.find_in_bytes(&bytes);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].kind, found[0].range.clone()),
        (PiiKind::Mrn, 6..17)
    );
    assert!(find_pii_in_bytes(&bytes).is_empty());
    assert!(s.describe().iter().any(|d| d == "mrn (2 site pattern(s))"));
    assert!(!s.describe().iter().any(|d| d.contains("MRN[")));
}

#[test]
fn mrn_patterns_that_are_malformed_empty_or_too_broad_are_refused() {
    let long = format!("MRN[0-9]{{8}}{}", "x".repeat(250));
    let many: Vec<String> = (0..17).map(|i| format!("MRN{i:02}[0-9]{{8}}")).collect();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![String::new()], "is empty"),
        (vec!["(MRN".into()], "not a valid regular expression"),
        (vec![r"(MRN\d)\1".into()], "not a valid regular expression"),
        (vec!["a*".into()], "matches the empty string"),
        (vec![r"\b".into()], "matches the empty string"),
        (vec!["(MRN[0-9]{8})?".into()], "matches the empty string"),
        (vec!["MRN[0-9]?".into()], "matches as few as 3 bytes"),
        (vec!["[0-9]{4}".into()], "matches as few as 4 bytes"),
        (vec!["[0-9]{8}".into()], "a plain 8-digit number"),
        (vec![r"\d{6,}".into()], "matches too broadly"),
        (
            vec![r"[0-9]{4}-[0-9]{2}-[0-9]{2}".into()],
            "matches too broadly",
        ),
        (vec!["[a-z]{6,}".into()], "matches too broadly"),
        (vec![r"\w{6}".into()], "matches too broadly"),
        (vec!["(?i)patient".into()], "a word"),
        (vec!["[0-9a-f]{32}".into()], "a SHA-256 digest"),
        (vec![".{6}".into()], "matches too broadly"),
        (vec![long], "at most 256"),
        (vec!["MRN\u{e9}[0-9]{8}".into()], "printable ASCII"),
        (vec!["MRN\t[0-9]{8}".into()], "printable ASCII"),
        (vec!["MRN[0-9]{8}".into(), "MRN[0-9]{8}".into()], "repeats"),
        (many, "at most 16"),
    ];
    for (patterns, why) in cases {
        let err = PiiScanner::new(&patterns).expect_err(&format!("{patterns:?} refused"));
        assert!(err.contains(why), "{patterns:?}: {err}");
        // The same refusal when the pipeline is loaded.
        let err = PipelineSpec::from_toml_str(&pipeline(&patterns), Path::new("p.toml"))
            .expect_err("pipeline refused")
            .to_string();
        assert!(
            err.contains("leak.mrn_patterns") && err.contains(why),
            "{patterns:?}: {err}"
        );
    }
    // Every probe is ordinary text that the built-in detectors leave alone too.
    for (what, probe) in PipelineSpec::MRN_PROBES {
        assert!(find_pii(probe.as_bytes()).is_empty(), "{what}: {probe}");
    }
}

#[test]
fn pipelines_with_valid_mrn_patterns_load() {
    let patterns: Vec<String> = vec![
        "MRN[0-9]{8}".into(),
        r"(?i)mrn[:# ]?\d{6,10}".into(),
        r"H\d{2}-\d{6}".into(),
    ];
    let spec = PipelineSpec::from_toml_str(&pipeline(&patterns), Path::new("p.toml"))
        .expect("valid pipeline");
    assert_eq!(spec.leak.mrn_patterns, patterns);
    let s = PiiScanner::new(&spec.leak.mrn_patterns).expect("scanner");
    let hits: Vec<PiiKind> = s
        .find(b"mrn:1234567 H12-345678")
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert_eq!(hits, vec![PiiKind::Mrn, PiiKind::Mrn]);
    // No patterns: none to compile.
    let spec = PipelineSpec::from_toml_str(&pipeline(&[]), Path::new("p.toml")).expect("valid");
    assert!(spec.leak.mrn_patterns.is_empty());
}

fn pipeline(mrn_patterns: &[String]) -> String {
    let patterns = serde_json::to_string(mrn_patterns).expect("json");
    format!(
        r#"
[release]
name = "ward-model"
version = "1.0.0"
[data]
source = "data.csv"
identifiers = ["nhs_number"]
features = ["age", "bmi"]
label = "outcome"
[splits]
train = 0.7
validation = 0.15
holdout = 0.15
[model]
kind = "mlp"
hidden = [8]
[optimizer]
kind = "adam"
learning_rate = 0.01
[training]
epochs = 1
batch_size = 8
seed = 1
[leak]
mrn_patterns = {patterns}
"#
    )
}

#[test]
fn outgoing_findings_name_the_kind_and_place_never_the_value() {
    let s = scanner(&["MRN[0-9]{8}"]).expect("valid");
    let index = IdentifierIndex::empty().with_pii(s);
    let values = [
        "MRN12345678",
        "1984-03-12",
        "943 476 5919",
        "SW1A 1AA",
        "90210-1234",
    ];
    let doc = format!(
        r#"{{"note": "{} born {} nhs {} at {} / {}"}}"#,
        values[0], values[1], values[2], values[3], values[4]
    );
    let found = index.scan_document("model-card.json", doc.as_bytes());
    let mut kinds: Vec<&str> = found.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        vec![
            "date-of-birth",
            "mrn",
            "nhs-number",
            "postcode",
            "zip-plus-4"
        ],
        "{found:?}"
    );
    for f in &found {
        assert_eq!(f.layer, "L1");
        let shown = format!("{f} {f:?}");
        for v in values {
            assert!(!shown.contains(v), "{shown} shows {v}");
        }
        assert!(shown.contains("model-card.json at byte "), "{shown}");
    }
    // Every kind has its report name, as serialized.
    for k in PiiKind::ALL {
        assert_eq!(
            serde_json::to_string(&k).expect("json"),
            format!("\"{}\"", k.name())
        );
    }
}

/// A signed bundle as the packager writes it (the test kit's), with an officer's approval:
/// no file of it holds anything L1 reports, with a site MRN pattern configured. A date of
/// birth written into its model card is reported.
#[test]
fn a_signed_release_bundle_holds_no_health_identifier() {
    let kit = airlock_testkit::Kit::builder().build();
    kit.approve("alice");
    let s = scanner(&["MRN[0-9]{8}"]).expect("valid");
    let index = IdentifierIndex::empty().with_pii(s.clone());
    let mut scanned = 0;
    let mut card = None;
    for path in files_under(&kit.bundle) {
        let bytes = std::fs::read(&path).expect("read bundle file");
        let name = path
            .strip_prefix(&kit.bundle)
            .expect("in bundle")
            .display()
            .to_string();
        let found: Vec<String> = if name.ends_with(".safetensors") {
            s.find_in_bytes(&bytes)
                .iter()
                .map(|h| h.kind.name().to_owned())
                .collect()
        } else {
            index
                .scan_document(&name, &bytes)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert!(found.is_empty(), "{name}: {found:?}");
        if name == "model-card.json" {
            card = Some(bytes);
        }
        scanned += 1;
    }
    assert!(scanned >= 6, "{scanned} files");
    let card = String::from_utf8(card.expect("a model card")).expect("utf-8");
    let planted = card.replacen('{', r#"{"patient_date_of_birth": "12/03/1984","#, 1);
    let found = index.scan_document("model-card.json", planted.as_bytes());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, "date-of-birth");
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
