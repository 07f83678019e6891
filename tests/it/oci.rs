//! `airlock publish` and `airlock pull` through an OCI registry: Debian's `docker-registry`
//! (the CNCF distribution server, without the OCI 1.1 referrers API: the fallback tag scheme
//! is what it exercises) on loopback, and `skopeo` (tests/setup-oci.sh installs both).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Release;
use crate::publish::{approve, setup, stderr};

/// A program from tests/setup-oci.sh: `$var`, else on PATH.
fn program(var: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is missing: run tests/setup-oci.sh (or set {var})"))
}

/// A `docker-registry` on 127.0.0.1, its storage in a temporary directory; killed when
/// dropped.
pub struct OciServer {
    pub port: u16,
    pub storage: tempfile::TempDir,
    child: Child,
}

impl Drop for OciServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OciServer {
    pub fn start() -> Self {
        let storage = tempfile::tempdir().expect("storage");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.path().join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new(program("AIRLOCK_DOCKER_REGISTRY", "docker-registry"))
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let server = Self {
            port,
            storage,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.http("GET", "/v2/", "", b"").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer /v2/"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One request (`Connection: close`): (status, body). 0 when nothing answers.
    pub fn http(&self, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, Vec::new());
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.host(),
            if ctype.is_empty() {
                String::new()
            } else {
                format!("Content-Type: {ctype}\r\n")
            },
            body.len()
        );
        if s.write_all(req.as_bytes())
            .and_then(|()| s.write_all(body))
            .is_err()
        {
            return (0, Vec::new());
        }
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(resp.len(), |i| i + 4);
        let status = String::from_utf8_lossy(&resp[..split])
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, resp[split..].to_vec())
    }

    /// The manifest at `reference` of `repo`, parsed.
    pub fn manifest(&self, repo: &str, reference: &str) -> serde_json::Value {
        let (status, body) =
            self.http("GET", &format!("/v2/{repo}/manifests/{reference}"), "", b"");
        assert_eq!(
            status,
            200,
            "{repo}:{reference}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("manifest json")
    }

    /// Put manifest bytes at `reference` of `repo`.
    pub fn put_manifest(&self, repo: &str, reference: &str, ctype: &str, body: &[u8]) {
        let (status, resp) = self.http(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            ctype,
            body,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&resp));
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn skopeo(args: &[&str]) -> Output {
    Command::new(program("AIRLOCK_SKOPEO", "skopeo"))
        .args(args)
        .output()
        .expect("run skopeo")
}

/// Publish `bundle` to `to`.
fn publish(r: &Release, bundle: &str, to: &str) -> Output {
    r.sb.airlock(&[
        "publish",
        bundle,
        "--to",
        to,
        "--trust",
        "trust.toml",
        "--residency",
        "residency.toml",
        "--audit-log",
        "audit.log",
        "--key",
        "keys/publisher.key",
    ])
}

fn pull(r: &Release, uri: &str, out: &str) -> Output {
    r.sb.airlock(&["pull", uri, "--trust", "trust.toml", "--out", out])
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Allow `host` (in region `local`) for OCI registries.
fn allow(r: &Release, host: &str) {
    r.sb.write(
        "residency.toml",
        &format!(
            "[registry]\nregions = [\"local\"]\n\n[oci]\nhosts = {{ \"{host}\" = \"local\" }}\n"
        ),
    );
}

fn same_release(r: &Release, dir: &str) {
    for f in [
        "model.safetensors",
        "statement.dsse.json",
        "model-card.json",
    ] {
        assert_eq!(
            std::fs::read(r.sb.join(dir).join(f)).expect("pulled"),
            std::fs::read(r.sb.join("bundle").join(f)).expect("bundle"),
            "{dir}/{f}"
        );
    }
}

#[test]
fn oci_round_trip_through_docker_registry_with_skopeo_interop_and_serve() {
    let reg = OciServer::start();
    let r = setup("[\"local\"]");
    approve(&r);
    allow(&r, &reg.host());
    let repo = "airlock/fraud-detector";
    let base = format!("oci://{}/{repo}", reg.host());
    ok(&publish(&r, "bundle", &base));

    // The version's tag holds a CNCF ModelPack manifest: the bundle's files as layers with
    // their roles' media types, the release index among them; a referrer per statement and
    // approval, listed under the fallback tag.
    let m = reg.manifest(repo, "1.0.0");
    assert_eq!(
        m["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let layer = |file: &str| {
        m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .find(|l| l["annotations"]["org.cncf.model.filepath"] == file)
            .cloned()
            .unwrap_or_else(|| panic!("no layer {file}: {m}"))
    };
    assert_eq!(
        layer("model.safetensors")["mediaType"],
        "application/vnd.cncf.model.weight.v1.raw"
    );
    assert_eq!(
        layer("model-card.json")["mediaType"],
        "application/vnd.cncf.model.doc.v1.raw"
    );
    assert!(
        m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .any(|l| l["mediaType"] == "application/vnd.airlock.release.index.v1+json")
    );
    let (_, raw) = reg.http("GET", &format!("/v2/{repo}/manifests/1.0.0"), "", b"");
    let digest = sha256(&raw);
    let referrers = reg.manifest(repo, &digest.replacen(':', "-", 1));
    let kinds: Vec<&str> = referrers["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|e| e["artifactType"].as_str().expect("artifactType"))
        .collect();
    assert_eq!(
        kinds,
        [
            "application/vnd.airlock.approval.v1+json",
            "application/vnd.airlock.release.statement.v1+json"
        ],
        "{referrers}"
    );

    // Pulled by version, by the newest version, by tag and by digest: the same release.
    ok(&pull(
        &r,
        &format!("{base}/models/fraud-detector@1.0.0"),
        "by-version",
    ));
    ok(&pull(
        &r,
        &format!("{base}/models/fraud-detector"),
        "newest",
    ));
    ok(&pull(&r, &format!("{base}:1.0.0"), "by-tag"));
    ok(&pull(&r, &format!("{base}@{digest}"), "by-digest"));
    for d in ["by-version", "newest", "by-tag", "by-digest"] {
        same_release(&r, d);
    }
    // A digest that is not the manifest's is not found, never another release.
    let other = format!("sha256:{}", "0".repeat(64));
    let o = pull(&r, &format!("{base}@{other}"), "nothing");
    assert!(
        !o.status.success() && !r.sb.join("nothing").exists(),
        "{}",
        stderr(&o)
    );

    // skopeo reads the manifest, and copies the tag alone to another repository, from which
    // a pull verifies (the manifest carries the index, statement, approvals and audit copy).
    let src = format!("docker://{}/{repo}:1.0.0", reg.host());
    let inspect = skopeo(&["inspect", "--tls-verify=false", "--raw", &src]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    assert_eq!(sha256(&inspect.stdout), digest);
    let copied = format!("docker://{}/elsewhere/fraud:1.0.0", reg.host());
    let copy = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &src,
        &copied,
    ]);
    assert!(copy.status.success(), "{}", stderr(&copy));
    ok(&pull(
        &r,
        &format!("oci://{}/elsewhere/fraud:1.0.0", reg.host()),
        "copied",
    ));
    same_release(&r, "copied");

    // Serve answers from the pulled release.
    let h = crate::serve::holdout(&r.sb, &r.run, &r.data);
    let server = crate::serve::start(&r.sb, "by-digest");
    crate::serve::assert_predictions(server.port, &h);
}

/// Push a referrer like `template` whose one layer is `layer` and whose subject is
/// `subject`, and list it alone under `subject`'s fallback tag.
fn swap_referrer(
    reg: &OciServer,
    repo: &str,
    template: &serde_json::Value,
    layer: serde_json::Value,
    subject: serde_json::Value,
    listed_subject: &str,
) {
    let mut forged = template.clone();
    forged["layers"] = serde_json::json!([layer]);
    forged["subject"] = subject;
    let body = serde_json::to_vec(&forged).expect("json");
    let digest = sha256(&body);
    reg.put_manifest(
        repo,
        &digest,
        "application/vnd.oci.image.manifest.v1+json",
        &body,
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": body.len(),
            "artifactType": template["artifactType"],
        }],
    });
    reg.put_manifest(
        repo,
        &listed_subject.replacen(':', "-", 1),
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).expect("json"),
    );
}

