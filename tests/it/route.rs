//! `airlock route`: sensitive requests never reach the cloud side (checked on the cloud
//! side's own request log), on-prem down means 503 and never the cloud, a cloud endpoint
//! serving another release is refused, the routing audit verifies and holds no payload,
//! SIGHUP reloads, and the policy is parsed strictly.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{Release, Sandbox};
use crate::moto::{Moto, REGION};
use crate::publish::{approve, second_release, setup, stderr};
use crate::publish_s3::{BUCKET, deploy_args, publish, s3_setup};
use crate::serve;

/// A process that is killed when dropped, with its stderr lines.
pub struct Proc {
    child: Child,
    log: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Start `airlock ARGS` in `sb` and wait for a stderr line starting with `ready`.
    /// Returns the process and the rest of that line.
    /// [`Proc::start`] with `env` added to the environment.
    pub fn start_env(
        sb: &Sandbox,
        args: &[&str],
        env: &[(String, String)],
        ready: &str,
    ) -> (Self, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .envs(env.iter().cloned())
            .current_dir(sb.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start airlock");
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = Proc {
            child,
            log: rx,
            seen: Vec::new(),
        };
        let rest = p.wait_for(ready, Duration::from_secs(60));
        (p, rest)
    }

    /// Wait for a stderr line starting with `prefix`; the rest of it.
    pub fn wait_for(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            match self
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(_) => panic!("no line {prefix:?} in {:#?}", self.seen),
            }
        }
    }

    /// Send a signal.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Wait for the exit; its status and every stderr line.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().expect("wait");
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.log.try_iter());
        (status, seen)
    }
}

/// A cloud side speaking the container contract that records every body it receives and
/// answers `/ping` with the statement digest it is told to report.
pub struct CloudStandIn {
    pub port: u16,
    pub bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    pub digest: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

impl Drop for CloudStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl CloudStandIn {
    pub fn start(digest: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let digest = Arc::new(Mutex::new(digest.to_owned()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (bodies, digest, stop) = (bodies.clone(), digest.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (bodies, digest) = (bodies.clone(), digest.clone());
                    std::thread::spawn(move || answer(conn, &bodies, &digest));
                }
            });
        }
        CloudStandIn {
            port,
            bodies,
            digest,
            stop,
        }
    }
}

