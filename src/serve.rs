//! `airlock serve`: the SageMaker inference container contract (`GET /ping`,
//! `POST /invocations` on port 8080, model under `/opt/ml/model`), serving only a bundle
//! that verifies: builder signature, approvals, leak verdict, every digest.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use airlock_packager::{MODEL_CARD_FILE, MODEL_FILE, Trust, approvals, verify_bundle};
use airlock_schemas::ModelCard;
use airlock_trainer::{Checkpoint, Scorer};
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::exit::VerificationFailed;

/// Largest request body accepted (SageMaker's own limit for real-time invocations).
pub const MAX_BODY: usize = 6 << 20;

/// Options of `airlock serve`.
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
    pub device: airlock_trainer::DeviceSpec,
}

struct Model {
    scorer: Scorer,
    features: Vec<String>,
    classes: [String; 2],
    name: String,
    version: String,
}

/// Verify the bundle and load its model; any failure refuses to start.
fn load(opts: &ServeOptions) -> anyhow::Result<Model> {
    let dir = &opts.model_dir;
    if !dir.join(MODEL_FILE).is_file() {
        return Err(VerificationFailed(format!(
            "{}: no {MODEL_FILE} here, refusing to start",
            dir.display()
        ))
        .into());
    }
    let trust = Trust::load(&opts.trust)?;
    let v = verify_bundle(dir, &trust, opts.threads, true);
    for c in v.checks.iter().filter(|c| !c.ok) {
        eprintln!("  FAIL {}: {}", c.name, c.detail);
    }
    let s = approvals::evaluate(&trust, &v, time::OffsetDateTime::now_utc());
    if !v.ok() || !s.approved() {
        return Err(VerificationFailed(format!(
            "{}: {}, refusing to start",
            dir.display(),
            if v.ok() {
                format!(
                    "{} of {} required officer approvals",
                    s.approvals, s.required
                )
            } else {
                "the bundle does not verify".to_owned()
            }
        ))
        .into());
    }
    let card: ModelCard = serde_json::from_slice(
        &std::fs::read(dir.join(MODEL_CARD_FILE)).context("cannot read the model card")?,
    )
    .context("invalid model card")?;
    let ckpt = Checkpoint::read(&dir.join(MODEL_FILE), &card.architecture.layer_widths)?;
    let features: Vec<String> = card.inputs.iter().map(|i| i.name.clone()).collect();
    let classes = match card.output.classes.as_slice() {
        [a, b] => [a.clone(), b.clone()],
        _ => ["0".to_owned(), "1".to_owned()],
    };
    let scorer = Scorer::on(&ckpt.params, opts.device)?;
    anyhow::ensure!(
        scorer.width() == features.len(),
        "the model takes {} inputs but the card lists {} features",
        scorer.width(),
        features.len()
    );
    Ok(Model {
        scorer,
        features,
        classes,
        name: card.name,
        version: card.version,
    })
}

/// A 4xx with a message.
struct BadRequest(StatusCode, String);

/// `{"instances": [{feature: value, ...}, ...]}` straight into row-major features, with
/// no intermediate JSON tree (parsing dominated the profile of 256-row requests).
fn parse_json(m: &Model, body: &[u8]) -> Result<Vec<f32>, BadRequest> {
    use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct Body<'a>(&'a [String], &'a mut Vec<f32>);
    struct Rows<'a>(&'a [String], &'a mut Vec<f32>);
    struct Row<'a>(&'a [String], &'a mut Vec<f32>, usize);

    impl<'de> DeserializeSeed<'de> for Body<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Body<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("{\"instances\": [{feature: value, ...}, ...]}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == "instances" && !found {
                    map.next_value_seed(Rows(self.0, &mut *self.1))?;
                    found = true;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    impl<'de> DeserializeSeed<'de> for Rows<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Rows<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of instances")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(Row(self.0, &mut *self.1, i))?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Row<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Row<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "instance {} as an object of feature values", self.2)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let (features, x, i) = (self.0, self.1, self.2);
            let start = x.len();
            x.resize(start + features.len(), f32::NAN);
            let mut seen = vec![false; features.len()];
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let Some(j) = features.iter().position(|f| *f == k) else {
                    return Err(A::Error::custom(format!(
                        "instance {i}: unknown feature {k:?}"
                    )));
                };
                let v: serde_json::Value = map.next_value()?;
                let n = v.as_f64().filter(|n| n.is_finite()).ok_or_else(|| {
                    A::Error::custom(format!(
                        "instance {i}: feature {k:?} is not a finite number"
                    ))
                })?;
                x[start + j] = n as f32;
                seen[j] = true;
            }
            if let Some(j) = seen.iter().position(|s| !s) {
                return Err(A::Error::custom(format!(
                    "instance {i}: missing feature {:?}",
                    features[j]
                )));
            }
            Ok(())
        }
    }

    let mut x = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = Body(&m.features, &mut x)
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .map_err(|e| {
            let msg = match e.classify() {
                serde_json::error::Category::Data => e.to_string(),
                _ => format!("malformed JSON: {e}"),
            };
            BadRequest(StatusCode::BAD_REQUEST, msg)
        })?;
    if !found {
        return Err(BadRequest(
            StatusCode::BAD_REQUEST,
            "expected {\"instances\": [{feature: value, ...}, ...]}".into(),
        ));
    }
    Ok(x)
}

