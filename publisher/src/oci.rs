//! The `oci://host[:port]/repository` registry: OCI distribution, through the ORAS
//! project's `oci-client`.
//!
//! The registry layout of the other backends maps onto one OCI repository:
//!
//! - `blobs/sha256/<hex>`: the repository's blobs (the registry checks each digest on
//!   upload; every read is checked against its digest and, where a manifest says it, its
//!   size).
//! - `models/<name>/<version>/release.json`: a **model manifest** following the CNCF
//!   ModelPack spec (`artifactType` [`media::MODEL_ARTIFACT`], config
//!   [`media::MODEL_CONFIG`]), tagged with the version (`+` of SemVer build metadata written
//!   `_`, which tags allow and versions never hold). Its layers are the bundle's files (the
//!   same blobs, named by the `org.cncf.model.filepath` annotation), the release index
//!   ([`media::RELEASE_INDEX`]) and the registry's copy of the audit log as it stood when the
//!   release was published ([`media::AUDIT_OBJECT`]): a copy of the tag alone (`skopeo
//!   copy`) carries everything a pull checks.
//! - The release statement and each approval are also attached to the model manifest as
//!   **referrers** (OCI 1.1 `subject`), through the registry's referrers API where it has
//!   one and otherwise through the fallback tag scheme (an image index tagged
//!   `sha256-<hex of the model manifest's digest>`).
//! - Other small objects (`audit/...`, `review/...`, `inbox/...`): a one-layer artifact
//!   ([`media::OBJECT`]) with the key in its `dev.airlock.key` annotation, tagged
//!   `airlock.<first key segment>.<SHA-256 of the key>`.
//!
//! A pull reads a release as a whole first ([`OciRegistry::open_release`]): the manifest
//! parsed strictly and bounded, every layer a file of a bundle's closed set with the media
//! type of its role, the index naming exactly those layers, the config naming the release,
//! and the referrers carrying exactly what the manifest carries; then the shared pull
//! checks (signature, approvals, audit point) run on it as on any registry.
//!
//! Plain HTTP is used only for loopback hosts; credentials, when needed, come from
//! `AIRLOCK_OCI_USERNAME` and `AIRLOCK_OCI_PASSWORD` (HTTP basic, or the token service the
//! registry names), and are never printed.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use airlock_schemas::ReleaseIndex;
use airlock_trust::bundle::is_closed_set_name;
use airlock_trust::{APPROVALS_DIR, MODEL_FILE, STATEMENT_DSSE_FILE};
use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::registry::{Location, MAX_INDEX_BYTES, Registry, RegistryError, check_key};

/// Media and artifact types airlock writes (and, reading, accepts: no other).
pub mod media {
    /// `artifactType` of a model manifest (CNCF ModelPack).
    pub const MODEL_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
    /// The model manifest's config (CNCF ModelPack).
    pub const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
    /// Model weights, unarchived (`model.safetensors`).
    pub const WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
    /// Model documentation, unarchived (`model-card.json`, `leak-report.json`).
    pub const DOC: &str = "application/vnd.cncf.model.doc.v1.raw";
    /// An in-toto statement (`statement.json`, the signed payload, for reading).
    pub const IN_TOTO: &str = "application/vnd.in-toto+json";
    /// A DSSE envelope (`statement.dsse.json`, `provenance.dsse.json`, approvals).
    pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
    /// The release index (`models/<name>/<version>/release.json`).
    pub const RELEASE_INDEX: &str = "application/vnd.airlock.release.index.v1+json";
    /// An object of the registry's audit copy, carried in a model manifest.
    pub const AUDIT_OBJECT: &str = "application/vnd.airlock.audit.v1";
    /// A small object (artifact type, and media type of its one layer).
    pub const OBJECT: &str = "application/vnd.airlock.object.v1";
    /// `artifactType` of the referrer attaching the signed release statement.
    pub const STATEMENT_REFERRER: &str = "application/vnd.airlock.release.statement.v1+json";
    /// `artifactType` of a referrer attaching an officer's approval.
    pub const APPROVAL_REFERRER: &str = "application/vnd.airlock.approval.v1+json";
    /// An OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// An OCI image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// The empty config of artifacts without one (`{}`).
    pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
}

/// Layer annotation naming the bundle file a layer is (CNCF ModelPack).
pub const FILEPATH: &str = "org.cncf.model.filepath";
/// Annotation naming the registry key an object layer (or object artifact) holds.
pub const KEY: &str = "dev.airlock.key";
/// Manifest annotation: the model's name (CNCF ModelPack).
pub const NAME_ANNOTATION: &str = "org.cncf.model.name";
/// Manifest annotation: the model's version, as SemVer (CNCF ModelPack).
pub const VERSION_ANNOTATION: &str = "org.cncf.model.version";
/// Manifest annotation: when the release was published.
const CREATED: &str = "org.opencontainers.image.created";
/// Layer annotation some tools show as the file name.
const TITLE: &str = "org.opencontainers.image.title";

/// Username for the registry (with [`PASSWORD_ENV`]); absent: anonymous access.
pub const USERNAME_ENV: &str = "AIRLOCK_OCI_USERNAME";
/// Password or token for the registry (with [`USERNAME_ENV`]).
pub const PASSWORD_ENV: &str = "AIRLOCK_OCI_PASSWORD";

/// The largest manifest or image index read (a release's manifest lists a few files).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The largest ModelPack config read.
const MAX_CONFIG_BYTES: usize = 1 << 20;
/// The largest audit object carried in a model manifest.
const MAX_CARRIED_BYTES: u64 = 256 << 20;
/// The most layers a model manifest may have, and referrers a release may list.
const MAX_LAYERS: usize = 1024;
/// The most referrers read for one release.
const MAX_REFERRERS: usize = 256;
/// The longest tag (OCI distribution).
const MAX_TAG_LEN: usize = 128;

/// Where an `oci://` registry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciAt {
    /// `host` or `host:port`, lower case.
    pub host: String,
    /// The repository (`team/models`).
    pub repository: String,
}

/// What a pull names in a repository: a tag or a manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// A tag (a version's tag, or any other).
    Tag(String),
    /// `sha256:<hex>` of the model manifest.
    Digest(String),
}

/// Whether `host` (`host[:port]`) is this machine, where plain HTTP is allowed.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    matches!(name, "127.0.0.1" | "::1" | "localhost")
}

/// `host[:port]`: DNS labels of `[a-z0-9-]` (or a bracketed IPv6 address), a port of
/// 1..=65535. Lower case only.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        if after.is_empty() {
            return true;
        }
        ("x", after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p != "0" && {
            p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
        }
    });
    port_ok
        && !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A repository name of the distribution spec: `/`-separated components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, at most 255 bytes.
fn valid_repository(repo: &str) -> bool {
    let component = |c: &str| {
        let b = c.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut run = String::new();
        for &ch in b {
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
                if !(run.is_empty()
                    || run == "."
                    || run == "_"
                    || run == "__"
                    || run.bytes().all(|r| r == b'-'))
                {
                    return false;
                }
                run.clear();
            } else if matches!(ch, b'.' | b'_' | b'-') {
                run.push(ch as char);
            } else {
                return false;
            }
        }
        true
    };
    !repo.is_empty() && repo.len() <= 255 && repo.split('/').all(component)
}

/// A tag of the distribution spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Parse `oci://host[:port]/repository` (no tag, no digest).
pub fn parse_uri(uri: &str) -> Option<OciAt> {
    let rest = uri.strip_prefix("oci://")?;
    let (host, repo) = rest.split_once('/')?;
    let repo = repo.strip_suffix('/').unwrap_or(repo);
    (valid_host(host) && valid_repository(repo)).then(|| OciAt {
        host: host.to_owned(),
        repository: repo.to_owned(),
    })
}