/// One connection of the stand-in: requests until the client closes.
fn answer(conn: TcpStream, bodies: &Mutex<Vec<Vec<u8>>>, digest: &Mutex<String>) {
    let mut r = BufReader::new(conn.try_clone().expect("clone"));
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let answer = if line.starts_with("GET /ping") {
            format!(
                "{{\"status\":\"ok\",\"statement_sha256\":\"{}\"}}",
                digest.lock().expect("digest")
            )
        } else {
            bodies.lock().expect("bodies").push(body);
            "{\"predictions\":[{\"probability\":0.5,\"class\":\"1\"}]}".to_owned()
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// One exchange on a kept-alive connection: (status, headers lower-cased, body).
pub fn exchange(
    s: &mut BufReader<TcpStream>,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let method = if body.is_empty() && path == "/ping" {
        "GET"
    } else {
        "POST"
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let w = s.get_mut();
    w.write_all(req.as_bytes()).expect("send");
    w.write_all(body).expect("send body");
    let mut line = String::new();
    s.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0;
    let mut head = String::new();
    loop {
        let mut h = String::new();
        s.read_line(&mut h).expect("header");
        if h == "\r\n" || h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&lower);
    }
    let mut b = vec![0; len];
    s.read_exact(&mut b).expect("body");
    (status, head, String::from_utf8_lossy(&b).into_owned())
}

pub fn connect(port: u16) -> BufReader<TcpStream> {
    let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    BufReader::new(c)
}

/// The release's statement digest, as a serve of it reports on `/ping`.
fn statement_digest(port: u16) -> String {
    let (status, _, body) = exchange(&mut connect(port), "/ping", &[], b"");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("ping json");
    v["statement_sha256"].as_str().expect("digest").to_owned()
}

/// The bundle's feature names, in order.
fn features(sb: &Sandbox, bundle: &str) -> Vec<String> {
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.join(&format!("{bundle}/model-card.json"))).expect("card"),
    )
    .expect("card json");
    card["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_owned())
        .collect()
}

/// `route.toml` for an on-prem pool and cloud URLs.
fn policy(onprem: &[u16], cloud: &[u16], extra: &str) -> String {
    let urls = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("\"http://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cloud = cloud
        .iter()
        .map(|p| format!("[[cloud.endpoints]]\nurl = \"http://127.0.0.1:{p}\"\n"))
        .collect::<String>();
    format!(
        "[release]\nbundle = \"bundle\"\ntrust = \"trust.toml\"\n\n\
         [listen]\naddress = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n\
         [audit]\nlog = \"route-audit.jsonl\"\nkey = \"keys/publisher.key\"\nwindow_seconds = 2\n\n\
         [classify]\nmrn_patterns = ['MRN-[0-9]{{6}}']\nsensitive_fields = [\"patient_name\"]\n\
         data_class_header = \"x-data-class\"\nonprem_data_classes = [\"phi\"]\n\
         tenant_header = \"x-tenant\"\nonprem_tenants = [\"st-marys\"]\n\n\
         [onprem]\nmembers = [{}]\ntimeout_ms = 5000\n\n\
         [health]\ninterval_ms = 200\nunhealthy_after = 2\nhealthy_after = 2\n\n\
         {extra}\n{cloud}",
        urls(onprem)
    )
}

/// Request `i`: even ones carry nothing sensitive, odd ones carry an identifier or a
/// sensitive marking, each kind in turn. The first feature is `i`, so each side's log says
/// which requests it got. Returns (headers, content type, body, sensitive).
fn request(i: usize, features: &[String]) -> (Vec<(&'static str, &'static str)>, String, bool) {
    let row = |extra: &str| {
        let mut fields: Vec<String> = features
            .iter()
            .enumerate()
            .map(|(k, f)| format!("\"{f}\": {}", if k == 0 { i as f64 } else { 0.5 }))
            .collect();
        if !extra.is_empty() {
            fields.push(extra.to_owned());
        }
        format!("{{\"instances\": [{{{}}}]}}", fields.join(", "))
    };
    let csv = |first: &str| {
        let mut cells: Vec<String> = (0..features.len()).map(|_| "0.5".to_owned()).collect();
        cells[0] = first.to_owned();
        format!("{}\n{}\n", features.join(","), cells.join(","))
    };
    let json = ("content-type", "application/json");
    let csv_type = ("content-type", "text/csv");
    if i.is_multiple_of(2) {
        return if i.is_multiple_of(4) {
            // Open, with free text the cloud must not get: in a repeated key (a parser
            // keeping the last sees a number) and in a key's name.
            let body = row("").replacen(
                '{',
                "{\"x\": \"Jane Doe, HIV+\", \"x\": 0, \"Jane Doe 12 Acacia Ave\": 0, ",
                1,
            );
            (vec![json], body, false)
        } else {
            (vec![csv_type], csv(&i.to_string()), false)
        };
    }
    let (headers, body) = match (i / 2) % 8 {
        0 => (
            vec![json],
            row("").replacen('{', &format!("{{\"note\": \"patient{i}@example.org\", "), 1),
        ),
        1 => (vec![json], row("\"card\": 4111111111111111")),
        2 => (
            vec![csv_type],
            csv(&i.to_string()).replace('\n', ",078-05-1120\n"),
        ),
        3 => (vec![json], row("\"patient_name\": 1")),
        4 => (vec![json, ("x-data-class", "PHI")], row("")),
        5 => (vec![json, ("x-tenant", "st-marys")], row("")),
        6 => (
            vec![json],
            row("").replacen(
                '{',
                &format!("{{\"ref\": \"MRN-{:06}\", ", i % 1_000_000),
                1,
            ),
        ),
        _ => (
            vec![json],
            row("").replacen('{', &format!("{{\"note\": \"p{i}\\u0040example.org\", "), 1),
        ),
    };
    (headers, body, true)
}

/// The first feature of every row in a body the cloud got (the request's number).
fn numbers_in(body: &[u8], features: &[String]) -> Vec<usize> {
    let text = String::from_utf8_lossy(body);
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text).expect("cloud got JSON");
        v["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|r| r[&features[0]].as_f64().expect("number") as usize)
            .collect()
    } else {
        text.lines()
            .skip(1)
            .map(|l| {
                l.split(',')
                    .next()
                    .expect("cell")
                    .parse::<f64>()
                    .expect("number") as usize
            })
            .collect()
    }
}

/// Send requests `range` from `threads` clients; returns (number, status, side) each.
fn send_all(
    port: u16,
    range: std::ops::Range<usize>,
    threads: usize,
    features: &[String],
) -> Vec<(usize, bool, u16, String)> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let features = features.to_vec();
            let range = range.clone();
            std::thread::spawn(move || {
                let mut c = connect(port);
                let mut out = Vec::new();
                for i in range.filter(|i| i % threads == t) {
                    let (mut headers, body, sensitive) = request(i, &features);
                    headers.push(("x-request", "test"));
                    let (status, head, _) =
                        exchange(&mut c, "/invocations", &headers, body.as_bytes());
                    let side = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-airlock-side:"))
                        .map_or_else(|| "none".to_owned(), |s| s.trim().to_owned());
                    if head.contains("connection: close") {
                        c = connect(port);
                    }
                    out.push((i, sensitive, status, side));
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("client"))
        .collect()
}

fn start_route(r: &Release) -> (Proc, u16, u16) {
    start_route_env(r, &[])
}

fn start_route_env(r: &Release, env: &[(String, String)]) -> (Proc, u16, u16) {
    let (mut p, addr) = Proc::start_env(
        &r.sb,
        &["route", "--policy", "route.toml"],
        env,
        "listening on http://",
    );
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let metrics = p
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("metrics on http://"))
        .and_then(|a| {
            a.trim_end_matches("/metrics")
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| {
            p.wait_for("metrics on http://", Duration::from_secs(1))
                .parse()
                .expect("metrics port")
        });
    (p, port, metrics)
}

#[test]
fn no_identifier_reaches_the_cloud_in_10000_requests_even_with_on_prem_down() {
    let r = setup("[\"local\"]");
    approve(&r);
    let features = features(&r.sb, "bundle");
    let onprem: Vec<_> = (0..2).map(|_| serve::start(&r.sb, "bundle")).collect();
    let digest = statement_digest(onprem[0].port);
    let cloud = CloudStandIn::start(&digest);
    r.sb.write(
        "route.toml",
        &policy(
            &[onprem[0].port, onprem[1].port],
            &[cloud.port],
            "[cloud]\ntimeout_ms = 5000\n",
        ),
    );
    let (router, port, metrics_port) = start_route(&r);

    // 9,000 mixed requests with the pool up: every sensitive one on-prem, every other one
    // in the cloud.
    let results = send_all(port, 0..9000, 8, &features);
    assert_eq!(results.len(), 9000);
    for (i, sensitive, status, side) in &results {
        if *sensitive {
            assert_eq!(side, "onprem", "request {i} went to {side} ({status})");
        } else {
            assert_eq!((side.as_str(), *status), ("cloud", 200), "request {i}");
        }
    }
    // On-prem serve answers what it can score (200) and refuses the rest (400): both sides'
    // answers come back as they are.
    assert!(results.iter().any(|r| r.1 && r.2 == 200));

    // The pool goes down: sensitive requests get 503, never the cloud; open ones still go.
    drop(onprem);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exchange(&mut connect(port), "/ping", &[], b"").0 != 503 {
        assert!(
            Instant::now() < deadline,
            "the router never noticed the pool was down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let down = send_all(port, 9000..10_000, 4, &features);
    for (i, sensitive, status, side) in &down {
        if *sensitive {
            assert_eq!((*status, side.as_str()), (503, "none"), "request {i}");
        } else {
            assert_eq!((*status, side.as_str()), (200, "cloud"), "request {i}");
        }
    }

    // The cloud side's own log: exactly the open requests, and none of the others.
    let bodies = cloud.bodies.lock().expect("bodies").clone();
    let got: BTreeSet<usize> = bodies
        .iter()
        .flat_map(|b| numbers_in(b, &features))
        .collect();
    let open: BTreeSet<usize> = (0..10_000).filter(|i| i % 2 == 0).collect();
    assert_eq!(bodies.len(), 5000, "one body per open request");
    assert_eq!(got, open);
    for b in &bodies {
        let t = String::from_utf8_lossy(b);
        for bad in [
            "@",
            "\\u0040",
            "MRN-",
            "4111111111111111",
            "078-05-1120",
            "patient_name",
            "Jane",
            "Acacia",
        ] {
            assert!(!t.contains(bad), "the cloud got {bad:?}: {t}");
        }
    }

    // Metrics on their own port.
    let (status, _, text) = exchange(
        &mut connect(metrics_port),
        "/metrics",
        &[("accept", "text/plain")],
        b"x",
    );
    assert_eq!(status, 404, "POST /metrics: {text}");
    let mut c = connect(metrics_port);
    c.get_mut()
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    c.read_to_string(&mut text).expect("metrics");
    assert!(
        text.contains(
            "airlock_route_requests_total{class=\"open\",side=\"cloud\",outcome=\"ok\"} 5000"
        ),
        "{text}"
    );
    assert!(
        text.contains("airlock_route_refusals_total{reason=\"no-onprem-member\"} 500"),
        "{text}"
    );
    assert!(
        text.contains("airlock_route_added_seconds_bucket"),
        "{text}"
    );

    router.signal("TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log:#?}");

    // The routing audit verifies, counts every request, lists every refusal, and holds
    // nothing of any request.
    let out = r.sb.airlock(&[
        "audit",
        "verify",
        "route-audit.jsonl",
        "--trust",
        "trust.toml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(r.sb.join("route-audit.jsonl")).expect("log");
    let mut counted = 0u64;
    let mut refusals = 0;
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("entry");
        match e["action"].as_str() {
            Some("route") => {
                if let Some(counts) = e["routing"]["counts"].as_object() {
                    counted += counts
                        .values()
                        .map(|v| v.as_u64().expect("count"))
                        .sum::<u64>();
                }
            }
            Some("route-refusal") => {
                if e["routing"].is_object() {
                    refusals += 1;
                    assert!(
                        e["outcome"]
                            .as_str()
                            .expect("outcome")
                            .contains("may not go to the cloud")
                    );
                }
            }
            other => panic!("unexpected entry {other:?}"),
        }
    }
    assert_eq!(counted, 10_000, "every request counted once");
    assert_eq!(refusals, 500, "one entry per refusal");
    for bad in [
        "@",
        "example.org",
        "MRN-",
        "4111111111111111",
        "078-05-1120",
        "st-marys",
        "patient_name",
        "Jane",
        "instances",
    ] {
        assert!(!text.contains(bad), "the audit holds {bad:?}");
    }
}

#[test]
fn a_cloud_endpoint_serving_another_release_is_refused_and_sighup_reloads() {
    let r = setup("[\"local\"]");
    approve(&r);
    second_release(&r, "bundle2");
    let features = features(&r.sb, "bundle");
    let onprem = serve::start(&r.sb, "bundle");
    let other = serve::start(&r.sb, "bundle2");
    let digest = statement_digest(onprem.port);
    assert_ne!(statement_digest(other.port), digest);
    r.sb.write("route.toml", &policy(&[onprem.port], &[other.port], ""));

    // --check says which side is refused, and fails.
    let out =
        r.sb.airlock(&["route", "--policy", "route.toml", "--check"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("onprem http://") && said.contains(": serves the release"),
        "{said}"
    );
    assert!(said.contains("refused: serves release statement"), "{said}");

    let (mut router, port, _) = start_route(&r);
    assert!(
        router
            .seen
            .iter()
            .any(|l| l.contains("cloud http://") && l.contains("refused")),
        "{:#?}",
        router.seen
    );
    // An open request may not go to the other release, and the policy allows no fallback.
    let (headers, body, _) = request(0, &features);
    let mut c = connect(port);
    let (status, _, msg) = exchange(&mut c, "/invocations", &headers, body.as_bytes());
    assert_eq!(status, 503, "{msg}");
    assert!(msg.contains("no cloud endpoint could serve"), "{msg}");

    // The cloud is fixed; a reload with a broken policy is refused and the old one stays.
    let good = CloudStandIn::start(&digest);
    r.sb.write("route.toml", "[release]\nbundle = 1\n");
    router.signal("HUP");
    router.wait_for("reload refused", Duration::from_secs(10));
    let (status, _, _) = exchange(&mut c, "/invocations", &headers, body.as_bytes());
    assert_eq!(status, 503);
    r.sb.write("route.toml", &policy(&[onprem.port], &[good.port], ""));
    router.signal("HUP");
    router.wait_for("reloaded", Duration::from_secs(10));
    let (status, head, _) = exchange(&mut c, "/invocations", &headers, body.as_bytes());
    assert_eq!(status, 200);
    assert!(head.contains("x-airlock-side: cloud"), "{head}");
    assert_eq!(good.bodies.lock().expect("bodies").len(), 1);

    // The cloud endpoint starts serving another release: refused at the next check.
    *good.digest.lock().expect("digest") = "0".repeat(64);
    router.wait_for("route: cloud", Duration::from_secs(10));
    let (status, _, _) = exchange(&mut c, "/invocations", &headers, body.as_bytes());
    assert_eq!(status, 503);
    assert_eq!(good.bodies.lock().expect("bodies").len(), 1);

    router.signal("TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log:#?}");
    let out = r.sb.airlock(&[
        "audit",
        "verify",
        "route-audit.jsonl",
        "--trust",
        "trust.toml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(r.sb.join("route-audit.jsonl")).expect("log");
    assert!(
        text.contains("refused: cloud upstream http://127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("refused: policy reload"), "{text}");
    assert!(text.contains("ok: policy reloaded"), "{text}");
}

#[test]
fn route_policies_and_releases_are_refused_before_listening() {
    let r = setup("[\"local\"]");
    let base = policy(&[1], &[2], "");
    let cases: &[(&str, String, i32, &str)] = &[
        (
            "unknown key",
            base.replace("[onprem]\n", "[onprem]\nmirror = true\n"),
            3,
            "unknown field",
        ),
        (
            "no pool",
            base.replace("members = [\"http://127.0.0.1:1\"]", "members = []"),
            3,
            "members is empty",
        ),
        (
            "a path in a URL",
            base.replace("127.0.0.1:2\"", "127.0.0.1:2/x\""),
            3,
            "base URL",
        ),
        (
            "credentials in a URL",
            base.replace("http://127.0.0.1:1", "http://u@127.0.0.1:1"),
            3,
            "base URL",
        ),
        (
            "https",
            base.replace("http://127.0.0.1:2", "https://127.0.0.1:2"),
            3,
            "http://",
        ),
        (
            "list without its header",
            base.replace("tenant_header = \"x-tenant\"\n", ""),
            3,
            "tenant_header is not",
        ),
        (
            "bad header",
            base.replace("\"x-tenant\"", "\"X Tenant\""),
            3,
            "header",
        ),
        (
            "retry budget",
            base.replace("[health]\n", "[health]\nretry_budget = 2.0\n"),
            3,
            "retry_budget",
        ),
        (
            "an MRN pattern matching text",
            base.replace("MRN-[0-9]{6}", ".*"),
            3,
            "mrn_patterns",
        ),
        (
            "url and sagemaker",
            base.replace(
                "url = \"http://127.0.0.1:2\"",
                "url = \"http://127.0.0.1:2\"\nsagemaker = \"e\"",
            ),
            3,
            "exactly one",
        ),
        // The release is not approved yet: refused as unverified.
        (
            "unapproved release",
            base.clone(),
            4,
            "required officer approvals",
        ),
    ];
    for (what, text, code, says) in cases {
        r.sb.write("route.toml", text);
        let out = r.sb.airlock(&["route", "--policy", "route.toml"]);
        assert_eq!(out.status.code(), Some(*code), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{what}: {}", stderr(&out));
    }
    // Approved, but the audit key is an officer's, not a publisher's.
    approve(&r);
    r.sb.write(
        "route.toml",
        &base.replace("keys/publisher.key", "keys/alice.key"),
    );
    let out = r.sb.airlock(&["route", "--policy", "route.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a usable publisher key"),
        "{}",
        stderr(&out)
    );
    assert!(!r.sb.join("route-audit.jsonl").exists());
}

#[test]
fn a_sagemaker_endpoint_gets_open_requests_only_while_its_model_is_the_release() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET, REGION);
    let r = s3_setup("[\"eu-west-1\"]");
    approve(&r);
    // The deploy stage puts the release's statement digest on the endpoint's model.
    let out = publish(&r, &moto, "bundle", &deploy_args());
    assert!(out.status.success(), "{}", stderr(&out));
    let features = features(&r.sb, "bundle");
    let onprem = serve::start(&r.sb, "bundle");
    r.sb.write(
        "route.toml",
        &policy(
            &[onprem.port],
            &[],
            "[[cloud.endpoints]]\nsagemaker = \"fraud-scoring\"\n",
        ),
    );
    let out =
        r.sb.airlock_env(&["route", "--policy", "route.toml", "--check"], &moto.env());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("cloud  sagemaker:fraud-scoring: serves the release"),
        "{said}"
    );

    let (mut router, port, _) = start_route_env(&r, &moto.env());
    moto.start_recording();
    let mut c = connect(port);
    let (headers, body, _) = request(0, &features);
    let (status, head, answer) = exchange(&mut c, "/invocations", &headers, body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert!(head.contains("x-airlock-side: cloud"), "{head}");
    let (headers, body, sensitive) = request(1, &features);
    assert!(sensitive);
    let (_, head, _) = exchange(&mut c, "/invocations", &headers, body.as_bytes());
    assert!(head.contains("x-airlock-side: onprem"), "{head}");
    let invoked: Vec<_> = moto
        .stop_recording()
        .into_iter()
        .filter(|(_, url)| url.contains("/invocations"))
        .collect();
    assert_eq!(
        invoked.len(),
        1,
        "one InvokeEndpoint, for the open request: {invoked:?}"
    );

    // The endpoint is updated to another release: refused at the next check.
    second_release(&r, "bundle2");
    let out = publish(&r, &moto, "bundle2", &deploy_args());
    assert!(out.status.success(), "{}", stderr(&out));
    router.wait_for(
        "route: cloud sagemaker:fraud-scoring refused",
        Duration::from_secs(10),
    );
    // (A new connection: the first idled past the router's header timeout meanwhile.)
    let (headers, body, _) = request(0, &features);
    let (status, _, msg) = exchange(
        &mut connect(port),
        "/invocations",
        &headers,
        body.as_bytes(),
    );
    assert_eq!(status, 503, "{msg}");
    router.signal("TERM");
    assert!(router.finish().0.success());
}
