//! `airlock`: train on-prem, serve in the cloud.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod exit;
mod pipeline_run;
mod review_cmd;
mod serve;

use exit::Failure;

/// Train models on-prem and ship only their weights, stripped, checked, signed and
/// approved, to the cloud.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None, propagate_version = true)]
#[command(after_help = exit::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline end to end, resumably: train, package, approval gate, publish, deploy.
    /// A stage whose inputs are unchanged is skipped. Without a [signing] section in the
    /// pipeline this is a DEMO with local keys and automatic demo approval.
    Run(RunArgs),
    /// Write a synthetic card-transaction table (with realistic identifiers) to train on.
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
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    bundle: PathBuf,
    /// Registry: file:///absolute/path or s3://bucket[/prefix].
    #[arg(long, value_name = "URI")]
    to: String,
    /// Trust policy (builder, officer and publisher keys; approvals required).
    #[arg(long, value_name = "trust.toml")]
    trust: PathBuf,
    /// Residency policy: where releases may go.
    #[arg(long, value_name = "residency.toml")]
    residency: PathBuf,
    /// Audit log to append to (created if absent).
    #[arg(long, value_name = "FILE")]
    audit_log: PathBuf,
    /// The publisher's private key (signs the audit log's head).
    #[arg(long, value_name = "publisher.key")]
    key: PathBuf,
    /// The run the bundle was packaged from: what leaves is scanned for its training data
    /// [default: the run named in BUNDLE_DIR.run.json, which `airlock package` writes].
    #[arg(long, value_name = "RUN_DIR")]
    run: Option<PathBuf>,
    #[command(flatten)]
    aws: AwsArgs,
    /// Also register the release in the SageMaker Model Registry (implied by --deploy).
    #[arg(long)]
    sagemaker: bool,
    /// SageMaker model package group [default: the model's name].
    #[arg(long, value_name = "NAME")]
    model_package_group: Option<String>,
    /// Serving image for SageMaker (an ECR URI of an image running `airlock serve`).
    #[arg(long, value_name = "URI", required_if_eq("sagemaker", "true"))]
    image: Option<String>,
    /// Deploy to this SageMaker real-time endpoint (created, or updated to this release),
    /// and wait until it is InService.
    #[arg(long, value_name = "ENDPOINT", requires_all = ["image", "role"])]
    deploy: Option<String>,
    /// IAM role SageMaker assumes to run the endpoint.
    #[arg(long, value_name = "ARN")]
    role: Option<String>,
    /// Endpoint instance type.
    #[arg(long, value_name = "TYPE", default_value = "ml.m5.large")]
    instance_type: String,
    /// Endpoint instance count.
    #[arg(long, value_name = "N", default_value_t = 1)]
    instance_count: i32,
    /// Seconds to wait for the endpoint to come InService.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    deploy_timeout: u64,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The bundle to serve.
    #[arg(long, value_name = "DIR", default_value = "/opt/ml/model")]
    model_dir: PathBuf,
    /// Trust policy (builder and officer keys; approvals required).
    #[arg(long, value_name = "trust.toml")]
    trust: PathBuf,
    /// Port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    bind: std::net::IpAddr,
    /// Where the model runs: cpu, or cuda:N (needs a build with the cuda feature).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    device: airlock_infer::DeviceSpec,
    /// Close a connection whose request headers are not complete within this time (also
    /// the idle time allowed between requests on a kept-alive connection).
    #[arg(long, value_name = "SECONDS", default_value = serve::Limits::HEADER_TIMEOUT_S, value_parser = serve::parse_seconds)]
    header_timeout: std::time::Duration,
    /// Answer 408 and close the connection when a request body is not complete within
    /// this time; close it too when the client takes no response bytes for this long.
    #[arg(long, value_name = "SECONDS", default_value = serve::Limits::BODY_TIMEOUT_S, value_parser = serve::parse_seconds)]
    body_timeout: std::time::Duration,
    /// Connections open at once; further clients wait until one closes.
    #[arg(long, value_name = "N", default_value_t = serve::Limits::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
}

