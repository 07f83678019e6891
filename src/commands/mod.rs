//! One module per subcommand: each turns its parsed flags into the library call, prints
//! the command's result, and returns the error that `main` maps to an exit code.

use crate::cli::{AuditCommand, Command};

mod audit;
mod burst;
mod completions;
mod decide;
mod demo_data;
mod export;
mod federate;
mod keygen;
mod man;
mod package;
mod predict;
mod publish;
mod pull;
mod review;
mod route;
mod run;
mod sbom;
mod serve;
mod train;
mod verify;

/// Run the parsed subcommand.
pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => run::run(a),
        Command::DemoData(a) => demo_data::run(&a),
        Command::Train(a) => train::run(a),
        Command::Predict(a) => predict::run(&a),
        Command::Keygen(a) => keygen::run(&a),
        Command::Package(a) => package::run(a),
        Command::Verify(a) => verify::run(&a),
        Command::Review(a) => review::run(a),
        Command::Sbom(a) => sbom::run(&a),
        Command::Approve(a) => decide::run(a, airlock_schemas::Decision::Approve),
        Command::Reject(a) => decide::run(a, airlock_schemas::Decision::Reject),
        Command::Publish(a) => publish::run(*a),
        Command::Pull(a) => pull::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Audit(AuditCommand::Verify {
            log,
            trust,
            proof,
            old_checkpoint,
            registry,
            aws,
        }) => audit::verify(
            log.as_deref(),
            &trust,
            &proof,
            old_checkpoint.as_deref(),
            registry.as_deref(),
            &aws,
        ),
        Command::Audit(AuditCommand::Prove { log, entry }) => audit::prove(&log, entry),
        Command::Audit(AuditCommand::Consistency { log, from }) => audit::consistency(&log, from),
        Command::Audit(AuditCommand::Show { log, trust, json }) => {
            audit::show(&log, trust.as_deref(), json)
        }
        Command::Federate(a) => federate::run(a),
        Command::Export(a) => export::run(a),
        Command::Burst(a) => burst::run(*a),
        Command::Route(a) => route::run(a),
        Command::Completions(a) => completions::run(&a),
        Command::Man(a) => man::run(&a),
    }
}

/// Threads for scanning, hashing and verifying: every core.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Progress bars only for a person watching stderr.
fn progress(no_progress: bool) -> bool {
    use std::io::IsTerminal as _;
    !no_progress && std::io::stderr().is_terminal()
}
