//! The two sides and their members: forwarding with timeouts, health checks against the
//! release's statement digest, ejection and re-admission.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use airlock_schemas::HealthSpec;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// The HTTP client every URL upstream is called through (kept-alive connections).
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// AWS, for SageMaker endpoints.
pub(crate) type AwsClients = airlock_publisher::aws::Aws;

/// Largest answer taken from an upstream.
const MAX_ANSWER: usize = 16 << 20;

/// The `/ping` answer that may be read.
const MAX_PING: usize = 64 << 10;

/// A new HTTP client: no Nagle delay, idle connections kept 30 s.
pub(crate) fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SideName {
    /// The on-prem pool.
    Onprem,
    /// The cloud endpoints.
    Cloud,
}

impl SideName {
    /// `onprem` or `cloud`.
    pub fn name(self) -> &'static str {
        match self {
            SideName::Onprem => "onprem",
            SideName::Cloud => "cloud",
        }
    }
}

/// How an upstream is called.
#[derive(Debug)]
enum Target {
    /// The SageMaker container contract at a base URL.
    Url {
        ping: hyper::Uri,
        invocations: hyper::Uri,
    },
    /// A SageMaker endpoint.
    SageMaker {
        name: String,
        runtime: aws_sdk_sagemakerruntime::Client,
        control: aws_sdk_sagemaker::Client,
    },
}

/// One member of a side.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The URL, or `sagemaker:<endpoint>`.
    pub label: String,
    target: Target,
    healthy: AtomicBool,
    fails: AtomicU32,
    passes: AtomicU32,
    /// Why it is out, when it is.
    why: Mutex<String>,
}

/// An upstream's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// What one health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// Up, serving the release.
    Pass,
    /// Down or not answering as the contract says.
    Fail(String),
    /// Up, but serving another release (or not saying which): never routed to.
    OtherRelease(String),
}

/// A change of an upstream's state, for the log and the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Taken out (why).
    Ejected(String),
    /// Taken back.
    Admitted,
}

impl Upstream {
    /// A base URL upstream (checked by the policy's validation: `http://host:port`).
    pub fn url(base: &str) -> Result<Self, String> {
        let base = base.trim_end_matches('/');
        let parse = |p: &str| {
            format!("{base}{p}")
                .parse::<hyper::Uri>()
                .map_err(|e| format!("{base:?}: {e}"))
        };
        Ok(Self::new(
            base.to_owned(),
            Target::Url {
                ping: parse("/ping")?,
                invocations: parse("/invocations")?,
            },
        ))
    }

    /// A SageMaker endpoint, in `region` (default: the AWS configuration's).
    pub fn sagemaker(name: &str, region: Option<&str>, aws: &AwsClients) -> Self {
        let mut rt = aws_sdk_sagemakerruntime::config::Builder::from(&aws.config);
        let mut control = aws_sdk_sagemaker::config::Builder::from(&aws.config);
        if let Some(r) = region {
            rt = rt.region(aws_sdk_sagemakerruntime::config::Region::new(r.to_owned()));
            control = control.region(aws_sdk_sagemaker::config::Region::new(r.to_owned()));
        }
        Self::new(
            format!("sagemaker:{name}"),
            Target::SageMaker {
                name: name.to_owned(),
                runtime: aws_sdk_sagemakerruntime::Client::from_conf(rt.build()),
                control: aws_sdk_sagemaker::Client::from_conf(control.build()),
            },
        )
    }

    fn new(label: String, target: Target) -> Self {
        Self {
            label,
            target,
            healthy: AtomicBool::new(false),
            fails: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            why: Mutex::new("not checked yet".into()),
        }
    }