/// Parse `oci://host[:port]/repository:TAG` or `oci://host[:port]/repository@sha256:<hex>`.
pub fn parse_reference(uri: &str) -> Option<(OciAt, Pin)> {
    let rest = uri.strip_prefix("oci://")?;
    let (host, path) = rest.split_once('/')?;
    let (repo, pin) = if let Some((repo, hex)) = path.rsplit_once("@sha256:") {
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (repo, ok.then(|| Pin::Digest(format!("sha256:{hex}")))?)
    } else {
        let (repo, tag) = path.rsplit_once(':')?;
        (repo, valid_tag(tag).then(|| Pin::Tag(tag.to_owned()))?)
    };
    let at = parse_uri(&format!("oci://{host}/{repo}"))?;
    Some((at, pin))
}

/// The tag of a version: SemVer 2.0 with `+` (build metadata) written `_`.
pub fn version_tag(version: &str) -> Result<String, RegistryError> {
    let unsafe_key = |why: String| RegistryError::UnsafeKey {
        key: version.escape_debug().to_string(),
        why,
    };
    airlock_schemas::grammar::version(version).map_err(unsafe_key)?;
    let tag = version.replace('+', "_");
    if !valid_tag(&tag) {
        return Err(unsafe_key(format!(
            "its tag {tag:?} is not an OCI tag (at most {MAX_TAG_LEN} characters)"
        )));
    }
    Ok(tag)
}

/// The version a tag stands for, when it is a version's tag.
pub fn tag_version(tag: &str) -> Option<String> {
    let version = tag.replace('_', "+");
    (version_tag(&version).ok()? == tag).then_some(version)
}

/// The tag of the small object at `key`.
fn object_tag(key: &str) -> String {
    let seg = key.split('/').next().unwrap_or_default();
    let hint = if !seg.is_empty()
        && seg.len() <= 32
        && seg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        seg
    } else {
        "obj"
    };
    format!(
        "airlock.{hint}.{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

/// The fallback tag scheme's tag for the referrers of `digest` (`sha256-<hex>`).
pub fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The media type of a bundle file, by its role; `None` for a name that is not one.
pub fn media_type_of(file: &str) -> Option<&'static str> {
    use airlock_trust::bundle::{
        LEAK_REPORT_FILE, MODEL_CARD_FILE, PROVENANCE_DSSE_FILE, STATEMENT_FILE,
    };
    if !is_closed_set_name(file) {
        return None;
    }
    Some(match file {
        MODEL_FILE => media::WEIGHT,
        MODEL_CARD_FILE | LEAK_REPORT_FILE => media::DOC,
        STATEMENT_FILE => media::IN_TOTO,
        STATEMENT_DSSE_FILE | PROVENANCE_DSSE_FILE => media::DSSE,
        _ if file.starts_with(&format!("{APPROVALS_DIR}/")) => media::DSSE,
        _ => return None,
    })
}

/// An OCI content descriptor, as airlock writes it (and reads its own: nothing else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Artifact type (of a manifest a descriptor points at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest, as airlock writes it (read strictly: no other member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`media::MANIFEST`].
    pub media_type: String,
    /// What the artifact is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (a referrer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The part of any manifest a pull looks at before deciding to read it strictly.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    manifests: Vec<PeekEntry>,
}

/// An entry of an image index (the referrers API's answer or a fallback tag's index),
/// read leniently: other tools attach their own referrers too.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeekEntry {
    digest: String,
    #[serde(default)]
    artifact_type: Option<String>,
}

/// The CNCF ModelPack config airlock writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// General information.
    pub descriptor: ModelDescriptor,
    /// Technical metadata.
    pub config: ModelTech,
    /// The layers' digests (raw layers: their own digests).
    pub modelfs: ModelFs,
}

/// `descriptor` of a ModelPack config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelDescriptor {
    /// When the release was published.
    pub created_at: String,
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// The card's intended use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `config` of a ModelPack config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelTech {
    /// The card's architecture kind (`mlp`, `cnn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `safetensors`.
    pub format: String,
}

/// `modelfs` of a ModelPack config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digest of each layer, in order.
    pub diff_ids: Vec<String>,
}

fn remote(action: &'static str, key: &str, e: &OciDistributionError) -> RegistryError {
    RegistryError::Remote {
        action,
        key: key.to_owned(),
        message: e.to_string(),
    }
}

fn untrusted(what: impl Into<String>, why: impl Into<String>) -> RegistryError {
    RegistryError::Untrusted {
        what: what.into(),
        why: why.into(),
    }
}

/// Whether the registry said the thing is not there.
fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RequestError(r) => r.status().is_some_and(|s| s.as_u16() == 404),
        _ => false,
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Credentials from the environment: both variables or neither.
fn auth_from_env() -> Result<RegistryAuth, String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get(USERNAME_ENV), get(PASSWORD_ENV)) {
        (None, None) => Ok(RegistryAuth::Anonymous),
        (Some(u), Some(p)) => Ok(RegistryAuth::Basic(u, p)),
        _ => Err(format!(
            "set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither (anonymous access)"
        )),
    }
}

/// A registry in an OCI repository.
pub struct OciRegistry {
    at: OciAt,
    client: Client,
    auth: RegistryAuth,
    rt: Arc<tokio::runtime::Runtime>,
    /// Sizes of the blobs seen (`has_blob`, `put_blob`), for the manifest's descriptors.
    sizes: Mutex<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for OciRegistry {
    // The credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciRegistry").field("at", &self.at).finish()
    }
}

/// What a model manifest holds, once checked.
#[derive(Debug, Clone)]
struct ReleaseParts {
    name: String,
    version: String,
    /// Bundle file → its layer.
    files: BTreeMap<String, Descriptor>,
    /// The release index's layer.
    index: Descriptor,
    /// Carried audit objects: key → layer.
    carried: BTreeMap<String, Descriptor>,
}

