//! `airlock-serve`: the serving image's entry point. SageMaker starts a serving container
//! as `docker run IMAGE serve`; this binary takes `serve` (or nothing) and finds the rest
//! in the environment (see [`airlock_serve::sagemaker`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_serve::sagemaker::{self, Flags};
use airlock_serve::{ErrorKind, Limits, ServeError, ServeOptions};
use clap::Parser;

/// Shown at the end of `airlock-serve --help`.
const AFTER_HELP: &str = "\
Environment (a flag overrides its variable; a variable that is set must be valid):
  SM_MODEL_DIR                    the bundle directory (default /opt/ml/model, where
                                  SageMaker mounts the model)
  AIRLOCK_TRUST                   the trust policy (default /etc/airlock/trust.toml, baked
                                  into the image; the keys it names sit beside it)
  SAGEMAKER_BIND_TO_PORT          the port (default 8080; 0 takes a free one)
  SAGEMAKER_MODEL_SERVER_WORKERS  worker threads: the runtime's, the verification's, and
                                  at most this many scoring large requests at once
                                  (default: one per core)

Exit codes:
  0  stopped on SIGTERM or SIGINT after draining
  1  failure of the environment (cannot listen, a bug)
  2  usage error (bad flags)
  3  invalid input (settings, trust policy, device)
  4  the bundle is refused (it does not verify, lacks its approvals, or is missing)";

/// Serve a verified, approved bundle on SageMaker's container contract: GET /ping and
/// POST /invocations (application/json or text/csv).
#[derive(Debug, Parser)]
#[command(name = "airlock-serve", version, after_help = AFTER_HELP)]
struct Cli {
    /// What to do; `serve`, the only command, is also the default (SageMaker runs the
    /// container as `docker run IMAGE serve`).
    #[arg(value_enum, value_name = "COMMAND")]
    command: Option<Mode>,
    /// The bundle to serve [env: SM_MODEL_DIR; default: /opt/ml/model].
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Trust policy (builder and officer keys; approvals required) [env: AIRLOCK_TRUST;
    /// default: /etc/airlock/trust.toml].
    #[arg(long, value_name = "trust.toml")]
    trust: Option<PathBuf>,
    /// Port [env: SAGEMAKER_BIND_TO_PORT; default: 8080].
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Worker threads [env: SAGEMAKER_MODEL_SERVER_WORKERS; default: one per core].
    #[arg(long, value_name = "N", value_parser = sagemaker::parse_workers)]
    workers: Option<usize>,
    /// Where the model runs: cpu, or cuda:N (needs a build with the cuda feature).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    device: airlock_infer::DeviceSpec,
    /// Close a connection whose request headers are not complete within this time (also
    /// the idle time allowed between requests on a kept-alive connection).
    #[arg(long, value_name = "SECONDS", default_value = Limits::HEADER_TIMEOUT_S, value_parser = airlock_serve::parse_seconds)]
    header_timeout: Duration,
    /// Answer 408 and close the connection when a request body is not complete within
    /// this time; close it too when the client takes no response bytes for this long.
    #[arg(long, value_name = "SECONDS", default_value = Limits::BODY_TIMEOUT_S, value_parser = airlock_serve::parse_seconds)]
    body_timeout: Duration,
    /// Connections open at once; further clients wait until one closes.
    #[arg(long, value_name = "N", default_value_t = Limits::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
}

/// The commands.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    /// Verify the bundle, then serve it.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes on one line, as `airlock` prints them.
            let mut msg = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                msg = format!("{msg}: {c}");
                cause = c.source();
            }
            eprintln!("error: {msg}");
            ExitCode::from(match e.kind() {
                ErrorKind::Environment => 1,
                ErrorKind::BadInput => 3,
                ErrorKind::Refused => 4,
            })
        }
    }
}

fn run(cli: Cli) -> Result<(), ServeError> {
    let Mode::Serve = cli.command.unwrap_or(Mode::Serve);
    let s = sagemaker::resolve(
        &Flags {
            model_dir: cli.model_dir,
            trust: cli.trust,
            port: cli.port,
            workers: cli.workers,
        },
        |k| std::env::var_os(k),
    )?;
    let threads = s
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    airlock_serve::serve_with(
        &ServeOptions {
            model_dir: s.model_dir,
            trust: s.trust,
            listen: SocketAddr::new(cli.bind, s.port),
            threads,
            device: cli.device,
            limits: Limits {
                header_timeout: cli.header_timeout,
                body_timeout: cli.body_timeout,
                max_connections: cli.max_connections as usize,
            },
        },
        s.workers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_only_command_and_the_default() {
        for args in [&["airlock-serve"][..], &["airlock-serve", "serve"]] {
            let cli = Cli::try_parse_from(args).expect("parses");
            assert!(matches!(cli.command.unwrap_or(Mode::Serve), Mode::Serve));
            assert_eq!(cli.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            assert_eq!(cli.port, None);
        }
        let e = Cli::try_parse_from(["airlock-serve", "train"]).expect_err("not a command");
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        let e = Cli::try_parse_from(["airlock-serve", "serve", "--workers", "0"])
            .expect_err("no workers");
        assert!(e.to_string().contains("not a number of workers"), "{e}");
    }
}