fn parse_csv(m: &Model, body: &[u8]) -> Result<Vec<f32>, BadRequest> {
    let bad = |s: String| BadRequest(StatusCode::BAD_REQUEST, s);
    let text = std::str::from_utf8(body).map_err(|_| bad("CSV body is not UTF-8".into()))?;
    let mut x = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        // An optional header naming the features in order.
        if i == 0
            && cells.iter().zip(&m.features).all(|(c, f)| c == f)
            && cells.len() == m.features.len()
        {
            continue;
        }
        if cells.len() != m.features.len() {
            return Err(bad(format!(
                "CSV line {}: {} values, expected {} ({})",
                i + 1,
                cells.len(),
                m.features.len(),
                m.features.join(",")
            )));
        }
        for (c, f) in cells.iter().zip(&m.features) {
            let n: f32 = c
                .parse()
                .ok()
                .filter(|n: &f32| n.is_finite())
                .ok_or_else(|| bad(format!("CSV line {}: {f} is not a finite number", i + 1)))?;
            x.push(n);
        }
    }
    Ok(x)
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

async fn handle(
    m: Arc<Model>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let err = |s: StatusCode, msg: &str| Ok(json(s, &serde_json::json!({ "error": msg })));
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ping") => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "status": "ok", "model": m.name, "version": m.version }),
        )),
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
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return err(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("request body over {MAX_BODY} bytes"),
                    );
                }
            };
            let x = match ctype.as_str() {
                "application/json" => parse_json(&m, &body),
                "text/csv" => parse_csv(&m, &body),
                other => Err(BadRequest(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("content type {other:?}: use application/json or text/csv"),
                )),
            };
            let x = match x {
                Ok(x) if x.is_empty() => {
                    return err(StatusCode::BAD_REQUEST, "no rows in the request");
                }
                Ok(x) => x,
                Err(BadRequest(s, msg)) => return err(s, &msg),
            };
            // Small requests run on the I/O worker (a thread hand-off costs more than the
            // model); large ones on the blocking pool, so they never stall other connections.
            let probs = if x.len() <= 64 * m.features.len() {
                m.scorer.probabilities(&x)
            } else {
                let m2 = Arc::clone(&m);
                tokio::task::spawn_blocking(move || m2.scorer.probabilities(&x))
                    .await
                    .unwrap_or_default()
            };
            let preds: Vec<serde_json::Value> = probs
                .iter()
                .map(|&p| {
                    serde_json::json!({
                        "probability": p,
                        "class": m.classes[usize::from(p >= 0.5)],
                    })
                })
                .collect();
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

/// Verify, load, serve until SIGTERM or SIGINT, then drain in-flight requests.
pub fn serve(opts: &ServeOptions) -> anyhow::Result<()> {
    let model = Arc::new(load(opts)?);
    eprintln!(
        "verified {} {} in {}; features: {}",
        model.name,
        model.version,
        opts.model_dir.display(),
        model.features.join(",")
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("airlock-serve")
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot handle SIGTERM")?;
        loop {
            tokio::select! {
                conn = listener.accept() => {
                    let Ok((stream, _)) = conn else { continue };
                    let _ = stream.set_nodelay(true);
                    let m = Arc::clone(&model);
                    let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&m), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        eprintln!("stopping: draining in-flight requests");
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
                eprintln!("gave up waiting for connections after 30 s");
            }
        }
        eprintln!("stopped");
        Ok(())
    })
}
