//! Grammars of the strings that end up in signed documents (statement, provenance, model
//! card, release index). Every such string is checked where it is produced and again where
//! it is read (a run directory is an attacker input): what does not match is refused, so
//! that no free-form, possibly data-derived text is signed and shipped.
//!
//! Each check returns `Err` with a sentence naming what was refused and why (never echoing
//! the value itself when it may be data: only its length).

use std::cmp::Ordering;

/// Longest accepted version string.
pub const MAX_VERSION_LEN: usize = 128;
/// Longest accepted file or column name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest accepted `intended_use` text.
pub const MAX_INTENDED_USE_LEN: usize = 1000;

/// Model name: `[a-z0-9][a-z0-9-]{0,63}`.
pub fn model_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "model name ({} characters) must match [a-z0-9][a-z0-9-]{{0,63}} (lowercase letters, \
             digits and '-', starting with a letter or digit, at most 64 characters)",
            s.len()
        ))
    }
}

/// A SemVer 2.0 version (`1.2.0`, `1.0.0-rc.1`, `1.0.0+build.5`): no `v` prefix, no
/// leading zeros, at most [`MAX_VERSION_LEN`] characters.
pub fn version(s: &str) -> Result<semver::Version, String> {
    if s.len() > MAX_VERSION_LEN {
        return Err(format!(
            "version ({} characters) is longer than {MAX_VERSION_LEN}",
            s.len()
        ));
    }
    if s.starts_with(['v', 'V']) {
        return Err(
            "version is not SemVer 2.0: drop the 'v' prefix (write 1.2.0, not v1.2.0)".into(),
        );
    }
    semver::Version::parse(s).map_err(|e| {
        format!(
            "version ({} characters) is not SemVer 2.0 (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], \
             for example 1.2.0 or 1.3.0-rc.1): {e}",
            s.len()
        )
    })
}

/// SemVer 2.0 precedence of two versions: numeric identifiers compare numerically, a
/// pre-release sorts below its release, build metadata is ignored. `None` when either is
/// not SemVer.
pub fn version_precedence(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (version(a).ok()?, version(b).ok()?);
    Some(a.cmp_precedence(&b))
}

/// A git object id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn git_commit(s: &str) -> Result<(), String> {
    if matches!(s.len(), 40 | 64) && is_lower_hex(s) {
        Ok(())
    } else {
        Err(format!(
            "git commit ({} characters) is not a git object id (40 or 64 lowercase hex digits)",
            s.len()
        ))
    }
}

/// A lowercase hex SHA-256 (64 digits).
pub fn sha256_hex(s: &str) -> Result<(), String> {
    if s.len() == 64 && is_lower_hex(s) {
        Ok(())
    } else {
        Err(format!(
            "digest ({} characters) is not a SHA-256 (64 lowercase hex digits)",
            s.len()
        ))
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An RFC 3339 time (`2026-11-29T12:00:00Z`, `2026-11-29T12:00:00.5+01:00`): digits and
/// `-:T.Z+` only, and a valid date and time.
pub fn rfc3339(s: &str) -> Result<(), String> {
    let charset = s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'T' | b'.' | b'Z' | b'+'));
    let parsed = charset
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok();
    if parsed {
        Ok(())
    } else {
        Err(format!(
            "time ({} characters) is not an RFC 3339 time such as 2026-11-29T12:00:00Z",
            s.len()
        ))
    }
}

/// A training device as a run records it: `cpu` or `cuda:N`.
pub fn recorded_device(s: &str) -> Result<(), String> {
    let ok = s == "cpu" || s.strip_prefix("cuda:").is_some_and(device_index);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "device ({} characters) is not one of cpu, cuda:N",
            s.len()
        ))
    }
}

/// A training device as a pipeline names it: `cpu`, `cuda` or `cuda:N`.
pub fn pipeline_device(s: &str) -> Result<(), String> {
    if s == "cuda" {
        return Ok(());
    }
    recorded_device(s).map_err(|_| "training.device is not one of cpu, cuda, cuda:N".to_owned())
}

fn device_index(n: &str) -> bool {
    (1..=3).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_digit())
        && (n == "0" || !n.starts_with('0'))
}

/// A burn backend name: `flex`, `ndarray` or `cuda`.
pub fn backend(s: &str) -> Result<(), String> {
    if matches!(s, "flex" | "ndarray" | "cuda") {
        Ok(())
    } else {
        Err(format!(
            "backend ({} characters) is not one of flex, ndarray, cuda",
            s.len()
        ))
    }
}

/// A plain file name, as shipped in provenance and the leak report (never a path):
/// `[A-Za-z0-9_][A-Za-z0-9._-]*`, at most [`MAX_NAME_LEN`] characters.
pub fn file_name(s: &str) -> Result<(), String> {
    if plain_name(s, b".-_") {
        Ok(())
    } else {
        Err(format!(
            "file name ({} characters) must match [A-Za-z0-9_][A-Za-z0-9._-]* (at most {MAX_NAME_LEN} \
             characters, no spaces or path separators): rename the file",
            s.len()
        ))
    }
}

/// A column name as shipped in the model card: `[A-Za-z0-9_][A-Za-z0-9._-]*`, at most
/// [`MAX_NAME_LEN`] characters.
pub fn column_name(s: &str) -> Result<(), String> {
    if plain_name(s, b".-_") {
        Ok(())
    } else {
        Err(format!(
            "column name ({} characters) must match [A-Za-z0-9_][A-Za-z0-9._-]* (at most {MAX_NAME_LEN} \
             characters)",
            s.len()
        ))
    }
}

