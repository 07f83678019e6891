//! AWS configuration shared by the S3 registry and SageMaker: the standard credential and
//! region chain (environment, profiles, web identity, container and instance metadata),
//! an optional endpoint override for S3-compatible stores and local test servers, and one
//! HTTPS client (rustls with ring) for every AWS client.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// How much to trust the store's checksum handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumPolicy {
    /// Send a SHA-256 checksum with every object and part (the store refuses a part whose
    /// bytes do not match), then read everything back and compare with the local digests.
    #[default]
    Sha256,
    /// Send no checksum headers, for S3-compatible stores that reject them; read-back still
    /// checks every byte.
    Off,
}

impl std::str::FromStr for ChecksumPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Self::Sha256),
            "off" => Ok(Self::Off),
            _ => Err(format!("expected sha256 or off, got {s:?}")),
        }
    }
}

/// Settings for every AWS client airlock makes.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// Endpoint override (`--endpoint-url`; `AWS_ENDPOINT_URL` is read by the SDK itself).
    pub endpoint_url: Option<String>,
    /// Region override; otherwise the standard chain (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Checksums on uploads.
    pub checksums: ChecksumPolicy,
    /// Multipart part size in bytes (S3 allows 5 MiB to 5 GiB).
    pub part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
    /// Fixed credentials (access key id, secret) instead of the standard chain: for tests
    /// and benches against local servers. `airlock` itself always uses the chain.
    pub static_credentials: Option<(String, String)>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            checksums: ChecksumPolicy::Sha256,
            part_size: 8 << 20,
            concurrency: 8,
            static_credentials: None,
        }
    }
}

/// A tokio runtime and the loaded SDK configuration.
#[derive(Debug, Clone)]
pub struct Aws {
    /// The runtime every AWS call runs on.
    pub rt: Arc<tokio::runtime::Runtime>,
    /// Loaded configuration.
    pub config: SdkConfig,
    /// The options it was loaded with.
    pub opts: AwsOptions,
}

/// Why AWS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// The runtime.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// No region anywhere in the chain.
    #[error(
        "no AWS region configured: set AWS_REGION, a region in the AWS profile, or pass --region"
    )]
    NoRegion,
}

impl AwsSetupError {
    /// What kind of failure this is: always
    /// [`airlock_schemas::ErrorKind::Environment`] (the machine's runtime or AWS
    /// configuration).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Runtime(_) | Self::NoRegion => airlock_schemas::ErrorKind::Environment,
        }
    }
}

impl Aws {
    /// Load the configuration (reads the environment and profile files; makes no request).
    pub fn load(opts: AwsOptions) -> Result<Self, AwsSetupError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
            .enable_all()
            .thread_name("airlock-aws")
            .build()
            .map_err(AwsSetupError::Runtime)?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = rt.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http)
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10))
                        .read_timeout(Duration::from_secs(120))
                        .build(),
                );
            if let Some(r) = &opts.region {
                loader = loader.region(Region::new(r.clone()));
            }
            if let Some(u) = &opts.endpoint_url {
                loader = loader.endpoint_url(u.clone());
            }
            if let Some((id, secret)) = &opts.static_credentials {
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    id.clone(),
                    secret.clone(),
                    None,
                    None,
                    "static",
                ));
            }
            loader.load().await
        });
        if config.region().is_none() {
            return Err(AwsSetupError::NoRegion);
        }
        Ok(Self {
            rt: Arc::new(rt),
            config,
            opts,
        })
    }

    /// The configured region.
    pub fn region(&self) -> String {
        self.config
            .region()
            .map_or_else(String::new, |r| r.as_ref().to_owned())
    }

    /// An S3 client. Path-style addressing when an endpoint is overridden (S3-compatible
    /// stores and local servers rarely have wildcard DNS for virtual-hosted buckets).
    pub fn s3(&self, region: Option<&str>) -> aws_sdk_s3::Client {
        let mut b = aws_sdk_s3::config::Builder::from(&self.config);
        if self.config.endpoint_url().is_some() {
            b = b.force_path_style(true);
        }
        if let Some(r) = region {
            b = b.region(Region::new(r.to_owned()));
        }
        if self.opts.checksums == ChecksumPolicy::Off {
            b = b
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                );
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }

    /// A SageMaker client.
    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(&self.config)
    }

    /// An Application Auto Scaling client (`[deploy.autoscaling]`: the endpoint variant's
    /// scalable target and scaling policy).
    pub fn application_autoscaling(&self) -> aws_sdk_applicationautoscaling::Client {
        aws_sdk_applicationautoscaling::Client::new(&self.config)
    }

    /// An STS client.
    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.config)
    }
}

