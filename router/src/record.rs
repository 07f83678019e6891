//! The routing audit: counts of requests per class, side and outcome for every window, and
//! every refusal with its reason, appended to the hash-chained audit log by one writer
//! thread (batched: one write, one sync and one signed head per batch), so requests never
//! wait on the disk. Nothing of a request's content is ever recorded.
//!
//! If the log cannot be written, the router stops sending anything to the cloud (what it
//! could not record does not leave) and says so; on-prem traffic goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Refusals recorded as entries of their own per window; beyond it a flood of refusals is
/// only counted (in the window's entry), so it cannot fill the disk.
pub(crate) const ITEMIZED_PER_WINDOW: u64 = 1000;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use airlock_publisher::audit::{AuditLog, NewEntry};
use airlock_schemas::{AuditAction, RoutingRecord};
use airlock_trust::keys::Signer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::classify::Class;
use crate::upstream::SideName;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The upstream answered 2xx.
    Ok,
    /// The upstream answered 4xx (the caller's request).
    ClientError,
    /// The upstream failed (5xx after the retries).
    UpstreamError,
    /// Served on the premises because no cloud endpoint could (policy fallback).
    Fallback,
    /// The router answered itself: no side may or can serve the request.
    Refused,
}

impl Outcome {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientError => "client-error",
            Outcome::UpstreamError => "upstream-error",
            Outcome::Fallback => "fallback",
            Outcome::Refused => "refused",
        }
    }
}

/// The key of a count: `class/side/outcome` (`none` when no side served it).
pub(crate) fn count_key(class: Class, side: Option<SideName>, outcome: Outcome) -> String {
    format!(
        "{}/{}/{}",
        class.name(),
        side.map_or("none", SideName::name),
        outcome.name()
    )
}

/// What every entry repeats.
#[derive(Debug, Clone)]
pub(crate) struct EntryBase {
    pub statement_sha256: String,
    pub destination: String,
    pub trust_sha256: String,
    pub policy_sha256: String,
}

enum Msg {
    Refusal {
        key: String,
        reason: String,
        base: EntryBase,
        at: OffsetDateTime,
    },
    /// An upstream was taken out or back, or a reload happened: logged as an entry of its
    /// own (a `route-refusal` when a side is refused).
    Event {
        action: AuditAction,
        outcome: String,
        base: EntryBase,
    },
    Stop,
}

