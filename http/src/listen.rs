//! Accepting connections without spinning: when `accept` fails for want of a resource
//! (no file descriptor left, EMFILE or ENFILE; no buffer space), the pending connection
//! stays in the kernel's backlog and the next `accept` fails at once again, so a loop that
//! simply retries burns a core and starves the connections it is serving. Such failures
//! back off instead (5 ms doubling up to 1 s, logged once per episode) until a
//! descriptor is free again; failures that concern one connection only are skipped.

use std::io;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Shortest pause after a failed accept.
const MIN_PAUSE: Duration = Duration::from_millis(5);
/// Longest pause after a failed accept.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The pause after the accept failures in a row so far.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Failures in a row.
    failures: u32,
}

impl Backoff {
    /// Whether `e` concerns only the connection being accepted (it went away before we
    /// took it), so the next one can be accepted at once.
    pub fn is_per_connection(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted
        )
    }

    /// Record a failure that is not per connection and say how long to pause.
    pub fn failed(&mut self) -> Duration {
        let pause = MIN_PAUSE
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_PAUSE);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    /// Record a success; returns how many failures in a row it ends.
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// The next connection, pausing after failures that would repeat at once.
pub async fn accept(listener: &TcpListener, backoff: &mut Backoff) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let failures = backoff.succeeded();
                if failures > 0 {
                    eprintln!("accepting connections again after {failures} failed tries");
                }
                return stream;
            }
            Err(e) if Backoff::is_per_connection(&e) => {}
            Err(e) => {
                let pause = backoff.failed();
                if pause == MIN_PAUSE {
                    eprintln!(
                        "cannot accept a connection: {e}; pausing (up to {} s between tries) \
                         until connections close",
                        MAX_PAUSE.as_secs()
                    );
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_reset_on_success() {
        let mut b = Backoff::default();
        let pauses: Vec<u64> = (0..12).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(
            pauses,
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]
        );
        assert_eq!(b.succeeded(), 12);
        assert_eq!(b.failed(), MIN_PAUSE);
        for _ in 0..100 {
            assert!(b.failed() <= MAX_PAUSE);
        }
    }

    #[test]
    fn only_errors_about_one_connection_are_retried_at_once() {
        let emfile = io::Error::from_raw_os_error(24);
        assert!(!Backoff::is_per_connection(&emfile));
        assert!(Backoff::is_per_connection(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}