#[test]
fn oci_refuses_hosts_not_allowed_tampered_layers_and_swapped_referrers() {
    let reg = OciServer::start();
    let r = setup("[\"local\"]");
    approve(&r);
    let repo = "airlock/fraud-detector";
    let base = format!("oci://{}/{repo}", reg.host());

    // A host the residency policy does not name: refused (exit 7), on record, nothing sent.
    r.sb.write(
        "residency.toml",
        "[registry]\nregions = [\"local\"]\n\n[oci]\nhosts = { \"registry.example.com\" = \"local\" }\n",
    );
    let o = publish(&r, "bundle", &base);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not in the residency policy's [oci] hosts"),
        "{}",
        stderr(&o)
    );
    let (status, _) = reg.http("GET", &format!("/v2/{repo}/tags/list"), "", b"");
    assert_eq!(status, 404, "nothing may be pushed");
    assert!(
        !reg.storage
            .path()
            .join("data/docker/registry/v2/repositories")
            .exists()
    );
    let log = std::fs::read_to_string(r.sb.join("audit.log")).expect("audit log");
    assert!(log.contains("\"refuse\"") && log.contains(&base), "{log}");

    allow(&r, &reg.host());
    ok(&publish(&r, "bundle", &base));
    let (_, raw) = reg.http("GET", &format!("/v2/{repo}/manifests/1.0.0"), "", b"");
    let digest = sha256(&raw);
    let m: serde_json::Value = serde_json::from_slice(&raw).expect("manifest");
    let layer = |file: &str| {
        m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .find(|l| l["annotations"]["org.cncf.model.filepath"] == file)
            .cloned()
            .expect("layer")
    };
    let uri = format!("{base}:1.0.0");
    let refused = |out: &str, why: &str| {
        let o = pull(&r, &uri, out);
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "expected {why:?}: {}", stderr(&o));
        assert!(!r.sb.join(out).exists());
    };

    // A byte of the model layer rewritten in the registry's storage.
    let model = reg.blob_file(
        layer("model.safetensors")["digest"]
            .as_str()
            .expect("digest"),
    );
    let original = std::fs::read(&model).expect("blob");
    let mut flipped = original.clone();
    let at = flipped.len() - 1000;
    flipped[at] ^= 1;
    std::fs::write(&model, &flipped).expect("tamper");
    refused("tampered", "reads back with digest");
    std::fs::write(&model, &original).expect("restore");
    ok(&pull(&r, &uri, "restored"));

    // Referrers swapped under the fallback tag: the approval referrer carrying another
    // document (the provenance), and one naming another subject.
    let fallback = digest.replacen(':', "-", 1);
    let listed = reg.manifest(repo, &fallback);
    let approval_ref = listed["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|e| e["artifactType"] == "application/vnd.airlock.approval.v1+json")
        .expect("approval referrer")["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let template = reg.manifest(repo, &approval_ref);
    let approval_file = template["layers"][0]["annotations"]["org.cncf.model.filepath"].clone();
    let mut other_doc = layer("provenance.dsse.json");
    other_doc["annotations"]["org.cncf.model.filepath"] = approval_file;
    other_doc["annotations"]["org.opencontainers.image.title"] = serde_json::Value::Null;
    other_doc["annotations"]
        .as_object_mut()
        .expect("annotations")
        .retain(|_, v| !v.is_null());
    swap_referrer(
        &reg,
        repo,
        &template,
        other_doc,
        template["subject"].clone(),
        &digest,
    );
    refused("swapped", "differs from what the manifest carries");
    let mut elsewhere = template["subject"].clone();
    elsewhere["digest"] = serde_json::json!(format!("sha256:{}", "1".repeat(64)));
    swap_referrer(
        &reg,
        repo,
        &template,
        template["layers"][0].clone(),
        elsewhere,
        &digest,
    );
    refused("foreign", "names another subject");
    let sanity = listed.to_string();
    reg.put_manifest(
        repo,
        &fallback,
        "application/vnd.oci.image.index.v1+json",
        sanity.as_bytes(),
    );
    ok(&pull(&r, &uri, "again"));
    assert_eq!(
        digest,
        sha256(
            &reg.http("GET", &format!("/v2/{repo}/manifests/1.0.0"), "", b"")
                .1
        )
    );
}
