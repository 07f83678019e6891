#![doc = include_str!("../README.md")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

pub mod classify;
mod config;
pub mod demo;
mod error;
mod metrics;
mod record;
mod upstream;

pub use classify::{Class, Classifier};
pub use config::{Release, load_policy, verify_release};
pub use error::RouteError;
pub use record::Outcome;
pub use upstream::SideName;

use config::Routing;
use metrics::Metrics;
use record::{EntryBase, Recorder};
use upstream::{Answer, Check, HttpClient, Side, Transition, Upstream};

/// Largest request body accepted (SageMaker's limit for real-time invocations, as serve).
pub const MAX_BODY: usize = 6 << 20;

/// Options of [`route`] (`airlock route`).
#[derive(Debug, Clone)]
pub struct RouteOptions {
    /// The routing policy (`route.toml`).
    pub policy: PathBuf,
    /// AWS settings, used when the policy names a SageMaker endpoint.
    pub aws: airlock_publisher::aws::AwsOptions,
    /// Runtime worker threads (`None`: one per core).
    pub workers: Option<usize>,
    /// Seconds a client has to send its request headers (and may idle between requests).
    pub header_timeout: Duration,
    /// Seconds a client has to send its body (and to take its answer).
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// Retries allowed as a fraction of requests: each request earns `ratio` of a token (at
/// most 10 saved), each retry spends one.
#[derive(Debug, Default)]
struct RetryBudget {
    /// Thousandths of a token.
    milli: AtomicU64,
}

impl RetryBudget {
    const CAP: u64 = 10_000;

    fn earn(&self, ratio: f64) {
        let add = (ratio * 1000.0) as u64;
        let _ = self
            .milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                Some((m + add).min(Self::CAP))
            });
    }

    fn spend(&self) -> bool {
        self.milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| m.checked_sub(1000))
            .is_ok()
    }
}

/// What every request and health task shares.
#[derive(Debug)]
struct Shared {
    policy_path: PathBuf,
    routing: RwLock<Arc<Routing>>,
    generation: AtomicU64,
    client: HttpClient,
    budget: RetryBudget,
    recorder: Recorder,
    metrics: Metrics,
    base: RwLock<EntryBase>,
    aws: Option<Arc<upstream::AwsClients>>,
    /// Held by a reload in progress.
    reloading: tokio::sync::Mutex<()>,
}

