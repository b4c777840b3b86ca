//! Structured logs through `tracing`: one line per handled call, with the
//! merchant, invoice, event id and outcome; text for a terminal, JSON
//! (`--log-format json`) for a log pipeline. `RUST_LOG` sets the level
//! (default `info`). Nothing logged carries a secret: keys never reach the
//! log, and pay-link tokens are written as `{token}`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line; the request's fields under `span`.
    Json,
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// A subscriber writing `format` to `writer`, in colour only when `colour`.
pub fn subscriber<W>(
    format: LogFormat,
    writer: W,
    colour: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(colour)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Logs to stderr for the rest of the process (a second call changes nothing).
/// Colour only on a terminal: a log file gets plain text.
pub fn init(format: LogFormat) {
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing::subscriber::set_global_default(subscriber(format, std::io::stderr, colour));
}

/// Logs to `writer` for the rest of the process; false if logging was
/// already set up.
pub fn init_with<W>(format: LogFormat, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing::subscriber::set_global_default(subscriber(format, writer, false)).is_ok()
}
