//! A real moto server (`tests/moto_server.py`, from the pinned venv) on 127.0.0.1, one per
//! test or bench round, stopped when dropped (it also exits when its stdin closes, so a
//! killed test leaves none behind); buckets, objects and AWS clients pointed at it.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};

/// The region tests use.
pub const REGION: &str = "eu-west-1";

/// The moto server script, in the workspace's `tests/`.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/moto_server.py");

/// Environment for an airlock process talking to the S3 endpoint at `url`: static test
/// credentials, the region, the endpoint, and no profile files or instance metadata from
/// the host.
pub fn aws_env(url: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT_URL", url),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/airlock-test"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/airlock-test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _stdin: Option<ChildStdin>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Start on any free port with the test venv's python ([`crate::test_python`]).
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Start on `port` (0: any free port) with the test venv's python.
    pub fn start_on(port: u16) -> Self {
        Self::try_start_with(&crate::test_python(), port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start on `port` (0: any free port) with `python` (which has moto); the error says
    /// why not, with moto's log.
    pub fn try_start_with(python: &Path, port: u16) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let log = std::fs::File::create(dir.path().join("moto.log"))
            .map_err(|e| format!("moto.log: {e}"))?;
        let mut child = Command::new(python)
            .arg(SCRIPT)
            .args(["--port", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start tests/moto_server.py with {}: {e}", python.display()))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            // An error here leaves `line` empty: reported below with the log.
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let Some(port) = line
            .trim()
            .strip_prefix("MOTO_PORT ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "moto did not start ({line:?}): {}",
                std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default()
            ));
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        Ok(Self {
            port,
            child,
            _stdin: stdin,
            rt,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// [`aws_env`] for this server.
    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.url())
    }

    fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
        use aws_smithy_http_client::tls;
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https()
    }

    /// An S3 client for this server in `region` (path-style, test credentials).
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.to_owned()))
                .endpoint_url(self.url())
                .force_path_style(true)
                .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
                .http_client(Self::http_client())
                .build(),
        )
    }

    /// A SageMaker client for this server in [`REGION`].
    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::from_conf(
            aws_sdk_sagemaker::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION.to_owned()))
                .endpoint_url(self.url())
                .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
                .http_client(Self::http_client())
                .build(),
        )
    }

    /// An Application Auto Scaling client for this server in [`REGION`].
    pub fn application_autoscaling(&self) -> aws_sdk_applicationautoscaling::Client {
        aws_sdk_applicationautoscaling::Client::from_conf(
            aws_sdk_applicationautoscaling::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION.to_owned()))
                .endpoint_url(self.url())
                .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
                .http_client(Self::http_client())
                .build(),
        )
    }

    /// Run `f` to completion on the server's runtime.
    pub fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Create `bucket` in `region`.
    pub fn create_bucket(&self, bucket: &str, region: &str) {
        self.try_create_bucket(bucket, region)
            .unwrap_or_else(|e| panic!("create bucket: {e}"));
    }

    /// Create `bucket` in `region`; the SDK's error, in words.
    pub fn try_create_bucket(&self, bucket: &str, region: &str) -> Result<(), String> {
        let s3 = self.s3(region);
        let mut req = s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        self.block(req.send())
            .map(|_| ())
            .map_err(|e| format!("{bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
    }

    /// Every key in `bucket` with its size.
    pub fn list(&self, bucket: &str) -> Vec<(String, i64)> {
        let s3 = self.s3(REGION);
        let out = self
            .block(s3.list_objects_v2().bucket(bucket).send())
            .expect("list objects");
        out.contents()
            .iter()
            .map(|o| {
                (
                    o.key().unwrap_or_default().to_owned(),
                    o.size().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The object `bucket`/`key`, if it is there.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let s3 = self.s3(REGION);
        self.block(async {
            let out = s3.get_object().bucket(bucket).key(key).send().await.ok()?;
            Some(out.body.collect().await.ok()?.into_bytes().to_vec())
        })
    }

    /// Put `bytes` at `bucket`/`key`.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let s3 = self.s3(REGION);
        self.block(
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(bytes.into())
                .send(),
        )
        .expect("put object");
    }

    fn api(&self, method: &str, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("send");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        assert!(
            resp.starts_with("HTTP/1.") && resp.contains(" 200 "),
            "{path}: {resp}"
        );
        resp.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// Record every request the server receives from now on (moto's recorder).
    pub fn start_recording(&self) {
        self.api("POST", "/moto-api/recorder/reset-recording");
        self.api("POST", "/moto-api/recorder/start-recording");
    }

    /// Stop recording; the (method, URL) of every request recorded.
    pub fn stop_recording(&self) -> Vec<(String, String)> {
        self.api("POST", "/moto-api/recorder/stop-recording");
        self.api("GET", "/moto-api/recorder/download-recording")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("recording line");
                (
                    v["method"].as_str().unwrap_or_default().to_owned(),
                    v["url"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// SIGKILL the server: everything it held is gone, connections drop mid-request.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}