impl OciRegistry {
    /// The registry at `at`; nothing is sent until it is used.
    pub fn new(at: OciAt) -> Result<Self, RegistryError> {
        let uri = format!("oci://{}/{}", at.host, at.repository);
        let unusable = |why: String| RegistryError::Unusable {
            uri: uri.clone(),
            why,
        };
        let auth = auth_from_env().map_err(unusable)?;
        // Plain HTTP only to this machine.
        let protocol = if is_loopback(&at.host) {
            ClientProtocol::HttpsExcept(vec![at.host.clone()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::try_from(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            ..ClientConfig::default()
        })
        .map_err(|e| unusable(format!("cannot set up the HTTP client: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| unusable(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Self {
            at,
            client,
            auth,
            rt: Arc::new(rt),
            sizes: Mutex::default(),
        })
    }

    /// Where it is.
    pub fn at(&self) -> &OciAt {
        &self.at
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(async {
            self.client
                .store_auth_if_needed(&self.at.host, &self.auth)
                .await;
            f.await
        })
    }

    fn tag_ref(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.at.host.clone(),
            self.at.repository.clone(),
            tag.to_owned(),
        )
    }

    fn digest_ref(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.at.host.clone(),
            self.at.repository.clone(),
            digest.to_owned(),
        )
    }

    fn pin_ref(&self, pin: &Pin) -> Reference {
        match pin {
            Pin::Tag(t) => self.tag_ref(t),
            Pin::Digest(d) => self.digest_ref(d),
        }
    }

    /// `oci://host/repository`, with `:tag` or `@digest` when pinned.
    fn uri_of(&self, pin: Option<&Pin>) -> String {
        let base = format!("oci://{}/{}", self.at.host, self.at.repository);
        match pin {
            None => base,
            Some(Pin::Tag(t)) => format!("{base}:{t}"),
            Some(Pin::Digest(d)) => format!("{base}@{d}"),
        }
    }

    /// A manifest or index (at most [`MAX_MANIFEST_BYTES`]) and its digest, checked against
    /// a pinned digest; `None` when absent.
    async fn manifest(&self, pin: &Pin) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
        let what = self.uri_of(Some(pin));
        let got = self
            .client
            .pull_manifest_raw(
                &self.pin_ref(pin),
                &self.auth,
                &[media::MANIFEST, media::INDEX],
            )
            .await;
        let (bytes, digest) = match got {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(OciDistributionError::DigestError(e)) => {
                return Err(untrusted(
                    what,
                    format!("the manifest is not the one named: {e}"),
                ));
            }
            Err(e) => return Err(remote("read", &what, &e)),
        };
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(untrusted(
                what,
                format!(
                    "the manifest is {} bytes, more than {MAX_MANIFEST_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let computed = sha256_digest(&bytes);
        if let Pin::Digest(d) = pin
            && &computed != d
        {
            return Err(untrusted(
                what,
                format!("the manifest's digest is {computed}"),
            ));
        }
        if computed != digest {
            return Err(untrusted(
                what,
                format!("the registry calls the manifest {digest}, its bytes are {computed}"),
            ));
        }
        Ok(Some((bytes, digest)))
    }

    /// Push manifest (or index) bytes at `pin`.
    async fn push_manifest(
        &self,
        pin: &Pin,
        bytes: Vec<u8>,
        media_type: &'static str,
    ) -> Result<(), RegistryError> {
        let what = self.uri_of(Some(pin));
        self.client
            .push_manifest_raw(&self.pin_ref(pin), bytes, reqwest_header(media_type))
            .await
            .map(drop)
            .map_err(|e| remote("push", &what, &e))
    }

    /// The length of blob `digest`, `None` when absent (the registry's word: the digest is
    /// checked on every read).
    async fn blob_len(&self, digest: &str) -> Result<Option<u64>, RegistryError> {
        let desc = OciDescriptor {
            digest: digest.to_owned(),
            ..OciDescriptor::default()
        };
        match self
            .client
            .pull_blob_stream(&self.tag_ref("latest"), &desc)
            .await
        {
            // Dropped unread: only the headers were wanted.
            Ok(s) => Ok(s.content_length),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(remote("look up", &blob_what(digest), &e)),
        }
    }

    /// Push `bytes` as a blob unless the registry holds it; its descriptor.
    async fn push_bytes(
        &self,
        bytes: &[u8],
        media_type: &str,
        annotations: BTreeMap<String, String>,
    ) -> Result<Descriptor, RegistryError> {
        let digest = sha256_digest(bytes);
        let len = bytes.len() as u64;
        if bytes.is_empty() {
            return Err(RegistryError::Unusable {
                uri: self.uri_of(None),
                why: "an empty object cannot be pushed (oci-client refuses empty blobs)".into(),
            });
        }
        if self.blob_len(&digest).await? != Some(len) {
            self.client
                .push_blob(&self.tag_ref("latest"), bytes, &digest)
                .await
                .map_err(|e| remote("push", &blob_what(&digest), &e))?;
        }
        Ok(Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size: len,
            artifact_type: None,
            annotations,
        })
    }

    /// Stream blob `digest` (of `size` bytes where known) into `out`, refusing more bytes
    /// than `max` and a digest other than the one named. Returns the bytes read.
    async fn read_blob(
        &self,
        digest: &str,
        size: Option<u64>,
        max: u64,
        what: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, RegistryError> {
        let desc = OciDescriptor {
            digest: digest.to_owned(),
            ..OciDescriptor::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&self.tag_ref("latest"), &desc)
            .await
            .map_err(|e| remote("read", what, &e))?;
        if let (Some(announced), Some(limit)) = (stream.content_length, size.or(Some(max)))
            && announced > limit
        {
            return Err(untrusted(
                what,
                format!("the registry offers {announced} bytes, more than {limit}"),
            ));
        }
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            n += chunk.len() as u64;
            if n > size.unwrap_or(max) {
                return Err(untrusted(
                    what,
                    format!("it is longer than {} bytes", size.unwrap_or(max)),
                ));
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| remote("write", what, &OciDistributionError::IoError(e)))?;
        }
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if size.is_some_and(|s| s == n) || failed.is_none() {
            // Every byte came: a digest other than the one named is a tampered blob.
            if got != digest {
                return Err(untrusted(
                    what,
                    format!("it reads back with digest {got}, not {digest}; nothing was installed"),
                ));
            }
        }
        if let Some(e) = failed {
            return Err(remote("read", what, &OciDistributionError::IoError(e)));
        }
        if let Some(s) = size
            && s != n
        {
            return Err(untrusted(
                what,
                format!("it is {n} bytes, the manifest says {s}"),
            ));
        }
        Ok(n)
    }

    /// Blob `digest` in memory (at most `max` bytes, exactly `size` where known).
    async fn blob_bytes(
        &self,
        digest: &str,
        size: Option<u64>,
        max: u64,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        if size.is_some_and(|s| s > max) {
            return Err(untrusted(
                what,
                format!("it is {} bytes, more than {max}", size.unwrap_or_default()),
            ));
        }
        let mut buf = Vec::new();
        self.read_blob(digest, size, max, what, &mut buf).await?;
        Ok(buf)
    }

    /// Every tag of the repository (none when it does not exist yet).
    async fn tags(&self) -> Result<Vec<String>, RegistryError> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let last = out.last().cloned();
            let page = match self
                .client
                .list_tags(
                    &self.tag_ref("latest"),
                    &self.auth,
                    Some(1000),
                    last.as_deref(),
                )
                .await
            {
                Ok(p) => p,
                Err(e) if is_not_found(&e) => return Ok(out),
                Err(e) => return Err(remote("list the tags of", &self.uri_of(None), &e)),
            };
            let before = out.len();
            out.extend(page.tags.into_iter().filter(|t| last.as_ref() < Some(t)));
            if out.len() == before || out.len() - before < 1000 {
                break;
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn blob_what(digest: &str) -> String {
    format!(
        "blobs/sha256/{}",
        digest.strip_prefix("sha256:").unwrap_or(digest)
    )
}

fn reqwest_header(media_type: &'static str) -> http::HeaderValue {
    http::HeaderValue::from_static(media_type)
}

/// `models/<name>/<version>/release.json` split, when `key` is a release index's key.
fn release_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("models/")?.strip_suffix("/release.json")?;
    let (name, version) = rest.split_once('/')?;
    (airlock_schemas::grammar::model_name(name).is_ok()
        && airlock_schemas::grammar::version(version).is_ok())
    .then_some((name, version))
}

/// `manifest` checked as a model manifest airlock wrote: its layers each a bundle file of
/// the closed set with its role's media type (no name twice), the index, or an audit
/// object; nothing else.
fn check_model_manifest(manifest: &Manifest, what: &str) -> Result<ReleaseParts, RegistryError> {
    let bad = |why: String| untrusted(what, why);
    if manifest.schema_version != 2
        || manifest.media_type != media::MANIFEST
        || manifest.artifact_type.as_deref() != Some(media::MODEL_ARTIFACT)
        || manifest.config.media_type != media::MODEL_CONFIG
    {
        return Err(bad(format!(
            "not a model manifest ({} of artifact type {:?} with a {} config)",
            manifest.media_type, manifest.artifact_type, manifest.config.media_type
        )));
    }
    if manifest.subject.is_some() || manifest.layers.len() > MAX_LAYERS {
        return Err(bad("a subject, or too many layers".into()));
    }
    let name = manifest
        .annotations
        .get(NAME_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let version = manifest
        .annotations
        .get(VERSION_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    if airlock_schemas::grammar::model_name(&name).is_err()
        || airlock_schemas::grammar::version(&version).is_err()
    {
        return Err(bad(format!(
            "its {NAME_ANNOTATION} {name:?} and {VERSION_ANNOTATION} {version:?} are not a model name and a SemVer version"
        )));
    }
    if let Some(k) = manifest
        .annotations
        .keys()
        .find(|k| ![NAME_ANNOTATION, VERSION_ANNOTATION, CREATED].contains(&k.as_str()))
    {
        return Err(bad(format!("unknown manifest annotation {k:?}")));
    }
    check_descriptor(&manifest.config, what)?;
    let mut parts = ReleaseParts {
        name,
        version,
        files: BTreeMap::new(),
        index: manifest.config.clone(),
        carried: BTreeMap::new(),
    };
    let mut index = None;
    for layer in &manifest.layers {
        check_descriptor(layer, what)?;
        let ann = |k: &str| layer.annotations.get(k).map(String::as_str);
        let keys: Vec<&str> = layer.annotations.keys().map(String::as_str).collect();
        match layer.media_type.as_str() {
            media::RELEASE_INDEX | media::AUDIT_OBJECT => {
                let key = ann(KEY).unwrap_or_default();
                if keys != [KEY] || check_key(key).is_err() || key.is_empty() {
                    return Err(bad(format!(
                        "a {} layer names the key {key:?}",
                        layer.media_type
                    )));
                }
                if layer.media_type == media::RELEASE_INDEX {
                    if index.replace(layer.clone()).is_some()
                        || release_key(key) != Some((&parts.name, &parts.version))
                    {
                        return Err(bad(format!(
                            "a second or foreign release index layer ({key})"
                        )));
                    }
                } else if !key.starts_with("audit/")
                    || parts
                        .carried
                        .insert(key.to_owned(), layer.clone())
                        .is_some()
                {
                    return Err(bad(format!(
                        "an audit layer names {key:?} (twice, or outside audit/)"
                    )));
                }
            }
            mt => {
                let file = ann(FILEPATH).unwrap_or_default();
                let title_ok = ann(TITLE).is_none_or(|t| t == file);
                let only_known = keys.iter().all(|k| [FILEPATH, TITLE].contains(k));
                if media_type_of(file) != Some(mt) || !title_ok || !only_known {
                    return Err(bad(format!(
                        "a layer of media type {mt:?} names {:?}, which is not a bundle file of that type",
                        file.escape_debug().to_string()
                    )));
                }
                if parts.files.insert(file.to_owned(), layer.clone()).is_some() {
                    return Err(bad(format!("two layers name {file}")));
                }
            }
        }
    }
    parts.index = index.ok_or_else(|| bad("no release index layer".into()))?;
    Ok(parts)
}

/// A descriptor's digest is `sha256:<64 lower-case hex>`, nothing else of it is set.
fn check_descriptor(d: &Descriptor, what: &str) -> Result<(), RegistryError> {
    let hex_ok = d.digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if !hex_ok || d.artifact_type.is_some() {
        return Err(untrusted(
            what,
            format!(
                "a descriptor with digest {:?} is not one airlock writes",
                d.digest
            ),
        ));
    }
    Ok(())
}

impl OciRegistry {
    /// The object at `key` (not a release index), read strictly, at most `max` bytes:
    /// `Some(Err(len))` when longer.
    async fn get_small(
        &self,
        key: &str,
        max: usize,
    ) -> Result<Option<Result<Vec<u8>, u64>>, RegistryError> {
        let pin = Pin::Tag(object_tag(key));
        let Some((bytes, _)) = self.manifest(&pin).await? else {
            return Ok(None);
        };
        let what = format!("{} ({key})", self.uri_of(Some(&pin)));
        let m: Manifest = airlock_schemas::strict_json::from_slice(&bytes)
            .map_err(|e| untrusted(&what, format!("not an object manifest: {e}")))?;
        let named = |a: &BTreeMap<String, String>| {
            a.len() == 1 && a.get(KEY).map(String::as_str) == Some(key)
        };
        let [layer] = m.layers.as_slice() else {
            return Err(untrusted(&what, "an object manifest has one layer"));
        };
        if m.artifact_type.as_deref() != Some(media::OBJECT)
            || m.media_type != media::MANIFEST
            || m.subject.is_some()
            || layer.media_type != media::OBJECT
            || !named(&m.annotations)
            || !named(&layer.annotations)
        {
            return Err(untrusted(
                &what,
                format!("the tag does not hold the object {key}"),
            ));
        }
        check_descriptor(layer, &what)?;
        if layer.size > max as u64 {
            return Ok(Some(Err(layer.size)));
        }
        Ok(Some(Ok(self
            .blob_bytes(&layer.digest, Some(layer.size), max as u64, &what)
            .await?)))
    }

    /// Store `bytes` at `key` as a one-layer artifact under the key's tag.
    async fn put_small(&self, key: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let named = BTreeMap::from([(KEY.to_owned(), key.to_owned())]);
        let layer = self.push_bytes(bytes, media::OBJECT, named.clone()).await?;
        let config = self
            .push_bytes(b"{}", media::EMPTY, BTreeMap::new())
            .await?;
        let m = Manifest {
            schema_version: 2,
            media_type: media::MANIFEST.into(),
            artifact_type: Some(media::OBJECT.into()),
            config,
            layers: vec![layer],
            subject: None,
            annotations: named,
        };
        let body = serde_json::to_vec(&m).map_err(|e| RegistryError::Unusable {
            uri: self.uri_of(None),
            why: e.to_string(),
        })?;
        self.push_manifest(&Pin::Tag(object_tag(key)), body, media::MANIFEST)
            .await
    }

    /// The model manifest at `pin`, checked ([`check_model_manifest`]); `None` when the tag
    /// or digest is absent.
    async fn model_manifest(
        &self,
        pin: &Pin,
    ) -> Result<Option<(Manifest, ReleaseParts, Descriptor)>, RegistryError> {
        let Some((bytes, digest)) = self.manifest(pin).await? else {
            return Ok(None);
        };
        let what = self.uri_of(Some(pin));
        let m: Manifest = airlock_schemas::strict_json::from_slice(&bytes)
            .map_err(|e| untrusted(&what, format!("not a model manifest airlock wrote: {e}")))?;
        let parts = check_model_manifest(&m, &what)?;
        if let Pin::Tag(t) = pin
            && tag_version(t).is_some_and(|v| v != parts.version)
        {
            return Err(untrusted(
                &what,
                format!(
                    "the tag {t} holds version {} of {}",
                    parts.version, parts.name
                ),
            ));
        }
        let subject = Descriptor {
            media_type: media::MANIFEST.into(),
            digest,
            size: bytes.len() as u64,
            artifact_type: Some(media::MODEL_ARTIFACT.into()),
            annotations: BTreeMap::new(),
        };
        Ok(Some((m, parts, subject)))
    }

    /// The index of release `name` `version` (at most `max` bytes), from its model manifest.
    async fn get_index(
        &self,
        name: &str,
        version: &str,
        max: usize,
    ) -> Result<Option<Result<Vec<u8>, u64>>, RegistryError> {
        let pin = Pin::Tag(version_tag(version)?);
        let Some((_, parts, _)) = self.model_manifest(&pin).await? else {
            return Ok(None);
        };
        if parts.name != name {
            return Err(untrusted(
                self.uri_of(Some(&pin)),
                format!("the tag holds a release of {}, not of {name}", parts.name),
            ));
        }
        if parts.index.size > max as u64 {
            return Ok(Some(Err(parts.index.size)));
        }
        let what = format!("{} (release index)", self.uri_of(Some(&pin)));
        Ok(Some(Ok(self
            .blob_bytes(
                &parts.index.digest,
                Some(parts.index.size),
                max as u64,
                &what,
            )
            .await?)))
    }

    /// The release keys (`models/<name>/<version>/release.json`) of the version tags,
    /// optionally of one model only.
    async fn release_keys(&self, only: Option<&str>) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        for tag in self.tags().await? {
            let Some(version) = tag_version(&tag) else {
                continue;
            };
            let pin = Pin::Tag(tag.clone());
            let Some((bytes, _)) = self.manifest(&pin).await? else {
                continue;
            };
            // Only model manifests: another artifact under a version-like tag is not a
            // release (and is skipped, as a file registry skips foreign files).
            let Ok(m) = airlock_schemas::strict_json::from_slice::<Manifest>(&bytes) else {
                continue;
            };
            if m.artifact_type.as_deref() != Some(media::MODEL_ARTIFACT) {
                continue;
            }
            let name = m
                .annotations
                .get(NAME_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if airlock_schemas::grammar::model_name(&name).is_ok() && only.is_none_or(|o| o == name)
            {
                out.push(format!("models/{name}/{version}/release.json"));
            }
        }
        Ok(out)
    }

    /// The keys of the small objects whose tag's hint matches `prefix`.
    async fn object_keys(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        let first = prefix.split_once('/').map(|(s, _)| s);
        let mut out = Vec::new();
        for tag in self.tags().await? {
            let Some((hint, _)) = tag.strip_prefix("airlock.").and_then(|r| r.split_once('.'))
            else {
                continue;
            };
            let wanted = match first {
                Some(seg) => hint == seg || hint == "obj",
                None => hint.starts_with(prefix) || hint == "obj",
            };
            if !wanted {
                continue;
            }
            let Some((bytes, _)) = self.manifest(&Pin::Tag(tag.clone())).await? else {
                continue;
            };
            let Ok(m) = airlock_schemas::strict_json::from_slice::<Manifest>(&bytes) else {
                continue;
            };
            if let Some(key) = m.annotations.get(KEY)
                && m.artifact_type.as_deref() == Some(media::OBJECT)
                && object_tag(key) == tag
                && key.starts_with(prefix)
            {
                out.push(key.clone());
            }
        }
        Ok(out)
    }
}

impl OciRegistry {
    /// The size of blob `digest`: seen by this publish, or asked of the registry.
    async fn size_of(&self, digest: &str) -> Result<u64, RegistryError> {
        if let Some(s) = self.sizes.lock().ok().and_then(|m| m.get(digest).copied()) {
            return Ok(s);
        }
        self.blob_len(digest)
            .await?
            .ok_or_else(|| RegistryError::Remote {
                action: "find",
                key: blob_what(digest),
                message: "the registry does not hold it (or does not say its size)".into(),
            })
    }

    fn saw(&self, digest: String, len: u64) {
        if let Ok(mut m) = self.sizes.lock() {
            m.insert(digest, len);
        }
    }

    /// The ModelPack config of `index`, from its model card where it has one (the card is
    /// read for its architecture and intended use only).
    async fn model_config(
        &self,
        index: &ReleaseIndex,
        layers: &[Descriptor],
    ) -> Result<Vec<u8>, RegistryError> {
        let mut architecture = None;
        let mut description = None;
        if let Some(sha) = index.files.get(airlock_trust::bundle::MODEL_CARD_FILE) {
            let digest = format!("sha256:{sha}");
            let size = self.size_of(&digest).await?;
            let card = self
                .blob_bytes(&digest, Some(size), 16 << 20, "model-card.json")
                .await?;
            if let Ok(card) = serde_json::from_slice::<serde_json::Value>(&card) {
                architecture = card["architecture"]["kind"].as_str().map(str::to_owned);
                description = card["intended_use"].as_str().map(str::to_owned);
            }
        }
        let config = ModelConfig {
            descriptor: ModelDescriptor {
                created_at: index.published_at.clone(),
                name: index.name.clone(),
                version: index.version.clone(),
                description,
            },
            config: ModelTech {
                architecture,
                format: "safetensors".into(),
            },
            modelfs: ModelFs {
                kind: "layers".into(),
                diff_ids: layers.iter().map(|l| l.digest.clone()).collect(),
            },
        };
        serde_json::to_vec(&config).map_err(|e| RegistryError::Unusable {
            uri: self.uri_of(None),
            why: e.to_string(),
        })
    }

    /// Write release `name` `version` from its index: the model manifest (by digest), its
    /// referrers, and last its version tag.
    async fn put_release(
        &self,
        key: &str,
        name: &str,
        version: &str,
        index_bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let bad_index = |why: String| RegistryError::UnsafeKey {
            key: key.to_owned(),
            why,
        };
        let index: ReleaseIndex = airlock_schemas::strict_json::from_slice(index_bytes)
            .map_err(|e| bad_index(format!("not a release index: {e}")))?;
        if index.name != name || index.version != version {
            return Err(bad_index(format!(
                "the index is for {} {}",
                index.name, index.version
            )));
        }
        let tag = version_tag(version)?;
        let mut layers = Vec::new();
        for (file, sha) in &index.files {
            let media_type = media_type_of(file)
                .ok_or_else(|| bad_index(format!("{file:?} is not a bundle file")))?;
            let digest = format!("sha256:{sha}");
            layers.push(Descriptor {
                media_type: media_type.into(),
                size: self.size_of(&digest).await?,
                digest,
                artifact_type: None,
                annotations: BTreeMap::from([
                    (FILEPATH.to_owned(), file.clone()),
                    (TITLE.to_owned(), file.clone()),
                ]),
            });
        }
        let keyed = |k: &str| BTreeMap::from([(KEY.to_owned(), k.to_owned())]);
        layers.push(
            self.push_bytes(index_bytes, media::RELEASE_INDEX, keyed(key))
                .await?,
        );
        // The registry's copy of this release's audit log as it stands (with this
        // publish's `start` entry): the log, its signed head and its latest checkpoint;
        // never the checkpoint history, which grows with every publish.
        let log = &index.audit.log;
        for okey in [
            crate::witness::log_key(log),
            crate::witness::head_key(log),
            crate::witness::checkpoint_key(log),
        ] {
            let what = format!("{} ({okey})", self.uri_of(None));
            let Some(bytes) = self.get_small(&okey, MAX_CARRIED_BYTES as usize).await? else {
                continue;
            };
            let bytes =
                bytes.map_err(|len| untrusted(what, format!("{len} bytes, too large to carry")))?;
            layers.push(
                self.push_bytes(&bytes, media::AUDIT_OBJECT, keyed(&okey))
                    .await?,
            );
        }
        let config = self.model_config(&index, &layers).await?;
        let config = self
            .push_bytes(&config, media::MODEL_CONFIG, BTreeMap::new())
            .await?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: media::MANIFEST.into(),
            artifact_type: Some(media::MODEL_ARTIFACT.into()),
            config,
            layers,
            subject: None,
            annotations: BTreeMap::from([
                (NAME_ANNOTATION.to_owned(), name.to_owned()),
                (VERSION_ANNOTATION.to_owned(), version.to_owned()),
                (CREATED.to_owned(), index.published_at.clone()),
            ]),
        };
        let body = serde_json::to_vec(&manifest).map_err(|e| bad_index(e.to_string()))?;
        let subject = Descriptor {
            media_type: media::MANIFEST.into(),
            digest: sha256_digest(&body),
            size: body.len() as u64,
            artifact_type: Some(media::MODEL_ARTIFACT.into()),
            annotations: BTreeMap::new(),
        };
        self.push_manifest(
            &Pin::Digest(subject.digest.clone()),
            body.clone(),
            media::MANIFEST,
        )
        .await?;
        self.attach_referrers(&subject, &manifest.layers).await?;
        // Last: until the tag moves, the release is not visible.
        self.push_manifest(&Pin::Tag(tag), body, media::MANIFEST)
            .await
    }

    /// Attach the statement and each approval of `layers` to `subject` as referrers; list
    /// them under the fallback tag when the registry has no referrers API.
    async fn attach_referrers(
        &self,
        subject: &Descriptor,
        layers: &[Descriptor],
    ) -> Result<(), RegistryError> {
        let empty = self
            .push_bytes(b"{}", media::EMPTY, BTreeMap::new())
            .await?;
        let mut listed = Vec::new();
        for layer in layers {
            let file = layer.annotations.get(FILEPATH).map_or("", String::as_str);
            let artifact_type = if file == STATEMENT_DSSE_FILE {
                media::STATEMENT_REFERRER
            } else if file.starts_with(&format!("{APPROVALS_DIR}/")) {
                media::APPROVAL_REFERRER
            } else {
                continue;
            };
            let m = Manifest {
                schema_version: 2,
                media_type: media::MANIFEST.into(),
                artifact_type: Some(artifact_type.into()),
                config: empty.clone(),
                layers: vec![layer.clone()],
                subject: Some(Descriptor {
                    artifact_type: None,
                    ..subject.clone()
                }),
                annotations: BTreeMap::new(),
            };
            let body = serde_json::to_vec(&m).map_err(|e| RegistryError::Unusable {
                uri: self.uri_of(None),
                why: e.to_string(),
            })?;
            let digest = sha256_digest(&body);
            let size = body.len() as u64;
            self.push_manifest(&Pin::Digest(digest.clone()), body, media::MANIFEST)
                .await?;
            listed.push(serde_json::json!({
                "mediaType": media::MANIFEST,
                "digest": digest,
                "size": size,
                "artifactType": artifact_type,
                "annotations": { FILEPATH: file },
            }));
        }
        if self.referrers_api(&subject.digest).await?.is_some() {
            return Ok(());
        }
        // The fallback tag scheme: an image index of the subject's referrers, merged with
        // what other tools listed there.
        let pin = Pin::Tag(fallback_tag(&subject.digest));
        let mut index = match self.manifest(&pin).await? {
            Some((b, _)) => serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .filter(|v| v["manifests"].is_array())
                .unwrap_or_else(|| serde_json::json!({})),
            None => serde_json::json!({}),
        };
        if index["manifests"].as_array().is_none() {
            index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media::INDEX,
                "manifests": [],
            });
        }
        if let Some(entries) = index["manifests"].as_array_mut() {
            for l in listed {
                if !entries.iter().any(|e| e["digest"] == l["digest"]) {
                    entries.push(l);
                }
            }
        }
        let body = serde_json::to_vec(&index).map_err(|e| RegistryError::Unusable {
            uri: self.uri_of(None),
            why: e.to_string(),
        })?;
        self.push_manifest(&pin, body, media::INDEX).await
    }

    /// The referrers of `digest` through the registry's referrers API (their digests);
    /// `None` when the registry has no such API.
    async fn referrers_api(&self, digest: &str) -> Result<Option<Vec<String>>, RegistryError> {
        match self
            .client
            .pull_referrers(&self.digest_ref(digest), None)
            .await
        {
            Ok(index) => Ok(Some(
                index.manifests.into_iter().map(|m| m.digest).collect(),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(remote("list the referrers of", digest, &e)),
        }
    }

    /// The referrers of `digest`: the API's answer, else the fallback tag's index.
    async fn referrers(&self, digest: &str) -> Result<Vec<String>, RegistryError> {
        let what = format!("{} (referrers of {digest})", self.uri_of(None));
        let found = match self.referrers_api(digest).await? {
            Some(found) => found,
            None => match self.manifest(&Pin::Tag(fallback_tag(digest))).await? {
                Some((bytes, _)) => {
                    let peek: Peek = serde_json::from_slice(&bytes)
                        .map_err(|e| untrusted(&what, format!("not an image index: {e}")))?;
                    if peek
                        .media_type
                        .as_deref()
                        .is_some_and(|m| m != media::INDEX)
                    {
                        return Err(untrusted(&what, "the fallback tag holds no image index"));
                    }
                    peek.manifests
                        .into_iter()
                        .filter(|e| {
                            e.artifact_type.as_deref().is_none_or(|t| {
                                t == media::STATEMENT_REFERRER || t == media::APPROVAL_REFERRER
                            })
                        })
                        .map(|e| e.digest)
                        .collect()
                }
                None => Vec::new(),
            },
        };
        if found.len() > MAX_REFERRERS {
            return Err(untrusted(
                what,
                format!("{} referrers, more than {MAX_REFERRERS}", found.len()),
            ));
        }
        Ok(found)
    }
}

/// A release read out of an OCI registry as a whole: its model manifest checked, its index
/// and carried audit copy read, its referrers checked. A read-only registry holding that
/// release only, which the shared pull checks run on.
#[derive(Debug)]
pub struct ReleaseView<'a> {
    oci: &'a OciRegistry,
    name: String,
    version: String,
    digest: String,
    index_key: String,
    index: Vec<u8>,
    files: BTreeMap<String, Descriptor>,
    carried: BTreeMap<String, Vec<u8>>,
}

impl ReleaseView<'_> {
    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The model manifest's digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl OciRegistry {
    /// Read the release at `pin` as a whole and check it (see [`ReleaseView`]); `None` when
    /// the tag or digest is absent.
    pub fn open_release(&self, pin: &Pin) -> Result<Option<ReleaseView<'_>>, RegistryError> {
        self.block(self.open_release_async(pin))
    }

    async fn open_release_async(
        &self,
        pin: &Pin,
    ) -> Result<Option<ReleaseView<'_>>, RegistryError> {
        let Some((manifest, parts, subject)) = self.model_manifest(pin).await? else {
            return Ok(None);
        };
        let what = format!("{}@{}", self.uri_of(None), subject.digest);
        let index_what = format!("{what} (release index)");
        let index = self
            .blob_bytes(
                &parts.index.digest,
                Some(parts.index.size),
                MAX_INDEX_BYTES as u64,
                &index_what,
            )
            .await?;
        let parsed: ReleaseIndex = airlock_schemas::strict_json::from_slice(&index)
            .map_err(|e| untrusted(&index_what, format!("not a release index: {e}")))?;
        let layered: BTreeMap<String, String> = parts
            .files
            .iter()
            .map(|(f, d)| (f.clone(), d.digest.trim_start_matches("sha256:").to_owned()))
            .collect();
        if parsed.name != parts.name || parsed.version != parts.version || parsed.files != layered {
            return Err(untrusted(
                &what,
                format!(
                    "its release index ({} {}) does not name exactly the manifest's layers ({} {})",
                    parsed.name, parsed.version, parts.name, parts.version
                ),
            ));
        }
        self.check_config(&manifest, &parts, &what).await?;
        let mut carried = BTreeMap::new();
        // Only the copy of the log the index names is read, and at most MAX_CARRIED_BYTES
        // in all: a manifest naming one large blob under many keys reads nothing.
        let wanted = [
            crate::witness::log_key(&parsed.audit.log),
            crate::witness::head_key(&parsed.audit.log),
            crate::witness::checkpoint_key(&parsed.audit.log),
        ];
        let mut budget = MAX_CARRIED_BYTES;
        for (key, d) in &parts.carried {
            if !wanted.contains(key) {
                continue;
            }
            budget = budget.checked_sub(d.size).ok_or_else(|| {
                untrusted(
                    &what,
                    format!("it carries more than {MAX_CARRIED_BYTES} bytes of audit copies"),
                )
            })?;
            let bytes = self
                .blob_bytes(
                    &d.digest,
                    Some(d.size),
                    MAX_CARRIED_BYTES,
                    &format!("{what} ({key})"),
                )
                .await?;
            carried.insert(key.clone(), bytes);
        }
        self.check_referrers(&subject, &parts, &what).await?;
        Ok(Some(ReleaseView {
            oci: self,
            index_key: crate::registry::index_key(&parts.name, &parts.version)?,
            name: parts.name,
            version: parts.version,
            digest: subject.digest,
            index,
            files: parts.files,
            carried,
        }))
    }