    /// Whether requests may be sent to it.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Why it is out (empty when in).
    pub fn why(&self) -> String {
        self.why.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn set_why(&self, why: &str) {
        if let Ok(mut w) = self.why.lock() {
            why.clone_into(&mut w);
        }
    }

    /// Take in the result of a check (or, as [`Check::Fail`], of a failed request).
    /// `first`: the check made before the router listens, which admits at once.
    pub fn observe(&self, check: &Check, spec: &HealthSpec, first: bool) -> Option<Transition> {
        let was = self.is_healthy();
        match check {
            Check::Pass => {
                self.fails.store(0, Ordering::Release);
                let passes = self.passes.fetch_add(1, Ordering::AcqRel).saturating_add(1);
                if !was && (first || passes >= spec.healthy_after) {
                    self.set_why("");
                    self.healthy.store(true, Ordering::Release);
                    return Some(Transition::Admitted);
                }
                None
            }
            Check::Fail(why) => {
                self.passes.store(0, Ordering::Release);
                let fails = self.fails.fetch_add(1, Ordering::AcqRel).saturating_add(1);
                if was && fails >= spec.unhealthy_after {
                    self.set_why(why);
                    self.healthy.store(false, Ordering::Release);
                    return Some(Transition::Ejected(why.clone()));
                }
                if !was {
                    self.set_why(why);
                }
                None
            }
            Check::OtherRelease(why) => {
                // Another release is never served, not even once more.
                self.passes.store(0, Ordering::Release);
                self.healthy.store(false, Ordering::Release);
                let changed = self.why() != *why;
                self.set_why(why);
                (was || changed).then(|| Transition::Ejected(why.clone()))
            }
        }
    }

    /// Check it: `/ping` reports the release's statement digest (a SageMaker endpoint is
    /// InService with a model deployed for that statement).
    pub async fn check(&self, client: &HttpClient, expected: &str, timeout: Duration) -> Check {
        match tokio::time::timeout(timeout, self.check_inner(client, expected)).await {
            Ok(c) => c,
            Err(_) => Check::Fail(format!(
                "no answer to the health check within {} ms",
                timeout.as_millis()
            )),
        }
    }

    async fn check_inner(&self, client: &HttpClient, expected: &str) -> Check {
        match &self.target {
            Target::Url { ping, .. } => {
                let req = match hyper::Request::get(ping.clone()).body(Full::new(Bytes::new())) {
                    Ok(r) => r,
                    Err(e) => return Check::Fail(e.to_string()),
                };
                let resp = match client.request(req).await {
                    Ok(r) => r,
                    Err(e) => return Check::Fail(format!("unreachable ({})", error_chain(&e))),
                };
                let status = resp.status();
                let body = match Limited::new(resp.into_body(), MAX_PING).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => return Check::Fail(format!("/ping answer unreadable ({e})")),
                };
                if !status.is_success() {
                    return Check::Fail(format!("/ping answered {status}"));
                }
                let digest = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("statement_sha256")?.as_str().map(str::to_owned));
                release_check(digest.as_deref(), expected)
            }
            Target::SageMaker { name, control, .. } => {
                sagemaker_check(control, name, expected).await
            }
        }
    }

    /// Send one request's body (and only its content type) to the upstream.
    pub async fn forward(
        &self,
        client: &HttpClient,
        content_type: Option<&HeaderValue>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, String> {
        match tokio::time::timeout(timeout, self.forward_inner(client, content_type, body)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    async fn forward_inner(
        &self,
        client: &HttpClient,
        content_type: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<Answer, String> {
        match &self.target {
            Target::Url { invocations, .. } => {
                let mut req = hyper::Request::post(invocations.clone());
                if let Some(ct) = content_type {
                    req = req.header(CONTENT_TYPE, ct);
                }
                let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| format!("unreachable ({})", error_chain(&e)))?;
                let status = resp.status().as_u16();
                let content_type = resp.headers().get(CONTENT_TYPE).cloned();
                let body = Limited::new(resp.into_body(), MAX_ANSWER)
                    .collect()
                    .await
                    .map_err(|e| format!("answer unreadable ({e})"))?
                    .to_bytes();
                Ok(Answer {
                    status,
                    content_type,
                    body,
                })
            }
            Target::SageMaker { name, runtime, .. } => {
                let mut call = runtime.invoke_endpoint().endpoint_name(name).body(
                    aws_sdk_sagemakerruntime::primitives::Blob::new(body.to_vec()),
                );
                if let Some(ct) = content_type.and_then(|c| c.to_str().ok()) {
                    call = call.content_type(ct);
                }
                match call.send().await {
                    Ok(out) => Ok(Answer {
                        status: 200,
                        content_type: out
                            .content_type()
                            .and_then(|c| HeaderValue::from_str(c).ok()),
                        body: Bytes::from(out.body.map(|b| b.into_inner()).unwrap_or_default()),
                    }),
                    Err(e) => {
                        use aws_sdk_sagemakerruntime::error::ProvideErrorMetadata as _;
                        let service = e.as_service_error();
                        // The container's own 4xx (a ModelError with its status) is the
                        // caller's; anything else is the endpoint failing.
                        if let Some(aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError::ModelError(m)) = service
                            && let Some(code) = m.original_status_code().filter(|c| (400..500).contains(c))
                        {
                            return Ok(Answer {
                                status: u16::try_from(code).unwrap_or(502),
                                content_type: Some(HeaderValue::from_static("application/json")),
                                body: Bytes::from(m.original_message().unwrap_or_default().to_owned()),
                            });
                        }
                        Err(format!(
                            "InvokeEndpoint failed ({})",
                            // The container's message may quote what it was sent:
                            // only the error's code is kept.
                            service
                                .and_then(|s| s.code())
                                .map_or_else(|| "no answer".to_owned(), printable)
                        ))
                    }
                }
            }
        }
    }
}

/// At most 64 printable ASCII characters of `s` (an error code from outside).
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Whether a reported statement digest is the release's.
fn release_check(digest: Option<&str>, expected: &str) -> Check {
    match digest {
        Some(d) if d == expected => Check::Pass,
        Some(d) => Check::OtherRelease(format!(
            "serves release statement {}, not {}",
            short(d),
            short(expected)
        )),
        None => Check::OtherRelease(
            "does not say which release it serves (no statement_sha256): unverified".into(),
        ),
    }
}

/// A digest's first 12 characters (printable, bounded: it came from outside).
fn short(d: &str) -> String {
    d.chars()
        .take(12)
        .map(|c| if c.is_ascii_hexdigit() { c } else { '?' })
        .collect()
}

/// A SageMaker endpoint's health: InService, and the model behind its variant was
/// deployed for the release (`AIRLOCK_STATEMENT_SHA256`, which the serving container
/// compares with the bundle it verified before it starts).
async fn sagemaker_check(sm: &aws_sdk_sagemaker::Client, name: &str, expected: &str) -> Check {
    let ep = match sm.describe_endpoint().endpoint_name(name).send().await {
        Ok(e) => e,
        Err(e) => return Check::Fail(format!("DescribeEndpoint failed ({})", error_chain(&e))),
    };
    let status = ep.endpoint_status().map(|s| s.as_str().to_owned());
    // An endpoint being updated may already answer from another release's fleet (blue/green,
    // canary): out at once, as another release is.
    let pending = ep.pending_deployment_summary().is_some();
    if status.as_deref() != Some("InService") || pending {
        return Check::OtherRelease(format!(
            "endpoint is {}{}: not known to serve only the release",
            status.unwrap_or_else(|| "unknown".into()),
            if pending {
                " with a deployment pending"
            } else {
                ""
            }
        ));
    }
    let Some(config) = ep.endpoint_config_name() else {
        return Check::Fail("endpoint has no configuration".into());
    };
    let cfg = match sm
        .describe_endpoint_config()
        .endpoint_config_name(config)
        .send()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            return Check::Fail(format!(
                "DescribeEndpointConfig failed ({})",
                error_chain(&e)
            ));
        }
    };
    if !cfg.shadow_production_variants().is_empty() {
        return Check::OtherRelease("endpoint configuration has shadow variants".into());
    }
    let models: Vec<String> = cfg
        .production_variants()
        .iter()
        .filter_map(|v| v.model_name().map(str::to_owned))
        .collect();
    if models.is_empty() {
        return Check::Fail("endpoint configuration has no model".into());
    }
    for model in models {
        let m = match sm.describe_model().model_name(&model).send().await {
            Ok(m) => m,
            Err(e) => return Check::Fail(format!("DescribeModel failed ({})", error_chain(&e))),
        };
        let digest = m
            .primary_container()
            .and_then(|c| c.environment())
            .and_then(|env| env.get("AIRLOCK_STATEMENT_SHA256"))
            .map(String::as_str);
        let c = release_check(digest, expected);
        if c != Check::Pass {
            return c;
        }
    }
    Check::Pass
}

