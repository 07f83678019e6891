//! `airlock`: train on-prem, serve in the cloud.
//!
//! `cli` holds the command line's types, `commands` one module per subcommand; this file
//! only parses, dispatches and turns an error into its exit code.

use std::process::ExitCode;

mod cli;
mod commands;
mod exit;
mod logging;
mod review_cmd;
mod serve;

use exit::Failure;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_checked();
    logging::init(cli.log_format);
    match commands::dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let failure = Failure::classify(&err);
            eprintln!("error: {err:#}");
            failure.code()
        }
    }
}
