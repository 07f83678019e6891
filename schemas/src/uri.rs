//! The URIs airlock's attestations are typed with.
//!
//! in-toto asks that a predicate type be a URI its producer controls. airlock's default base
//! is `https://airlock.dev`; an organisation that signs its own releases can point it at its
//! own domain: `uri_base` in the pipeline's `[signing]` section (what the packager writes)
//! and in the trust policy (what verification and officers' decisions expect). Both default
//! to [`DEFAULT_URI_BASE`], so every release signed before the setting existed verifies.

/// The default base of airlock's predicate and build types.
pub const DEFAULT_URI_BASE: &str = "https://airlock.dev";

/// A checked URI base: `https://` and a lowercase DNS name, optionally followed by path
/// segments, with no port, user, query, fragment or trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriBase(String);

impl Default for UriBase {
    fn default() -> Self {
        Self(DEFAULT_URI_BASE.to_owned())
    }
}

impl UriBase {
    /// `given`, checked against the grammar above; `None` is the default.
    pub fn new(given: Option<&str>) -> Result<Self, String> {
        match given {
            None => Ok(Self::default()),
            Some(s) => crate::grammar::uri_base(s).map(|()| Self(s.to_owned())),
        }
    }

    /// The base itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `predicateType` of the release statement.
    pub fn release_predicate(&self) -> String {
        format!("{}/attestation/release/v1", self.0)
    }

    /// `predicateType` of an officer's decision.
    pub fn approval_predicate(&self) -> String {
        format!("{}/attestation/approval/v1", self.0)
    }

    /// `predicateType` of a burst's signed data export.
    pub fn export_predicate(&self) -> String {
        format!("{}/attestation/export/v1", self.0)
    }

    /// `predicateType` of an officer's decision on a data export (a different statement
    /// type from a release's decision: one can never count as the other).
    pub fn export_approval_predicate(&self) -> String {
        format!("{}/attestation/export-approval/v1", self.0)
    }

    /// SLSA `buildType` of train-and-package.
    pub fn build_type(&self) -> String {
        format!("{}/build/train-and-package/v1", self.0)
    }

    /// SLSA `builder.id` for the builder key `key_id`.
    pub fn builder_id(&self, key_id: &str) -> String {
        format!("{}/builder/key/{key_id}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spells_the_types_releases_already_carry() {
        let b = UriBase::default();
        assert_eq!(b.release_predicate(), crate::RELEASE_PREDICATE_TYPE);
        assert_eq!(b.approval_predicate(), crate::APPROVAL_PREDICATE_TYPE);
        assert_eq!(
            b.build_type(),
            "https://airlock.dev/build/train-and-package/v1"
        );
        assert_eq!(UriBase::new(None), Ok(b));
    }

    #[test]
    fn a_base_of_ones_own_domain_is_accepted() {
        for ok in [
            "https://ml.example-hospital.org",
            "https://example.org/attestations",
            "https://a.b/c/d-e_f.g~h",
        ] {
            let b = UriBase::new(Some(ok)).expect(ok);
            assert!(b.release_predicate().starts_with(ok));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "http://example.org",
            "https://",
            "https://Example.org",
            "https://example.org/",
            "https://example.org:8443",
            "https://user@example.org",
            "https://example.org?x=1",
            "https://example.org#x",
            "https://example..org",
            "https://-example.org",
            "https://example.org//x",
            "https://example.org/a b",
            "https://example.org/\u{e9}",
            "ftp://example.org",
        ] {
            assert!(UriBase::new(Some(bad)).is_err(), "{bad:?} was accepted");
        }
        let long = format!("https://example.org/{}", "a".repeat(200));
        assert!(UriBase::new(Some(&long)).is_err());
    }
}
