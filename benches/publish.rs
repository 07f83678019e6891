//! `make bench`: publishing to S3 on a local moto server (tests/moto_server.py).
//!
//! 1. Upload throughput of one blob (default 1 GiB of random bytes) by airlock's S3
//!    registry (multipart, parallel parts, SHA-256 per part), then its read-back check, next
//!    to boto3's `upload_file` of the same file to the same server in the same run.
//! 2. The wall time of an `airlock publish` that has nothing to upload (a real release,
//!    published once before).
//! 3. `airlock serve` on that release under a load generator on loopback (32 keep-alive
//!    clients): requests/s, p50 and p99 latency for 1-row and 256-row JSON requests.
//!
//! Usage: cargo bench --bench publish [-- [serve] [pull] [MIB [PART_MIB [CONCURRENCY]]]]. The python with moto and boto3 comes from
//! AIRLOCK_BENCH_PYTHON (make bench sets it from tests/setup-python.sh). Naming `serve` or
//! `pull` runs only those parts (`serve` needs no moto: `cargo bench --bench publish -- serve`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use airlock_publisher::aws::{Aws, AwsOptions};
use airlock_publisher::s3::S3Registry;
use airlock_testkit::moto::{Moto, REGION};
use rand::RngCore;
use rand::SeedableRng;

#[path = "support/release.rs"]
mod support;
use support::{Res, airlock, approved_release, load, report};

const BUCKET: &str = "airlock-bench";

/// A server process (gunicorn) on a loopback port, killed when dropped.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> PathBuf {
    airlock_testkit::venv_python("AIRLOCK_BENCH_PYTHON")
}

/// A fresh moto server (the test kit's, as the tests start it) on a free loopback port.
fn start_moto() -> Res<Moto> {
    Ok(Moto::try_start_with(&python(), 0)?)
}

const ROUNDS: usize = 2;

/// AWS settings for `moto`, with the bench bucket created there.
fn bucket(moto: &Moto, part_mib: u64, concurrency: usize) -> Res<Aws> {
    moto.try_create_bucket(BUCKET, REGION)?;
    Ok(Aws::load(AwsOptions {
        endpoint_url: Some(moto.url()),
        region: Some(REGION.into()),
        static_credentials: Some(("bench".into(), "bench".into())),
        part_size: part_mib << 20,
        concurrency,
        ..AwsOptions::default()
    })?)
}

