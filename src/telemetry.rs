//! Logging set-up: an env-filter (from the config's log level) and text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, writing to stdout; a second call (tests) is a no-op.
pub(crate) fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log pipelines.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Like [`init`], writing to stderr: for commands whose stdout is their output (`stix`).
pub(crate) fn init_stderr(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The longest text a log line carries from one outside source (an error from the platform,
/// a work's summary): enough to read, too little to flood the log.
const LOGGED_CHARS: usize = 512;

/// Text from outside (a platform's error body, a queue message's field, an observable's value
/// inside a summary) as a log line may carry it: control and line-separator characters
/// escaped, so that it cannot end the line and forge the next one in the text format, and cut
/// after [`LOGGED_CHARS`] characters. Short values that stand alone (ids, module names) go
/// through `domaintools::classic::shown` instead, quoted like in error messages.
pub(crate) fn logged(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    let mut out = String::with_capacity(text.len().min(LOGGED_CHARS + 8));
    for (n, c) in text.chars().enumerate() {
        if n == LOGGED_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::logged;

    #[test]
    fn logged_text_stays_on_one_line_and_is_cut() {
        let forged = "a\nINFO forged line\r\u{1b}[31m\u{2028}end";
        let shown = logged(forged);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert_eq!(shown, "a\\nINFO forged line\\r\\u{1b}[31m\\u{2028}end");
        let long = logged("é".repeat(10_000));
        assert_eq!(long.chars().count(), 513);
        assert!(long.ends_with('…'));
        assert_eq!(logged("plain text, \"quoted\""), "plain text, \"quoted\"");
    }
}