impl Shared {
    fn routing(&self) -> Arc<Routing> {
        Arc::clone(
            &self
                .routing
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn base(&self) -> EntryBase {
        self.base
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Take in a check's result for `up`, log and record a change.
    fn observe(&self, r: &Routing, side: SideName, up: &Upstream, check: &Check, first: bool) {
        let Some(t) = up.observe(check, &r.health, first) else {
            return;
        };
        let base = self.base();
        match (t, check) {
            (Transition::Admitted, _) => {
                eprintln!("route: {} {} in service", side.name(), up.label);
                self.recorder.event(
                    airlock_schemas::AuditAction::Route,
                    format!("ok: {} upstream {} in service", side.name(), up.label),
                    &base,
                );
            }
            (Transition::Ejected(why), Check::OtherRelease(_)) => {
                eprintln!("route: {} {} refused: {why}", side.name(), up.label);
                self.recorder.event(
                    airlock_schemas::AuditAction::RouteRefusal,
                    format!("refused: {} upstream {} {why}", side.name(), up.label),
                    &base,
                );
            }
            (Transition::Ejected(why), _) => {
                eprintln!("route: {} {} out of service: {why}", side.name(), up.label);
                self.recorder.event(
                    airlock_schemas::AuditAction::Route,
                    format!(
                        "ok: {} upstream {} out of service: {why}",
                        side.name(),
                        up.label
                    ),
                    &base,
                );
            }
        }
    }
}

/// Check every upstream of `r` once, at once.
async fn check_all(shared: &Arc<Shared>, r: &Arc<Routing>, first: bool) {
    let timeout = Duration::from_millis(r.health.timeout_ms);
    let mut tasks = tokio::task::JoinSet::new();
    for side in [&r.onprem, &r.cloud] {
        for up in &side.members {
            let (shared, r, up, name) =
                (Arc::clone(shared), Arc::clone(r), Arc::clone(up), side.name);
            tasks.spawn(async move {
                let c = up
                    .check(&shared.client, &r.release.statement_sha256, timeout)
                    .await;
                shared.observe(&r, name, &up, &c, first);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Check `r`'s upstreams every interval until a reload replaces it.
fn watch(shared: &Arc<Shared>, r: &Arc<Routing>, generation: u64) {
    let (shared, r) = (Arc::clone(shared), Arc::clone(r));
    tokio::spawn(async move {
        let every = Duration::from_millis(r.health.interval_ms);
        loop {
            tokio::time::sleep(every).await;
            if shared.generation.load(Ordering::Acquire) != generation {
                return;
            }
            check_all(&shared, &r, false).await;
        }
    });
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// What a request is forwarded as: on the premises, the caller's body and content type; to
/// the cloud, only the rows the classifier read, as JSON (`None`: nothing may go).
struct Forward<'a> {
    original: &'a Bytes,
    content_type: Option<&'a HeaderValue>,
    cloud: Option<Bytes>,
}

static JSON_TYPE: HeaderValue = HeaderValue::from_static("application/json");

/// Send to `side`: the healthy members in turn, up to 1 + retries (retries within the
/// budget). Returns the answer (a 5xx only if every try gave one) and the upstream time.
async fn try_side(
    shared: &Shared,
    r: &Routing,
    side: &Side,
    request: &Forward<'_>,
) -> (Option<Answer>, Duration) {
    let (content_type, body) = match side.name {
        SideName::Onprem => (request.content_type, request.original.clone()),
        SideName::Cloud => match &request.cloud {
            Some(b) => (Some(&JSON_TYPE), b.clone()),
            None => return (None, Duration::ZERO),
        },
    };
    let mut last = None;
    let mut spent = Duration::ZERO;
    for (i, up) in side
        .candidates()
        .into_iter()
        .take(1 + side.retries as usize)
        .enumerate()
    {
        if i > 0 {
            if !shared.budget.spend() {
                break;
            }
            shared.metrics.retry(side.name);
        }
        let t = Instant::now();
        let res = up
            .forward(&shared.client, content_type, body.clone(), side.timeout)
            .await;
        spent += t.elapsed();
        match res {
            Ok(a) if a.status < 500 => return (Some(a), spent),
            Ok(a) => {
                shared.observe(
                    r,
                    side.name,
                    &up,
                    &Check::Fail(format!("answered {}", a.status)),
                    false,
                );
                last = Some(a);
            }
            // A slow answer is retried elsewhere but does not eject the member: a caller's
            // large request must not empty the pool (the health checks judge it).
            Err(why) if why.starts_with("no answer within") => {}
            Err(why) => shared.observe(r, side.name, &up, &Check::Fail(why), false),
        }
    }
    (last, spent)
}

/// Where a request of `class` goes, and its answer.
async fn dispatch(
    shared: &Shared,
    r: &Routing,
    class: Class,
    request: &Forward<'_>,
) -> Result<(SideName, Outcome, Answer, Duration), (&'static str, String)> {
    let cloud_allowed =
        !class.onprem_only() && request.cloud.is_some() && !r.cloud.members.is_empty();
    if cloud_allowed && !shared.recorder.failed() {
        let (a, t) = try_side(shared, r, &r.cloud, request).await;
        if let Some(a) = a.filter(|a| a.status < 500) {
            return Ok((SideName::Cloud, outcome(a.status, false), a, t));
        }
        if !r.fallback_to_onprem {
            return Err((
                "no-cloud-endpoint",
                format!(
                    "no cloud endpoint could serve a request of class {} ({} of {} in service) and the policy allows no fallback",
                    class.name(),
                    r.cloud.healthy(),
                    r.cloud.members.len()
                ),
            ));
        }
        let (a, t2) = try_side(shared, r, &r.onprem, request).await;
        return match a {
            Some(a) => Ok((SideName::Onprem, outcome(a.status, true), a, t + t2)),
            None => Err((
                "no-side",
                format!(
                    "neither side could serve a request of class {} (cloud {} of {}, on-prem {} of {} in service)",
                    class.name(),
                    r.cloud.healthy(),
                    r.cloud.members.len(),
                    r.onprem.healthy(),
                    r.onprem.members.len()
                ),
            )),
        };
    }
    let (a, t) = try_side(shared, r, &r.onprem, request).await;
    match a {
        Some(a) => Ok((SideName::Onprem, outcome(a.status, false), a, t)),
        None => Err((
            "no-onprem-member",
            format!(
                "no on-prem member could serve a request of class {} ({} of {} in service); it may not go to the cloud",
                class.name(),
                r.onprem.healthy(),
                r.onprem.members.len()
            ),
        )),
    }
}

fn outcome(status: u16, fallback: bool) -> Outcome {
    match status {
        200..=299 if fallback => Outcome::Fallback,
        200..=299 => Outcome::Ok,
        400..=499 => Outcome::ClientError,
        _ => Outcome::UpstreamError,
    }
}

/// A refusal: counted, recorded with its reason, answered with `status`.
fn refuse(
    shared: &Shared,
    class: Class,
    kind: &'static str,
    reason: String,
    status: StatusCode,
) -> Response<Full<Bytes>> {
    shared.metrics.refusal(kind);
    shared
        .metrics
        .request(&record::count_key(class, None, Outcome::Refused));
    shared
        .recorder
        .refuse(class, reason.clone(), &shared.base());
    let mut resp = json(status, &serde_json::json!({ "error": reason }));
    if let Ok(v) = HeaderValue::from_str(class.name()) {
        resp.headers_mut().insert("x-airlock-class", v);
    }
    resp
}

async fn invoke(
    shared: Arc<Shared>,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return refuse(
            &shared,
            Class::Opaque,
            "too-large",
            format!("request body over {MAX_BODY} bytes"),
            StatusCode::PAYLOAD_TOO_LARGE,
        );
    }
    let (parts, body) = req.into_parts();
    let body =
        match tokio::time::timeout(body_timeout, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return refuse(
                    &shared,
                    Class::Opaque,
                    "too-large",
                    format!("request body over {MAX_BODY} bytes"),
                    StatusCode::PAYLOAD_TOO_LARGE,
                );
            }
            Err(_) => {
                let mut r = refuse(
                    &shared,
                    Class::Opaque,
                    "body-timeout",
                    format!(
                        "request body not received within {} s",
                        body_timeout.as_secs_f64()
                    ),
                    StatusCode::REQUEST_TIMEOUT,
                );
                r.headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
        };
    let start = Instant::now();
    let r = shared.routing();
    shared.budget.earn(r.health.retry_budget);
    // A large body is classified off the I/O workers.
    let (class, cloud_body) = if body.len() <= 64 << 10 {
        r.classifier.classify(&parts.headers, &body)
    } else {
        let (r2, headers, b) = (Arc::clone(&r), parts.headers.clone(), body.clone());
        tokio::task::spawn_blocking(move || r2.classifier.classify(&headers, &b))
            .await
            .unwrap_or((Class::Opaque, None))
    };
    let request = Forward {
        original: &body,
        content_type: parts.headers.get(CONTENT_TYPE),
        cloud: cloud_body.map(Bytes::from),
    };
    match dispatch(&shared, &r, class, &request).await {
        Ok((side, outcome, answer, upstream)) => {
            shared.recorder.count(class, Some(side), outcome);
            shared
                .metrics
                .request(&record::count_key(class, Some(side), outcome));
            shared.metrics.latency(side, start.elapsed(), upstream);
            let mut resp = Response::new(Full::new(answer.body));
            *resp.status_mut() =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Some(ct) = answer.content_type {
                resp.headers_mut().insert(CONTENT_TYPE, ct);
            }
            resp.headers_mut()
                .insert("x-airlock-side", HeaderValue::from_static(side.name()));
            if let Ok(v) = HeaderValue::from_str(class.name()) {
                resp.headers_mut().insert("x-airlock-class", v);
            }
            resp
        }
        Err((kind, reason)) => refuse(
            &shared,
            class,
            kind,
            reason,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    }
}

async fn handle(
    shared: Arc<Shared>,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let err = |s: StatusCode, msg: &str| json(s, &serde_json::json!({ "error": msg }));
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/ping") => {
            let r = shared.routing();
            let status = if r.onprem.healthy() > 0 {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(
                status,
                &serde_json::json!({
                    "status": if status == StatusCode::OK { "ok" } else { "no on-prem member in service" },
                    "model": r.release.name,
                    "version": r.release.version,
                    "statement_sha256": r.release.statement_sha256,
                    "onprem_only": r.release.onprem_only,
                    "onprem_in_service": r.onprem.healthy(),
                    "cloud_in_service": r.cloud.healthy(),
                }),
            )
        }
        (&Method::POST, "/invocations") => invoke(shared, body_timeout, req).await,
        (_, "/ping" | "/invocations") => err(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => err(
            StatusCode::NOT_FOUND,
            "not found: use GET /ping or POST /invocations",
        ),
    })
}

/// `airlock route --check`: load and verify the policy and the release, check every
/// upstream once, and say what the router would do. Returns whether every upstream passed.
pub fn check(opts: &RouteOptions) -> Result<bool, RouteError> {
    let aws = aws_for(opts)?;
    let r = Arc::new(config::load(&opts.policy, aws.as_deref())?);
    let rt = runtime(Some(1))?;
    let client = rt.block_on(async { upstream::http_client() });
    let timeout = Duration::from_millis(r.health.timeout_ms);
    let mut all = true;
    println!(
        "release {} {} (statement {}){}",
        r.release.name,
        r.release.version,
        r.release.statement_sha256,
        if r.release.onprem_only {
            ", on-prem only"
        } else {
            ""
        }
    );
    for side in [&r.onprem, &r.cloud] {
        for up in &side.members {
            let c = rt.block_on(up.check(&client, &r.release.statement_sha256, timeout));
            let line = match &c {
                Check::Pass => "serves the release".to_owned(),
                Check::Fail(w) => format!("down: {w}"),
                Check::OtherRelease(w) => format!("refused: {w}"),
            };
            all &= c == Check::Pass;
            println!("{:<6} {}: {line}", side.name.name(), up.label);
        }
    }
    Ok(all)
}

fn aws_for(opts: &RouteOptions) -> Result<Option<Arc<upstream::AwsClients>>, RouteError> {
    let (policy, _) = load_policy(&opts.policy)?;
    if policy.cloud.endpoints.iter().all(|e| e.sagemaker.is_none()) {
        return Ok(None);
    }
    airlock_publisher::aws::Aws::load(opts.aws.clone())
        .map(|a| Some(Arc::new(a)))
        .map_err(|e| RouteError::Invalid {
            path: opts.policy.clone(),
            message: format!("a SageMaker endpoint needs AWS: {e}"),
        })
}

fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, RouteError> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all().thread_name("airlock-route");
    if let Some(n) = workers {
        rt.worker_threads(n);
    }
    rt.build()
        .map_err(|e| RouteError::system("cannot start the runtime", e))
}

/// Verify the release, check both sides, then route until SIGTERM or SIGINT (reloading
/// the policy on SIGHUP), then drain and write the last window of the audit.
pub fn route(opts: &RouteOptions) -> Result<(), RouteError> {
    let aws = aws_for(opts)?;
    let r = config::load(&opts.policy, aws.as_deref())?;
    let trust = airlock_trust::Trust::load(
        &opts
            .policy
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&r.policy.release.trust),
    )?;
    let signer = airlock_trust::keys::Signer::load(&r.audit_key)?;
    let now = time::OffsetDateTime::now_utc();
    trust
        .usable_key(
            signer.key_id(),
            airlock_schemas::KeyRole::Publisher,
            now,
            now,
        )
        .map_err(|why| RouteError::Invalid {
            path: r.audit_key.clone(),
            message: format!("not a usable publisher key of the trust policy: {why}"),
        })?;
    let mut log = airlock_publisher::audit::AuditLog::open(&r.audit_log)?;
    log.check_head_as(&trust, airlock_schemas::KeyRole::Publisher)?;
    log.name_model(&r.release.name, &r.release.version);
    eprintln!(
        "verified {} {} (statement {}){}",
        r.release.name,
        r.release.version,
        &r.release.statement_sha256[..12],
        if r.release.onprem_only {
            ": on-prem only"
        } else {
            ""
        }
    );
    let rt = runtime(opts.workers)?;
    rt.block_on(serve(opts, r, log, signer, aws))
}

async fn serve(
    opts: &RouteOptions,
    r: Routing,
    log: airlock_publisher::audit::AuditLog,
    signer: airlock_trust::keys::Signer,
    aws: Option<Arc<upstream::AwsClients>>,
) -> Result<(), RouteError> {
    let listen: SocketAddr = r
        .policy
        .listen
        .address
        .parse()
        .map_err(|_| RouteError::Invalid {
            path: opts.policy.clone(),
            message: format!(
                "[listen] address {:?} is not host:port",
                r.policy.listen.address
            ),
        })?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| RouteError::system(format!("cannot listen on {listen}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| RouteError::system("listening socket", e))?;
    let metrics_listener = match &r.policy.listen.metrics {
        Some(a) => {
            let addr: SocketAddr = a.parse().map_err(|_| RouteError::Invalid {
                path: opts.policy.clone(),
                message: format!("[listen] metrics {a:?} is not host:port"),
            })?;
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| RouteError::system(format!("cannot listen on {addr}"), e))?,
            )
        }
        None => None,
    };
    let base = EntryBase {
        statement_sha256: r.release.statement_sha256.clone(),
        destination: format!("route http://{local}"),
        trust_sha256: r.trust_sha256.clone(),
        policy_sha256: r.policy_sha256.clone(),
    };
    let recorder = Recorder::start(
        log,
        signer,
        Duration::from_secs(r.policy.audit.window_seconds),
        base.clone(),
    );
    let r = Arc::new(r);
    let shared = Arc::new(Shared {
        policy_path: opts.policy.clone(),
        routing: RwLock::new(Arc::clone(&r)),
        generation: AtomicU64::new(0),
        client: upstream::http_client(),
        budget: RetryBudget::default(),
        recorder,
        metrics: Metrics::default(),
        base: RwLock::new(base),
        aws,
        reloading: tokio::sync::Mutex::new(()),
    });
    check_all(&shared, &r, true).await;
    watch(&shared, &r, 0);
    if let Some(ml) = metrics_listener {
        let addr = ml
            .local_addr()
            .map_err(|e| RouteError::system("metrics socket", e))?;
        eprintln!("metrics on http://{addr}/metrics");
        tokio::spawn(metrics_server(ml, Arc::clone(&shared)));
    }
    eprintln!(
        "on-prem {} of {} in service, cloud {} of {}",
        r.onprem.healthy(),
        r.onprem.members.len(),
        r.cloud.healthy(),
        r.cloud.members.len()
    );
    eprintln!("listening on http://{local}");
    let result = accept_loop(opts, &shared, listener).await;
    shared.recorder.stop();
    result
}

/// Answer `GET /metrics` on the metrics address.
async fn metrics_server(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut backoff = airlock_http::listen::Backoff::default();
    loop {
        let stream = airlock_http::listen::accept(&listener, &mut backoff).await;
        let shared = Arc::clone(&shared);
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            async move {
                if req.method() != Method::GET || req.uri().path() != "/metrics" {
                    return Ok::<_, Infallible>(json(
                        StatusCode::NOT_FOUND,
                        &serde_json::json!({ "error": "not found: use GET /metrics" }),
                    ));
                }
                let r = shared.routing();
                let health: Vec<_> = [&r.onprem, &r.cloud]
                    .iter()
                    .flat_map(|s| {
                        s.members
                            .iter()
                            .map(|m| (s.name, m.label.clone(), m.is_healthy()))
                    })
                    .collect();
                let mut resp =
                    Response::new(Full::new(Bytes::from(shared.metrics.render(&health))));
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Ok(resp)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Reload the policy: a new [`Routing`] beside the old, swapped in once its upstreams were
/// checked; refused (the old one stays) when it does not load or changes what cannot
/// change while running (the listening addresses, the audit log and key).
async fn reload(shared: Arc<Shared>) {
    let shared = &shared;
    let _one_at_a_time = shared.reloading.lock().await;
    let old = shared.routing();
    // Verifying the bundle reads files: off the I/O workers, which keep routing.
    let s2 = Arc::clone(shared);
    let loaded =
        tokio::task::spawn_blocking(move || config::load(&s2.policy_path, s2.aws.as_deref()))
            .await
            .unwrap_or_else(|e| {
                Err(RouteError::system(
                    "reload",
                    std::io::Error::other(e.to_string()),
                ))
            })
            .and_then(|new| {
                if new.policy.listen != old.policy.listen || new.policy.audit != old.policy.audit {
                    return Err(RouteError::Invalid {
                        path: shared.policy_path.clone(),
                        message:
                            "[listen] and [audit] cannot change while the router runs (restart it)"
                                .into(),
                    });
                }
                Ok(new)
            });
    match loaded {
        Ok(new) => {
            let new = Arc::new(new);
            check_all(shared, &new, true).await;
            {
                let mut base = shared
                    .base
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                base.statement_sha256
                    .clone_from(&new.release.statement_sha256);
                base.trust_sha256.clone_from(&new.trust_sha256);
                base.policy_sha256.clone_from(&new.policy_sha256);
            }
            *shared
                .routing
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&new);
            let generation = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
            watch(shared, &new, generation);
            eprintln!(
                "reloaded {}: on-prem {} of {} in service, cloud {} of {}",
                shared.policy_path.display(),
                new.onprem.healthy(),
                new.onprem.members.len(),
                new.cloud.healthy(),
                new.cloud.members.len()
            );
            shared.recorder.event(
                airlock_schemas::AuditAction::Route,
                format!("ok: policy reloaded ({})", &new.policy_sha256[..12]),
                &shared.base(),
            );
        }
        Err(e) => {
            eprintln!("reload refused, still routing by the policy loaded before: {e}");
            shared.recorder.event(
                airlock_schemas::AuditAction::RouteRefusal,
                format!("refused: policy reload ({e})"),
                &shared.base(),
            );
        }
    }
}

async fn accept_loop(
    opts: &RouteOptions,
    shared: &Arc<Shared>,
    listener: tokio::net::TcpListener,
) -> Result<(), RouteError> {
    use tokio::signal::unix::{SignalKind, signal};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| RouteError::system("cannot handle SIGTERM", e))?;
    let mut hup =
        signal(SignalKind::hangup()).map_err(|e| RouteError::system("cannot handle SIGHUP", e))?;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opts.header_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
    let body_timeout = opts.body_timeout;
    let mut backoff = airlock_http::listen::Backoff::default();
    loop {
        let slot = tokio::select! {
            biased;
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => { tokio::spawn(reload(Arc::clone(shared))); continue; }
            slot = Arc::clone(&slots).acquire_owned() => {
                slot.map_err(|e| RouteError::system("connection slots", std::io::Error::other(e)))?
            }
        };
        let stream = tokio::select! {
            biased;
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => { tokio::spawn(reload(Arc::clone(shared))); continue; }
            stream = airlock_http::listen::accept(&listener, &mut backoff) => stream,
        };
        let _ = stream.set_nodelay(true);
        let s = Arc::clone(shared);
        let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&s), body_timeout, req));
        let io = airlock_http::stall::WriteStallLimit::new(stream, body_timeout);
        let conn = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(io), svc));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    airlock_http::drain(listener, graceful).await;
    Ok(())
}