/// An error and its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// One side: its members, timeout and retries.
#[derive(Debug)]
pub(crate) struct Side {
    pub name: SideName,
    pub members: Vec<Arc<Upstream>>,
    pub timeout: Duration,
    pub retries: u32,
    next: AtomicUsize,
}

impl Side {
    pub fn new(
        name: SideName,
        members: Vec<Arc<Upstream>>,
        timeout: Duration,
        retries: u32,
    ) -> Self {
        Self {
            name,
            members,
            timeout,
            retries,
            next: AtomicUsize::new(0),
        }
    }

    /// The healthy members, starting from the next in turn.
    pub fn candidates(&self) -> Vec<Arc<Upstream>> {
        let n = self.members.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| &self.members[(start + i) % n])
            .filter(|m| m.is_healthy())
            .cloned()
            .collect()
    }

    /// Members in service.
    pub fn healthy(&self) -> usize {
        self.members.iter().filter(|m| m.is_healthy()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejected_after_failures_readmitted_after_passes_and_another_release_at_once() {
        let spec = HealthSpec::default();
        let u = Upstream::url("http://127.0.0.1:1").expect("url");
        assert!(!u.is_healthy());
        assert_eq!(
            u.observe(&Check::Pass, &spec, true),
            Some(Transition::Admitted)
        );
        assert_eq!(u.observe(&Check::Fail("down".into()), &spec, false), None);
        assert!(u.is_healthy(), "one failure of two");
        assert_eq!(
            u.observe(&Check::Fail("down".into()), &spec, false),
            Some(Transition::Ejected("down".into()))
        );
        assert!(!u.is_healthy());
        assert_eq!(u.observe(&Check::Pass, &spec, false), None);
        assert_eq!(
            u.observe(&Check::Pass, &spec, false),
            Some(Transition::Admitted)
        );
        let other = Check::OtherRelease("serves release statement aaaa, not bbbb".into());
        assert!(matches!(
            u.observe(&other, &spec, false),
            Some(Transition::Ejected(_))
        ));
        assert!(!u.is_healthy());
        assert_eq!(u.observe(&other, &spec, false), None, "logged once");
    }

    #[test]
    fn release_digests_are_compared_and_a_missing_one_is_unverified() {
        assert_eq!(release_check(Some("ab"), "ab"), Check::Pass);
        assert!(matches!(
            release_check(Some("cd"), "ab"),
            Check::OtherRelease(_)
        ));
        assert!(matches!(release_check(None, "ab"), Check::OtherRelease(_)));
        assert_eq!(short("0123456789abcdef<script>"), "0123456789ab");
        assert_eq!(short("<a>"), "?a?");
    }
}
