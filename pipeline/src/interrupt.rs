//! SIGINT and SIGTERM during a run: say which stage was cut short and how to resume.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;

/// The stage running now, for the interrupt message.
#[derive(Debug, Clone)]
pub(crate) struct Current(Arc<Mutex<&'static str>>);

impl Default for Current {
    fn default() -> Self {
        Self(Arc::new(Mutex::new("start")))
    }
}

impl Current {
    /// `stage` starts.
    pub fn set(&self, stage: &'static str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = stage;
    }

    fn get(&self) -> &'static str {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// On SIGINT or SIGTERM: let an audit append finish, say what happens next, exit 130.
/// Nothing else needs undoing: every stage output is staged or recorded atomically.
pub(crate) fn exit_on_interrupt(current: Current) -> anyhow::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("airlock-interrupt".into())
        .spawn(move || {
            if let Err(e) = wait_for_signal(&ready_tx) {
                let _ = ready_tx.send(Err(e));
                return;
            }
            let _quiet = airlock_publisher::audit::quiesce();
            let stage = current.get();
            eprintln!(
                "\ninterrupted during {stage}: its output is not recorded as complete, so no \
                 later stage will use it. Run the same command again to resume."
            );
            std::process::exit(130);
        })
        .context("cannot start the interrupt handler")?;
    ready_rx
        .recv()
        .context("the interrupt handler did not start")?
        .context("cannot handle SIGINT")
}

/// Install the handlers, say so on `ready`, and wait for the first signal. An error means
/// the handlers could not be installed (nothing was sent on `ready`).
fn wait_for_signal(ready: &std::sync::mpsc::Sender<std::io::Result<()>>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let _ = ready.send(Ok(()));
    rt.block_on(async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    });
    Ok(())
}
