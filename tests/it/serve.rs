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
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "serve",
            "--model-dir",
            dir,
            "--trust",
            "trust.toml",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ])
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
    loop {
        let line = server
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("airlock serve did not say where it listens");
        if let Some(addr) = line.strip_prefix("listening on http://") {
            let port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
            server.port = port;
            return server;
        }
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
    let (_, _, hold) = airlock_trainer::split_rows(rows.len(), n("train"), n("validation"), seed);
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
            "{\"instances\": [".to_owned(),
            400,
            "malformed JSON",
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
    let log: Vec<String> = server.log.try_iter().collect();
    assert!(log.iter().any(|l| l == "stopped"), "{log:?}");
}
