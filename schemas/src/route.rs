//! Split inference: the routing policy of `airlock route` (`route.toml`), and what the
//! router records in the audit log.
//!
//! The policy says which requests are sensitive (and so never leave the premises), where
//! the on-prem pool and the cloud endpoints are, which release both must serve, and how
//! the router checks and retries them. Paths are relative to the policy file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most on-prem pool members or cloud endpoints a policy may name.
pub const MAX_UPSTREAMS: usize = 64;

/// `route.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    /// The release both sides must serve.
    pub release: RouteRelease,
    /// Where the router listens.
    pub listen: RouteListen,
    /// The routing audit.
    pub audit: RouteAudit,
    /// What makes a request sensitive (on-prem only).
    #[serde(default)]
    pub classify: Classify,
    /// The on-prem `airlock serve` pool.
    pub onprem: OnpremSide,
    /// The cloud endpoints (none: every request stays on the premises).
    #[serde(default)]
    pub cloud: CloudSide,
    /// Health checks of every upstream.
    #[serde(default)]
    pub health: HealthSpec,
}

/// The release the router admits on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRelease {
    /// The release bundle (as pulled): verified with `trust` and its approvals at start and
    /// on every reload; its release statement's SHA-256 is what each side must report.
    pub bundle: PathBuf,
    /// The trust policy the bundle is verified against.
    pub trust: PathBuf,
}

/// Listening addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteListen {
    /// The gateway (`GET /ping`, `POST /invocations`), e.g. `127.0.0.1:8080`.
    pub address: String,
    /// Prometheus-format metrics (`GET /metrics`) on a separate address; none: no metrics.
    #[serde(default)]
    pub metrics: Option<String>,
}

/// The routing audit: counts per minute and every refusal, appended to a hash-chained
/// audit log. Never a payload, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteAudit {
    /// The audit log (the router holds its lock while it runs: give it its own file).
    pub log: PathBuf,
    /// The router's signing key; its public key must be a `publisher` key of the trust
    /// policy, so `airlock audit verify` checks the log's signed head.
    pub key: PathBuf,
    /// Seconds per counting window (default 60).
    #[serde(default = "default_window")]
    pub window_seconds: u64,
}

fn default_window() -> u64 {
    60
}

/// What makes a request sensitive. A sensitive request is served on the premises or not at
/// all: when no on-prem member is healthy it gets a 503, never the cloud.
///
/// Requests whose body the router cannot read as rows of numbers (another content type, a
/// compressed body, strings among the values, a body that does not parse) are sensitive
/// too: what cannot be scanned does not leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Classify {
    /// Scan every body with L1's identifier detectors (names in e-mail addresses, card
    /// numbers, national ids, IBANs, phones, NHS numbers, dates of birth, postcodes); any
    /// hit makes the request sensitive. On by default.
    #[serde(default = "default_true")]
    pub identifiers: bool,
    /// The site's medical record number formats (regular expressions, as
    /// `[leak] mrn_patterns`).
    #[serde(default)]
    pub mrn_patterns: Vec<String>,
    /// Field names (JSON keys, CSV header names) whose presence makes a request sensitive.
    #[serde(default)]
    pub sensitive_fields: Vec<String>,
    /// The header a caller sets to the request's data class (e.g. `x-data-class`).
    #[serde(default)]
    pub data_class_header: Option<String>,
    /// Data classes that stay on the premises (compared case-insensitively).
    #[serde(default)]
    pub onprem_data_classes: Vec<String>,
    /// The header naming the tenant (e.g. `x-tenant`).
    #[serde(default)]
    pub tenant_header: Option<String>,
    /// Tenants whose requests stay on the premises.
    #[serde(default)]
    pub onprem_tenants: Vec<String>,
    /// The header naming the source system (e.g. `x-source`).
    #[serde(default)]
    pub source_header: Option<String>,
    /// Source systems whose requests stay on the premises.
    #[serde(default)]
    pub onprem_sources: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// No `[classify]`: identifiers are still looked for (never off by omission).
