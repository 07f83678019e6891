//! `make bench`: a release through an OCI registry (Debian's `docker-registry`, the CNCF
//! distribution server, on loopback), next to `skopeo copy` of the same release on the same
//! registry.
//!
//! 1. `airlock publish` of an approved release whose model is about MIB MiB (a 12→w→w→1
//!    MLP, one epoch on 400 rows; default 1024) to `oci://127.0.0.1:PORT/bench/airlock`
//!    (verify, leak scan, push of every layer, the model manifest and its referrers), and
//!    `airlock pull` of it by tag (download, manifest and referrer checks, signature,
//!    approvals, digests whole and per shard).
//! 2. The transfer alone: airlock's OCI registry pushing the model blob to a fresh repository
//!    and reading it back (digest checked), without the release's checks.
//! 3. `skopeo copy` of the same release: registry → OCI layout directory (a pull) and OCI
//!    layout → a second, empty docker-registry (a push: on the first registry skopeo would
//!    mount the blobs it knows there instead of sending them).
//!
//! Usage: cargo bench --profile dev --bench oci [-- MIB]. The programs come from
//! AIRLOCK_DOCKER_REGISTRY and AIRLOCK_SKOPEO (`make bench` sets both from
//! tests/setup-oci.sh), else from PATH.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The load generator and its report serve the serving benches, not this one.
#[allow(dead_code)]
#[path = "support/release.rs"]
mod support;
use support::{Res, airlock, approved_release};

/// A program from tests/setup-oci.sh: `$var`, else on PATH.
fn program(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            std::env::var_os("PATH")
                .and_then(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(name))
                        .find(|p| p.is_file())
                })
                .unwrap_or_else(|| PathBuf::from(name))
        },
        PathBuf::from,
    )
}

/// `docker-registry` on a loopback port, storage in `dir`; killed when dropped.
struct Distribution(Child, u16);

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry(dir: &Path) -> Res<Distribution> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        ),
    )?;
    let child = Command::new(program("AIRLOCK_DOCKER_REGISTRY", "docker-registry"))
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("docker-registry (run tests/setup-oci.sh): {e}"))?;
    let reg = Distribution(child, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("docker-registry did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(reg)
}

fn mibps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / f64::from(1 << 20) / secs
}

fn timed(f: impl FnOnce() -> Res<()>) -> Res<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

fn skopeo(args: &[&str]) -> Res<()> {
    let out = Command::new(program("AIRLOCK_SKOPEO", "skopeo"))
        .args(args)
        .output()
        .map_err(|e| format!("skopeo (run tests/setup-oci.sh): {e}"))?;
    if !out.status.success() {
        return Err(format!("skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn main() -> Res<()> {
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let bin = env!("CARGO_BIN_EXE_airlock");
    let dir = tempfile::tempdir()?;
    let reg = start_registry(dir.path())?;
    let host = format!("127.0.0.1:{}", reg.1);
    let width = (((mib << 20) / 4) as f64).sqrt().round() as u64;
    println!("oci: building a release with a {width}x{width} hidden layer (~{mib} MiB)...");
    let hidden = format!("hidden = [{width}, {width}]");
    approved_release(
        bin,
        dir.path(),
        "http://127.0.0.1:9",
        400,
        &[
            ("hidden = [64, 32]", &hidden),
            ("epochs = 12", "epochs = 1"),
        ],
    )?;
    std::fs::write(
        dir.path().join("residency.toml"),
        format!(
            "[registry]\nregions = [\"local\"]\n\n[oci]\nhosts = {{ \"{host}\" = \"local\" }}\n"
        ),
    )?;
    let bundle = dir.path().join("bundle");
    let total: u64 = std::fs::read_dir(&bundle)?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum();
    let model = bundle.join("model.safetensors");
    let model_len = std::fs::metadata(&model)?.len();
    let run = |args: &[&str]| airlock(bin, dir.path(), "http://127.0.0.1:9", args).map(drop);
    println!(
        "oci: {:.0} MiB release ({:.0} MiB model) through docker-registry on {host}",
        total as f64 / f64::from(1 << 20),
        model_len as f64 / f64::from(1 << 20)
    );

    let to = format!("oci://{host}/bench/airlock");
    let push = timed(|| {
        run(&[
            "publish",
            "bundle",
            "--to",
            &to,
            "--trust",
            "trust.toml",
            "--residency",
            "residency.toml",
            "--audit-log",
            "audit.log",
            "--key",
            "publisher.key",
        ])
    })?;
    let pull = timed(|| {
        run(&[
            "pull",
            &format!("{to}:1.0.0"),
            "--trust",
            "trust.toml",
            "--out",
            "pulled",
        ])
    })?;
    println!(
        "  airlock publish (verify, scan, push)    {:>7.1} MiB/s  ({push:.2} s)",
        mibps(total, push)
    );
    println!(
        "  airlock pull by tag (download, verify)  {:>7.1} MiB/s  ({pull:.2} s)",
        mibps(total, pull)
    );

    // The transfer alone, through airlock's OCI registry, to and from a fresh repository.
    let sha = airlock_trust::shards::stream_digest(&model)?;
    let raw = airlock_publisher::registry::open(&format!("oci://{host}/bench/raw"), || {
        Err(airlock_publisher::aws::AwsSetupError::NoRegion)
    })?;
    let up = timed(|| Ok(raw.put_blob(&sha, &model).map(drop)?))?;
    let back = dir.path().join("blob");
    let down = timed(|| Ok(raw.get_blob(&sha, &back).map(drop)?))?;
    println!(
        "  airlock OCI blob push (model only)      {:>7.1} MiB/s  ({up:.2} s)",
        mibps(model_len, up)
    );
    println!(
        "  airlock OCI blob pull, digest checked   {:>7.1} MiB/s  ({down:.2} s)",
        mibps(model_len, down)
    );

    // skopeo copy of the same release: registry → OCI layout → a fresh repository.
    let layout = format!("oci:{}:release", dir.path().join("layout").display());
    let src = format!("docker://{host}/bench/airlock:1.0.0");
    // A second, fresh registry: on the first, skopeo would mount the blobs it just pulled
    // from the other repository (its blob-info cache knows them) instead of sending them.
    let dir2 = tempfile::tempdir()?;
    let reg2 = start_registry(dir2.path())?;
    let dst = format!("docker://127.0.0.1:{}/bench/skopeo:1.0.0", reg2.1);
    let s_pull = timed(|| skopeo(&["copy", "--src-tls-verify=false", &src, &layout]))?;
    let s_push = timed(|| skopeo(&["copy", "--dest-tls-verify=false", &layout, &dst]))?;
    println!(
        "  skopeo copy registry -> OCI layout      {:>7.1} MiB/s  ({s_pull:.2} s)",
        mibps(total, s_pull)
    );
    println!(
        "  skopeo copy OCI layout -> registry      {:>7.1} MiB/s  ({s_push:.2} s)",
        mibps(total, s_push)
    );
    Ok(())
}
