//! The work message the platform puts on the connector's listen queue (and its worker posts
//! to the callback), read into what the connector uses. Fields it does not use (the entity's
//! STIX as text, validation settings) are skipped while parsing, and a playbook's bundle is
//! kept as the text it came in, so a large message costs its size once, not a parsed tree.

use serde::Deserialize;
use serde_json::value::RawValue;

/// `{"internal": {…}, "event": {…}}`.
#[derive(Debug, Deserialize)]
pub struct WorkMessage {
    /// Who asked, and where the outcome goes.
    pub internal: Internal,
    /// What to enrich.
    pub event: Event,
}

/// `internal`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Internal {
    /// The work to report on.
    pub work_id: Option<String>,
    /// The user who asked (impersonated by the workers that import the bundles).
    pub applicant_id: Option<String>,
    /// The draft the work runs in.
    pub draft_id: Option<String>,
    /// Present when a playbook runs this connector as one of its steps.
    pub playbook: Option<PlaybookContext>,
}

/// `internal.playbook`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlaybookContext {
    /// The event that started the playbook.
    pub event_id: Option<String>,
    /// This run of the playbook.
    pub execution_id: Option<String>,
    /// The playbook.
    pub playbook_id: Option<String>,
    /// The data instance the run is about.
    pub data_instance_id: Option<String>,
    /// This step.
    pub step_id: Option<String>,
    /// The step before it.
    pub previous_step_id: Option<String>,
}

/// `event`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    /// The entity's standard id.
    pub entity_id: Option<String>,
    /// Its type ("Domain-Name").
    pub entity_type: Option<String>,
    /// In a playbook, the bundle the step receives.
    pub bundle: Option<Box<RawValue>>,
}

impl WorkMessage {
    /// Reads a message body.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// A text that is present and not blank.
pub fn present(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|text| !text.trim().is_empty())
}