impl Default for Classify {
    fn default() -> Self {
        Self {
            identifiers: true,
            mrn_patterns: Vec::new(),
            sensitive_fields: Vec::new(),
            data_class_header: None,
            onprem_data_classes: Vec::new(),
            tenant_header: None,
            onprem_tenants: Vec::new(),
            source_header: None,
            onprem_sources: Vec::new(),
        }
    }
}

/// The on-prem pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnpremSide {
    /// Base URLs of the pool's `airlock serve` members (`http://host:port`).
    pub members: Vec<String>,
    /// Milliseconds a member has to answer one request (default 2000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Other members tried after a member fails (connection refused, timeout, 5xx);
    /// default 1.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

/// The cloud side.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudSide {
    /// The endpoints, tried in turn.
    #[serde(default)]
    pub endpoints: Vec<CloudEndpoint>,
    /// Milliseconds an endpoint has to answer (default 2000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Other endpoints tried after one fails; default 1.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Serve a request that may go to the cloud on the premises when no cloud endpoint
    /// answers (default false: it gets a 503).
    #[serde(default)]
    pub fallback_to_onprem: bool,
}

fn default_timeout() -> u64 {
    2000
}

fn default_retries() -> u32 {
    1
}

/// One cloud endpoint: a URL speaking the SageMaker container contract (`/ping`,
/// `/invocations`), or a SageMaker endpoint called through InvokeEndpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudEndpoint {
    /// Base URL (`http://host:port`).
    #[serde(default)]
    pub url: Option<String>,
    /// SageMaker endpoint name.
    #[serde(default)]
    pub sagemaker: Option<String>,
    /// AWS region of the SageMaker endpoint (default: the AWS configuration's).
    #[serde(default)]
    pub region: Option<String>,
}

/// Health checks: `GET /ping` on every member and URL endpoint (DescribeEndpoint for a
/// SageMaker one), which must report the release's statement digest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// Milliseconds between two checks of one upstream (default 1000).
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Milliseconds a check may take (default 500).
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u64,
    /// Failed checks or requests in a row that eject an upstream (default 2).
    #[serde(default = "default_unhealthy")]
    pub unhealthy_after: u32,
    /// Passed checks in a row that re-admit it (default 2).
    #[serde(default = "default_healthy")]
    pub healthy_after: u32,
    /// Retries allowed, as a fraction of requests (default 0.2): a retry spends a token,
    /// each request earns this much of one; at most 10 tokens are saved. Retries beyond
    /// the budget are not made, so a failing side is not hit with a multiple of the load.
    #[serde(default = "default_retry_ratio")]
    pub retry_budget: f64,
}

fn default_interval() -> u64 {
    1000
}
fn default_check_timeout() -> u64 {
    500
}
fn default_unhealthy() -> u32 {
    2
}
fn default_healthy() -> u32 {
    2
}
fn default_retry_ratio() -> f64 {
    0.2
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            interval_ms: default_interval(),
            timeout_ms: default_check_timeout(),
            unhealthy_after: default_unhealthy(),
            healthy_after: default_healthy(),
            retry_budget: default_retry_ratio(),
        }
    }
}

/// Whether `url` is a base URL the router can call: `http://host:port` with nothing after
/// the authority but an optional `/`.
fn check_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// base URL"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' '])
        || !authority.contains(':')
    {
        return Err(format!(
            "{url:?} is not a base URL of the form http://host:port (no path, query or credentials)"
        ));
    }
    Ok(())
}

/// Whether `name` is an HTTP header name (lower-case letters, digits, `-`).
fn check_header(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "header {name:?} is not a lower-case header name (letters, digits, '-')"
        ));
    }
    Ok(())
}