/// The message of an SDK error, with its service code when there is one. An answer that
/// is not shaped like an AWS error (an HTML or text page from a proxy, or an unpatched
/// moto's HTML 500) is reported by its HTTP status, the first bytes of its body as text,
/// and a hint, rather than as the SDK's "malformed JSON error body".
pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(why) = e.raw_response().and_then(not_an_aws_answer) {
        return why;
    }
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => err.to_string(),
            }
        }
        SdkError::DispatchFailure(d) => {
            // Connection trouble, or something before it (credentials, above all).
            let mut msg = if d.is_io() || d.is_timeout() {
                "cannot reach the service"
            } else {
                "the request could not be sent"
            }
            .to_owned();
            push_sources(&mut msg, e);
            if d.is_timeout() {
                msg.push_str(" (timed out)");
            }
            msg
        }
        SdkError::TimeoutError(_) => "the request timed out".to_owned(),
        other => {
            let mut msg = other.to_string();
            push_sources(&mut msg, other);
            msg
        }
    }
}

/// Append `: source` for each error in `e`'s source chain.
fn push_sources(msg: &mut String, e: &dyn std::error::Error) {
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
}

/// What is said of an answer that is not the AWS API's.
pub const NOT_AWS_HINT: &str = "the endpoint did not answer as the AWS API does: is AWS_ENDPOINT_URL (or --endpoint-url) pointing at a proxy, or at a moto without the project's patches (start it with `make moto`)? see docs/cloud-team.md";

/// Most characters of a non-AWS body quoted in an error.
const BODY_EXCERPT_CHARS: usize = 200;

/// Why `resp` is not an AWS answer, if it is not: a body that is neither a JSON object
/// nor XML (an error document, or on success any XML that is not an HTML page).
fn not_an_aws_answer(resp: &HttpResponse) -> Option<String> {
    let status = resp.status().as_u16();
    let body = resp.body().bytes()?;
    let text = body.trim_ascii_start();
    if text.is_empty()
        || (text.starts_with(b"{")
            && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok())
    {
        return None;
    }
    let root = xml_root(text);
    let html = root
        .as_deref()
        .is_some_and(|r| r == "html" || r == "!doctype");
    match root.as_deref() {
        Some(r) if r.starts_with("error") => return None,
        Some(_) if !html && (200..300).contains(&status) => return None,
        _ => {}
    }
    let what = if html {
        "an HTML page"
    } else if root.is_some() {
        "XML that is not an AWS error"
    } else {
        "text that is not JSON or XML"
    };
    Some(format!(
        "HTTP {status} with {what} instead of an AWS answer: \"{}\" ({NOT_AWS_HINT})",
        excerpt(body)
    ))
}

/// The name of the first element of an XML or HTML text (lowercase, after a `<?xml ?>`
/// prolog and comments), or `None` if it does not start with `<`.
fn xml_root(mut text: &[u8]) -> Option<String> {
    loop {
        text = text.trim_ascii_start();
        let skip_to = |t: &[u8], end: &[u8]| {
            t.windows(end.len())
                .position(|w| w == end)
                .map(|i| i + end.len())
        };
        if text.starts_with(b"<?") {
            text = &text[skip_to(text, b"?>")?..];
        } else if text.starts_with(b"<!--") {
            text = &text[skip_to(text, b"-->")?..];
        } else {
            break;
        }
    }
    let rest = text.strip_prefix(b"<")?;
    let name: String = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'!' | b'-' | b'_' | b':'))
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect();
    Some(name)
}