    /// The config names the release and every layer, in order.
    async fn check_config(
        &self,
        manifest: &Manifest,
        parts: &ReleaseParts,
        what: &str,
    ) -> Result<(), RegistryError> {
        let bytes = self
            .blob_bytes(
                &manifest.config.digest,
                Some(manifest.config.size),
                MAX_CONFIG_BYTES as u64,
                &format!("{what} (config)"),
            )
            .await?;
        let config: ModelConfig =
            airlock_schemas::strict_json::from_slice(&bytes).map_err(|e| {
                untrusted(
                    what,
                    format!("its config is not a ModelPack config airlock wrote: {e}"),
                )
            })?;
        let layers: Vec<&String> = manifest.layers.iter().map(|l| &l.digest).collect();
        if config.descriptor.name != parts.name
            || config.descriptor.version != parts.version
            || config.modelfs.kind != "layers"
            || config.modelfs.diff_ids.iter().collect::<Vec<_>>() != layers
        {
            return Err(untrusted(
                what,
                "its config names another release or other layers",
            ));
        }
        Ok(())
    }

    /// The referrers of the model manifest carry exactly what it carries: each statement or
    /// approval referrer names this manifest as its subject and its one layer is the
    /// manifest's layer for that file (same digest, size, type). Other tools' referrers are
    /// left alone; none at all is a copy of the tag alone, which carries everything.
    async fn check_referrers(
        &self,
        subject: &Descriptor,
        parts: &ReleaseParts,
        what: &str,
    ) -> Result<(), RegistryError> {
        for digest in self.referrers(&subject.digest).await? {
            let pin = Pin::Digest(digest.clone());
            let Some((bytes, _)) = self.manifest(&pin).await? else {
                return Err(untrusted(
                    what,
                    format!("its referrer {digest} is listed but absent"),
                ));
            };
            let peek: Peek = serde_json::from_slice(&bytes).map_err(|e| {
                untrusted(
                    what,
                    format!("its referrer {digest} is not a manifest: {e}"),
                )
            })?;
            let kind = peek.artifact_type.as_deref();
            if kind != Some(media::STATEMENT_REFERRER) && kind != Some(media::APPROVAL_REFERRER) {
                continue; // another tool's (a signature, an SBOM): not airlock's to judge
            }
            let swapped =
                |why: String| untrusted(what, format!("swapped referrer {digest}: {why}; refused"));
            let m: Manifest = airlock_schemas::strict_json::from_slice(&bytes)
                .map_err(|e| swapped(format!("not a referrer airlock writes ({e})")))?;
            if m.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
                return Err(swapped(format!(
                    "it names another subject ({})",
                    m.subject.as_ref().map_or("none", |s| s.digest.as_str())
                )));
            }
            let [layer] = m.layers.as_slice() else {
                return Err(swapped("it does not carry exactly one document".into()));
            };
            let file = layer.annotations.get(FILEPATH).map_or("", String::as_str);
            let role_ok = if kind == Some(media::STATEMENT_REFERRER) {
                file == STATEMENT_DSSE_FILE
            } else {
                file.starts_with(&format!("{APPROVALS_DIR}/"))
            };
            if !role_ok || parts.files.get(file) != Some(layer) {
                return Err(swapped(format!(
                    "its {} differs from what the manifest carries",
                    if file.is_empty() { "document" } else { file }
                )));
            }
        }
        Ok(())
    }
}