fn plain_name(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    (1..=MAX_NAME_LEN).contains(&b.len())
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// Free text shown on the model card (`intended_use`): at most [`MAX_INTENDED_USE_LEN`]
/// characters, no control characters. (Its content is scanned by the leak checks.)
pub fn free_text(s: &str) -> Result<(), String> {
    if s.chars().count() > MAX_INTENDED_USE_LEN {
        return Err(format!(
            "text of {} characters is longer than {MAX_INTENDED_USE_LEN}",
            s.chars().count()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("text holds control characters (newlines, tabs, escapes)".into());
    }
    Ok(())
}

/// Longest URI base accepted.
pub const MAX_URI_BASE_LEN: usize = 128;

/// A URI base for predicate and build types ([`crate::UriBase`]): `https://`, a lowercase
/// DNS name (labels of `[a-z0-9-]`, not starting or ending with `-`), then optional path
/// segments of `[A-Za-z0-9._~-]`; no port, user, query, fragment or trailing slash; at most
/// [`MAX_URI_BASE_LEN`] bytes.
pub fn uri_base(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("URI base {s:?} is refused: {why}"));
    if s.len() > MAX_URI_BASE_LEN {
        return bad("too long");
    }
    let Some(rest) = s.strip_prefix("https://") else {
        return bad("it must start with https://");
    };
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, None), |(h, p)| (h, Some(p)));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    };
    if host.is_empty() || !host.split('.').all(label_ok) {
        return bad("the host must be a lowercase DNS name, with no port or user");
    }
    if let Some(path) = path {
        let seg_ok = |g: &str| {
            !g.is_empty()
                && g.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._~-".contains(&c))
        };
        if !path.split('/').all(seg_ok) {
            return bad(
                "path segments are [A-Za-z0-9._~-], with no empty segment or trailing slash",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        for ok in ["fraud-detector", "a", "0model", &"a".repeat(64)] {
            assert!(model_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "Fraud",
            "a_b",
            "a.b",
            "a/b",
            "..",
            "a b",
            &"a".repeat(65),
            "123-45-6789\u{0}",
        ] {
            assert!(model_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_are_semver() {
        for ok in [
            "1.0.0",
            "0.1.0",
            "1.0.0-alpha.1",
            "1.0.0+build.5",
            "10.20.30",
        ] {
            assert!(version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "v1.0.0",
            "V1.0.0",
            "1.0",
            "1",
            "01.0.0",
            "1.0.0-01",
            "1.0.0-",
            "1.0.0/..",
            "1.0.0 ",
            "..",
            "1.0.0%2f",
            "",
            "1.0.0-a..b",
        ] {
            assert!(version(bad).is_err(), "{bad}");
        }
        assert!(version(&format!("1.0.0+{}", "a".repeat(200))).is_err());
        assert!(
            version("v1.0.0")
                .expect_err("v")
                .contains("drop the 'v' prefix")
        );
    }

    #[test]
    fn precedence_table() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "1.10.0",
            "2.0.0",
        ];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                assert_eq!(version_precedence(a, b), Some(i.cmp(&j)), "{a} vs {b}");
            }
        }
        assert_eq!(
            version_precedence("1.0.0+build.1", "1.0.0+build.2"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            version_precedence("1.0.0+zzz", "1.0.1"),
            Some(Ordering::Less)
        );
        assert_eq!(version_precedence("v1.0.0", "1.0.0"), None);
    }

    #[test]
    fn record_fields() {
        assert!(git_commit(&"a1".repeat(20)).is_ok());
        assert!(git_commit(&"0f".repeat(32)).is_ok());
        for bad in ["123-45-6789", &"A1".repeat(20), &"a1".repeat(21), "abc"] {
            assert!(git_commit(bad).is_err(), "{bad}");
        }
        for ok in ["2026-11-29T12:00:00Z", "2026-11-29T12:00:00.25+01:00"] {
            assert!(rfc3339(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2026-11-29",
            "2026-13-01T00:00:00Z",
            "2026-11-29T12:00:00Z john@example.com",
            "123-45-6789",
            "2026-11-29 12:00:00Z",
        ] {
            assert!(rfc3339(bad).is_err(), "{bad}");
        }
        for ok in ["cpu", "cuda:0", "cuda:12"] {
            assert!(recorded_device(ok).is_ok(), "{ok}");
        }
        for bad in [
            "cuda",
            "gpu",
            "cuda:01",
            "cuda:-1",
            "cpu 123-45-6789",
            "cuda:1234",
        ] {
            assert!(recorded_device(bad).is_err(), "{bad}");
        }
        assert!(pipeline_device("cuda").is_ok());
        assert!(backend("flex").is_ok() && backend("tpu").is_err());
        assert!(file_name("transactions.csv").is_ok());
        for bad in ["a b.csv", "../x.csv", "/abs.csv", ".hidden", "x@y.csv", ""] {
            assert!(file_name(bad).is_err(), "{bad}");
        }
        assert!(free_text("Score card transactions.").is_ok());
        assert!(free_text("line\nbreak").is_err());
        assert!(free_text(&"x".repeat(1001)).is_err());
    }
}
