#![doc = include_str!("../README.md")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use airlock_infer::Scorer;
use airlock_schemas::TaskSpec;
use airlock_trust::{GateOptions, MODEL_CARD_FILE, MODEL_FILE, Refusal, Trust, admit};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

pub mod body;
mod error;
pub mod image_body;
mod model;
pub mod sagemaker;

pub use error::{ErrorKind, ServeError};

/// Largest request body accepted (SageMaker's own limit for real-time invocations).
pub const MAX_BODY: usize = 6 << 20;

/// Options of [`serve`] (`airlock serve`, `airlock-serve`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The bundle directory.
    pub model_dir: PathBuf,
    /// Trust policy.
    pub trust: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Threads for verification.
    pub threads: usize,
    /// Where the model runs.
    pub device: airlock_infer::DeviceSpec,
    /// Timeouts and the connection cap.
    pub limits: Limits,
}

/// What one client may hold of the server, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection whose request headers are not complete within this time (counted
    /// from its first poll: a new or idle kept-alive connection) is closed.
    pub header_timeout: Duration,
    /// A request whose body is not complete within this time gets a 408 and the
    /// connection is closed; so is a connection whose client takes no response bytes for
    /// this long.
    pub body_timeout: Duration,
    /// Connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Limits {
    /// `--header-timeout`'s default, seconds.
    pub const HEADER_TIMEOUT_S: &str = "10";
    /// `--body-timeout`'s default, seconds.
    pub const BODY_TIMEOUT_S: &str = "30";
    /// `--max-connections`'s default.
    pub const MAX_CONNECTIONS: u32 = 1024;
}

/// A positive, finite number of seconds (fractions allowed), for the timeout flags.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0 && *n <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds between 0 and 86400"))
}

struct Model {
    scorer: Scorer,
    features: Vec<String>,
    /// The image size a CNN takes (`None`: feature columns).
    image: Option<airlock_schemas::ImageInput>,
    task: TaskSpec,
    name: String,
    version: String,
    /// SHA-256 of the release statement the gate verified: what a router compares.
    statement_sha256: String,
    /// The card says the release is served on the premises only.
    onprem_only: bool,
}

/// Verify the bundle and load its model; any failure refuses to start.
fn load(opts: &ServeOptions) -> Result<Model, ServeError> {
    let dir = &opts.model_dir;
    let refuse = |reason: String| ServeError::Refused {
        dir: dir.clone(),
        reason,
    };
    if !dir.join(MODEL_FILE).is_file() {
        return Err(refuse(format!("no {MODEL_FILE} here")));
    }
    let trust = Trust::load(&opts.trust)?;
    // Keep: the model is built from the bytes the gate read and checked, never read again.
    // The whole-file digest is recomputed too, as `airlock verify --full-digest` does.
    let gate = GateOptions {
        full_digest: true,
        ..GateOptions::keep(opts.threads)
    };
    let admitted = admit(dir, &trust, &gate).map_err(|refusal| {
        for check in refusal.failed_checks() {
            eprintln!("  FAIL {check}");
        }
        refuse(match &refusal {
            Refusal::DoesNotVerify(_) => refusal.to_string(),
            // Without the gate's "and a valid rejection": serve has always said only this.
            Refusal::NotApproved { approvals: s, .. } | Refusal::Rejected { approvals: s, .. } => {
                format!(
                    "{} of {} required officer approvals",
                    s.approvals, s.required
                )
            }
        })
    })?;
    // The model is built from the bytes the gate read once and verified, never from a
    // second read of the files: one swapped since is not what runs.
    let card_bytes = admitted.file(MODEL_CARD_FILE).ok_or_else(|| {
        refuse(format!(
            "{MODEL_CARD_FILE} was not among the verified files"
        ))
    })?;
    let model::CardModel {
        card,
        features,
        description,
    } = model::card_from_bytes(card_bytes).map_err(refuse)?;
    // `Admitted::model`: an error, never an absent model, if the bytes were not kept.
    let params = description
        .read_released(admitted.model().map_err(refuse)?)
        .map_err(refuse)?;
    let scorer = Scorer::on(&description, &params, opts.device)?;
    Ok(Model {
        scorer,
        features,
        image: match description.input {
            airlock_model::InputKind::Image(i) => Some(i),
            airlock_model::InputKind::Features(_) => None,
        },
        task: description.task,
        name: card.name,
        version: card.version,
        statement_sha256: airlock_trust::shards::sha256_hex(admitted.statement_bytes()),
        onprem_only: card.onprem_only,
    })
}

/// One answer per row, as the task gives it: the positive class's probability and the
/// class (binary), every class's probability and the most probable class (multi-class), or
/// the value (regression).
fn predictions(task: &TaskSpec, answers: &[f32]) -> Vec<serde_json::Value> {
    match task {
        TaskSpec::Binary => answers
            .iter()
            .map(|&p| serde_json::json!({ "probability": p, "class": u8::from(p >= 0.5).to_string() }))
            .collect(),
        TaskSpec::Multiclass { classes } => answers
            .chunks(classes.len().max(1))
            .map(|row| {
                let best = airlock_model::argmax_rows(row, row.len())[0];
                let probs: serde_json::Map<String, serde_json::Value> = classes
                    .iter()
                    .zip(row)
                    .map(|(c, &p)| (c.clone(), serde_json::json!(p)))
                    .collect();
                serde_json::json!({ "probabilities": probs, "class": classes[best] })
            })
            .collect(),
        TaskSpec::Regression => answers
            .iter()
            .map(|&v| serde_json::json!({ "value": v }))
            .collect(),
    }
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `GET /ping`: the release served, by name, version and the digest of the statement the
/// gate verified.
fn ping(m: &Model) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "model": m.name,
            "version": m.version,
            "statement_sha256": m.statement_sha256,
            "onprem_only": m.onprem_only,
        }),
    )
}

