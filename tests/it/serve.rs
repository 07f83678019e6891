//! `airlock serve`: refuses what does not verify; serves what `airlock predict` computes;
//! holds up under 100 concurrent clients; drains on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::path::Path;

use crate::helpers::{Sandbox, csv_rows};
use crate::publish::{approve, setup, stderr};

pub struct Server {
    pub port: u16,
    child: Child,
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(sb: &Sandbox, dir: &str) -> Server {
    launch(sb, dir, &[], None).unwrap_or_else(|e| panic!("airlock serve did not start: {e}"))
}

/// Start `airlock serve` on `dir` with `extra` flags (under `ulimit -n NOFILE` when
/// given). Err: its exit status and log when it stopped before listening.
pub fn launch(
    sb: &Sandbox,
    dir: &str,
    extra: &[&str],
    nofile: Option<u32>,
) -> Result<Server, String> {
    let bin = env!("CARGO_BIN_EXE_airlock");
    let args = [
        "serve",
        "--model-dir",
        dir,
        "--trust",
        "trust.toml",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
    ];
    let mut cmd = match nofile {
        None => Command::new(bin),
        Some(n) => {
            let mut c = Command::new("bash");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
            c
        }
    };
    let mut child = cmd
        .args(args)
        .args(extra)
        .current_dir(sb.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start airlock serve");
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut server = Server {
        child,
        port: 0,
        log: rx,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let line = match server
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.child.wait().expect("wait");
                return Err(format!("{status}: {}", seen.join("\n")));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("airlock serve did not say where it listens: {seen:?}")
            }
        };
        if let Some(addr) = line.strip_prefix("listening on http://") {
            let port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
            server.port = port;
            return Ok(server);
        }
        seen.push(line);
    }
}

/// One HTTP/1.1 exchange on a kept-alive connection: (status, body).
fn exchange(
    s: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    ctype: &str,
    body: &[u8],
) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
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
    loop {
        let mut h = String::new();
        s.read_line(&mut h).expect("header");
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).expect("body");
    (status, String::from_utf8_lossy(&buf).into_owned())
}

/// The holdout rows of a run, as the run split them, with what `airlock predict` says of them.
pub struct Holdout {
    pub features: Vec<String>,
    /// One JSON object per row, by feature name.
    pub instances: Vec<serde_json::Value>,
    /// The rows as CSV without a header, features in the model card's order.
    pub csv_body: String,
    /// `airlock predict` on the run directory.
    pub expected: Vec<f64>,
}

