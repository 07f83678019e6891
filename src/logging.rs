//! Diagnostics: progress notes and warnings go through `tracing` to stderr. Results and
//! summaries are printed by the commands themselves and do not pass through here.
//!
//! `--log-format human` (the default) writes each event's message alone on its line, as
//! the commands always printed it; `--log-format json` writes one JSON object per event.
//! `RUST_LOG` chooses what is written (for example `RUST_LOG=warn` keeps the warnings only,
//! `RUST_LOG=airlock=debug,aws_sdk_s3=debug` adds the SDK's requests); unset, airlock's own
//! crates log at `info` and its dependencies not at all.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How diagnostics are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain lines: the message alone.
    #[default]
    Human,
    /// One JSON object per line: time, level, target and fields.
    Json,
}

/// What is logged when `RUST_LOG` is unset or empty: airlock's crates (`airlock`,
/// `airlock_pipeline`, ...) at info, nothing of their dependencies.
const DEFAULT_FILTER: &str = "airlock=info";

/// Install the global subscriber. Called once, before any command runs.
pub fn init(format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::builder().parse_lossy(directives)
        }
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A subscriber already set (never, in the binary) keeps its place.
    let _ = match format {
        LogFormat::Human => builder.event_format(Plain).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The human format: the event's fields alone (for the usual event, only its message),
/// with no time, level or target, so each line reads as it did before it was an event.
#[derive(Debug, Clone, Copy)]
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
