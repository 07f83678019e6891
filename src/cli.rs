//! The command line: clap's types for every subcommand and its flags. What each command
//! does is in `commands/`.

// The doc comments here are clap's help text, written for a terminal: rustdoc's markup
// (links in [brackets], <placeholders> read as HTML tags) does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Train models on-prem and ship only their weights, stripped, checked, signed and
/// approved, to the cloud.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None, propagate_version = true)]
#[command(after_help = crate::exit::EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How progress notes and warnings are written to stderr: human (plain lines) or json
    /// (one object per line); results and summaries are not affected. RUST_LOG filters
    /// them (default: airlock=info).
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = crate::logging::LogFormat::Human)]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline end to end, resumably: train, package, approval gate, publish, deploy.
    /// A stage whose inputs are unchanged is skipped. Without a [signing] section in the
    /// pipeline this is a DEMO with local keys and automatic demo approval.
    Run(RunArgs),
    /// Write synthetic data to train on: a card-transaction table (with realistic
    /// identifiers), or with --kind scans a folder of 64×64 grayscale scans and a manifest of
    /// synthetic patient identifiers.
    DemoData(DemoDataArgs),
    /// Train a pipeline's model on-prem and write a run directory.
    Train(TrainArgs),
    /// Score rows with a trained run: one probability per input row, as CSV.
    Predict(PredictArgs),
    /// Generate an ed25519 key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM).
    Keygen(KeygenArgs),
    /// Strip, fold, leak-check and sign a training run into a release bundle.
    Package(PackageArgs),
    /// Verify a release bundle: digests, builder signatures, subjects, leak verdict (and,
    /// with --require-approvals, the officers' k-of-n approvals).
    Verify(VerifyArgs),
    /// Write a compliance officer's review page (self-contained HTML) and print a summary.
    Review(ReviewArgs),
    /// Write a CycloneDX 1.6 ML-BOM of a verified release: the model with its card, files
    /// and digests, its training datasets by name and digest (never their content), the
    /// leak verdict, the builder's signature and the officers' approvals.
    Sbom(SbomArgs),
    /// Approve a release as a compliance officer: signs approvals/<key id>.dsse.json.
    Approve(DecideArgs),
    /// Reject a release as a compliance officer: one valid rejection blocks it.
    Reject(DecideArgs),
    /// Publish a verified, approved bundle to a registry the residency policy allows.
    Publish(Box<PublishArgs>),
    /// Download a release from a registry; installed only once signature, approvals, leak
    /// verdict and every digest verify.
    Pull(PullArgs),
    /// Serve a verified, approved bundle over HTTP (SageMaker's container contract:
    /// GET /ping, POST /invocations); refuses to start on anything that does not verify.
    Serve(ServeArgs),
    /// Check or show a residency audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Federated learning on Flower. Without a subcommand: the demo, three sites and an
    /// aggregator on loopback, then the global model as a run directory, compared with
    /// each site's local-only model. The subcommands are the steps the Flower apps call.
    Federate(FederateArgs),
    /// Write the de-identified training rows a cloud burst may take out, under an export
    /// policy (identifiers dropped or generalized, rows sampled, k-anonymity, L1 and L2 scans
    /// against the full data), signed by a builder key; or approve, reject or verify one.
    Export(ExportArgs),
    /// Cloud burst: the approved export to S3 (residency-checked, audited), SageMaker
    /// training jobs on it (a sweep's, in parallel; --local runs them here as SageMaker's
    /// local mode does), each artifact back and verified, the best written as an on-prem
    /// run for `airlock package`, and every cloud resource released.
    Burst(Box<BurstArgs>),
    /// Split inference: a gateway that keeps sensitive requests (identifiers found by L1,
    /// sensitive fields, data-class, tenant or source headers, on-prem-only releases,
    /// anything it cannot read) on the on-prem serve pool, fail closed, and sends the rest
    /// to cloud endpoints serving the same verified release; audited without payloads.
    Route(RouteArgs),
    /// Print a completion script for a shell (bash, zsh, fish, powershell or elvish).
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write a page per command to a directory.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write airlock.1 and a page per subcommand (airlock-run.1, ...) here instead.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
    /// Registry: file:///absolute/path, s3://bucket[/prefix] or oci://host[:port]/repository
    /// (OCI distribution: its host must be in the residency policy's [oci] hosts; credentials
    /// from AIRLOCK_OCI_USERNAME and AIRLOCK_OCI_PASSWORD, else anonymous).
    #[arg(long, value_name = "URI")]
    pub to: String,
    /// Trust policy (builder, officer and publisher keys; approvals required).
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// Residency policy: where releases may go.
    #[arg(long, value_name = "residency.toml")]
    pub residency: PathBuf,
    /// Audit log to append to (created if absent).
    #[arg(long, value_name = "FILE")]
    pub audit_log: PathBuf,
    /// The publisher's private key (signs the audit log's head).
    #[arg(long, value_name = "publisher.key")]
    pub key: PathBuf,
    /// The run the bundle was packaged from: what leaves is scanned for its training data
    /// [default: the run named in BUNDLE_DIR.run.json, which `airlock package` writes].
    #[arg(long, value_name = "RUN_DIR")]
    pub run: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Also register the release in the SageMaker Model Registry (implied by --deploy).
    #[arg(long)]
    pub sagemaker: bool,
    /// SageMaker model package group [default: the model's name].
    #[arg(long, value_name = "NAME")]
    pub model_package_group: Option<String>,
    /// Serving image for SageMaker (an ECR URI of an image running `airlock serve`).
    #[arg(long, value_name = "URI", required_if_eq("sagemaker", "true"))]
    pub image: Option<String>,
    /// Deploy to this SageMaker real-time endpoint (created, or updated to this release),
    /// and wait until it is InService.
    #[arg(long, value_name = "ENDPOINT", requires_all = ["image", "role"])]
    pub deploy: Option<String>,
    /// IAM role SageMaker assumes to run the endpoint.
    #[arg(long, value_name = "ARN")]
    pub role: Option<String>,
    /// Endpoint instance type.
    #[arg(long, value_name = "TYPE", default_value = "ml.m5.large")]
    pub instance_type: String,
    /// Endpoint instance count.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub instance_count: i32,
    /// Seconds to wait for the endpoint to come InService.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub deploy_timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The bundle to serve.
    #[arg(long, value_name = "DIR", default_value = "/opt/ml/model")]
    pub model_dir: PathBuf,
    /// Trust policy (builder and officer keys; approvals required).
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// Port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind: loopback by default, so a workstation's server is not reachable
    /// from the network; 0.0.0.0 only inside a container, where the port mapping reaches
    /// the process through the container's interface (the airlock-serve image does that).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Where the model runs: cpu, or cuda:N (needs a build with the cuda feature).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: airlock_infer::DeviceSpec,
    /// Close a connection whose request headers are not complete within this time (also
    /// the idle time allowed between requests on a kept-alive connection).
    #[arg(long, value_name = "SECONDS", default_value = crate::serve::Limits::HEADER_TIMEOUT_S, value_parser = crate::serve::parse_seconds)]
    pub header_timeout: std::time::Duration,
    /// Answer 408 and close the connection when a request body is not complete within
    /// this time; close it too when the client takes no response bytes for this long.
    #[arg(long, value_name = "SECONDS", default_value = crate::serve::Limits::BODY_TIMEOUT_S, value_parser = crate::serve::parse_seconds)]
    pub body_timeout: std::time::Duration,
    /// Connections open at once; further clients wait until one closes.
    #[arg(long, value_name = "N", default_value_t = crate::serve::Limits::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RouteArgs {
    #[command(subcommand)]
    pub step: Option<RouteStep>,
    /// The routing policy: the release, the on-prem pool, the cloud endpoints, what is
    /// sensitive, the audit log and key, health checks (schema: route-policy).
    #[arg(long, value_name = "route.toml", required = true)]
    pub policy: Option<PathBuf>,
    /// Load and verify the policy and the release, check every upstream once, print what
    /// was found and exit (0 when every upstream serves the release, 4 otherwise).
    #[arg(long)]
    pub check: bool,
    /// Close a connection whose request headers are not complete within this time (also
    /// the idle time allowed between requests on a kept-alive connection).
    #[arg(long, value_name = "SECONDS", default_value = crate::serve::Limits::HEADER_TIMEOUT_S, value_parser = crate::serve::parse_seconds)]
    pub header_timeout: std::time::Duration,
    /// Answer 408 when a request body is not complete within this time; close a
    /// connection whose client takes no response bytes for this long.
    #[arg(long, value_name = "SECONDS", default_value = crate::serve::Limits::BODY_TIMEOUT_S, value_parser = crate::serve::parse_seconds)]
    pub body_timeout: std::time::Duration,
    /// Connections open at once; further clients wait until one closes.
    #[arg(long, value_name = "N", default_value_t = crate::serve::Limits::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Subcommand)]
