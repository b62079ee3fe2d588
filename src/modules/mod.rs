//! The DomainTools MISP modules: one file per module, each with a pure mapping from the
//! DomainTools answer to MISP entries, plus what they share (request context, settings, errors).

pub(crate) mod analyze;
pub mod classic;
pub mod historic;
pub(crate) mod iris_detect;
pub(crate) mod iris_enrich;
pub(crate) mod iris_enrich_objects;
pub(crate) mod iris_import;
pub(crate) mod iris_investigate;
pub(crate) mod iris_investigate_objects;
pub(crate) mod iris_objects;
pub(crate) mod iris_pivot;
pub(crate) mod iris_record;
pub(crate) mod iris_search;
pub(crate) mod pivot;

/// The comparator of the reference's golden outputs (`tests/golden/*.txt`): the integration
/// tests run it on served replies, and the golden unit tests below on the mapping functions,
/// so both compare with the same files by the same code.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../tests/it/common/golden.rs"]
mod golden;
#[cfg(test)]
mod golden_classic;
#[cfg(test)]
mod golden_iris;
#[cfg(test)]
mod misp_validity;

/// What the golden unit tests map: the fake's recorded DomainTools answers, on the day the
/// reference's outputs were produced.
#[cfg(test)]
mod recorded {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::Value;

    /// A recorded DomainTools answer (the whole envelope) from the fake's fixtures.
    pub(super) fn fixture(name: &str) -> Value {
        let path = format!("{}/{name}", domaintools_fake::FIXTURES_DIR);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The day the reference's golden outputs were produced.
    pub(super) fn golden_day() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
    }
}

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::misp::{self, Form, Payload};
use domaintools::classic::shown;
use domaintools::{Caller, Client, Credentials};

/// What the comment of every demo-mode entry starts with.
pub(crate) const DEMO_NOTE: &str = "[DEMO DATA, not live DomainTools results]";

/// Runs a module on one request.
pub(crate) type RunFn = fn(Context, Input) -> BoxFuture<'static, Result<Reply, ModuleError>>;

/// A module: its MISP name, its descriptor (exactly what `/modules` serves for it, from the
/// top-level `modules/` folder) and its handler.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    /// The misp-modules name, e.g. `DomainTools-Iris-Enrich`.
    pub name: &'static str,
    /// The JSON descriptor, embedded at build time.
    pub(crate) descriptor: &'static str,
    /// The handler.
    pub run: RunFn,
    /// Whose cache lifetime bounds how long a rendered reply of this module may be reused
    /// (the reply cache in front of the modules); `None`: never reused (Iris-Detect changes
    /// DomainTools state and reads lists that change minute by minute).
    pub replies_live_as: Option<domaintools::Family>,
}

/// Everything a module needs for one request.
#[derive(Debug, Clone)]
pub struct Context {
    /// The shared DomainTools client.
    pub client: Client,
    /// The account to call DomainTools with (request config or server defaults).
    pub credentials: Credentials,
    /// The request's `config` object (MISP sends strings or nulls).
    pub settings: Settings,
    /// Hover or stored results.
    pub form: Form,
    /// "Now", for ages (fixed in tests).
    pub now: DateTime<Utc>,
    /// Whether the server runs on bundled demo data.
    pub demo: bool,
    /// The module's name, sent to DomainTools as `app_name`.
    pub module: &'static str,
    /// When the request arrived.
    pub started: tokio::time::Instant,
    /// How long the request may take in all (MISP gives hovers 5 s, other requests 10 s).
    pub budget: std::time::Duration,
}

impl Context {
    /// The caller identity for the DomainTools client.
    pub fn caller(&self) -> Caller<'_> {
        Caller::new(&self.credentials, self.module).with_budget(self.started, self.budget)
    }

    /// Renders a payload in the request's form, marking demo data as such.
    pub fn render(&self, payload: &Payload) -> Vec<Value> {
        misp::render(payload.entries(), self.form, self.demo.then_some(DEMO_NOTE))
    }

    /// The reply of a payload: rendered now for stored results; for a hover, the entries
    /// themselves, which the server writes straight into the reply's bytes (a hover reply
    /// built as a JSON tree first cost more CPU than decoding the DomainTools answer).
    pub(crate) fn reply(&self, payload: Payload) -> Reply {
        match self.form {
            Form::Hover => Reply {
                hover: Some(Hover {
                    entries: payload.into_entries(),
                    note: self.demo.then_some(DEMO_NOTE),
                }),
                ..Reply::default()
            },
            Form::Stored => Reply {
                results: self.render(&payload),
                ..Reply::default()
            },
        }
    }
}

/// Hover entries not rendered yet, and the note every comment starts with (demo mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Hover {
    /// The entries, in order.
    pub entries: Vec<misp::Entry>,
    /// The note in front of every comment.
    pub note: Option<&'static str>,
}