/// The handle requests count through.
#[derive(Debug)]
pub(crate) struct Recorder {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Refusals recorded one by one in this window (at most [`ITEMIZED_PER_WINDOW`]).
    itemized: Arc<AtomicU64>,
    tx: Mutex<mpsc::Sender<Msg>>,
    failed: Arc<AtomicBool>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl Recorder {
    /// Start the writer thread on `log`, signing with `signer`; `base` gives the window
    /// entries' fields (each event and refusal brings the base current when it was sent).
    pub fn start(log: AuditLog, signer: Signer, window: Duration, base: EntryBase) -> Self {
        let counts: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Msg>();
        let itemized: Arc<AtomicU64> = Arc::default();
        let writer = Writer {
            itemized: Arc::clone(&itemized),
            log,
            signer,
            counts: Arc::clone(&counts),
            failed: Arc::clone(&failed),
            base,
            window,
            window_start: OffsetDateTime::now_utc(),
        };
        let handle = std::thread::Builder::new()
            .name("airlock-route-audit".into())
            .spawn(move || writer.run(&rx))
            .ok();
        if handle.is_none() {
            failed.store(true, Ordering::Release);
        }
        Self {
            counts,
            itemized,
            tx: Mutex::new(tx),
            failed,
            writer: Mutex::new(handle),
        }
    }

    /// Count one request.
    pub fn count(&self, class: Class, side: Option<SideName>, outcome: Outcome) {
        let key = count_key(class, side, outcome);
        let mut c = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *c.entry(key).or_insert(0) += 1;
    }

    /// Count one refusal and record it with its reason.
    pub fn refuse(&self, class: Class, reason: String, base: &EntryBase) {
        self.count(class, None, Outcome::Refused);
        if self.itemized.fetch_add(1, Ordering::AcqRel) >= ITEMIZED_PER_WINDOW {
            return;
        }
        self.send(Msg::Refusal {
            key: count_key(class, None, Outcome::Refused),
            reason,
            base: base.clone(),
            at: OffsetDateTime::now_utc(),
        });
    }

    /// Record an event (an upstream refused or re-admitted, a reload).
    pub fn event(&self, action: AuditAction, outcome: String, base: &EntryBase) {
        self.send(Msg::Event {
            action,
            outcome,
            base: base.clone(),
        });
    }

    fn send(&self, m: Msg) {
        let sent = self.tx.lock().map(|tx| tx.send(m).is_ok()).unwrap_or(false);
        if !sent {
            self.failed.store(true, Ordering::Release);
        }
    }

    /// Whether the audit cannot be written (then nothing goes to the cloud).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Write the last window and stop the writer.
    pub fn stop(&self) {
        self.send(Msg::Stop);
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    itemized: Arc<AtomicU64>,
    log: AuditLog,
    signer: Signer,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    failed: Arc<AtomicBool>,
    base: EntryBase,
    window: Duration,
    window_start: OffsetDateTime,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        let mut deadline = Instant::now() + self.window;
        loop {
            let (batch, stop) = receive(rx, deadline.saturating_duration_since(Instant::now()));
            let mut entries: Vec<_> = batch.into_iter().map(|m| self.entry_of(m)).collect();
            if stop || Instant::now() >= deadline {
                entries.extend(self.close_window());
                deadline = Instant::now() + self.window;
            }
            if !entries.is_empty()
                && let Err(e) = self.log.append_batch(entries, &self.signer)
                && !self.failed.swap(true, Ordering::AcqRel)
            {
                eprintln!(
                    "route: cannot write the routing audit ({e}); nothing goes to the cloud until the router is restarted"
                );
            }
            if stop {
                return;
            }
        }
    }

    /// The entry of a refusal or an event.
    fn entry_of(&mut self, m: Msg) -> (NewEntry, Option<RoutingRecord>) {
        match m {
            Msg::Refusal {
                key,
                reason,
                base,
                at,
            } => {
                let t = rfc3339(at);
                let e = entry(
                    &base,
                    AuditAction::RouteRefusal,
                    format!("refused: {reason}"),
                );
                self.base = base;
                (
                    e,
                    Some(RoutingRecord {
                        window_start: t.clone(),
                        window_end: t,
                        counts: [(key, 1)].into(),
                    }),
                )
            }
            Msg::Event {
                action,
                outcome,
                base,
            } => {
                let e = entry(&base, action, outcome);
                self.base = base;
                (e, None)
            }
            // `receive` keeps Stop out of batches.
            Msg::Stop => (
                entry(&self.base, AuditAction::Route, "ok: stopped".into()),
                None,
            ),
        }
    }

    /// The window's counts as a `route` entry (none when nothing was counted), and a new
    /// window.
    fn close_window(&mut self) -> Option<(NewEntry, Option<RoutingRecord>)> {
        let now = OffsetDateTime::now_utc();
        let taken = std::mem::take(
            &mut *self
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let start = std::mem::replace(&mut self.window_start, now);
        let itemized = self.itemized.swap(0, Ordering::AcqRel);
        let outcome = if itemized > ITEMIZED_PER_WINDOW {
            format!(
                "ok: {} refusals beyond the {ITEMIZED_PER_WINDOW} recorded one by one are counted here only",
                itemized - ITEMIZED_PER_WINDOW
            )
        } else {
            "ok".into()
        };
        (!taken.is_empty()).then(|| {
            (
                entry(&self.base, AuditAction::Route, outcome),
                Some(RoutingRecord {
                    window_start: rfc3339(start),
                    window_end: rfc3339(now),
                    counts: taken,
                }),
            )
        })
    }
}

/// Wait up to `wait` for messages, then take what else is queued (at most 1024); whether
/// the router stops.
fn receive(rx: &mpsc::Receiver<Msg>, wait: Duration) -> (Vec<Msg>, bool) {
    let mut batch = Vec::new();
    let mut next = match rx.recv_timeout(wait) {
        Ok(m) => Some(m),
        Err(mpsc::RecvTimeoutError::Timeout) => None,
        Err(mpsc::RecvTimeoutError::Disconnected) => return (batch, true),
    };
    while let Some(m) = next.take() {
        if matches!(m, Msg::Stop) {
            return (batch, true);
        }
        batch.push(m);
        if batch.len() >= 1024 {
            break;
        }
        next = rx.try_recv().ok();
    }
    (batch, false)
}

fn entry(base: &EntryBase, action: AuditAction, outcome: String) -> NewEntry {
    NewEntry {
        action,
        artifacts: [("statement.json".to_owned(), base.statement_sha256.clone())].into(),
        destination: base.destination.clone(),
        verified_region: None,
        approvals: Vec::new(),
        trust_policy_sha256: base.trust_sha256.clone(),
        residency_policy_sha256: base.policy_sha256.clone(),
        outcome,
    }
}