pub enum RouteStep {
    /// The split-inference demo on loopback: an on-prem pool of two `airlock serve`, a
    /// cloud stand-in `airlock serve` and the router in front; a mixed stream (half the
    /// requests carry an identifier or a sensitive marking), where each class went, the
    /// pool stopped (sensitive requests get 503), and the latency routing adds.
    Demo {
        /// The approved release bundle both sides serve.
        #[arg(long, value_name = "DIR")]
        bundle: PathBuf,
        /// Its trust policy (with a publisher key).
        #[arg(long, value_name = "trust.toml")]
        trust: PathBuf,
        /// The router's audit key: a publisher key of the trust policy.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where the policy, the audit log and the logs go.
        #[arg(long, value_name = "DIR", default_value = "split-inference-demo")]
        out: PathBuf,
        /// Requests in the mixed stream.
        #[arg(long, default_value_t = 4000)]
        requests: usize,
    },
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// REGISTRY/models/NAME[@VERSION], e.g. s3://bucket/prod/models/fraud-detector@1.0.0;
    /// without a version, the newest release that verifies and is approved. From an OCI
    /// registry also by tag or manifest digest: oci://host[:port]/repository:TAG or
    /// oci://host[:port]/repository@sha256:HEX.
    #[arg(value_name = "URI")]
    pub uri: String,
    /// Trust policy (builder and officer keys; approvals required).
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// Directory to install the release in (replaced only by a verified release).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Allow replacing a newer verified release in DIR with an older one.
    #[arg(long)]
    pub allow_downgrade: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// AWS settings. Credentials and region come from the standard chain (environment,
/// profiles, web identity, instance metadata).
#[derive(Debug, clap::Args)]
pub struct AwsArgs {
    /// Endpoint for S3-compatible stores or local servers (also: AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (else AWS_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Checksums on uploads: sha256 (per object and per part, checked by the store) or off
    /// (for stores that reject checksum headers). Every upload is read back either way.
    #[arg(long, value_name = "MODE", default_value = "sha256")]
    pub s3_checksums: airlock_publisher::aws::ChecksumPolicy,
    /// Multipart part size in MiB (5 to 5120; raised as needed to stay within S3's 10,000
    /// parts).
    #[arg(long, value_name = "MiB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120))]
    pub part_size: u64,
    /// Parts in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub upload_concurrency: u64,
}

impl AwsArgs {
    /// The publisher crate's AWS options from these flags.
    pub fn options(&self) -> airlock_publisher::aws::AwsOptions {
        airlock_publisher::aws::AwsOptions {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            checksums: self.s3_checksums,
            part_size: self.part_size << 20,
            concurrency: usize::try_from(self.upload_concurrency).unwrap_or(8),
            static_credentials: None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a log offline: hash chain, and its head signed by a publisher key. With
    /// --registry, also against the registry's witnesses: its copy of the signed head must
    /// be a point of the log, and every release it holds must have its entry in the log.
    ///
    /// With --proof, also check proofs printed by `audit prove` / `audit consistency` (or
    /// carried by a release) offline: the checkpoint's signature by a publisher key and the
    /// RFC 9162 proof against its root; with LOG too, the checkpoint must be a point of LOG.
    Verify {
        /// The audit log (optional with --proof: a proof is checked with the trust policy
        /// alone).
        #[arg(value_name = "LOG", required_unless_present = "proof")]
        log: Option<PathBuf>,
        /// Trust policy naming the publisher keys.
        #[arg(long, value_name = "trust.toml")]
        trust: PathBuf,
        /// An inclusion or consistency proof (JSON) to check; repeatable.
        #[arg(long, value_name = "PROOF.json")]
        proof: Vec<PathBuf>,
        /// With a consistency proof: the signed checkpoint of the older size that you kept
        /// (its root must be the proof's `from_root`).
        #[arg(long, value_name = "FILE")]
        old_checkpoint: Option<PathBuf>,
        /// A registry the log's releases went to: file:///absolute/path or
        /// s3://bucket[/prefix]. Catches a log whose tail was cut (even with an older signed
        /// head put back).
        #[arg(long, value_name = "URI")]
        registry: Option<String>,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Print entry N's RFC 9162 inclusion proof against the log's signed checkpoint (JSON:
    /// the entry's line, the proof's hashes, the checkpoint note), for `audit verify --proof`.
    Prove {
        /// The audit log.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// The entry's seq (1 is the first).
        #[arg(long, value_name = "N")]
        entry: u64,
    },
    /// Print the RFC 9162 consistency proof from the log's first SIZE entries to its signed
    /// checkpoint (JSON), for `audit verify --proof`: shows that the log you saw at SIZE is
    /// a prefix of today's.
    Consistency {
        /// The audit log.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// The older size (a checkpoint you kept).
        #[arg(long, value_name = "SIZE")]
        from: u64,
    },
    /// Print a log's entries (no verification: use `audit verify`): aligned columns, the
    /// outcome whole and last; strings are printed with control characters escaped.
    Show {
        /// The audit log.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// Trust policy: name the approving officers and the publisher by their key names
        /// [default: short key ids].
        #[arg(long, value_name = "trust.toml")]
        trust: Option<PathBuf>,
        /// One JSON object per line and entry: the entry as recorded, with the model,
        /// version and approver and publisher names shown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct SbomArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
    /// Trust policy: the bundle must verify against it as `airlock verify` checks (builder
    /// signatures, every digest, the leak verdict); its key names name the signer and the
    /// officers. A bundle that does not verify gets no BOM (exit 4).
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// Write the BOM to this file (atomically: a temporary file beside it, renamed)
    /// [default: standard output].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// Release bundle directory, or a bundle in a registry: REGISTRY/review/NAME@VERSION
    /// (staged for review by `airlock run`) or REGISTRY/models/NAME@VERSION, fetched and
    /// verified into --bundle-out with the approvals inbox's decisions.
    #[arg(value_name = "BUNDLE_DIR|URI")]
    pub bundle: String,
    /// Where a bundle fetched from a registry goes [default: NAME-VERSION in the current
    /// folder]; an existing folder must be empty or an earlier fetch of the same release.
    #[arg(long, value_name = "DIR")]
    pub bundle_out: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Trust policy to check signatures and approvals against.
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// The HTML page to write.
    #[arg(long, value_name = "review.html")]
    pub out: PathBuf,
    /// The release this one replaces, to show what changed.
    #[arg(long, value_name = "OLD_BUNDLE_DIR")]
    pub previous: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
    /// Trust policy: the bundle must verify against it, and the key must be an officer's.
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// The officer's private key (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "officer.key")]
    pub key: PathBuf,
    /// The officer's name, as it should appear in the record.
    #[arg(long)]
    pub name: String,
    /// Why: shown to reviewers and auditors.
    #[arg(long)]
    pub reason: String,
    /// When an approval stops counting: 30d, 12h, 90m, or an RFC 3339 time (approvals
    /// only: a rejection never expires).
    #[arg(long, value_name = "DURATION|TIME")]
    pub expires: Option<String>,
    /// Also put the decision in the approvals inbox of the registry the release will go to
    /// (file:///absolute/path or s3://bucket[/prefix]), as
    /// review/NAME/VERSION/approvals/<key id>.dsse.json: `airlock run` gathers it from there.
    #[arg(long, value_name = "REGISTRY_URI")]
    pub to: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Path prefix: writes PREFIX.key and PREFIX.pub (neither may exist).
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Run directory written by `airlock train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// The builder's private key (PKCS#8 PEM, not readable by group or others).
    #[arg(long, value_name = "builder.key")]
    pub key: PathBuf,
    /// Bundle directory to create (must not exist or be empty). A refused release writes
    /// its leak report to BUNDLE_DIR.leak-report.json instead.
    #[arg(long, value_name = "BUNDLE_DIR")]
    pub out: PathBuf,
    /// Threads for leak scanning and hashing [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
    /// Trust policy naming the builder keys whose signatures count.
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// Also recompute the whole-file SHA-256 of a multi-shard model (the signed per-shard
    /// digests already pin every byte).
    #[arg(long)]
    pub full_digest: bool,
    /// Threads for hashing [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also require the trust policy's k distinct, valid officer approvals and no valid
    /// rejection (exit 6 while pending, 8 when an officer rejected it).
    #[arg(long)]
    pub require_approvals: bool,
    /// With --require-approvals: also judge the decisions in this registry's approvals
    /// inbox for the release (file:///absolute/path or s3://bucket[/prefix]); nothing is
    /// written.
    #[arg(long, value_name = "REGISTRY_URI", requires = "require_approvals")]
    pub inbox: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Stages: train → package → gate → publish → deploy. Each stage's inputs are digested and
recorded in .airlock/stages/ when it completes; an unchanged stage is skipped.

Exit codes: 0 released (or stopped by --until), 3 invalid pipeline, 4 the bundle does not
verify, 5 a leak check refused the release, 6 waiting for officer approvals (the bundle is
staged for review in the registry and the commands to run are printed; run again
afterwards), 7 residency refused a destination, 8 an officer rejected the release (named
with the reason), 130 interrupted (run again to resume).")]
pub struct RunArgs {
    /// Pipeline file (for example pipelines/fraud-detector.toml).
    #[arg(value_name = "PIPELINE.toml")]
    pub pipeline: PathBuf,
    /// Directory for runs/, releases/, demo/ and the stage records in .airlock/.
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,
    /// Rerun this stage and every later one, even when their inputs are unchanged.
    #[arg(long, value_enum, value_name = "STAGE")]
    pub from: Option<airlock_pipeline::Stage>,
    /// Stop after this stage.
    #[arg(long, value_enum, value_name = "STAGE")]
    pub until: Option<airlock_pipeline::Stage>,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoDataArgs {
    /// What to write: transactions (a CSV table) or scans (an image folder with a manifest).
    #[arg(long, value_enum, default_value_t = DemoKind::Transactions)]
    pub kind: DemoKind,
    /// Number of data rows (transactions) or scans. [default: 50000 transactions, 1500 scans]
    #[arg(long)]
    pub rows: Option<usize>,
    /// Seed: the same seed writes the same file.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where to write: the CSV file for transactions (required; replaced atomically if it
    /// exists), the folder for scans (manifest.csv and images/). [default for scans:
    /// data/scans]
    #[arg(long, value_name = "FILE.csv|DIR")]
    pub out: Option<PathBuf>,
}

/// What `airlock demo-data` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoKind {
    /// A card-transaction table (CSV) with a binary fraud label.
    Transactions,
    /// 64×64 grayscale PNG scans (clear, nodule, mass) and a manifest CSV.
    Scans,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Pipeline file (for example pipelines/fraud-detector.toml).
    #[arg(value_name = "PIPELINE.toml")]
    pub pipeline: PathBuf,
    /// Run directory to create; it must not exist or be empty.
    /// [default: runs/<name>-<version>-<unix time>]
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Device to train on: cpu, cuda or cuda:N. Overrides the pipeline's training.device.
    #[arg(long, value_name = "cpu|cuda:N")]
    pub device: Option<String>,
    /// No progress bars (epoch summaries still go to stderr and the run log).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Run directory written by `airlock train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// CSV with a header holding at least the run's feature columns.
    #[arg(long, value_name = "ROWS.csv")]
    pub input: PathBuf,
}

impl Cli {
    /// Parse the command line, and refuse (exit 2, as clap does) the flag combinations that
    /// clap's attributes cannot express.
    pub fn parse_checked() -> Self {
        use clap::CommandFactory as _;
        let cli = Self::parse();
        if let Command::Run(a) = &cli.command
            && let (Some(from), Some(until)) = (a.from, a.until)
            && from > until
        {
            Self::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("--from {from:?} comes after --until {until:?}").to_lowercase(),
                )
                .exit();
        }
        if let Command::Reject(a) = &cli.command
            && a.expires.is_some()
        {
            Self::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--expires applies to approvals only: a rejection cannot expire, it blocks the release until the officer replaces it with an approval",
                )
                .exit();
        }
        cli
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FederateArgs {
    /// A step of a federation (what the Flower apps call); none runs the demo.
    #[command(subcommand)]
    pub step: Option<FederateStep>,
    /// The demo's folder (replaced if an earlier demo made it; refused otherwise).
    #[arg(long, value_name = "DIR", default_value = "federation-demo")]
    pub out: PathBuf,
    /// Training rounds of the demo.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Local epochs per round.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub epochs_per_round: u32,
    /// Transactions per site.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(500..=1_000_000))]
    pub rows_per_site: u64,
    /// The folder with Flower's executables (flower-superlink, flower-supernode, flwr);
    /// default: $AIRLOCK_FLOWER_BIN, else the venv tests/setup-flower.sh makes.
    #[arg(long, value_name = "DIR")]
    pub flower_bin: Option<PathBuf>,
}

/// The steps of a federation.
#[derive(Debug, clap::Subcommand)]
pub enum FederateStep {
    /// A site's round: verify the global model received, train on the site's data from it,
    /// check the update (L0 to L2) against that data, sign it. A refused update is never
    /// written. Prints what it cost as JSON.
    Site(FederateSiteArgs),
    /// Check and sign an update a site trained by other means: the same L0 to L2 against
    /// the site's data as `site` runs; a refused update is never signed.
    Seal(FederateSealArgs),
    /// Close a round at the aggregator: verify every update received, leave out (and log)
    /// the ones that fail, average the rest if the quorum holds, sign the round. Prints
    /// the round as JSON.
    Aggregate(FederateAggregateArgs),
    /// Print where a federation stands (the next round), after verifying every signed
    /// round, as JSON.
    Status(FederateStatusArgs),
    /// The benchmark's plain-FedAvg baseline: a site's local training from unverified
    /// files, with no checks and no signature (its output is never accepted).
    #[command(hide = true)]
    TrainPlain(FederateTrainPlainArgs),
    /// Write the last round's global model as a run directory, checked against the
    /// releasing site's data, for `airlock package`.
    Finalize(FederateFinalizeArgs),
}

#[derive(Debug, clap::Args)]
pub struct FederateSiteArgs {
    /// The federation file (as this site holds it).
    #[arg(long, value_name = "FEDERATION.toml")]
    pub federation: PathBuf,
    /// This site's name in the federation.
    #[arg(long)]
    pub site: String,
    /// This site's data, in the pipeline's format.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// This site's private key (a `site` key of the trust policy).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The round (0: the statistics round).
    #[arg(long)]
    pub round: u32,
    /// The previous round's folder as the aggregator sent it (rounds 1 and on).
    #[arg(long, value_name = "DIR")]
    pub global: Option<PathBuf>,
    /// Where to write the update and its statement (must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FederateStatusArgs {
    /// The federation file.
    #[arg(long, value_name = "FEDERATION.toml")]
    pub federation: PathBuf,
    /// The aggregator's state folder.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FederateAggregateArgs {
    /// The federation file.
    #[arg(long, value_name = "FEDERATION.toml")]
    pub federation: PathBuf,
    /// The aggregator's state folder (its signed rounds).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The aggregator's private key.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The round to close.
    #[arg(long)]
    pub round: u32,
    /// The updates received: one folder per reply.
    #[arg(long, value_name = "DIR")]
    pub updates: PathBuf,
    /// A sender that was asked and sent nothing usable, with the reason (repeatable).
    #[arg(long, value_name = "WHO")]
    pub missing: Vec<String>,
    /// The federation's audit log (created on the first round).
    #[arg(long, value_name = "LOG")]
    pub audit_log: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FederateFinalizeArgs {
    /// The federation file.
    #[arg(long, value_name = "FEDERATION.toml")]
    pub federation: PathBuf,
    /// The aggregator's state folder (or a copy of its signed rounds).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The releasing site's data.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// The run directory to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FederateSealArgs {
    /// The site and round, as for `airlock federate site`.
    #[command(flatten)]
    pub site: FederateSiteArgs,
    /// The update to check and sign (the model's trained tensors, safetensors).
    #[arg(long, value_name = "FILE")]
    pub update: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FederateTrainPlainArgs {
    /// The site and round, as for `airlock federate site` (--out is the update file).
    #[command(flatten)]
    pub site: FederateSiteArgs,
    /// The global model's tensors.
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The federation's standardization (preprocess.json).
    #[arg(long, value_name = "FILE")]
    pub preprocess: PathBuf,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExportArgs {
    /// Approve, reject or verify an export; none writes one.
    #[command(subcommand)]
    pub step: Option<ExportStep>,
    /// The on-prem pipeline whose training rows are exported.
    #[arg(value_name = "PIPELINE.toml", required = true)]
    pub pipeline: Option<PathBuf>,
    /// The export policy.
    #[arg(long, value_name = "export.toml", required = true)]
    pub policy: Option<PathBuf>,
    /// The export directory to create (never overwritten).
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Trust policy: the key must be one of its builder keys.
    #[arg(long, value_name = "trust.toml", required = true)]
    pub trust: Option<PathBuf>,
    /// The builder's private key, which signs the export statement.
    #[arg(long, value_name = "builder.key", required = true)]
    pub key: Option<PathBuf>,
}

/// What is done with an export.
#[derive(Debug, clap::Subcommand)]
pub enum ExportStep {
    /// Approve an export as a compliance officer: signs approvals/<key id>.dsse.json.
    Approve(ExportDecideArgs),
    /// Reject an export as a compliance officer: one valid rejection blocks it.
    Reject(ExportDecideArgs),
    /// Verify an export (statement, files, officers' decisions) and print what it holds;
    /// exits non-zero unless it is approved k of n.
    Verify(ExportVerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportDecideArgs {
    /// The export directory.
    #[arg(value_name = "EXPORT_DIR")]
    pub dir: PathBuf,
    /// Trust policy (the officer keys).
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// The officer's private key.
    #[arg(long, value_name = "officer.key")]
    pub key: PathBuf,
    /// The officer's name.
    #[arg(long)]
    pub name: String,
    /// Why.
    #[arg(long)]
    pub reason: String,
    /// An approval counts until then: 30d, 12h, 90m or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExportVerifyArgs {
    /// The export directory.
    #[arg(value_name = "EXPORT_DIR")]
    pub dir: PathBuf,
    /// Trust policy.
    #[arg(long, value_name = "trust.toml")]
    pub trust: PathBuf,
    /// Print the verification as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BurstArgs {
    /// The training container's entrypoint (what the training image runs).
    #[command(subcommand)]
    pub step: Option<BurstStep>,
    /// The on-prem pipeline, with a [burst] section.
    #[arg(value_name = "PIPELINE.toml", required_unless_present = "cleanup")]
    pub pipeline: Option<PathBuf>,
    /// The approved export (airlock export, then airlock export approve).
    #[arg(long, value_name = "EXPORT_DIR", required_unless_present = "cleanup")]
    pub export: Option<PathBuf>,
    /// The run directory to write from the best job [default: runs/<burst id>].
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Run the jobs on this machine, as SageMaker's local mode does (S3 is still used).
    #[arg(long)]
    pub local: bool,
    /// Release what interrupted bursts left (jobs, S3 objects) instead of bursting.
    #[arg(long, conflicts_with_all = ["pipeline", "export", "out", "local"])]
    pub cleanup: bool,
    /// Trust policy [default: the pipeline's signing.trust].
    #[arg(long, value_name = "trust.toml")]
    pub trust: Option<PathBuf>,
    /// Residency policy; its [export] list decides where exports may go [default: the
    /// pipeline's publish.residency].
    #[arg(long, value_name = "residency.toml")]
    pub residency: Option<PathBuf>,
    /// The publisher's private key, which signs the audit log [default: publish.key].
    #[arg(long, value_name = "publisher.key")]
    pub key: Option<PathBuf>,
    /// The residency audit log [default: publish.audit_log].
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Where bursts keep their state and local-mode hosts.
    #[arg(long, value_name = "DIR", default_value = ".airlock/bursts")]
    pub work: PathBuf,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// The container side of a burst.
#[derive(Debug, clap::Subcommand)]
pub enum BurstStep {
    /// The training image's entrypoint (SageMaker runs it with `train`): reads
    /// /opt/ml/input (or $AIRLOCK_SM_ROOT), trains the export's pipeline with the
    /// hyperparameters given, on every host listed, and writes the run to /opt/ml/model
    /// (failures to /opt/ml/output/failure). Prints the run's digest as JSON.
    Container {
        /// SageMaker's argument: `train`.
        #[arg(value_parser = ["train"])]
        mode: String,
    },
}
