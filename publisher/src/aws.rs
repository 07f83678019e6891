//! AWS configuration shared by the S3 registry and SageMaker: the standard credential and
//! region chain (environment, profiles, web identity, container and instance metadata),
//! an optional endpoint override for S3-compatible stores and local test servers, and one
//! HTTPS client (rustls with ring) for every AWS client.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;

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

    /// An STS client.
    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.config)
    }
}

/// The message of an SDK error, with its service code when there is one.
pub fn describe<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
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
            let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            if d.is_timeout() {
                msg.push_str(" (timed out)");
            }
            msg
        }
        SdkError::TimeoutError(_) => "the request timed out".to_owned(),
        other => {
            let mut msg = other.to_string();
            let mut src: Option<&dyn std::error::Error> = std::error::Error::source(other);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            msg
        }
    }
}
