//! `airlock route demo` (`make split-inference`): an on-prem pool of two `airlock serve`,
//! a cloud stand-in `airlock serve`, and `airlock route` in front of them, all on
//! loopback; a mixed stream (half the requests carry an identifier or a sensitive
//! marking); where each class went; the on-prem pool stopped, so sensitive requests get a
//! 503 and never the cloud; and the latency routing adds to a 1-row request.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::RouteError;

/// Options of [`demo`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The approved release bundle both sides serve.
    pub bundle: PathBuf,
    /// Its trust policy (with a publisher key for the routing audit).
    pub trust: PathBuf,
    /// The router's audit key: a publisher key of `trust`.
    pub key: PathBuf,
    /// Where the policy, the audit log and the processes' logs go.
    pub out: PathBuf,
    /// Requests in the mixed stream.
    pub requests: usize,
}

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Running {
    child: Child,
    /// Where it listens.
    pub port: u16,
    /// Its stderr lines after the listening line.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Start `airlock ARGS` and wait (60 s at most) for its `listening on http://` line;
    /// every stderr line is copied to `log`.
    pub fn start(args: &[&str], log: &Path) -> Result<Self, RouteError> {
        let exe =
            std::env::current_exe().map_err(|e| RouteError::system("cannot find airlock", e))?;
        Self::start_bin(&exe, args, log)
    }

    /// [`Running::start`] with the airlock binary at `exe`.
    pub fn start_bin(exe: &Path, args: &[&str], log: &Path) -> Result<Self, RouteError> {
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RouteError::system(format!("cannot start airlock {}", args[0]), e))?;
        let err = child
            .stderr
            .take()
            .ok_or_else(|| RouteError::system("no stderr", std::io::Error::other("piped")))?;
        let mut file = std::fs::File::create(log)
            .map_err(|e| RouteError::system(format!("cannot write {}", log.display()), e))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(port) = line
                        .strip_prefix("listening on http://")
                        .and_then(|a| a.rsplit(':').next()?.parse().ok())
                    {
                        return Ok(Self {
                            child,
                            port,
                            lines: rx,
                        });
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    return Err(RouteError::system(
                        format!("airlock {} did not start (see {})", args[0], log.display()),
                        std::io::Error::other("no listening line"),
                    ));
                }
            }
        }
    }

    /// Wait (up to `within`) for a stderr line containing `text`.
    pub fn wait_for(&self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(text) {
                return true;
            }
        }
        false
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(mut self) -> Result<std::process::ExitStatus, RouteError> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child
            .wait()
            .map_err(|e| RouteError::system("wait for a child", e))
    }
}

/// A kept-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Client(BufReader<TcpStream>);

/// An answer: status and the router's side and class headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `x-airlock-side` (`none` when the router refused).
    pub side: String,
    /// `x-airlock-class`.
    pub class: String,
}

impl Client {
    /// Connect to `127.0.0.1:port`.
    pub fn connect(port: u16) -> std::io::Result<Self> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self(BufReader::new(s)))
    }

    /// `POST /invocations` with `headers` and `body`.
    pub fn post(&mut self, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Reply> {
        let mut req = String::from("POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (k, v) in headers {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let w = self.0.get_mut();
        w.write_all(req.as_bytes())?;
        w.write_all(body)?;
        let mut line = String::new();
        self.0.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (mut len, mut side, mut class) = (0usize, "none".to_owned(), String::new());
        loop {
            line.clear();
            self.0.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let l = line.to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = l.strip_prefix("x-airlock-side:") {
                v.trim().clone_into(&mut side);
            } else if let Some(v) = l.strip_prefix("x-airlock-class:") {
                v.trim().clone_into(&mut class);
            }
        }
        let mut b = vec![0; len];
        self.0.read_exact(&mut b)?;
        Ok(Reply {
            status,
            side,
            class,
        })
    }
}

/// The kinds of request in the mixed stream: (name, headers, whether it is sensitive).
const KINDS: [(&str, bool); 8] = [
    ("open JSON", false),
    ("e-mail in a note", true),
    ("open CSV", false),
    ("card number as a value", true),
    ("open JSON", false),
    ("data class PHI", true),
    ("open CSV", false),
    ("SSN in a CSV cell", true),
];

/// Request `i` of the mixed stream for a model taking `features`: (headers, body).
pub fn mixed_request(i: usize, features: &[String]) -> (Vec<(&'static str, &'static str)>, String) {
    let json = ("Content-Type", "application/json");
    let csv = ("Content-Type", "text/csv");
    let row = |first: f64| {
        let fields: Vec<String> = features
            .iter()
            .enumerate()
            .map(|(k, f)| format!("\"{f}\": {}", if k == 0 { first } else { 0.5 }))
            .collect();
        format!("{{\"instances\": [{{{}}}]}}", fields.join(", "))
    };
    let csv_row = |first: &str| {
        let mut cells = vec!["0.5"; features.len()];
        cells[0] = first;
        format!("{}\n{}\n", features.join(","), cells.join(","))
    };
    let amount = (i % 500) as f64 + 0.25;
    match i % KINDS.len() {
        1 => (
            vec![json],
            row(amount).replacen(
                '{',
                &format!("{{\"note\": \"customer{i}@example.org\", "),
                1,
            ),
        ),
        2 | 6 => (vec![csv], csv_row(&amount.to_string())),
        3 => (vec![json], row(4_111_111_111_111_111.0)),
        5 => (vec![json, ("X-Data-Class", "phi")], row(amount)),
        7 => (vec![csv], csv_row("078-05-1120")),
        _ => (vec![json], row(amount)),
    }
}

/// What the stream did: (class, side, status) → requests.
pub type Tally = BTreeMap<(String, String, u16), usize>;

/// Send requests `range` of the mixed stream to `port` from `clients` connections.
pub fn send_mixed(
    port: u16,
    range: std::ops::Range<usize>,
    clients: usize,
    features: &[String],
) -> Result<Tally, RouteError> {
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (features, range) = (features.to_vec(), range.clone());
            std::thread::spawn(move || -> std::io::Result<Tally> {
                let mut conn = Client::connect(port)?;
                let mut tally = Tally::new();
                for i in range.filter(|i| i % clients == c) {
                    let (headers, body) = mixed_request(i, &features);
                    let r = conn.post(&headers, body.as_bytes())?;
                    *tally.entry((r.class, r.side, r.status)).or_insert(0) += 1;
                }
                Ok(tally)
            })
        })
        .collect();
    let mut tally = Tally::new();
    for h in handles {
        let t = h
            .join()
            .map_err(|_| RouteError::system("a client", std::io::Error::other("panicked")))?
            .map_err(|e| RouteError::system("a client's request", e))?;
        for (k, v) in t {
            *tally.entry(k).or_insert(0) += v;
        }
    }
    Ok(tally)
}