fn read_only(uri: String) -> RegistryError {
    RegistryError::Unusable {
        uri,
        why: "a release read from its manifest is read-only".into(),
    }
}

impl Registry for ReleaseView<'_> {
    fn uri(&self) -> String {
        format!("{}@{}", self.oci.uri_of(None), self.digest)
    }

    fn location(&self, _allowed_accounts: &[String]) -> Result<Location, RegistryError> {
        Err(read_only(self.uri()))
    }

    fn has_blob(&self, _sha256: &str, _len: u64) -> Result<bool, RegistryError> {
        Err(read_only(self.uri()))
    }

    fn put_blob(&self, _sha256: &str, _path: &Path) -> Result<u64, RegistryError> {
        Err(read_only(self.uri()))
    }

    fn put_object(&self, _key: &str, _bytes: &[u8]) -> Result<(), RegistryError> {
        Err(read_only(self.uri()))
    }

    fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        check_key(key)?;
        if key == self.index_key {
            return Ok(Some(self.index.clone()));
        }
        Ok(self.carried.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        check_key(prefix)?;
        let mut keys: Vec<String> = std::iter::once(&self.index_key)
            .chain(self.carried.keys())
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Only the manifest's layers, each checked against the manifest's digest and size.
    fn get_blob(&self, sha256: &str, dest: &Path) -> Result<u64, RegistryError> {
        let digest = format!("sha256:{sha256}");
        let Some((file, d)) = self.files.iter().find(|(_, d)| d.digest == digest) else {
            return Err(RegistryError::UnsafeKey {
                key: crate::registry::blob_key(sha256),
                why: "not a layer of the release's manifest".into(),
            });
        };
        let what = format!("{} (layer {file})", self.uri());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|source| RegistryError::io("create", dest, source))?;
        let n =
            self.oci.block(
                self.oci
                    .read_blob(&d.digest, Some(d.size), d.size, &what, &mut f),
            )?;
        f.flush()
            .and_then(|()| f.sync_all())
            .map_err(|source| RegistryError::io("write", dest, source))?;
        Ok(n)
    }

    fn named_copy(
        &self,
        _prefix: &str,
        _files: &BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        Err(read_only(self.uri()))
    }
}

