//! What the serving benches share: an approved release made with the airlock binary, and a
//! keep-alive load generator for `POST /invocations`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use airlock_testkit::moto::aws_env;

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `clients` keep-alive connections POSTing `body` to /invocations on `port` for `secs`;
/// every request's latency in seconds. Any non-200 answer is an error.
pub fn load(port: u16, body: &str, clients: usize, secs: f64) -> Res<Vec<f64>> {
    let stop = Instant::now() + std::time::Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let body = body.to_owned();
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                let mut lat = Vec::new();
                let mut c: Option<BufReader<std::net::TcpStream>> = None;
                while Instant::now() < stop {
                    let conn = match &mut c {
                        Some(c) => c,
                        None => {
                            let s = std::net::TcpStream::connect(("127.0.0.1", port))
                                .map_err(|e| e.to_string())?;
                            let _ = s.set_nodelay(true);
                            c.insert(BufReader::new(s))
                        }
                    };
                    let t = Instant::now();
                    write!(
                        conn.get_mut(),
                        "POST /invocations HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .map_err(|e| e.to_string())?;
                    let (mut len, mut ok, mut close) = (0usize, false, false);
                    let mut h = String::new();
                    loop {
                        h.clear();
                        conn.read_line(&mut h).map_err(|e| e.to_string())?;
                        let l = h.to_ascii_lowercase();
                        if l.starts_with("http/1.1 200") {
                            ok = true;
                        }
                        if let Some(v) = l.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if l.starts_with("connection:") && l.contains("close") {
                            close = true;
                        }
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                    }
                    let mut buf = vec![0; len];
                    std::io::Read::read_exact(conn, &mut buf).map_err(|e| e.to_string())?;
                    if !ok {
                        return Err("a request failed".into());
                    }
                    lat.push(t.elapsed().as_secs_f64());
                    if close {
                        c = None;
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.join().map_err(|_| "client panicked")??);
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

pub fn report(what: &str, lat: &[f64], rows: usize, secs: f64) {
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |v| v * 1e3)
    };
    println!(
        "  {what:<48} {:>8.0} req/s {:>9.0} rows/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        lat.len() as f64 / secs,
        (lat.len() * rows) as f64 / secs,
        q(0.5),
        q(0.99)
    );
}

/// Run airlock in `dir` against the moto at `url`; fails on a non-zero exit.
pub fn airlock(bin: &str, dir: &Path, url: &str, args: &[&str]) -> Res<std::process::Output> {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .envs(aws_env(url))
        .output()?;
    if !out.status.success() {
        return Err(format!("airlock {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out)
}

/// A trained, packaged and approved release in `dir/bundle` (`rows` demo rows, the shipped
/// pipeline with `edits`), with keys, a 1-of-1 trust policy and a residency policy.
pub fn approved_release(
    bin: &str,
    dir: &Path,
    url: &str,
    rows: usize,
    edits: &[(&str, &str)],
) -> Res<()> {
    let run = |args: &[&str]| airlock(bin, dir, url, args).map(|_| ());
    run(&[
        "demo-data",
        "--rows",
        &rows.to_string(),
        "--out",
        "data.csv",
    ])?;
    let mut pipeline = include_str!("../../pipelines/fraud-detector.toml")
        .replace("../data/transactions.csv", "data.csv");
    for (from, to) in edits {
        pipeline = pipeline.replace(from, to);
    }
    std::fs::write(dir.join("p.toml"), pipeline)?;
    run(&["train", "p.toml", "--out", "run", "--no-progress"])?;
    for k in ["builder", "alice", "publisher"] {
        run(&["keygen", "--out", k])?;
    }
    std::fs::write(
        dir.join("trust.toml"),
        "approvals_required = 1\n\
         [[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"builder.pub\"\n\
         [[keys]]\nname = \"alice\"\nrole = \"officer\"\npublic_key = \"alice.pub\"\n\
         [[keys]]\nname = \"cd\"\nrole = \"publisher\"\npublic_key = \"publisher.pub\"\n",
    )?;
    std::fs::write(
        dir.join("residency.toml"),
        "[registry]\nregions = [\"local\", \"eu-west-1\"]\n",
    )?;
    run(&[
        "package",
        "--run",
        "run",
        "--key",
        "builder.key",
        "--out",
        "bundle",
    ])?;
    run(&[
        "approve",
        "bundle",
        "--trust",
        "trust.toml",
        "--key",
        "alice.key",
        "--name",
        "A",
        "--reason",
        "bench",
    ])
}