pub fn holdout(sb: &Sandbox, run: &Path, data: &Path) -> Holdout {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("training-record.json")).expect("record"))
            .expect("json");
    let features: Vec<String> = record["hyperparameters"]["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f.as_str().expect("str").to_owned())
        .collect();
    let (header, rows) = csv_rows(data);
    let s = &record["splits"];
    let n = |k: &str| s[k].as_u64().expect("split") as usize;
    let seed = record["seed"].as_u64().expect("seed");
    let (_, _, hold) = airlock_model::split_rows(rows.len(), n("train"), n("validation"), seed);
    let mut csv = header.join(",") + "\n";
    for &i in &hold {
        csv += &(rows[i].join(",") + "\n");
    }
    sb.write("holdout.csv", &csv);
    let expected: Vec<f64> = sb
        .ok(&[
            "predict",
            "--run",
            run.to_str().expect("utf-8"),
            "--input",
            "holdout.csv",
        ])
        .lines()
        .skip(1)
        .map(|l| l.parse().expect("probability"))
        .collect();
    assert_eq!(expected.len(), hold.len());
    let col = |f: &str| header.iter().position(|h| h == f).expect("column");
    let cols: Vec<usize> = features.iter().map(|f| col(f)).collect();
    let instances = hold
        .iter()
        .map(|&i| {
            serde_json::Value::Object(
                features
                    .iter()
                    .zip(&cols)
                    .map(|(f, &c)| {
                        (
                            f.clone(),
                            serde_json::json!(rows[i][c].parse::<f64>().expect("number")),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let csv_body = hold
        .iter()
        .map(|&i| {
            cols.iter()
                .map(|&c| rows[i][c].clone())
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    Holdout {
        features,
        instances,
        csv_body,
        expected,
    }
}

/// The server's predictions for the holdout rows, as JSON and as CSV, equal `airlock predict`'s.
pub fn assert_predictions(port: u16, h: &Holdout) {
    let body = serde_json::json!({ "instances": h.instances }).to_string();
    let mut conn = connect(port);
    for (what, ctype, body) in [
        ("JSON", "application/json", &body),
        ("CSV", "text/csv", &h.csv_body),
    ] {
        let (status, resp) = exchange(&mut conn, "POST", "/invocations", ctype, body.as_bytes());
        assert_eq!(status, 200, "{resp}");
        let preds: serde_json::Value = serde_json::from_str(&resp).expect("json");
        let got: Vec<f64> = preds["predictions"]
            .as_array()
            .expect("predictions")
            .iter()
            .map(|p| p["probability"].as_f64().expect("p"))
            .collect();
        let worst = got
            .iter()
            .zip(&h.expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert_eq!(got.len(), h.expected.len());
        assert!(
            worst <= 1e-5,
            "{what} predictions differ from airlock predict by {worst}"
        );
    }
}

fn connect(port: u16) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
}

#[test]
fn serve_refuses_to_start_on_a_tampered_unapproved_or_missing_bundle() {
    let r = setup("[\"local\"]");
    // Unapproved.
    let out = r.sb.airlock(&[
        "serve",
        "--model-dir",
        "bundle",
        "--trust",
        "trust.toml",
        "--port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 of 1 required officer approvals, refusing to start"),
        "{}",
        stderr(&out)
    );
    // Missing.
    let out = r.sb.airlock(&[
        "serve",
        "--model-dir",
        "nothing",
        "--trust",
        "trust.toml",
        "--port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to start"),
        "{}",
        stderr(&out)
    );
    // A GPU that is not there (or a build without CUDA): a clear error, before listening.
    approve(&r);
    let out = r.sb.airlock(&[
        "serve",
        "--model-dir",
        "bundle",
        "--trust",
        "trust.toml",
        "--port",
        "0",
        "--device",
        "cuda:0",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("cuda:0"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("listening"), "{}", stderr(&out));
    // Tampered: one byte of the approved model.
    let path = r.sb.join("bundle/model.safetensors");
    let mut b = std::fs::read(&path).expect("model");
    let at = b.len() - 7;
    b[at] ^= 0x10;
    std::fs::write(&path, b).expect("write");
    let out = r.sb.airlock(&[
        "serve",
        "--model-dir",
        "bundle",
        "--trust",
        "trust.toml",
        "--port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not verify, refusing to start"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_predicts_what_predict_does_and_holds_100_concurrent_clients() {
    let r = setup("[\"local\"]");
    approve(&r);
    let h = holdout(&r.sb, &r.run, &r.data);
    let server = start(&r.sb, "bundle");
    assert_predictions(server.port, &h);
    let (features, instances, csv_body) = (&h.features, &h.instances, &h.csv_body);
    // Bad requests get a 4xx with a message.
    let one = |k: &str, v: serde_json::Value| {
        let mut o = instances[0].clone();
        o.as_object_mut().expect("obj").insert(k.to_owned(), v);
        serde_json::json!({ "instances": [o] }).to_string()
    };
    let mut missing = instances[0].clone();
    missing.as_object_mut().expect("obj").remove(&features[0]);
    for (ctype, body, code, msg) in [
        (
            "application/json",
            one("ssn", serde_json::json!(1)),
            400,
            "unknown feature",
        ),
        (
            "application/json",
            serde_json::json!({ "instances": [missing] }).to_string(),
            400,
            "missing feature",
        ),
        (
            "application/json",
            one(&features[1], serde_json::json!("high")),
            400,
            "not a finite number",
        ),
        (
            "application/json",
            one(&features[1], serde_json::json!(1e39)),
            400,
            "not a finite number as a 32-bit float",
        ),
        (
            "application/json",
            one(&features[1], serde_json::json!(-1e300)),
            400,
            "not a finite number as a 32-bit float",
        ),
        (
            "application/json",
            one(&features[1], serde_json::json!(1)).replacen(
                &format!("\"{}\":1", features[1]),
                &format!("\"{}\":NaN", features[1]),
                1,
            ),
            400,
            "malformed JSON",
        ),
        (
            "application/json",
            one(&features[1], serde_json::json!(1)).replacen(
                &format!("\"{}\":1", features[1]),
                &format!("\"{}\":1,\"{}\":2", features[1], features[1]),
                1,
            ),
            400,
            "given twice",
        ),
        (
            "application/json",
            "{\"instances\": [".to_owned(),
            400,
            "malformed JSON",
        ),
        (
            "text/csv",
            format!("1e39{}", &csv_body[csv_body.find(',').expect("cells")..]),
            400,
            "not a finite number",
        ),
        (
            "text/csv",
            "1,2,3\n".to_owned(),
            400,
            "3 values, expected 12",
        ),
        (
            "text/csv",
            csv_body.replacen(',', ",x", 1),
            400,
            "not a finite number",
        ),
        ("application/xml", "<x/>".to_owned(), 415, "content type"),
    ] {
        let mut c = connect(server.port);
        let (status, resp) = exchange(&mut c, "POST", "/invocations", ctype, body.as_bytes());
        assert_eq!(
            status,
            code,
            "{ctype} {}: {resp}",
            &body[..body.len().min(60)]
        );
        assert!(resp.contains(msg), "{resp}");
    }
    // Over the size limit: refused from the declared length, before the body is read.
    let mut c = connect(server.port);
    write!(
        c.get_mut(),
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        8 << 20
    )
    .expect("send");
    let mut line = String::new();
    c.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");
    let (status, resp) = exchange(&mut connect(server.port), "GET", "/ping", "text/plain", b"");
    assert_eq!(status, 200, "{resp}");

    // 100 concurrent clients for 10 seconds, 1-row JSON requests on kept-alive connections.
    let one_row = serde_json::json!({ "instances": [instances[0].clone()] }).to_string();
    let port = server.port;
    let stop = Instant::now() + Duration::from_secs(10);
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let body = one_row.clone();
            std::thread::spawn(move || {
                let (mut ok, mut bad) = (0u64, 0u64);
                let mut c = connect(port);
                while Instant::now() < stop {
                    let (status, _) = exchange(
                        &mut c,
                        "POST",
                        "/invocations",
                        "application/json",
                        body.as_bytes(),
                    );
                    if status == 200 { ok += 1 } else { bad += 1 }
                }
                (ok, bad)
            })
        })
        .collect();
    let (mut ok, mut bad) = (0, 0);
    for c in clients {
        let (o, b) = c.join().expect("client thread");
        ok += o;
        bad += b;
    }
    assert_eq!(bad, 0, "{bad} errors in {} requests", ok + bad);
    assert!(ok > 100, "only {ok} requests answered");
    eprintln!(
        "100 clients, 10 s: {ok} requests, {bad} errors ({:.0} req/s)",
        ok as f64 / 10.0
    );

    // SIGTERM: drains and stops.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = server.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    // The log's reader thread may lag the exit on a loaded machine: wait for its last lines.
    let mut log: Vec<String> = Vec::new();
    while let Ok(l) = server.log.recv_timeout(Duration::from_secs(10)) {
        let done = l == "stopped";
        log.push(l);
        if done {
            break;
        }
    }
    assert!(log.iter().any(|l| l == "stopped"), "{log:?}");
}

/// A JSON body of one row of zeros, features from the bundle's model card.
fn zeros_row(sb: &Sandbox, bundle: &str) -> String {
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.join(&format!("{bundle}/model-card.json"))).expect("card"),
    )
    .expect("json");
    let row: serde_json::Map<String, serde_json::Value> = card["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| (i["name"].as_str().expect("name").to_owned(), 0.into()))
        .collect();
    serde_json::json!({ "instances": [row] }).to_string()
}

/// The server's probability for the one row of `body`.
fn probability(port: u16, body: &str) -> f64 {
    let (status, resp) = exchange(
        &mut connect(port),
        "POST",
        "/invocations",
        "application/json",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{resp}");
    let v: serde_json::Value = serde_json::from_str(&resp).expect("json");
    v["predictions"][0]["probability"]
        .as_f64()
        .expect("probability")
}

/// `model` with the output layer's bias moved far: a well-formed, canonical model with
/// other weights, which no statement signs.
fn forged_model(model: &[u8]) -> Vec<u8> {
    use airlock_safetensors as st;
    let file = st::parse(model).expect("the bundle's model parses");
    let mut tensors = file.owned_tensors();
    let last = tensors
        .iter()
        .filter_map(|t| t.name.strip_suffix(".bias"))
        .max()
        .expect("biases")
        .to_owned();
    let bias = tensors
        .iter_mut()
        .find(|t| t.name == format!("{last}.bias"))
        .expect("output bias");
    bias.data = 40f32.to_le_bytes().to_vec();
    let forged = st::write_canonical(&tensors, &file.metadata).expect("write");
    assert!(st::is_canonical(&st::parse(&forged).expect("parse")));
    forged
}

#[test]
fn serve_answers_only_with_the_weights_it_verified_while_the_model_file_is_swapped() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let r = setup("[\"local\"]");
    approve(&r);
    let row = zeros_row(&r.sb, "bundle");
    let expected = {
        let server = start(&r.sb, "bundle");
        probability(server.port, &row)
    };
    let model = r.sb.join("bundle/model.safetensors");
    let good = std::fs::read(&model).expect("model");
    let forged = forged_model(&good);
    assert!(expected < 0.99, "the forged model must answer differently");

    // Rename the verified and the forged model over the bundle's file in turn (written
    // beside the bundle, not in it), while the server starts 200 times.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, model, good) = (Arc::clone(&stop), model.clone(), good.clone());
        let tmp = r.sb.join("swap.tmp");
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let bytes = if swaps.is_multiple_of(2) {
                    &forged
                } else {
                    &good
                };
                std::fs::write(&tmp, bytes).expect("write");
                std::fs::rename(&tmp, &model).expect("rename");
                swaps += 1;
                std::thread::sleep(Duration::from_micros(300));
            }
            std::fs::write(&tmp, &good).expect("write");
            std::fs::rename(&tmp, &model).expect("rename");
            swaps
        })
    };
    let t0 = Instant::now();
    let (mut served, mut refused) = (0, 0);
    for i in 0..200 {
        match launch(&r.sb, "bundle", &[], None) {
            Ok(server) => {
                served += 1;
                let p = probability(server.port, &row);
                assert!(
                    (p - expected).abs() <= 1e-6,
                    "start {i}: the server answers {p}, the verified model {expected}: \
                     it runs weights it did not verify"
                );
            }
            Err(log) => {
                assert!(log.contains("refusing to start"), "start {i}: {log}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    eprintln!(
        "200 starts in {:.1} s while the model was swapped {swaps} times: {served} served \
         the verified weights, {refused} refused to start",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        served > 0 && refused > 0,
        "{served} served, {refused} refused"
    );
}

/// Whether the peer closed `s` (EOF or reset) before `deadline`; bytes it sent first
/// (an error response) are skipped.
fn closed_by_peer(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            // Only the read timeout means the connection is still open; a reset, an abort
            // or any other error (seen under load) means the server dropped it.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// `GET /ping` on a new connection: (status, seconds it took).
fn ping(port: u16) -> (u16, f64) {
    let t = Instant::now();
    let mut c = connect(port);
    c.get_mut()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let (status, _) = exchange(&mut c, "GET", "/ping", "text/plain", b"");
    (status, t.elapsed().as_secs_f64())
}

#[test]
fn serve_drops_clients_holding_partial_requests_and_caps_its_connections() {
    let r = setup("[\"local\"]");
    approve(&r);
    let server = launch(
        &r.sb,
        "bundle",
        &["--header-timeout", "2", "--body-timeout", "1"],
        None,
    )
    .expect("start");
    let port = server.port;
    // 200 clients that send part of their headers, then nothing.
    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
                .expect("send");
            s
        })
        .collect();
    let (status, took) = ping(port);
    assert_eq!(status, 200);
    assert!(took < 1.0, "/ping took {took:.2} s beside 200 slow clients");
    // Headers complete, body cut short: 408 after the body timeout, then closed.
    let mut c = connect(port);
    c.get_mut()
        .write_all(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n\
              Content-Length: 100\r\n\r\n1,2,",
        )
        .expect("send");
    c.get_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let t = Instant::now();
    let mut line = String::new();
    c.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 408"), "{line}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // Every slow client is closed once the header timeout has passed, and not before.
    let deadline = opened + Duration::from_secs(8);
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_by_peer(s, deadline),
            "slow client {i} still connected after {:?}",
            opened.elapsed()
        );
        if i == 0 {
            assert!(
                opened.elapsed() >= Duration::from_millis(1900),
                "closed after {:?}, before the 2 s header timeout",
                opened.elapsed()
            );
        }
    }
    assert_eq!(ping(port).0, 200);
    drop(server);

    // At most 3 connections: a 4th client waits until the idle ones are dropped.
    let server = launch(
        &r.sb,
        "bundle",
        &["--max-connections", "3", "--header-timeout", "1"],
        None,
    )
    .expect("start");
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let (status, took) = ping(server.port);
    assert_eq!(status, 200);
    assert!(
        (0.7..10.0).contains(&took),
        "/ping took {took:.2} s: the 3 idle connections should have held it about 1 s"
    );
    drop(idle);
    drop(server);

    // A client that pipelines requests and never reads the answers: once the server's
    // writes have made no progress for the body timeout, it is dropped, and its slot (the
    // only one) goes to the next client.
    let server = launch(
        &r.sb,
        "bundle",
        &[
            "--max-connections",
            "1",
            "--body-timeout",
            "1",
            "--header-timeout",
            "60",
        ],
        None,
    )
    .expect("start");
    let mut greedy = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    greedy
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let pings = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(1000);
    let t = Instant::now();
    let mut sent = 0;
    // Until both directions are full (a write waits 0.5 s) or the server hangs up.
    while let Ok(n) = greedy.write(pings.as_bytes()) {
        sent += n;
        assert!(t.elapsed() < Duration::from_secs(60), "{sent} bytes sent");
    }
    let (status, took) = ping(server.port);
    assert_eq!(status, 200);
    assert!(
        took < 10.0,
        "/ping waited {took:.1} s behind a client that reads nothing"
    );
    eprintln!(
        "a client that read nothing was dropped ({sent} bytes of requests sent in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    drop(greedy);
    // Flags are checked.
    let out = r.sb.airlock(&[
        "serve",
        "--model-dir",
        "bundle",
        "--trust",
        "trust.toml",
        "--header-timeout",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--header-timeout"),
        "{}",
        stderr(&out)
    );
}

/// CPU seconds (user and system) process `pid` has used.
#[cfg(target_os = "linux")]
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    ticks / hz
}

#[cfg(target_os = "linux")]
#[test]
fn serve_out_of_file_descriptors_backs_off_and_recovers() {
    let r = setup("[\"local\"]");
    approve(&r);
    let server = launch(&r.sb, "bundle", &["--header-timeout", "60"], Some(64))
        .expect("start under ulimit -n 64");
    let port = server.port;
    // More idle clients than the server has descriptors: the rest wait in the backlog.
    let clients: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.starts_with("cannot accept a connection"))
    {
        let line = server
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the server never ran out of descriptors: {log:?}"));
        log.push(line);
    }
    // Out of descriptors, it waits rather than spins.
    let before = cpu_seconds(server.child.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(server.child.id()) - before;
    assert!(
        used < 0.2,
        "the server used {used:.2} s of CPU in 2 s while out of descriptors"
    );
    // Once the clients go, it serves again.
    drop(clients);
    let (status, took) = ping(port);
    assert_eq!(status, 200);
    assert!(took < 10.0, "{took}");
    // The server logs that it accepts again when its pause ends, which may be just after
    // the ping was answered: wait for the line rather than look once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log
        .iter()
        .any(|l: &String| l.starts_with("accepting connections again"))
    {
        match server
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => log.push(line),
            Err(_) => panic!("the server never said it accepts again: {log:?}"),
        }
    }
}