impl Registry for OciRegistry {
    fn uri(&self) -> String {
        self.uri_of(None)
    }

    /// An OCI registry cannot say where it is: the residency policy's `[oci] hosts` does.
    fn location(&self, _allowed_accounts: &[String]) -> Result<Location, RegistryError> {
        Err(RegistryError::Unusable {
            uri: self.uri(),
            why: "an OCI registry cannot say where it is: the residency policy's [oci] hosts names its region".into(),
        })
    }

    fn oci_host(&self) -> Option<String> {
        Some(self.at.host.clone())
    }

    fn has_blob(&self, sha256: &str, len: u64) -> Result<bool, RegistryError> {
        check_key(&crate::registry::blob_key(sha256))?;
        let digest = format!("sha256:{sha256}");
        let found = self.block(self.blob_len(&digest))?;
        if found == Some(len) {
            self.saw(digest, len);
        }
        Ok(found == Some(len))
    }

    /// Push the file; the registry checks the digest before it stores the blob.
    fn put_blob(&self, sha256: &str, path: &Path) -> Result<u64, RegistryError> {
        check_key(&crate::registry::blob_key(sha256))?;
        let bytes =
            std::fs::read(path).map_err(|source| RegistryError::io("read", path, source))?;
        let desc = self.block(self.push_bytes(&bytes, media::OBJECT, BTreeMap::new()))?;
        if desc.digest != format!("sha256:{sha256}") {
            return Err(RegistryError::Corrupt {
                sha256: sha256.to_owned(),
                got: desc.digest,
            });
        }
        self.saw(desc.digest, desc.size);
        Ok(desc.size)
    }

    fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        check_key(key)?;
        match release_key(key) {
            Some((name, version)) => self.block(self.put_release(key, name, version, bytes)),
            None if key.starts_with("models/") || key.starts_with("blobs/") => {
                Err(RegistryError::UnsafeKey {
                    key: key.escape_debug().to_string(),
                    why: "not a key an OCI registry maps (models/<name>/<version>/release.json, or an object outside models/ and blobs/)".into(),
                })
            }
            None => self.block(self.put_small(key, bytes)),
        }
    }

    fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        Ok(self
            .get_object_max(key, usize::MAX >> 1)?
            .map(|r| r.unwrap_or_default()))
    }

    fn get_object_max(
        &self,
        key: &str,
        max: usize,
    ) -> Result<Option<Result<Vec<u8>, u64>>, RegistryError> {
        check_key(key)?;
        match release_key(key) {
            Some((name, version)) => self.block(self.get_index(name, version, max)),
            None if key.starts_with("models/") || key.starts_with("blobs/") => Ok(None),
            None => self.block(self.get_small(key, max)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        check_key(prefix)?;
        self.block(async {
            let mut keys = Vec::new();
            if prefix.is_empty() || prefix.starts_with("models/") || "models/".starts_with(prefix) {
                let only = prefix
                    .strip_prefix("models/")
                    .and_then(|r| r.strip_suffix('/'))
                    .filter(|n| !n.contains('/') && !n.is_empty());
                keys.extend(self.release_keys(only).await?);
            }
            if !prefix.starts_with("models/") && !prefix.starts_with("blobs/") {
                keys.extend(self.object_keys(prefix).await?);
            }
            keys.retain(|k| k.starts_with(prefix));
            keys.sort();
            keys.dedup();
            Ok(keys)
        })
    }

    fn get_blob(&self, sha256: &str, dest: &Path) -> Result<u64, RegistryError> {
        check_key(&crate::registry::blob_key(sha256))?;
        let digest = format!("sha256:{sha256}");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|source| RegistryError::io("create", dest, source))?;
        let n = self.block(self.read_blob(&digest, None, u64::MAX, &blob_what(&digest), &mut f))?;
        f.flush()
            .and_then(|()| f.sync_all())
            .map_err(|source| RegistryError::io("write", dest, source))?;
        Ok(n)
    }

    fn named_copy(
        &self,
        _prefix: &str,
        _files: &BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        Err(RegistryError::Unusable {
            uri: self.uri(),
            why: "an OCI registry holds no copies by file name: SageMaker reads model data from S3, publish to an s3:// registry".into(),
        })
    }

    fn release(
        &self,
        _name: &str,
        version: &str,
    ) -> Result<Option<Box<dyn Registry + '_>>, RegistryError> {
        let pin = Pin::Tag(version_tag(version)?);
        Ok(self
            .open_release(&pin)?
            .map(|v| Box::new(v) as Box<dyn Registry + '_>))
    }
}

/// The region the residency policy's `[oci] hosts` gives `host`, or why it allows none.
pub fn region_of(
    residency: &airlock_schemas::ResidencyPolicy,
    host: &str,
) -> Result<String, String> {
    let hosts = residency.oci.as_ref().map(|o| &o.hosts);
    hosts
        .and_then(|h| h.get(host))
        .cloned()
        .ok_or_else(|| {
            format!(
                "the OCI registry host {host:?} is not in the residency policy's [oci] hosts (allowed: {:?})",
                hosts.map(|h| h.keys().collect::<Vec<_>>()).unwrap_or_default()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_references_and_tags_are_parsed_strictly() {
        let at = parse_uri("oci://127.0.0.1:5000/team/models").expect("uri");
        assert_eq!(at.host, "127.0.0.1:5000");
        assert_eq!(at.repository, "team/models");
        assert!(parse_uri("oci://registry.example.com/fraud").is_some());
        assert!(parse_uri("oci://[::1]:5000/fraud").is_some());
        for bad in [
            "oci://Registry.example.com/x",
            "oci://host/UPPER",
            "oci://host/../x",
            "oci://host/a//b",
            "oci://host/a:tag",
            "oci://host/a@sha256:00",
            "oci://host:0/x",
            "oci://host:99999/x",
            "oci://host",
            "oci://host/",
            "oci://host/-x",
            "oci://host/x%2f",
            "oci://user:pw@host/x",
            "docker://host/x",
        ] {
            assert!(parse_uri(bad).is_none(), "{bad}");
        }
        let hex = "ab".repeat(32);
        assert_eq!(
            parse_reference(&format!("oci://h:1/r/s@sha256:{hex}")).map(|(_, p)| p),
            Some(Pin::Digest(format!("sha256:{hex}")))
        );
        assert_eq!(
            parse_reference("oci://h:1/r/s:1.0.0_build.5").map(|(_, p)| p),
            Some(Pin::Tag("1.0.0_build.5".into()))
        );
        for bad in [
            "oci://h:1/r/s",
            "oci://h:1/r/s:",
            "oci://h:1/r/s:a/b",
            "oci://h:1/r/s@sha256:AB",
            "oci://h:1/r/s:.x",
            "oci://h:1/r/models/fraud@1.0.0",
        ] {
            assert!(parse_reference(bad).is_none(), "{bad}");
        }
        assert!(
            is_loopback("127.0.0.1:5000") && is_loopback("localhost") && is_loopback("[::1]:1")
        );
        assert!(!is_loopback("127.0.0.2:5000") && !is_loopback("registry.example.com"));
    }

    #[test]
    fn versions_map_to_tags_and_back() {
        assert_eq!(version_tag("1.0.0").ok().as_deref(), Some("1.0.0"));
        assert_eq!(
            version_tag("1.0.0-rc.1+build.5").ok().as_deref(),
            Some("1.0.0-rc.1_build.5")
        );
        assert_eq!(
            tag_version("1.0.0-rc.1_build.5").as_deref(),
            Some("1.0.0-rc.1+build.5")
        );
        for t in ["latest", "sha256-ab", "airlock.audit.00", "v1.0.0", "1.0"] {
            assert_eq!(tag_version(t), None, "{t}");
        }
        assert!(version_tag(&format!("1.0.0-{}", "a".repeat(200))).is_err());
        assert!(object_tag("audit/audit.log").starts_with("airlock.audit."));
        assert!(valid_tag(&object_tag("audit/audit.log")));
        assert_eq!(fallback_tag("sha256:00ff"), "sha256-00ff");
    }

    #[test]
    fn bundle_files_have_their_role_s_media_type_and_nothing_else_has_one() {
        assert_eq!(media_type_of("model.safetensors"), Some(media::WEIGHT));
        assert_eq!(media_type_of("model-card.json"), Some(media::DOC));
        assert_eq!(media_type_of("statement.dsse.json"), Some(media::DSSE));
        assert_eq!(media_type_of("statement.json"), Some(media::IN_TOTO));
        for bad in [
            "../model.safetensors",
            "x/model.safetensors",
            "approvals/../x",
            "",
            "README.md",
        ] {
            assert_eq!(media_type_of(bad), None, "{bad}");
        }
    }
}
