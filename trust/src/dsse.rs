//! DSSE envelopes (Dead Simple Signing Envelope) with ed25519.

use airlock_schemas::{Envelope, EnvelopeSignature};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::keys::Signer;

/// Why an envelope does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsseError {
    /// The payload type is not the one expected.
    #[error("envelope payload type is {found:?}, expected {expected:?}")]
    PayloadType {
        /// Found.
        found: String,
        /// Expected.
        expected: String,
    },
    /// The payload or a signature is not valid base64.
    #[error("envelope {what} is not valid base64")]
    Base64 {
        /// `payload` or `signature`.
        what: &'static str,
    },
    /// No signature is by a key the caller trusts.
    #[error("no signature by a trusted key (signed by: {})", if keyids.is_empty() { "nobody".to_owned() } else { keyids.join(", ") })]
    UntrustedKey {
        /// Key ids the envelope claims.
        keyids: Vec<String>,
    },
    /// A signature by a trusted key id does not verify.
    #[error("signature by key {keyid} does not verify: the envelope was altered or forged")]
    BadSignature {
        /// The key id.
        keyid: String,
    },
}

impl DsseError {
    /// What kind of failure this is: always
    /// [`airlock_schemas::ErrorKind::VerificationFailed`].
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::PayloadType { .. }
            | Self::Base64 { .. }
            | Self::UntrustedKey { .. }
            | Self::BadSignature { .. } => airlock_schemas::ErrorKind::VerificationFailed,
        }
    }
}

/// Pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Sign `payload` into a new envelope.
pub fn sign(payload_type: &str, payload: &[u8], signer: &Signer) -> Envelope {
    let sig = signer.sign(&pae(payload_type, payload));
    Envelope {
        payload_type: payload_type.to_owned(),
        payload: STANDARD.encode(payload),
        signatures: vec![EnvelopeSignature {
            keyid: signer.key_id().to_owned(),
            sig: STANDARD.encode(sig),
        }],
    }
}

/// A payload whose signature verified, and who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Key id of the trusted key whose signature verified.
    pub keyid: String,
}

/// Verify `env` against `trusted` (key id, key) pairs. A signature counts only when its key
/// id names a trusted key *and* it verifies under that key (strict ed25519 verification).
pub fn verify(
    env: &Envelope,
    expected_type: &str,
    trusted: &[(String, VerifyingKey)],
) -> Result<Verified, DsseError> {
    if env.payload_type != expected_type {
        return Err(DsseError::PayloadType {
            found: env.payload_type.clone(),
            expected: expected_type.to_owned(),
        });
    }
    let payload = STANDARD
        .decode(&env.payload)
        .map_err(|_| DsseError::Base64 { what: "payload" })?;
    let message = pae(&env.payload_type, &payload);
    let mut bad = None;
    for s in &env.signatures {
        let Some((_, key)) = trusted.iter().find(|(id, _)| *id == s.keyid) else {
            continue;
        };
        let sig = STANDARD
            .decode(&s.sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .map(|b| Signature::from_bytes(&b));
        match sig {
            Some(sig) if key.verify_strict(&message, &sig).is_ok() => {
                return Ok(Verified {
                    payload,
                    keyid: s.keyid.clone(),
                });
            }
            _ => bad = Some(s.keyid.clone()),
        }
    }
    Err(match bad {
        Some(keyid) => DsseError::BadSignature { keyid },
        None => DsseError::UntrustedKey {
            keyids: env.signatures.iter().map(|s| s.keyid.clone()).collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = crate::keys::generate(&dir.path().join("k")).expect("keygen");
        let s = Signer::load(&g.private_key).expect("load");
        let trusted = vec![(s.key_id().to_owned(), s.verifying_key())];
        let env = sign("t", b"payload", &s);
        assert_eq!(
            verify(&env, "t", &trusted).expect("verifies").payload,
            b"payload"
        );
        let mut forged = env.clone();
        forged.payload = STANDARD.encode(b"payloaD");
        assert!(matches!(
            verify(&forged, "t", &trusted),
            Err(DsseError::BadSignature { .. })
        ));
        assert!(matches!(
            verify(&env, "t", &[]),
            Err(DsseError::UntrustedKey { .. })
        ));
        assert!(matches!(
            verify(&env, "u", &trusted),
            Err(DsseError::PayloadType { .. })
        ));
    }
}