#[derive(Debug, clap::Args)]
struct PullArgs {
    /// REGISTRY/models/NAME[@VERSION], e.g. s3://bucket/prod/models/fraud-detector@1.0.0;
    /// without a version, the newest release that verifies and is approved.
    #[arg(value_name = "URI")]
    uri: String,
    /// Trust policy (builder and officer keys; approvals required).
    #[arg(long, value_name = "trust.toml")]
    trust: PathBuf,
    /// Directory to install the release in (replaced only by a verified release).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Allow replacing a newer verified release in DIR with an older one.
    #[arg(long)]
    allow_downgrade: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

/// AWS settings. Credentials and region come from the standard chain (environment,
/// profiles, web identity, instance metadata).
#[derive(Debug, clap::Args)]
struct AwsArgs {
    /// Endpoint for S3-compatible stores or local servers (also: AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// AWS region (else AWS_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Checksums on uploads: sha256 (per object and per part, checked by the store) or off
    /// (for stores that reject checksum headers). Every upload is read back either way.
    #[arg(long, value_name = "MODE", default_value = "sha256")]
    s3_checksums: airlock_publisher::aws::ChecksumPolicy,
    /// Multipart part size in MiB (5 to 5120; raised as needed to stay within S3's 10,000
    /// parts).
    #[arg(long, value_name = "MiB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120))]
    part_size: u64,
    /// Parts in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    upload_concurrency: u64,
}

impl AwsArgs {
    fn options(&self) -> airlock_publisher::aws::AwsOptions {
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
enum AuditCommand {
    /// Verify a log offline: hash chain, and its head signed by a publisher key. With
    /// --registry, also against the registry's witnesses: its copy of the signed head must
    /// be a point of the log, and every release it holds must have its entry in the log.
    Verify {
        /// The audit log.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// Trust policy naming the publisher keys.
        #[arg(long, value_name = "trust.toml")]
        trust: PathBuf,
        /// A registry the log's releases went to: file:///absolute/path or
        /// s3://bucket[/prefix]. Catches a log whose tail was cut (even with an older signed
        /// head put back).
        #[arg(long, value_name = "URI")]
        registry: Option<String>,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Print a log's entries as a table (no verification: use `audit verify`).
    Show {
        /// The audit log.
        #[arg(value_name = "LOG")]
        log: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct ReviewArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    bundle: PathBuf,
    /// Trust policy to check signatures and approvals against.
    #[arg(long, value_name = "trust.toml")]
    trust: PathBuf,
    /// The HTML page to write.
    #[arg(long, value_name = "review.html")]
    out: PathBuf,
    /// The release this one replaces, to show what changed.
    #[arg(long, value_name = "OLD_BUNDLE_DIR")]
    previous: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct DecideArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    bundle: PathBuf,
    /// Trust policy: the bundle must verify against it, and the key must be an officer's.
    #[arg(long, value_name = "trust.toml")]
    trust: PathBuf,
    /// The officer's private key (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "officer.key")]
    key: PathBuf,
    /// The officer's name, as it should appear in the record.
    #[arg(long)]
    name: String,
    /// Why: shown to reviewers and auditors.
    #[arg(long)]
    reason: String,
    /// When an approval stops counting: 30d, 12h, 90m, or an RFC 3339 time (approvals
    /// only: a rejection never expires).
    #[arg(long, value_name = "DURATION|TIME")]
    expires: Option<String>,
}

#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Path prefix: writes PREFIX.key and PREFIX.pub (neither may exist).
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct PackageArgs {
    /// Run directory written by `airlock train`.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// The builder's private key (PKCS#8 PEM, not readable by group or others).
    #[arg(long, value_name = "builder.key")]
    key: PathBuf,
    /// Bundle directory to create (must not exist or be empty). A refused release writes
    /// its leak report to BUNDLE_DIR.leak-report.json instead.
    #[arg(long, value_name = "BUNDLE_DIR")]
    out: PathBuf,
    /// Threads for leak scanning and hashing [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Release bundle directory.
    #[arg(value_name = "BUNDLE_DIR")]
    bundle: PathBuf,
    /// Trust policy naming the builder keys whose signatures count.
    #[arg(long, value_name = "trust.toml")]
    trust: PathBuf,
    /// Also recompute the whole-file SHA-256 of a multi-shard model (the signed per-shard
    /// digests already pin every byte).
    #[arg(long)]
    full_digest: bool,
    /// Threads for hashing [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Also require the trust policy's k distinct, valid officer approvals and no valid rejection.
    #[arg(long)]
    require_approvals: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Stages: train → package → gate → publish → deploy. Each stage's inputs are digested and
recorded in .airlock/stages/ when it completes; an unchanged stage is skipped.

Exit codes: 0 released (or stopped by --until), 3 invalid pipeline, 4 the bundle does not
verify, 5 a leak check refused the release, 6 waiting for officer approvals (the commands
to run are printed; run again afterwards), 7 residency refused a destination, 130
interrupted (run again to resume).")]
struct RunArgs {
    /// Pipeline file (for example pipelines/fraud-detector.toml).
    #[arg(value_name = "PIPELINE.toml")]
    pipeline: PathBuf,
    /// Directory for runs/, releases/, demo/ and the stage records in .airlock/.
    #[arg(long, default_value = ".")]
    workdir: PathBuf,
    /// Rerun this stage and every later one, even when their inputs are unchanged.
    #[arg(long, value_enum, value_name = "STAGE")]
    from: Option<pipeline_run::Stage>,
    /// Stop after this stage.
    #[arg(long, value_enum, value_name = "STAGE")]
    until: Option<pipeline_run::Stage>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, clap::Args)]
struct DemoDataArgs {
    /// Number of data rows.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Seed: the same seed writes the same file.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// CSV file to write (replaced atomically if it exists).
    #[arg(long, value_name = "FILE.csv")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Pipeline file (for example pipelines/fraud-detector.toml).
    #[arg(value_name = "PIPELINE.toml")]
    pipeline: PathBuf,
    /// Run directory to create; it must not exist or be empty.
    /// [default: runs/<name>-<version>-<unix time>]
    #[arg(long, value_name = "RUN_DIR")]
    out: Option<PathBuf>,
    /// Device to train on: cpu, cuda or cuda:N. Overrides the pipeline's training.device.
    #[arg(long, value_name = "cpu|cuda:N")]
    device: Option<String>,
    /// No progress bars (epoch summaries still go to stderr and the run log).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, clap::Args)]
struct PredictArgs {
    /// Run directory written by `airlock train`.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// CSV with a header holding at least the run's feature columns.
    #[arg(long, value_name = "ROWS.csv")]
    input: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Run(a) = &cli.command
        && let (Some(from), Some(until)) = (a.from, a.until)
        && from > until
    {
        use clap::CommandFactory as _;
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--from {from:?} comes after --until {until:?}").to_lowercase(),
            )
            .exit();
    }
    if let Command::Reject(a) = &cli.command
        && a.expires.is_some()
    {
        use clap::CommandFactory as _;
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--expires applies to approvals only: a rejection cannot expire, it blocks the release until the officer replaces it with an approval",
            )
            .exit();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let failure = Failure::classify(&err);
            eprintln!("error: {err:#}");
            failure.code()
        }
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn decide(a: DecideArgs, decision: airlock_schemas::Decision) -> anyhow::Result<()> {
    let trust = airlock_trust::Trust::load(&a.trust)?;
    let path = airlock_trust::approvals::decide(
        &airlock_trust::approvals::DecisionRequest {
            bundle: a.bundle,
            key: a.key,
            name: a.name,
            reason: a.reason,
            decision,
            expires: a.expires,
        },
        &trust,
        cores(),
    )?;
    eprintln!("recorded: {}", path.display());
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => pipeline_run::run(&pipeline_run::RunOptions {
            pipeline: a.pipeline,
            workdir: a.workdir,
            progress: !a.no_progress && std::io::stderr().is_terminal(),
            threads: cores(),
            from: a.from,
            until: a.until,
        }),
        Command::DemoData(a) => {
            let s = airlock_model::demo::write_demo_csv(&a.out, a.rows, a.seed)
                .with_context(|| format!("cannot write demo data to {}", a.out.display()))?;
            eprintln!(
                "wrote {} synthetic transactions ({} fraud, {:.1}%) to {}",
                s.rows,
                s.frauds,
                100.0 * s.frauds as f64 / s.rows.max(1) as f64,
                a.out.display()
            );
            Ok(())
        }
        Command::Train(a) => {
            let summary = airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
                pipeline: a.pipeline,
                out: a.out,
                device: a.device,
                cpu_backend: None,
                progress: !a.no_progress && std::io::stderr().is_terminal(),
            })?;
            eprintln!(
                "holdout ROC AUC {:.4}, accuracy {:.4}",
                summary.record.holdout.roc_auc, summary.record.holdout.accuracy
            );
            println!("{}", summary.run_dir.display());
            Ok(())
        }
        Command::Keygen(a) => {
            let g = airlock_trust::keys::generate(&a.out)?;
            eprintln!(
                "wrote {} (private, mode 0600) and {}",
                g.private_key.display(),
                g.public_key.display()
            );
            println!("{}", g.key_id);
            Ok(())
        }
        Command::Package(a) => {
            let summary = airlock_packager::package(&airlock_packager::PackageOptions {
                run_dir: a.run,
                key: a.key,
                out: a.out,
                threads: a.threads.unwrap_or_else(cores),
                progress: Some(|secs, what| eprintln!("[{secs:6.1} s] {what}")),
            })?;
            for l in &summary.report.layers {
                eprintln!("  {} {:<22} pass", l.id, l.name);
            }
            eprintln!("model.safetensors sha256 {}", summary.model_sha256);
            println!("{}", summary.bundle.display());
            Ok(())
        }
        Command::Verify(a) => {
            let trust = airlock_trust::Trust::load(&a.trust)?;
            if !a.bundle.is_dir() {
                anyhow::bail!(exit::BadInputError(format!(
                    "{} is not a bundle directory",
                    a.bundle.display()
                )));
            }
            // A report: nothing here uses the model's bytes, so they are streamed through
            // the digests and not kept (the same checks, at the hardware limit).
            let v = airlock_trust::verify_bundle_streamed(
                &a.bundle,
                &trust,
                a.threads.unwrap_or_else(cores),
                a.full_digest,
            );
            for c in &v.checks {
                eprintln!(
                    "  {} {}: {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            let mut approved = true;
            if a.require_approvals {
                let s = airlock_trust::approvals::evaluate(&trust, &v, time_now());
                eprintln!(
                    "  {} approvals: {} of {} required{}",
                    if s.approved() { "ok  " } else { "FAIL" },
                    s.approvals,
                    s.required,
                    if s.rejected {
                        ", and a valid rejection blocks the release"
                    } else {
                        ""
                    }
                );
                for d in &s.decisions {
                    eprintln!(
                        "       {} {} by {} ({}): {}",
                        if d.counts { "counts " } else { "ignored" },
                        d.decision.map_or("?", |d| match d {
                            airlock_schemas::Decision::Approve => "approve",
                            airlock_schemas::Decision::Reject => "reject",
                        }),
                        d.officer.as_deref().unwrap_or("?"),
                        d.file,
                        d.why
                    );
                }
                approved = s.approved();
            }
            if v.ok() && approved {
                println!("verified: {}", a.bundle.display());
                Ok(())
            } else {
                Err(exit::VerificationFailed(a.bundle.display().to_string()).into())
            }
        }
        Command::Review(a) => {
            let text = review_cmd::review(&review_cmd::ReviewOptions {
                bundle: a.bundle,
                trust: a.trust,
                out: a.out.clone(),
                previous: a.previous,
                threads: cores(),
            })?;
            print!("{text}");
            eprintln!("wrote {}", a.out.display());
            Ok(())
        }
        Command::Publish(a) => {
            let s =
                airlock_publisher::publish::publish(&airlock_publisher::publish::PublishOptions {
                    bundle: a.bundle,
                    to: a.to.clone(),
                    trust: a.trust,
                    residency: a.residency,
                    audit_log: a.audit_log,
                    key: a.key,
                    threads: cores(),
                    aws: a.aws.options(),
                    sagemaker: (a.sagemaker || a.deploy.is_some()).then(|| {
                        airlock_publisher::sagemaker::SageMakerOptions {
                            group: a.model_package_group.clone(),
                            image: a.image.clone().unwrap_or_default(),
                            deploy: a.deploy.clone().map(|endpoint| {
                                airlock_publisher::sagemaker::DeployOptions {
                                    endpoint,
                                    role: a.role.clone().unwrap_or_default(),
                                    instance_type: a.instance_type.clone(),
                                    instance_count: a.instance_count,
                                    timeout: std::time::Duration::from_secs(a.deploy_timeout),
                                    poll: std::time::Duration::from_secs(
                                        if a.aws.endpoint_url.is_some() { 1 } else { 15 },
                                    ),
                                }
                            }),
                        }
                    }),
                    deploy_only: false,
                    run_dir: a.run.clone(),
                })?;
            eprintln!(
                "uploaded {} blobs ({} bytes), {} already present; index {} (region {}); {} audit entries, last {}",
                s.uploaded,
                s.uploaded_bytes,
                s.skipped,
                s.index,
                s.region,
                s.audit_entries,
                s.audit_seq
            );
            if let Some(p) = &s.model_package {
                eprintln!("model package {p}");
            }
            if let Some(e) = &s.endpoint {
                eprintln!("endpoint {e} InService");
            }
            println!("{}/{}", a.to.trim_end_matches('/'), s.index);
            Ok(())
        }
        Command::Serve(a) => serve::serve(&serve::ServeOptions {
            model_dir: a.model_dir,
            trust: a.trust,
            listen: std::net::SocketAddr::new(a.bind, a.port),
            threads: cores(),
            device: a.device,
            limits: serve::Limits {
                header_timeout: a.header_timeout,
                body_timeout: a.body_timeout,
                max_connections: a.max_connections as usize,
            },
        }),
        Command::Pull(a) => {
            let s = airlock_publisher::pull::pull(&airlock_publisher::pull::PullOptions {
                uri: a.uri,
                trust: a.trust,
                out: a.out.clone(),
                allow_downgrade: a.allow_downgrade,
                threads: cores(),
                aws: a.aws.options(),
            })?;
            eprintln!(
                "verified and installed {} {} ({} bytes, {} approvals) in {}",
                s.name,
                s.version,
                s.bytes,
                s.approvals,
                a.out.display()
            );
            println!("{}", a.out.display());
            Ok(())
        }
        Command::Audit(AuditCommand::Verify {
            log,
            trust,
            registry,
            aws,
        }) => {
            let trust = airlock_trust::Trust::load(&trust)?;
            match airlock_publisher::audit::verify_chain(&log, &trust) {
                Ok(chain) => {
                    println!(
                        "verified: {} entries, head signed by a publisher key",
                        chain.len()
                    );
                    match registry {
                        Some(uri) => audit_witness(&log, &chain, &uri, &trust, &aws),
                        None => Ok(()),
                    }
                }
                Err(e @ airlock_publisher::audit::AuditError::Invalid { .. }) => {
                    eprintln!("  FAIL {e}");
                    Err(exit::VerificationFailed(log.display().to_string()).into())
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Audit(AuditCommand::Show { log }) => {
            let text = std::fs::read_to_string(&log)
                .with_context(|| format!("cannot read {}", log.display()))?;
            let (entries, _) = airlock_publisher::audit::parse_chain(&text)
                .map_err(|p| exit::BadInputError(format!("{}: {p}", log.display())))?;
            print!("{}", airlock_publisher::audit::table(&entries));
            Ok(())
        }
        Command::Approve(a) => decide(a, airlock_schemas::Decision::Approve),
        Command::Reject(a) => decide(a, airlock_schemas::Decision::Reject),
        Command::Predict(a) => {
            let probs = airlock_infer::predict_csv(&a.run, &a.input)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            writeln!(out, "probability")?;
            for p in probs {
                writeln!(out, "{p:.6}")?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

/// `airlock audit verify --registry`: the registry's witnesses against a verified log.
fn audit_witness(
    log: &std::path::Path,
    chain: &airlock_publisher::audit::Chain,
    uri: &str,
    trust: &airlock_trust::Trust,
    aws: &AwsArgs,
) -> anyhow::Result<()> {
    use airlock_publisher::witness;
    let registry = airlock_publisher::registry::open(uri, || {
        airlock_publisher::aws::Aws::load(aws.options())
    })?;
    let name = witness::copy_name(log);
    match witness::check_log(chain, &name, registry.as_ref(), trust) {
        Ok(r) => {
            println!(
                "verified against {uri}: its copy of the signed head (entry {}) is a point of the log; {} release(s) recorded in it{}",
                r.head_seq,
                r.releases.len(),
                if r.other_logs > 0 {
                    format!(
                        " ({} recorded in other audit logs, not checked)",
                        r.other_logs
                    )
                } else {
                    String::new()
                }
            );
            for (n, v, seq) in &r.releases {
                println!("  {n} {v}: entry {seq}");
            }
            Ok(())
        }
        Err(witness::WitnessError::Refused(why)) => {
            eprintln!("  FAIL {}: {why}", log.display());
            Err(exit::VerificationFailed(log.display().to_string()).into())
        }
        Err(witness::WitnessError::Registry(e)) => Err(e.into()),
    }
}