/// Seconds boto3's `upload_file` takes for `blob` (bucket created first, not timed).
fn boto3_upload(url: &str, blob: &Path, extra_args: &str) -> Res<f64> {
    let out = Command::new(python())
        .args([
            "-c",
            "import sys, time, boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name=sys.argv[2],\n\
                               aws_access_key_id='bench', aws_secret_access_key='bench')\n\
             s3.create_bucket(Bucket=sys.argv[4],\n\
                              CreateBucketConfiguration={'LocationConstraint': sys.argv[2]})\n\
             extra = eval(sys.argv[5])\n\
             t = time.perf_counter()\n\
             s3.upload_file(sys.argv[3], sys.argv[4], 'boto3/blob', ExtraArgs=extra)\n\
             print(time.perf_counter() - t)\n",
            url,
            REGION,
            blob.to_str().ok_or("non-UTF-8 path")?,
            BUCKET,
            extra_args,
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "boto3 upload_file: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// The parts of the benchmark that run alone when named on the command line.
const SECTIONS: [&str; 2] = ["serve", "pull"];

fn main() -> Res<()> {
    let (args, sections): (Vec<String>, Vec<String>) = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .partition(|a| a.parse::<u64>().is_ok());
    if let Some(s) = sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        return Err(format!("unknown section {s:?}: the sections are {SECTIONS:?}").into());
    }
    if !sections.is_empty() {
        return only(&sections, &args);
    }
    let mib: u64 = args.first().map_or(Ok(1024), |s| s.parse())?;
    let part_mib: u64 = args.get(1).map_or(Ok(8), |s| s.parse())?;
    let concurrency: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let dir = tempfile::tempdir()?;

    // The blob.
    let blob = dir.path().join("blob.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&blob)?);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mib {
            rng.fill_bytes(&mut buf);
            f.write_all(&buf)?;
        }
        f.flush()?;
        // On disk before any timing: no writeback competing with the uploads.
        f.get_ref().sync_all()?;
    }
    let len = std::fs::metadata(&blob)?.len();
    let sha = airlock_trust::shards::stream_digest(&blob)?;

    println!(
        "upload of a {mib} MiB blob to moto on 127.0.0.1 ({part_mib} MiB parts, {concurrency} in flight, SHA-256 per part); \
         each client on a fresh server, {ROUNDS} rounds alternating, best round shown"
    );
    let (mut ours, mut check, mut boto_default, mut boto_sha) =
        (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    for round in 0..ROUNDS {
        // Each client gets a fresh server: moto keeps everything in memory, and a server
        // already holding a GiB is slower for whoever comes second.
        let moto = start_moto()?;
        let aws = bucket(&moto, part_mib, concurrency)?;
        let registry = S3Registry::new(aws, BUCKET.into(), "airlock".into());
        let t = Instant::now();
        let up = registry.upload_blob(&sha, &blob)?;
        ours = ours.min(t.elapsed().as_secs_f64());
        if round == 0 {
            // Read-back once: moto answers ranged GETs slowly, whatever the client.
            let t = Instant::now();
            registry.check_blob(&sha, &up)?;
            check = check.min(t.elapsed().as_secs_f64());
        }
        drop(registry);
        drop(moto);
        for (extra, best) in [
            ("{}", &mut boto_default),
            ("{'ChecksumAlgorithm': 'SHA256'}", &mut boto_sha),
        ] {
            let moto = start_moto()?;
            *best = best.min(boto3_upload(&moto.url(), &blob, extra)?);
        }
    }
    println!(
        "  airlock upload               {:>7.1} MB/s  ({ours:.2} s)",
        mbps(len, ours)
    );
    println!(
        "  airlock read-back            {:>7.1} MB/s  ({check:.2} s; every part's SHA-256 compared)",
        mbps(len, check)
    );
    println!(
        "  boto3 upload_file            {:>7.1} MB/s  ({boto_default:.2} s; defaults: 8 MiB parts, 10 threads, CRC32)",
        mbps(len, boto_default)
    );
    println!(
        "  boto3 upload_file SHA-256    {:>7.1} MB/s  ({boto_sha:.2} s; ChecksumAlgorithm=SHA256)",
        mbps(len, boto_sha)
    );
    println!(
        "  airlock upload vs boto3: {:.2}x (defaults), {:.2}x (both SHA-256); with read-back {:.2}x",
        boto_default / ours,
        boto_sha / ours,
        boto_default / (ours + check)
    );
    drop(std::fs::remove_file(&blob));

    // A publish with nothing to upload: a real (small) release, published once before.
    let moto = start_moto()?;
    let url = moto.url();
    bucket(&moto, part_mib, concurrency)?;
    let bin = env!("CARGO_BIN_EXE_airlock");
    let run = |args: &[&str]| airlock(bin, dir.path(), &url, args);
    approved_release(
        bin,
        dir.path(),
        &url,
        5000,
        &[("epochs = 12", "epochs = 2")],
    )?;
    let publish = [
        "publish",
        "bundle",
        "--to",
        "s3://airlock-bench/releases",
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        "audit.log",
        "--key",
        "publisher.key",
    ];
    run(&publish)?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = run(&publish)?;
        times.push(t.elapsed().as_secs_f64());
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("uploaded 0 blobs") {
            return Err(format!("the re-publish uploaded something: {err}").into());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "publish with nothing to upload (7 blobs present, whole command incl. verify and audit): median {:.0} ms, min {:.0} ms",
        times[times.len() / 2] * 1e3,
        times[0] * 1e3
    );

    serve_bench(bin, dir.path())?;
    pull_bench(bin, mib, part_mib, concurrency)
}

/// `airlock serve` on the approved release in `dir/bundle` under a load generator on
/// loopback, then the Flask + PyTorch baseline on the same bundle when the torch venv has it.
fn serve_bench(bin: &str, dir: &Path) -> Res<()> {
    // airlock serve on the same release, under a load generator on loopback.
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--model-dir",
            "bundle",
            "--trust",
            "trust.toml",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut port = 0u16;
    let mut err = BufReader::new(child.stderr.take().ok_or("no stderr")?);
    let mut line = String::new();
    while err.read_line(&mut line)? > 0 {
        if let Some(a) = line.trim().strip_prefix("listening on http://") {
            port = a
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            break;
        }
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let features: Vec<String> = serde_json::from_slice::<serde_json::Value>(&std::fs::read(
        dir.join("bundle/model-card.json"),
    )?)?["inputs"]
        .as_array()
        .ok_or("no inputs")?
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect();
    println!("serving the release on loopback, 32 keep-alive clients, 5 s per case:");
    let row: serde_json::Map<String, serde_json::Value> = features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), serde_json::json!(i as f64 * 0.5)))
        .collect();
    let bodies: Vec<(usize, String)> = [1usize, 256]
        .iter()
        .map(|&rows| {
            (
                rows,
                serde_json::json!({ "instances": vec![row.clone(); rows] }).to_string(),
            )
        })
        .collect();
    let (clients, secs) = (32, 5.0);
    let mut ours = Vec::new();
    for (rows, body) in &bodies {
        let lat = load(port, body, clients, secs)?;
        report(
            &format!("airlock serve, {rows}-row requests"),
            &lat,
            *rows,
            secs,
        );
        ours.push(lat.len());
    }
    let _ = child.kill();
    let _ = child.wait();
    // The Python baseline (Flask + PyTorch under gunicorn) on the same bundle, when the
    // torch venv (make bench-torch) has what it needs; measured alone, after airlock.
    let torch = std::env::var_os("AIRLOCK_BENCH_TORCH").map(PathBuf::from);
    if let Some(py) = torch.filter(|py| {
        Command::new(py)
            .args(["-c", "import flask, gunicorn, torch, safetensors"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }) {
        let gport = {
            let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            l.local_addr()?.port()
        };
        let gunicorn = py.with_file_name("gunicorn");
        let bundle = dir.join("bundle");
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let child = Command::new(gunicorn)
            .args([
                "--chdir",
                concat!(env!("CARGO_MANIFEST_DIR"), "/benches"),
                "-k",
                "gthread",
                "-w",
                &workers.to_string(),
                "--threads",
                "16",
                "-b",
                &format!("127.0.0.1:{gport}"),
                &format!("torch_serve:create_app({:?})", bundle.display().to_string()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let g = Server(child, gport);
        // Every worker booted (torch imported) before the clock starts.
        let ready = Instant::now();
        while load(g.1, &bodies[0].1, workers * 4, 0.5).is_err() {
            if ready.elapsed().as_secs() > 120 {
                return Err("gunicorn did not start".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        for ((rows, body), ours) in bodies.iter().zip(&ours) {
            let theirs = load(g.1, body, clients, secs)?;
            report(
                &format!("Flask+PyTorch ({workers} gunicorn workers), {rows}-row"),
                &theirs,
                *rows,
                secs,
            );
            println!(
                "  ratio airlock/Flask+PyTorch, {rows}-row requests: {:.1}x",
                *ours as f64 / theirs.len().max(1) as f64
            );
        }
    }
    Ok(())
}

/// The named sections alone: `serve` (on a fresh release; no moto needed) and `pull`.
fn only(sections: &[String], args: &[String]) -> Res<()> {
    let want = |s: &str| sections.iter().any(|x| x == s);
    let mib: u64 = args.first().map_or(Ok(1024), |s| s.parse())?;
    let part_mib: u64 = args.get(1).map_or(Ok(8), |s| s.parse())?;
    let concurrency: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let bin = env!("CARGO_BIN_EXE_airlock");
    if want("serve") {
        let dir = tempfile::tempdir()?;
        approved_release(
            bin,
            dir.path(),
            "http://127.0.0.1:9",
            5000,
            &[("epochs = 12", "epochs = 2")],
        )?;
        serve_bench(bin, dir.path())?;
    }
    if want("pull") {
        pull_bench(bin, mib, part_mib, concurrency)?;
    }
    Ok(())
}

/// Pull-and-verify of a real release whose model is about `mib` MiB (a 12→w→w→1 MLP, one
/// epoch on 400 rows), from a file registry and from S3 on moto.
fn pull_bench(bin: &str, mib: u64, part_mib: u64, concurrency: usize) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let moto = start_moto()?;
    let url = moto.url();
    bucket(&moto, part_mib, concurrency)?;
    let run = |args: &[&str]| -> Res<f64> {
        let t = Instant::now();
        airlock(bin, dir.path(), &url, args)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let width = (((mib << 20) / 4) as f64).sqrt().round() as u64;
    println!(
        "pull and verify: building a release with a {width}x{width} hidden layer (~{mib} MiB)..."
    );
    let hidden = format!("hidden = [{width}, {width}]");
    approved_release(
        bin,
        dir.path(),
        &url,
        400,
        &[
            ("hidden = [64, 32]", &hidden),
            ("epochs = 12", "epochs = 1"),
        ],
    )?;
    let len = std::fs::metadata(dir.path().join("bundle/model.safetensors"))?.len();
    let reg = format!("file://{}", dir.path().join("registry").display());
    for to in [reg.as_str(), "s3://airlock-bench/releases"] {
        run(&[
            "publish",
            "bundle",
            "--to",
            to,
            "--trust",
            "trust.toml",
            "--residency",
            "residency.toml",
            "--audit-log",
            "audit.log",
            "--key",
            "publisher.key",
        ])?;
        let _ = std::fs::remove_dir_all(dir.path().join("pulled"));
        let secs = run(&[
            "pull",
            &format!("{to}/models/fraud-detector@1.0.0"),
            "--trust",
            "trust.toml",
            "--out",
            "pulled",
        ])?;
        println!(
            "  airlock pull from {:<5} {:>7.1} MB/s  ({secs:.2} s for {:.0} MiB: download, signature, approvals, digests whole and per shard)",
            &to[..to.find(':').unwrap_or(0)],
            mbps(len, secs),
            len as f64 / f64::from(1 << 20)
        );
    }
    Ok(())
}
