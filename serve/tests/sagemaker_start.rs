//! The serving image started as SageMaker starts it: `docker run IMAGE serve`, i.e. the
//! Dockerfile's ENTRYPOINT with the single argument `serve` (which replaces CMD), every
//! other setting from the environment. Docker itself is not run: the ENTRYPOINT's binary,
//! `/usr/local/bin/airlock-serve`, is this crate's `airlock-serve`, and the files the image
//! would hold (the model under `/opt/ml/model`, the trust policy and its public keys under
//! `/etc/airlock/`) are laid out the same way in a temporary folder.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the image puts the binary.
const IMAGE_BIN: &str = "/usr/local/bin/airlock-serve";

/// The shipped pipeline, trained briefly on demo data.
const PIPELINE: &str = include_str!("../../pipelines/fraud-detector.toml");

/// A signed and approved release laid out as in the container, made once per test binary.
struct Image {
    _tmp: tempfile::TempDir,
    /// The training run (for the expected predictions).
    run: PathBuf,
    /// The bundle, as SageMaker mounts it at `/opt/ml/model`.
    model_dir: PathBuf,
    /// The baked-in trust policy, as at `/etc/airlock/trust.toml`.
    trust: PathBuf,
    /// Demo rows to score.
    data: PathBuf,
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(build_image)
}

fn dir_0755(p: &Path) {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
        .expect("create dir");
}

/// Train, package with a builder key, write the trust policy, approve with an officer key.
fn build_image() -> Image {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let data = root.join("data/transactions.csv");
    airlock_model::demo::write_demo_csv(&data, 2000, 21).expect("demo data");
    let source = "source = \"../data/transactions.csv\"";
    assert!(PIPELINE.contains(source) && PIPELINE.contains("epochs = 12"));
    let pipeline = root.join("pipelines/p.toml");
    dir_0755(&root.join("pipelines"));
    std::fs::write(&pipeline, PIPELINE.replacen("epochs = 12", "epochs = 3", 1)).expect("pipeline");
    let run = root.join("run");
    airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
        pipeline,
        out: Some(run.clone()),
        device: None,
        cpu_backend: None,
        progress: false,
        hosts: None,
    })
    .expect("train");
    // Private keys stay outside the image; the public ones sit beside the policy.
    let secret = root.join("secret");
    let builder = airlock_trust::keys::generate(&secret.join("builder")).expect("builder key");
    let officer = airlock_trust::keys::generate(&secret.join("officer")).expect("officer key");
    let etc = root.join("etc/airlock");
    dir_0755(&etc.join("keys"));
    std::fs::copy(&builder.public_key, etc.join("keys/builder.pub")).expect("copy");
    std::fs::copy(&officer.public_key, etc.join("keys/officer.pub")).expect("copy");
    let trust = etc.join("trust.toml");
    std::fs::write(
        &trust,
        "approvals_required = 1\n\
         [[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
         [[keys]]\nname = \"officer\"\nrole = \"officer\"\npublic_key = \"keys/officer.pub\"\n",
    )
    .expect("trust");
    let model_dir = root.join("opt/ml/model");
    airlock_packager::package(&airlock_packager::PackageOptions {
        run_dir: run.clone(),
        key: builder.private_key,
        out: model_dir.clone(),
        threads: 2,
        progress: None,
    })
    .expect("package");
    let policy = airlock_trust::Trust::load(&trust).expect("policy");
    airlock_trust::approvals::decide(
        &airlock_trust::approvals::DecisionRequest {
            bundle: model_dir.clone(),
            key: officer.private_key,
            name: "Officer".into(),
            reason: "reviewed".into(),
            decision: airlock_schemas::Decision::Approve,
            expires: None,
        },
        &policy,
        2,
    )
    .expect("approve");
    Image {
        _tmp: tmp,
        run,
        model_dir,
        trust,
        data,
    }
}

/// The Dockerfile's instruction `name` (ENTRYPOINT, CMD) in its exec (JSON array) form.
fn exec_form(dockerfile: &str, name: &str) -> Vec<String> {
    let lines: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .collect();
    assert_eq!(lines.len(), 1, "one {name} in the Dockerfile: {lines:?}");
    serde_json::from_str(lines[0].trim())
        .unwrap_or_else(|e| panic!("{name} is not a JSON array ({e}): {}", lines[0]))
}

/// What SageMaker runs: the ENTRYPOINT with `serve` in place of CMD, the image's binary
/// being the one cargo built; the environment holds only what the test sets.
fn sagemaker_command(env: &[(&str, &str)]) -> Command {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile"))
        .expect("Dockerfile");
    let entrypoint = exec_form(&dockerfile, "ENTRYPOINT");
    assert_eq!(entrypoint.first().map(String::as_str), Some(IMAGE_BIN));
    // `docker run IMAGE` with no argument runs the same.
    assert_eq!(exec_form(&dockerfile, "CMD"), ["serve"]);
    // The image holds the binary the test runs.
    assert!(
        dockerfile.contains("--bin airlock-serve")
            && dockerfile.contains("target/release/airlock-serve /usr/local/bin/airlock-serve"),
        "the Dockerfile does not build and install airlock-serve"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock-serve"));
    cmd.args(&entrypoint[1..]).arg("serve");
    for var in [
        "SM_MODEL_DIR",
        "AIRLOCK_TRUST",
        "SAGEMAKER_BIND_TO_PORT",
        "SAGEMAKER_MODEL_SERVER_WORKERS",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A started server, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start as SageMaker does on a free port; Err(log) when it exited before listening.
fn start(env: &[(&str, &str)]) -> Result<Server, String> {
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let mut env = env.to_vec();
    env.push(("SAGEMAKER_BIND_TO_PORT", &port));
    let mut child = sagemaker_command(&env)
        .spawn()
        .expect("start airlock-serve");
    let (tx, log) = std::sync::mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut server = Server {
        child,
        port: port.parse().expect("port"),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        match server
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) if line == format!("listening on http://0.0.0.0:{port}") => {
                return Ok(server);
            }
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.child.wait().expect("wait");
                return Err(format!("{status}: {}", seen.join("\n")));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("airlock-serve did not listen on {port}: {seen:?}")
            }
        }
    }
}

