//! `make bench`: what `airlock route` adds (issue 19).
//!
//! One approved release served by three `airlock serve` on loopback: a cloud stand-in and
//! an on-prem pool of two. Open 1-row JSON requests (the router's content classification
//! on: L1 over the body and its decoded strings, the JSON walk) go to the cloud stand-in
//! three ways, in the same run:
//!
//! 1. directly;
//! 2. through `airlock route`;
//! 3. through nginx (Debian's nginx-light, from tests/setup-nginx.sh via
//!    AIRLOCK_BENCH_NGINX) doing plain forwarding to the same upstream with kept-alive
//!    upstream connections, as many workers as the router has.
//!
//! Latency: 5,000 requests in sequence on one connection, p50 and p99 each way, and the
//! router's own measure of what it added (its `airlock_route_added_seconds` histogram).
//! Throughput: 16 keep-alive clients for 5 s each way.
//!
//! Usage: cargo bench --bench route

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_router::demo::{Running, features, latencies, mixed_request, quantile};

#[path = "support/release.rs"]
mod support;
use support::{Res, approved_release, load, report};

/// nginx, stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx forwarding 127.0.0.1:(returned port) to the upstream, with kept-alive upstream
/// connections and as many workers as cores.
fn start_nginx(bin: &str, dir: &Path, upstream: u16) -> Res<(Nginx, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let d = dir.display();
    let conf = format!(
        "worker_processes auto;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream cloud {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://cloud;\n\
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new(bin)
        .args(["-p", &d.to_string(), "-c", &path.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let nginx = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nginx did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((nginx, port))
}

/// p50 and p99 of the router's `airlock_route_added_seconds` histogram (bucket bounds).
fn added_by_router(metrics_port: u16) -> Res<(f64, f64)> {
    let mut c = TcpStream::connect(("127.0.0.1", metrics_port))?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    c.read_to_string(&mut text)?;
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("airlock_route_added_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), n.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    let at = |p: f64| {
        buckets
            .iter()
            .find(|(_, n)| *n >= total * p)
            .map_or(f64::INFINITY, |(le, _)| *le)
    };
    Ok((at(0.5), at(0.99)))
}

fn main() -> Res<()> {
    let bin = env!("CARGO_BIN_EXE_airlock");
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    approved_release(
        bin,
        d,
        "http://127.0.0.1:9",
        5000,
        &[("epochs = 12", "epochs = 2")],
    )?;
    let serve = |name: &str| {
        Running::start_bin(
            Path::new(bin),
            &[
                "serve",
                "--model-dir",
                &d.join("bundle").display().to_string(),
                "--trust",
                &d.join("trust.toml").display().to_string(),
                "--port",
                "0",
            ],
            &d.join(format!("{name}.log")),
        )
    };
    let cloud = serve("cloud")?;
    let onprem = [serve("onprem-1")?, serve("onprem-2")?];
    std::fs::write(
        d.join("route.toml"),
        format!(
            "[release]\nbundle = \"bundle\"\ntrust = \"trust.toml\"\n\
             [listen]\naddress = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\
             [audit]\nlog = \"route-audit.jsonl\"\nkey = \"publisher.key\"\n\
             [classify]\nsensitive_fields = [\"patient_name\"]\n\
             [onprem]\nmembers = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]\n\
             [[cloud.endpoints]]\nurl = \"http://127.0.0.1:{}\"\n",
            onprem[0].port, onprem[1].port, cloud.port
        ),
    )?;
    let router = Running::start_bin(
        Path::new(bin),
        &[
            "route",
            "--policy",
            &d.join("route.toml").display().to_string(),
        ],
        &d.join("route.log"),
    )?;
    let metrics_port: u16 = std::fs::read_to_string(d.join("route.log"))?
        .lines()
        .find_map(|l| l.strip_prefix("metrics on http://127.0.0.1:"))
        .and_then(|p| p.trim_end_matches("/metrics").parse().ok())
        .ok_or("the router did not say where its metrics are")?;
    let nginx = match std::env::var("AIRLOCK_BENCH_NGINX") {
        Ok(bin) if !bin.is_empty() => Some(start_nginx(&bin, d, cloud.port)?),
        _ => {
            println!(
                "(nginx skipped: set AIRLOCK_BENCH_NGINX, as make bench does from tests/setup-nginx.sh)"
            );
            None
        }
    };

    let features = features(&d.join("bundle"))?;
    let one = mixed_request(0, &features).1;
    let mut ways = vec![
        ("direct to airlock serve", cloud.port),
        ("through airlock route", router.port),
    ];
    if let Some((_, port)) = &nginx {
        ways.push(("through nginx (plain forwarding)", *port));
    }
    let n = 5000;
    println!(
        "split inference: 1-row JSON requests to the cloud side (classification on), 2 cores, loopback"
    );
    println!("latency, {n} requests in sequence on one connection:");
    let mut p = Vec::new();
    for (what, port) in &ways {
        let _ = latencies(*port, &one, 500)?;
        let lat = latencies(*port, &one, n)?;
        let (p50, p99) = (quantile(&lat, 0.5), quantile(&lat, 0.99));
        println!(
            "  {what:<36} p50 {:>6.3} ms  p99 {:>6.3} ms",
            p50 * 1e3,
            p99 * 1e3
        );
        p.push((p50, p99));
    }
    println!(
        "  {:<36} p50 {:>6.3} ms  p99 {:>6.3} ms",
        "added by airlock route",
        (p[1].0 - p[0].0) * 1e3,
        (p[1].1 - p[0].1) * 1e3
    );
    if let Some(n) = p.get(2) {
        println!(
            "  {:<36} p50 {:>6.3} ms  p99 {:>6.3} ms",
            "added by nginx",
            (n.0 - p[0].0) * 1e3,
            (n.1 - p[0].1) * 1e3
        );
    }
    let (a50, a99) = added_by_router(metrics_port)?;
    println!(
        "  the router's own measure (request time less upstream time, histogram bounds): p50 <= {:.3} ms  p99 <= {:.3} ms",
        a50 * 1e3,
        a99 * 1e3
    );
    println!("throughput, 16 keep-alive clients for 5 s:");
    for (what, port) in &ways {
        let lat = load(*port, &one, 16, 5.0)?;
        report(what, &lat, 1, 5.0);
    }
    drop(nginx);
    router.stop()?;
    drop(onprem);
    drop(cloud);
    Ok(())
}