async fn handle(
    m: Arc<Model>,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let err = |s: StatusCode, msg: &str| Ok(json(s, &serde_json::json!({ "error": msg })));
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ping") => Ok(ping(&m)),
        (&Method::POST, "/invocations") => {
            let ctype = req
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            // Refuse a declared oversize body before reading any of it.
            let declared = req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_BODY as u64) {
                return err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body over {MAX_BODY} bytes"),
                );
            }
            let body = Limited::new(req.into_body(), MAX_BODY).collect();
            let body = match tokio::time::timeout(body_timeout, body).await {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(_)) => {
                    return err(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("request body over {MAX_BODY} bytes"),
                    );
                }
                Err(_) => {
                    let mut r = json(
                        StatusCode::REQUEST_TIMEOUT,
                        &serde_json::json!({ "error": format!(
                            "request body not received within {} s",
                            body_timeout.as_secs_f64()
                        ) }),
                    );
                    r.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                    return Ok(r);
                }
            };
            let x = match (ctype.as_str(), &m.image) {
                ("application/json", None) => body::parse_json(&m.features, &body),
                ("text/csv", None) => body::parse_csv(&m.features, &body),
                ("application/json", Some(shape)) => image_body::parse_image_json(shape, &body),
                ("application/x-image" | "image/png" | "image/jpeg", Some(shape)) => {
                    image_body::parse_image(shape, &body)
                }
                (other, image) => {
                    let accepted = if image.is_some() {
                        "application/x-image (a PNG or JPEG body) or application/json with {\"instances\": [{\"b64\": ...}]}"
                    } else {
                        "application/json or text/csv"
                    };
                    return err(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        &format!("content type {other:?}: this model takes {accepted}"),
                    );
                }
            };
            let x = match x {
                Ok(x) if x.is_empty() => {
                    return err(StatusCode::BAD_REQUEST, "no rows in the request");
                }
                Ok(x) => x,
                Err(body::BadRequest(msg)) => return err(StatusCode::BAD_REQUEST, &msg),
            };
            // Small requests run on the I/O worker (a thread hand-off costs more than the
            // model); large ones on the blocking pool, so they never stall other connections.
            let answers = if x.len() <= 64 * m.scorer.width() {
                m.scorer.answers(&x)
            } else {
                let m2 = Arc::clone(&m);
                tokio::task::spawn_blocking(move || m2.scorer.answers(&x))
                    .await
                    .unwrap_or_default()
            };
            let preds = predictions(&m.task, &answers);
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "predictions": preds }),
            ))
        }
        (_, "/ping" | "/invocations") => err(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => err(
            StatusCode::NOT_FOUND,
            "not found: use GET /ping or POST /invocations",
        ),
    }
}

/// Verify, load, serve until SIGTERM or SIGINT, then drain in-flight requests; the
/// runtime has one worker thread per core.
pub fn serve(opts: &ServeOptions) -> Result<(), ServeError> {
    serve_with(opts, None)
}

/// [`serve`] with `workers` runtime worker threads (`None`: one per core), which also bounds
/// the threads that score large requests off the I/O workers (`None`: tokio's default).
pub fn serve_with(opts: &ServeOptions, workers: Option<usize>) -> Result<(), ServeError> {
    let model = Arc::new(load(opts)?);
    let inputs = match &model.image {
        Some(i) => format!("images {}×{}×{}", i.channels, i.height, i.width),
        None => format!("features: {}", model.features.join(",")),
    };
    eprintln!(
        "verified {} {} in {}; {inputs}",
        model.name,
        model.version,
        opts.model_dir.display(),
    );
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all().thread_name("airlock-serve");
    if let Some(n) = workers {
        rt.worker_threads(n).max_blocking_threads(n);
    }
    let rt = rt
        .build()
        .map_err(|e| ServeError::system("cannot start the runtime", e))?;
    rt.block_on(run(opts, model))
}

/// Listen, answer, and on SIGTERM or SIGINT stop accepting and drain.
async fn run(opts: &ServeOptions, model: Arc<Model>) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ServeError::system(format!("cannot listen on {}", opts.listen), e))?;
    eprintln!(
        "limits: request headers within {} s, bodies within {} s, {} connections at once",
        opts.limits.header_timeout.as_secs_f64(),
        opts.limits.body_timeout.as_secs_f64(),
        opts.limits.max_connections
    );
    eprintln!(
        "listening on http://{}",
        listener.local_addr().map_err(ServeError::Os)?
    );
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ServeError::system("cannot handle SIGTERM", e))?;
    let stop = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tokio::pin!(stop);
    // A client that holds a connection without finishing its request headers (or
    // stays idle between requests) is dropped after the header timeout; one that
    // does not finish its body gets a 408 after the body timeout, and one that does
    // not read its answers is dropped after that long without progress; at most
    // max_connections are open at once, the rest wait in the kernel's backlog.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opts.limits.header_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.limits.max_connections));
    let body_timeout = opts.limits.body_timeout;
    let mut backoff = airlock_http::listen::Backoff::default();
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => {
                slot.map_err(|e| ServeError::system("connection slots", e))?
            }
        };
        let stream = tokio::select! {
            biased;
            () = &mut stop => break,
            stream = airlock_http::listen::accept(&listener, &mut backoff) => stream,
        };
        let _ = stream.set_nodelay(true);
        let m = Arc::clone(&model);
        let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&m), body_timeout, req));
        let io = airlock_http::stall::WriteStallLimit::new(stream, body_timeout);
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    airlock_http::drain(listener, graceful).await;
    Ok(())
}