impl RoutePolicy {
    /// Each cloud endpoint: a base URL or a SageMaker endpoint name, not both.
    fn validate_cloud(&self) -> Result<(), String> {
        for (i, e) in self.cloud.endpoints.iter().enumerate() {
            match (&e.url, &e.sagemaker) {
                (Some(url), None) => {
                    check_base_url(url)
                        .map_err(|e| format!("[[cloud.endpoints]] {}: {e}", i + 1))?;
                    if e.region.is_some() {
                        return Err(format!(
                            "[[cloud.endpoints]] {}: region is for a SageMaker endpoint",
                            i + 1
                        ));
                    }
                }
                (None, Some(name)) => {
                    if name.is_empty()
                        || name.len() > 63
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        return Err(format!(
                            "[[cloud.endpoints]] {}: {name:?} is not a SageMaker endpoint name",
                            i + 1
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "[[cloud.endpoints]] {}: give exactly one of url and sagemaker",
                        i + 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// Check what serde cannot: URLs, header names, bounds, and that each list a header
    /// would be compared with has its header.
    pub fn validate(&self) -> Result<(), String> {
        if self.onprem.members.is_empty() {
            return Err(
                "[onprem] members is empty: sensitive requests need somewhere to go".into(),
            );
        }
        if self.onprem.members.len() > MAX_UPSTREAMS || self.cloud.endpoints.len() > MAX_UPSTREAMS {
            return Err(format!(
                "at most {MAX_UPSTREAMS} members and endpoints per side"
            ));
        }
        for m in &self.onprem.members {
            check_base_url(m).map_err(|e| format!("[onprem] members: {e}"))?;
        }
        self.validate_cloud()?;
        let pairs = [
            (
                &self.classify.data_class_header,
                &self.classify.onprem_data_classes,
                "data_class_header",
                "onprem_data_classes",
            ),
            (
                &self.classify.tenant_header,
                &self.classify.onprem_tenants,
                "tenant_header",
                "onprem_tenants",
            ),
            (
                &self.classify.source_header,
                &self.classify.onprem_sources,
                "source_header",
                "onprem_sources",
            ),
        ];
        for (header, values, hname, vname) in pairs {
            match header {
                Some(h) => check_header(h).map_err(|e| format!("[classify] {hname}: {e}"))?,
                None if !values.is_empty() => {
                    return Err(format!("[classify] {vname} is set but {hname} is not"));
                }
                None => {}
            }
        }
        if self.classify.sensitive_fields.iter().any(String::is_empty) {
            return Err("[classify] sensitive_fields holds an empty name".into());
        }
        crate::PipelineSpec::mrn_regex(&self.classify.mrn_patterns)
            .map_err(|e| format!("[classify] mrn_patterns: {e}"))?;
        let ms = |v: u64, what: &str| {
            if (1..=600_000).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} must be between 1 and 600000 milliseconds"))
            }
        };
        ms(self.onprem.timeout_ms, "[onprem] timeout_ms")?;
        ms(self.cloud.timeout_ms, "[cloud] timeout_ms")?;
        ms(self.health.interval_ms, "[health] interval_ms")?;
        ms(self.health.timeout_ms, "[health] timeout_ms")?;
        if self.onprem.retries > 8 || self.cloud.retries > 8 {
            return Err("retries must be at most 8".into());
        }
        if !(1..=100).contains(&self.health.unhealthy_after)
            || !(1..=100).contains(&self.health.healthy_after)
        {
            return Err(
                "[health] unhealthy_after and healthy_after must be between 1 and 100".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.health.retry_budget) {
            return Err("[health] retry_budget must be a fraction between 0 and 1".into());
        }
        if !(1..=86_400).contains(&self.audit.window_seconds) {
            return Err("[audit] window_seconds must be between 1 and 86400".into());
        }
        Ok(())
    }
}

/// What the router records in an audit entry (`route` and `route-refusal` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingRecord {
    /// Start of the counting window, RFC 3339 UTC.
    pub window_start: String,
    /// End of the counting window, RFC 3339 UTC.
    pub window_end: String,
    /// `class/side/outcome` → requests (`route` entries); for a `route-refusal` entry, the
    /// one refused request's `class/none/refused`.
    pub counts: BTreeMap<String, u64>,
}
