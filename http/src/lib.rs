#![doc = include_str!("../README.md")]

pub mod listen;
pub mod stall;

/// Stop accepting (`listener` is closed) and wait up to 30 s for the connections `graceful`
/// watches to finish their requests; say so on stderr.
pub async fn drain(
    listener: tokio::net::TcpListener,
    graceful: hyper_util::server::graceful::GracefulShutdown,
) {
    eprintln!("stopping: draining in-flight requests");
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
            eprintln!("gave up waiting for connections after 30 s");
        }
    }
    eprintln!("stopped");
}