impl Hover {
    /// The entries as MISP's hover result list (what [`Context::render`] gives in hover form).
    pub fn render(&self) -> Vec<Value> {
        misp::render(&self.entries, Form::Hover, self.note)
    }
}

/// The attribute a request asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The MISP attribute type that matched (`domain`, `ip-src`, … or `data` for imports).
    pub attribute_type: String,
    /// Its value.
    pub value: String,
    /// The whole MISP attribute, for `misp_standard` modules (MISP sends it as `attribute`,
    /// with its `uuid`); `None` when the request named the value by type (`{"domain": …}`).
    pub attribute: Option<Map<String, Value>>,
}

/// A module's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// MISP result entries (possibly partial when `error` is set).
    pub results: Vec<Value>,
    /// A problem to show next to the results.
    pub error: Option<String>,
    /// A top-level comment (MISP uses it for the whole import or enrichment).
    pub comment: Option<String>,
    /// The `misp_standard` answer (`{"Attribute": […], "Object": […]}`), sent as `results`
    /// instead of the entry list by the modules whose descriptor declares that format.
    pub standard: Option<Map<String, Value>>,
    /// Hover entries, when the module left rendering to the server ([`Context::reply`]):
    /// `results` is then empty, and these come first.
    pub hover: Option<Hover>,
}

impl Reply {
    /// Whether the reply holds no result entry.
    pub fn has_no_results(&self) -> bool {
        self.results.is_empty() && self.hover.as_ref().is_none_or(|h| h.entries.is_empty())
    }
}

/// Why a module produced no answer. The `Display` text is what the MISP user reads.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// A setting is missing or unusable.
    #[error("{0}")]
    Config(String),
    /// The request's value cannot be looked up.
    #[error("{0}")]
    Input(String),
    /// DomainTools has nothing for the value ("No results found.", as the reference says).
    #[error("{0}")]
    NoResults(String),
    /// DomainTools failed.
    #[error(transparent)]
    Upstream(#[from] domaintools::Error),
}

/// How the Iris modules word the problems Iris reports inside a 200 answer (the classic
/// modules keep the client's own wording, as the reference does).
pub(crate) fn iris_error(error: domaintools::Error) -> ModuleError {
    match error {
        domaintools::Error::LimitExceeded { message } => ModuleError::NoResults(format!(
            "DomainTools Iris limit exceeded: {}",
            message
                .as_deref()
                .unwrap_or("the query matched too many domains")
        )),
        domaintools::Error::Reported { message, .. } => {
            ModuleError::NoResults(format!("DomainTools Iris: {message}"))
        }
        other => ModuleError::Upstream(other),
    }
}

/// The request's `config` object, without the `api_key` (which becomes the request's
/// [`Credentials`] and nothing else), so printing the settings can never show it. MISP sends
/// every setting as a string or `null`.
#[derive(Clone, Debug, Default)]
pub struct Settings(Map<String, Value>);

impl Settings {
    /// Settings from the request's `config` value (anything but an object counts as empty).
    pub fn from_value(value: Option<&Value>) -> Self {
        match value {
            Some(Value::Object(map)) => Self(
                map.iter()
                    .filter(|(key, _)| key.as_str() != "api_key")
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            ),
            _ => Self::default(),
        }
    }

    /// A setting as text; `None` when absent, null or blank.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A whole-number setting: absent, null or empty gives `default` (compatibility fix 7);
    /// anything else that is not a non-negative whole number is an error naming the setting.
    pub fn number(&self, key: &str, default: u64) -> Result<u64, ModuleError> {
        let bad = |shown: &str| {
            ModuleError::Config(format!(
                "The {key} setting must be a whole number, not {shown}."
            ))
        };
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| bad(&shown(s))),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad(&n.to_string())),
            Some(other) => Err(bad(&shown(&other.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn number_settings_default_and_validate() {
        let s = Settings::from_value(Some(&json!({
            "a": null, "b": "", "c": "42", "d": 7, "e": "abc", "f": -1, "g": [1]
        })));
        assert_eq!(s.number("missing", 100).unwrap(), 100);
        assert_eq!(s.number("a", 100).unwrap(), 100);
        assert_eq!(s.number("b", 300).unwrap(), 300);
        assert_eq!(s.number("c", 1).unwrap(), 42);
        assert_eq!(s.number("d", 1).unwrap(), 7);
        assert_eq!(
            s.number("e", 1).unwrap_err().to_string(),
            "The e setting must be a whole number, not \"abc\"."
        );
        assert!(s.number("f", 1).is_err());
        assert!(s.number("g", 1).is_err());
    }

    #[test]
    fn text_settings_treat_blank_as_absent() {
        let s = Settings::from_value(Some(&json!({"u": "  ", "v": "x", "w": null})));
        assert_eq!(s.text("u"), None);
        assert_eq!(s.text("v").as_deref(), Some("x"));
        assert_eq!(s.text("w"), None);
        assert_eq!(Settings::from_value(Some(&json!("nope"))).text("v"), None);
    }
}