/// The first [`BODY_EXCERPT_CHARS`] characters of a body's text: tags stripped, white
/// space collapsed, control characters escaped.
fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(64 << 10)];
    let text = String::from_utf8_lossy(head);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if in_tag => {}
            c => plain.push(c),
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let joined = words.join(" ");
    let mut out: String = crate::audit::printable(&joined)
        .chars()
        .take(BODY_EXCERPT_CHARS)
        .collect();
    if out.len() < crate::audit::printable(&joined).len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A loopback HTTP server that gives every request the same answer; its URL.
    fn answering(status: &'static str, content_type: &'static str, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut sink = vec![0; length];
                let _ = reader.read_exact(&mut sink);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    fn aws_at(url: &str) -> Aws {
        Aws::load(AwsOptions {
            endpoint_url: Some(url.to_owned()),
            region: Some("eu-west-1".into()),
            static_credentials: Some(("testing".into(), "testing".into())),
            ..AwsOptions::default()
        })
        .expect("aws")
    }

    /// What moto without the project's UpdateEndpoint patch answers (werkzeug's page).
    const HTML_500: &str = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to complete your request.\x1b[2J</p>\n";

    fn sagemaker_error(url: &str) -> String {
        let aws = aws_at(url);
        let err = aws
            .rt
            .block_on(
                aws.sagemaker()
                    .update_endpoint()
                    .endpoint_name("ep")
                    .endpoint_config_name("cfg")
                    .send(),
            )
            .expect_err("the server fails every request");
        describe(&err)
    }

    #[test]
    fn an_html_500_is_reported_with_its_status_its_text_and_a_hint() {
        let msg = sagemaker_error(&answering(
            "500 INTERNAL SERVER ERROR",
            "text/html; charset=utf-8",
            HTML_500,
        ));
        assert!(msg.starts_with("HTTP 500 with an HTML page"), "{msg}");
        assert!(
            msg.contains(
                "\"500 Internal Server Error Internal Server Error The server encountered"
            ),
            "tags stripped, white space collapsed: {msg}"
        );
        assert!(!msg.contains('<') && !msg.contains('\x1b'), "{msg}");
        assert!(msg.contains("\\u{1b}[2J"), "controls escaped: {msg}");
        assert!(msg.contains("AWS_ENDPOINT_URL") && msg.contains("docs/cloud-team.md"));
        assert!(!msg.contains("malformed JSON"), "{msg}");
    }

    #[test]
    fn a_long_text_body_is_cut_and_an_s3_call_says_the_same() {
        let body: &'static str = "Bad gateway from the corporate proxy. ".repeat(40).leak();
        let url = answering("502 Bad Gateway", "text/plain", body);
        let aws = aws_at(&url);
        let err = aws
            .rt
            .block_on(aws.s3(None).get_object().bucket("b").key("k").send())
            .expect_err("the proxy fails every request");
        let msg = describe(&err);
        assert!(
            msg.starts_with("HTTP 502 with text that is not JSON or XML"),
            "{msg}"
        );
        let quoted = msg.split('"').nth(1).expect("quoted excerpt");
        assert_eq!(quoted.chars().count(), BODY_EXCERPT_CHARS + 3, "{quoted}");
        assert!(quoted.ends_with("..."), "{quoted}");
    }

    #[test]
    fn aws_shaped_errors_keep_their_code_and_message() {
        let msg = sagemaker_error(&answering(
            "400 Bad Request",
            "application/x-amz-json-1.1",
            r#"{"__type":"ValidationException","message":"Could not find endpoint 'ep'."}"#,
        ));
        assert_eq!(msg, "ValidationException: Could not find endpoint 'ep'.");
        let url = answering(
            "404 Not Found",
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        );
        let aws = aws_at(&url);
        let err = aws
            .rt
            .block_on(aws.s3(None).get_object().bucket("b").key("k").send())
            .expect_err("no such key");
        assert_eq!(
            describe(&err),
            "NoSuchKey: The specified key does not exist."
        );
    }

    #[test]
    fn an_autoscaling_refusal_names_the_endpoint_and_the_call() {
        let url = answering(
            "400 Bad Request",
            "application/x-amz-json-1.1",
            r#"{"__type":"AccessDeniedException","message":"not authorized to perform application-autoscaling:RegisterScalableTarget"}"#,
        );
        let scaling = airlock_schemas::AutoscalingSpec {
            min_instances: 1,
            max_instances: 4,
            target_invocations_per_instance: 70.0,
            scale_in_cooldown_seconds: 300,
            scale_out_cooldown_seconds: 60,
        };
        let err = crate::sagemaker::autoscale(&aws_at(&url), "ep", &scaling)
            .expect_err("the server refuses every request");
        assert_eq!(
            err.to_string(),
            "SageMaker: cannot register autoscaling for endpoint ep (RegisterScalableTarget \
             endpoint/ep/variant/AllTraffic): AccessDeniedException: not authorized to perform \
             application-autoscaling:RegisterScalableTarget"
        );
    }
}