/// Sequential 1-row requests to `port` for `n` rounds: latencies in seconds, sorted.
pub fn latencies(port: u16, body: &str, n: usize) -> Result<Vec<f64>, RouteError> {
    let mut c = Client::connect(port).map_err(|e| RouteError::system("connect", e))?;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = c
            .post(&[("Content-Type", "application/json")], body.as_bytes())
            .map_err(|e| RouteError::system("a request", e))?;
        lat.push(t.elapsed().as_secs_f64());
        if r.status != 200 {
            return Err(RouteError::system(
                "a latency request",
                std::io::Error::other(format!("answered {}", r.status)),
            ));
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

/// The `p` quantile of sorted `v`.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    v.get(((v.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// The bundle's feature names, from its model card.
pub fn features(bundle: &Path) -> Result<Vec<String>, RouteError> {
    let path = bundle.join(airlock_trust::MODEL_CARD_FILE);
    let bytes = std::fs::read(&path).map_err(airlock_schemas::IoError::at("read", &path))?;
    let card: airlock_schemas::ModelCard =
        serde_json::from_slice(&bytes).map_err(|e| RouteError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(card.inputs.into_iter().map(|i| i.name).collect())
}

fn abs(p: &Path) -> Result<PathBuf, RouteError> {
    std::path::absolute(p).map_err(|e| RouteError::system(format!("{}", p.display()), e))
}

/// The demo's policy: two on-prem members, one cloud endpoint, sensitive fields and a
/// data-class header, checks every 200 ms.
fn write_policy(o: &DemoOptions, onprem: &[u16], cloud: u16) -> Result<PathBuf, RouteError> {
    let text = format!(
        "# Written by `airlock route demo`: an on-prem pool of two and a cloud stand-in, on loopback.\n\
         [release]\nbundle = {:?}\ntrust = {:?}\n\n\
         [listen]\naddress = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n\
         [audit]\nlog = \"route-audit.jsonl\"\nkey = {:?}\nwindow_seconds = 5\n\n\
         [classify]\nsensitive_fields = [\"patient_name\", \"account_holder\"]\n\
         data_class_header = \"x-data-class\"\nonprem_data_classes = [\"phi\", \"pii\"]\n\n\
         [onprem]\nmembers = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]\ntimeout_ms = 2000\n\n\
         [cloud]\ntimeout_ms = 2000\n\n[[cloud.endpoints]]\nurl = \"http://127.0.0.1:{cloud}\"\n\n\
         [health]\ninterval_ms = 200\n",
        abs(&o.bundle)?.display().to_string(),
        abs(&o.trust)?.display().to_string(),
        abs(&o.key)?.display().to_string(),
        onprem[0],
        onprem[1],
    );
    let path = o.out.join("route.toml");
    std::fs::write(&path, text)
        .map_err(|e| RouteError::system(format!("cannot write {}", path.display()), e))?;
    Ok(path)
}

fn print_tally(title: &str, tally: &Tally) {
    println!("{title}");
    println!(
        "  {:<16} {:>8} {:>8} {:>8} {:>8}",
        "class", "requests", "on-prem", "cloud", "503"
    );
    let mut rows: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for ((class, side, status), n) in tally {
        let r = rows.entry(class.as_str()).or_default();
        r[0] += n;
        match (side.as_str(), status) {
            ("onprem", _) => r[1] += n,
            ("cloud", _) => r[2] += n,
            (_, 503) => r[3] += n,
            _ => {}
        }
    }
    for (class, r) in rows {
        println!(
            "  {class:<16} {:>8} {:>8} {:>8} {:>8}",
            r[0], r[1], r[2], r[3]
        );
    }
}

/// Run the demo; prints its tables and figures.
pub fn demo(o: &DemoOptions) -> Result<(), RouteError> {
    std::fs::create_dir_all(&o.out)
        .map_err(|e| RouteError::system(format!("cannot create {}", o.out.display()), e))?;
    let _ = std::fs::remove_file(o.out.join("route-audit.jsonl"));
    let _ = std::fs::remove_file(o.out.join("route-audit.jsonl.head.dsse.json"));
    let features = features(&o.bundle)?;
    let (bundle, trust) = (abs(&o.bundle)?, abs(&o.trust)?);
    let serve = |name: &str| {
        Running::start(
            &[
                "serve",
                "--model-dir",
                &bundle.display().to_string(),
                "--trust",
                &trust.display().to_string(),
                "--port",
                "0",
            ],
            &o.out.join(format!("{name}.log")),
        )
    };
    let onprem = [serve("onprem-1")?, serve("onprem-2")?];
    let cloud = serve("cloud")?;
    println!(
        "on-prem pool: 127.0.0.1:{} and 127.0.0.1:{}; cloud stand-in: 127.0.0.1:{}",
        onprem[0].port, onprem[1].port, cloud.port
    );
    let policy = write_policy(o, &[onprem[0].port, onprem[1].port], cloud.port)?;
    let policy_s = policy.display().to_string();
    let router = Running::start(&["route", "--policy", &policy_s], &o.out.join("route.log"))?;
    println!("router: 127.0.0.1:{} (policy {policy_s})\n", router.port);

    let t = Instant::now();
    let tally = send_mixed(router.port, 0..o.requests, 4, &features)?;
    let secs = t.elapsed().as_secs_f64();
    print_tally(
        &format!(
            "{} mixed requests, half carrying an identifier or a sensitive marking ({:.0} req/s):",
            o.requests,
            o.requests as f64 / secs
        ),
        &tally,
    );
    let leaked: usize = tally
        .iter()
        .filter(|((class, side, _), _)| class != "open" && side == "cloud")
        .map(|(_, n)| n)
        .sum();
    println!("  sensitive requests that reached the cloud: {leaked}\n");

    // Latency routing adds: the same 1-row request, straight to the cloud serve and through
    // the router (classification on).
    let one = mixed_request(0, &features).1;
    let n = 2000;
    let _ = latencies(cloud.port, &one, 200)?;
    let direct = latencies(cloud.port, &one, n)?;
    let routed = latencies(router.port, &one, n)?;
    let ms = |v: f64| v * 1e3;
    println!("latency of a 1-row JSON request, {n} in sequence on loopback:");
    println!(
        "  direct to the cloud serve   p50 {:.3} ms  p99 {:.3} ms",
        ms(quantile(&direct, 0.5)),
        ms(quantile(&direct, 0.99))
    );
    println!(
        "  through the router          p50 {:.3} ms  p99 {:.3} ms",
        ms(quantile(&routed, 0.5)),
        ms(quantile(&routed, 0.99))
    );
    println!(
        "  added by routing            p50 {:.3} ms  p99 {:.3} ms\n",
        ms(quantile(&routed, 0.5) - quantile(&direct, 0.5)),
        ms(quantile(&routed, 0.99) - quantile(&direct, 0.99))
    );

    // Fail closed: the on-prem pool stops.
    drop(onprem);
    if !router.wait_for("out of service", Duration::from_secs(10)) {
        return Err(RouteError::system(
            "the router never took the stopped pool out of service",
            std::io::Error::other("timeout"),
        ));
    }
    let _ = router.wait_for("out of service", Duration::from_secs(2));
    let down = send_mixed(router.port, 0..200, 2, &features)?;
    print_tally(
        "the on-prem pool stopped, 200 more (sensitive ones get 503, never the cloud):",
        &down,
    );
    let status = router.stop()?;
    drop(cloud);
    let log = o.out.join("route-audit.jsonl");
    let entries = std::fs::read_to_string(&log).map_or(0, |t| t.lines().count());
    println!(
        "\nrouter stopped ({status}); routing audit: {} ({entries} entries: counts per window, every refusal; no payload)",
        log.display()
    );
    if leaked > 0 {
        return Err(RouteError::system(
            "the demo",
            std::io::Error::other(format!("{leaked} sensitive requests reached the cloud")),
        ));
    }
    Ok(())
}