/// One request on a fresh connection: (status, body).
fn request(port: u16, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("send");
    s.write_all(body).expect("send body");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Run to its exit (at most two minutes; a server that starts is killed and fails the
/// test): (status, stderr).
fn exits(mut cmd: Command) -> (ExitStatus, String) {
    let mut child = cmd.spawn().expect("start airlock-serve");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "airlock-serve kept running: {}",
                reader.join().expect("log")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().expect("log"))
}

#[test]
fn started_as_sagemaker_does_it_serves_the_approved_bundle() {
    let img = image();
    let env = [
        ("SM_MODEL_DIR", path(&img.model_dir)),
        ("AIRLOCK_TRUST", path(&img.trust)),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "2"),
    ];
    // The port was free a moment ago; another process may have taken it since.
    let mut server = None;
    for _ in 0..5 {
        match start(&env) {
            Ok(s) => {
                server = Some(s);
                break;
            }
            Err(log) if log.contains("cannot listen") => {}
            Err(log) => panic!("airlock-serve did not start: {log}"),
        }
    }
    let mut server = server.expect("a free port in five tries");

    let (status, body) = request(server.port, "GET", "/ping", "text/plain", b"");
    assert_eq!(status, 200, "{body}");
    let ping: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ping["status"], "ok");
    assert_eq!(ping["model"], "fraud-detector");

    // Twenty demo rows, as JSON by feature name; the server's probabilities are what the
    // trained run computes for them.
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(img.model_dir.join("model-card.json")).expect("card"),
    )
    .expect("card json");
    let features: Vec<&str> = card["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    let text = std::fs::read_to_string(&img.data).expect("data");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let rows: Vec<Vec<&str>> = lines.take(20).map(|l| l.split(',').collect()).collect();
    let col = |f: &str| header.iter().position(|h| *h == f).expect("column");
    let instances: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            features
                .iter()
                .map(|f| {
                    let v: f64 = r[col(f)].parse().expect("number");
                    ((*f).to_owned(), serde_json::json!(v))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let scratch = tempfile::tempdir().expect("tempdir");
    let input = scratch.path().join("rows.csv");
    let mut csv = header.join(",") + "\n";
    for r in &rows {
        csv += &(r.join(",") + "\n");
    }
    std::fs::write(&input, csv).expect("rows");
    let expected = airlock_infer::predict_csv(&img.run, &input)
        .expect("predict")
        .values;

    let body = serde_json::json!({ "instances": instances }).to_string();
    let (status, resp) = request(
        server.port,
        "POST",
        "/invocations",
        "application/json",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{resp}");
    let preds: serde_json::Value = serde_json::from_str(&resp).expect("json");
    let got: Vec<f64> = preds["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["probability"].as_f64().expect("probability"))
        .collect();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - f64::from(*e)).abs() <= 1e-5, "{got:?} vs {expected:?}");
    }

    // SageMaker stops a container with SIGTERM: it drains and exits 0.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "{status}");
}

#[test]
fn without_a_trust_policy_it_refuses_to_start() {
    let img = image();
    // Neither --trust nor AIRLOCK_TRUST, and no policy baked in at the default path (this
    // machine is not the image).
    assert!(!Path::new("/etc/airlock/trust.toml").exists());
    let (status, err) = exits(sagemaker_command(&[("SM_MODEL_DIR", path(&img.model_dir))]));
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(
        err.contains(
            "error: no trust policy: give --trust or set AIRLOCK_TRUST, or bake one into the \
             image at /etc/airlock/trust.toml"
        ),
        "{err}"
    );
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn a_bad_port_in_the_environment_is_an_error() {
    let img = image();
    for port in ["http", "65536", "-1", ""] {
        let (status, err) = exits(sagemaker_command(&[
            ("SM_MODEL_DIR", path(&img.model_dir)),
            ("AIRLOCK_TRUST", path(&img.trust)),
            ("SAGEMAKER_BIND_TO_PORT", port),
        ]));
        assert_eq!(status.code(), Some(3), "{port:?}: {err}");
        assert!(
            err.contains(&format!(
                "error: SAGEMAKER_BIND_TO_PORT={port:?} is not a port number (0 to 65535)"
            )),
            "{err}"
        );
    }
}

#[test]
fn an_unapproved_bundle_is_refused() {
    let img = image();
    // The same bundle without its approval.
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("model");
    dir_0755(&copy);
    for e in std::fs::read_dir(&img.model_dir).expect("bundle") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), copy.join(e.file_name())).expect("copy");
        }
    }
    let (status, err) = exits(sagemaker_command(&[
        ("SM_MODEL_DIR", path(&copy)),
        ("AIRLOCK_TRUST", path(&img.trust)),
        ("SAGEMAKER_BIND_TO_PORT", "0"),
    ]));
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(
        err.contains(&format!(
            "error: {}: 0 of 1 required officer approvals, refusing to start",
            copy.display()
        )),
        "{err}"
    );
}
