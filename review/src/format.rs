//! How figures, times and names are written for a person to read, on the page and in the
//! terminal alike.

use airlock_schemas::{Decision, Verdict};

pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(crate) fn fmt4(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "n/a".to_owned()
    }
}

pub(crate) fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}%", x * 100.0)
    } else {
        "n/a".to_owned()
    }
}

/// 12345 → "12,345": row counts are read by people, not parsed.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn short_id(id: &str) -> String {
    id.chars().take(16).collect()
}

pub(crate) fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "error",
    }
}

pub(crate) fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "Pass",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR (could not run)",
    }
}

pub(crate) fn decision_word(d: Option<Decision>) -> &'static str {
    match d {
        Some(Decision::Approve) => "approve",
        Some(Decision::Reject) => "reject",
        None => "unreadable",
    }
}

/// What each leak layer means, for a reader who has not read the design notes.
pub(crate) fn layer_meaning(name: &str) -> &'static str {
    match name {
        "structure" => {
            "Only the declared model weights ship: no optimizer state, data statistics or extra metadata."
        }
        "pii-patterns" => {
            "No personal identifiers (emails, card numbers, SSNs, IBANs, phone numbers) appear in the files."
        }
        "exact-records" => "No training record, text or numbers, is copied into the files.",
        "membership-inference" => {
            "The model does not behave differently on its training rows (it did not memorize them)."
        }
        _ => "",
    }
}

/// Times read better as "2025-06-01 14:03 UTC" than as RFC 3339; anything unparsable is
/// shown as written.
pub(crate) fn human_time(s: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) else {
        return s.to_owned();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Quote a path for a POSIX shell only when it needs it, so the usual case stays readable.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(crate) fn json_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => grouped(u),
            (None, Some(i), _) => i.to_string(),
            (_, _, Some(f)) if f != 0.0 && f.abs() < 1e-3 => format!("{f:.3e}"),
            (_, _, Some(f)) => fmt4(f),
            _ => n.to_string(),
        },
        serde_json::Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}

/// `s` made safe to print to a terminal: control characters (C0, DEL, C1) and the Unicode
/// bidirectional overrides and isolates, which could rewrite or reorder what the officer
/// sees, are written as `\u{..}` escapes; a backslash is doubled so an escape cannot be
/// forged.
pub(crate) fn term(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        );
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || bidi {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// An estimate with its interval: `0.9312 (95% CI 0.9201–0.9420)`, or the estimate alone
/// when no (valid) interval was recorded.
pub(crate) fn with_interval(e: &crate::summary::Estimate, confidence: Option<f64>) -> String {
    let Some(v) = e.value.filter(|v| v.is_finite()) else {
        return "undefined".to_owned();
    };
    match e.interval() {
        Some((lo, hi)) => format!(
            "{} ({} CI {}–{})",
            fmt4(v),
            confidence.map_or_else(|| "bootstrap".to_owned(), level),
            fmt4(lo),
            fmt4(hi)
        ),
        None => fmt4(v),
    }
}

/// A confidence level as people write it: 0.95 → "95%", 0.975 → "97.5%".
pub(crate) fn level(c: f64) -> String {
    let p = c * 100.0;
    if !p.is_finite() {
        "n/a".to_owned()
    } else if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A number from a bundle, written the shortest way that reads back the same (`0.001`,
/// `20`): hyperparameters are shown as the pipeline wrote them, not rounded.
pub(crate) fn plain(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "n/a".to_owned()
    }
}
