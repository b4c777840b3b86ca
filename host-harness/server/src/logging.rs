//! Structured logs through `tracing`: one line per handled call, with the
//! merchant, invoice, event id and outcome; text for a terminal, JSON
//! (`--log-format json`) for a log pipeline. `RUST_LOG` sets the level
//! (default `info`). Nothing logged carries a secret: keys never reach the
//! log, and pay-link tokens are written as `{token}`.

use crate::escape::escape_controls;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format;

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
        LogFormat::Text => Box::new(builder.fmt_fields(one_line_fields()).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Text fields written on one line whatever they hold: a CR, an LF or any
/// other control character in a value (an invoice number, a Stripe message,
/// an id from a request) is escaped, so no value can forge a log line
/// (security review S16). JSON escapes them itself.
fn one_line_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    format::debug_fn(|w, field, value| {
        let text = escape_controls(&format!("{value:?}"));
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{}={text}", field.name())
        }
    })
    .delimited(" ")
}

/// Logs to stderr for the rest of the process (a second call changes nothing).
/// Colour only on a terminal: a log file gets plain text.
pub fn init(format: LogFormat) {
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing::subscriber::set_global_default(subscriber(format, std::io::stderr, colour));
}

/// Logs to the file at `path` (made anew, readable by its owner only) for
/// the rest of the process.
pub fn init_to_file(format: LogFormat, path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    init_with(format, std::sync::Mutex::new(file));
    Ok(())
}

/// Logs to `writer` for the rest of the process; false if logging was
/// already set up.
pub fn init_with<W>(format: LogFormat, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing::subscriber::set_global_default(subscriber(format, writer, false)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Security review S16: a value with CR/LF forges no line.
    #[test]
    fn a_value_with_a_newline_writes_no_second_line() {
        let out = Captured::default();
        let writer = out.clone();
        let sub = subscriber(LogFormat::Text, move || writer.clone(), false);
        tracing::subscriber::with_default(sub, || {
            let number = "INV-1\nINFO forged=line";
            tracing::info!(invoice = %number, account = "acct_x\r\nX: y", "sent {}", "a\nb");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(r"INV-1\nINFO forged=line"), "{text}");
    }
}
