//! One work, from the message to its report: `toReceived`, the observable read from the
//! platform, the TLP gate, the DomainTools lookup, the bundle sent the way the settings say
//! (split onto the push queue with its expectations, or `stixBundlePush`, or back to the
//! playbook with `playbookStepExecution`), and `toProcessed` with the summary or the reason.

use chrono::Utc;
use serde_json::Value;

use super::amqp::{self, Broker, PushTarget};
use super::graphql::{requests::PlaybookStep, Marking, Platform};
use super::message::{present, WorkMessage};
use super::settings::ConnectorSettings;
use super::split::split_bundle;
use crate::stix::{self, Observable, ObservableKind, Tlp};
use crate::telemetry::logged;
use domaintools::classic::shown;
use domaintools::{Caller, Client, Credentials};

/// `app_name` reported to DomainTools.
const APP_NAME: &str = "DomainTools-OpenCTI-Enrichment";

/// Where bundles go outside playbooks.
#[derive(Debug, Clone)]
pub enum Push {
    /// The platform's `stixBundlePush` (`CONNECTOR_QUEUE_PROTOCOL=api`).
    Api,
    /// The push queue (`CONNECTOR_QUEUE_PROTOCOL=amqp`).
    Amqp {
        /// The broker.
        broker: Broker,
        /// Exchange and routing key.
        target: PushTarget,
    },
}

/// What a work needs.
pub struct Worker {
    /// The platform, with its release known.
    pub platform: Platform,
    /// DomainTools.
    pub client: Client,
    /// DomainTools credentials.
    pub credentials: Credentials,
    /// The connector's id on the platform.
    pub connector_id: String,
    /// The platform user the connector acts as: the applicant of its bundles unless the
    /// message names one.
    pub connector_user_id: Option<String>,
    /// The settings.
    pub settings: ConnectorSettings,
    /// Where bundles go.
    pub push: Push,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("connector_id", &self.connector_id)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

/// pycti's `date_now()`: whole seconds, `+00:00`.
fn date_now() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

impl Worker {
    /// One work, reported from start to end. Never fails: a problem closes the work in error.
    pub async fn process(&self, message: WorkMessage) {
        let execution_start = date_now();
        let work_id = present(&message.internal.work_id);
        let platform = self.platform.in_draft(present(&message.internal.draft_id));
        if let Some(work_id) = work_id {
            if let Err(error) = platform
                .work_received(work_id, "Connector ready to process the operation")
                .await
            {
                tracing::warn!(
                    error = %logged(&error),
                    work.id = %shown(work_id),
                    "cannot mark the work received"
                );
            }
        }
        // The ids and the texts come from the message and the platform: escaped and cut, so
        // that a newline in an observable's value cannot forge a log line.
        let shown_work = work_id.map_or_else(|| "-".to_owned(), shown);
        let entity = shown(present(&message.event.entity_id).unwrap_or("-"));
        let (text, in_error) = match self
            .enrich(&platform, &message, work_id, &execution_start)
            .await
        {
            Ok(summary) => {
                tracing::info!(work.id = %shown_work, %entity, "{}", logged(&summary));
                (summary, false)
            }
            Err(problem) => {
                tracing::warn!(work.id = %shown_work, %entity, "{}", logged(&problem));
                (problem, true)
            }
        };
        match work_id {
            Some(work_id) => {
                if let Err(error) = platform.work_processed(work_id, &text, in_error).await {
                    tracing::error!(
                        error = %logged(&error),
                        work.id = %shown(work_id),
                        "cannot report the work's end"
                    );
                }
            }
            None => tracing::warn!("the request carried no work id: nothing to report to"),
        }
    }

    /// The enrichment; `Err` is the message the work is closed in error with.
    async fn enrich(
        &self,
        platform: &Platform,
        message: &WorkMessage,
        work_id: Option<&str>,
        execution_start: &str,
    ) -> Result<String, String> {
        let entity_id =
            present(&message.event.entity_id).ok_or("The request names no entity to enrich.")?;
        let step = match &message.internal.playbook {
            Some(playbook) => Some(playbook_step(message, playbook, execution_start)?),
            None => None,
        };
        let entity = platform
            .read_observable(entity_id)
            .await
            .map_err(|e| format!("Cannot read {entity_id} from OpenCTI: {e}"))?
            .ok_or_else(|| {
                format!(
                    "OpenCTI returned no observable {entity_id}: check that the connector's user \
                     can read it."
                )
            })?;
        let entity_type = entity.entity_type.clone().unwrap_or_default();
        let kind = ObservableKind::from_opencti_type(&entity_type).ok_or_else(|| {
            format!("{entity_type} observables are not enriched by DomainTools (Domain-Name and IPv4-Addr are).")
        })?;
        let tlp = observable_tlp(entity.object_marking.as_deref().unwrap_or_default())?;
        if tlp > self.settings.max_tlp {
            return Err(format!(
                "Do not send any data, TLP of the observable ({tlp}) is greater than MAX TLP ({}).",
                self.settings.max_tlp
            ));
        }
        let value = entity.observable_value.as_deref().unwrap_or_default();
        let standard_id = entity.standard_id.as_deref().unwrap_or_default();
        let observable = Observable::existing(kind, value, standard_id)?;
        let caller = Caller::new(&self.credentials, APP_NAME);
        let enrichment = stix::enrich(
            &self.client,
            caller,
            &observable,
            &self.settings.enrich,
            Some(tlp),
            Utc::now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        for skipped in &enrichment.mapping.skipped {
            tracing::debug!(
                what = skipped.what,
                value = %shown(&skipped.value),
                record = %logged(&skipped.record),
                "[DomainTools] value not correctly formatted, skipped"
            );
        }
        if let Some((step, incoming)) = step {
            // The playbook goes on with what it had, enriched: its next steps need the
            // objects it received as much as the new ones.
            let outgoing = if enrichment.found {
                merged_bundle(incoming, &enrichment.bundle)?
            } else {
                incoming.to_owned()
            };
            platform
                .playbook_step(&step, &outgoing)
                .await
                .map_err(|e| format!("The bundle could not be sent back to the playbook: {e}"))?;
            return Ok(enrichment.summary);
        }
        if !enrichment.found {
            return Ok(enrichment.summary);
        }
        self.send(platform, message, &enrichment.bundle, work_id)
            .await?;
        Ok(enrichment.summary)
    }

    /// Sends a bundle outside playbooks.
    async fn send(
        &self,
        platform: &Platform,
        message: &WorkMessage,
        bundle: &Value,
        work_id: Option<&str>,
    ) -> Result<(), String> {
        let applicant =
            present(&message.internal.applicant_id).or(self.connector_user_id.as_deref());
        send_bundle(
            platform,
            &self.push,
            &self.connector_id,
            bundle,
            work_id,
            applicant,
            message.internal.draft_id.as_deref(),
        )
        .await
    }
}

/// Sends a bundle the way `push` says, counted against `work_id`: split onto the push queue
/// with its expectations set first (as pycti does), or with `stixBundlePush`.
pub(crate) async fn send_bundle(
    platform: &Platform,
    push: &Push,
    connector_id: &str,
    bundle: &Value,
    work_id: Option<&str>,
    applicant: Option<&str>,
    draft: Option<&str>,
) -> Result<(), String> {
    match push {
        Push::Api => {
            let text = serde_json::to_string(bundle)
                .map_err(|e| format!("The bundle could not be serialized: {e}"))?;
            platform
                .push_bundle(connector_id, &text, work_id)
                .await
                .map_err(|e| format!("The bundle could not be sent to OpenCTI: {e}"))
        }
        Push::Amqp { broker, target } => {
            let split = split_bundle(bundle).map_err(|e| e.to_string())?;
            if let Some(work_id) = work_id {
                // Before the bundles, as pycti does: the worker reports each against the work.
                platform
                    .add_expectations(work_id, split.expectations)
                    .await
                    .map_err(|e| format!("The work's expectations could not be set: {e}"))?;
            }
            let envelopes: Vec<Vec<u8>> = split
                .bundles
                .iter()
                .enumerate()
                .map(|(index, bundle)| {
                    amqp::push_envelope(bundle, index + 1, applicant, draft, work_id)
                })
                .collect();
            amqp::publish(broker, target, &envelopes)
                .await
                .map_err(|e| format!("The bundle could not be sent to OpenCTI: {e}"))
        }
    }
}

/// The step's context and the bundle it received; `Err` when the message lacks them.
fn playbook_step<'m>(
    message: &'m WorkMessage,
    playbook: &'m super::message::PlaybookContext,
    execution_start: &'m str,
) -> Result<(PlaybookStep<'m>, &'m str), String> {
    let missing = |what: &str| format!("The playbook message has no {what}.");
    let incoming = message
        .event
        .bundle
        .as_deref()
        .map(|raw| raw.get())
        .ok_or_else(|| missing("bundle"))?;
    let step = PlaybookStep {
        execution_id: present(&playbook.execution_id).ok_or_else(|| missing("execution_id"))?,
        event_id: present(&playbook.event_id).unwrap_or_default(),
        execution_start,
        data_instance_id: present(&playbook.data_instance_id)
            .ok_or_else(|| missing("data_instance_id"))?,
        playbook_id: present(&playbook.playbook_id).ok_or_else(|| missing("playbook_id"))?,
        previous_step_id: present(&playbook.previous_step_id)
            .ok_or_else(|| missing("previous_step_id"))?,
        step_id: present(&playbook.step_id).ok_or_else(|| missing("step_id"))?,
        previous_bundle: incoming,
    };
    Ok((step, incoming))
}

/// The playbook's bundle with the enrichment's objects added; an object both have gets the
/// enrichment's properties over its own (the enriched observable's new score).
fn merged_bundle(incoming: &str, enrichment: &Value) -> Result<String, String> {
    let mut bundle: Value = serde_json::from_str(incoming)
        .map_err(|e| format!("The playbook's bundle is not JSON: {e}"))?;
    let objects = bundle
        .get_mut("objects")
        .and_then(Value::as_array_mut)
        .ok_or("The playbook's bundle has no objects.")?;
    for object in enrichment
        .get("objects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = object.get("id");
        match objects.iter_mut().find(|known| known.get("id") == id) {
            Some(known) => overlay(known, object),
            None => objects.push(object.clone()),
        }
    }
    serde_json::to_string(&bundle).map_err(|e| format!("The bundle could not be serialized: {e}"))
}

fn overlay(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (key, value) in top {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        overlay(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, top) => *base = top.clone(),
    }
}

/// The observable's most restrictive TLP (TLP:CLEAR without any). The Python connector took
/// the last one listed; an unknown TLP name refuses the work rather than guessing.
pub(crate) fn observable_tlp(markings: &[Marking]) -> Result<Tlp, String> {
    let mut strictest = Tlp::Clear;
    for marking in markings {
        let is_tlp = marking
            .definition_type
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("TLP"));
        if !is_tlp {
            continue;
        }
        let definition = marking.definition.as_deref().unwrap_or_default();
        let tlp = definition.parse::<Tlp>().map_err(|_| {
            format!(
                "The observable's marking {definition:?} is not a TLP level this connector knows; \
                 nothing was sent to DomainTools."
            )
        })?;
        strictest = strictest.max(tlp);
    }
    Ok(strictest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlp(definition: &str) -> Marking {
        Marking {
            standard_id: None,
            definition_type: Some("TLP".to_owned()),
            definition: Some(definition.to_owned()),
        }
    }

    #[test]
    fn the_strictest_tlp_wins() {
        let pap = Marking {
            standard_id: None,
            definition_type: Some("PAP".to_owned()),
            definition: Some("PAP:RED".to_owned()),
        };
        assert_eq!(observable_tlp(&[]), Ok(Tlp::Clear));
        assert_eq!(observable_tlp(std::slice::from_ref(&pap)), Ok(Tlp::Clear));
        assert_eq!(
            observable_tlp(&[tlp("TLP:RED"), tlp("TLP:GREEN"), pap]),
            Ok(Tlp::Red)
        );
        assert!(observable_tlp(&[tlp("TLP:PURPLE")]).is_err());
    }

    #[test]
    fn a_playbook_bundle_keeps_its_objects_and_takes_the_enrichment() {
        let incoming = r#"{"type":"bundle","id":"bundle--1","objects":[
            {"type":"domain-name","id":"domain-name--a","value":"a.example",
             "object_marking_refs":["m1"],
             "extensions":{"x":{"extension_type":"property-extension","labels":["keep"]}}}]}"#;
        let enrichment = serde_json::json!({"type":"bundle","id":"bundle--2","objects":[
            {"type":"domain-name","id":"domain-name--a","value":"a.example",
             "extensions":{"x":{"extension_type":"property-extension","score":42}}},
            {"type":"ipv4-addr","id":"ipv4-addr--b","value":"192.0.2.1"}]});
        let merged: Value =
            serde_json::from_str(&merged_bundle(incoming, &enrichment).unwrap()).unwrap();
        let objects = merged["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["object_marking_refs"], serde_json::json!(["m1"]));
        assert_eq!(
            objects[0]["extensions"]["x"]["labels"],
            serde_json::json!(["keep"])
        );
        assert_eq!(objects[0]["extensions"]["x"]["score"], 42);
        assert_eq!(objects[1]["id"], "ipv4-addr--b");
        assert_eq!(merged["id"], "bundle--1", "the playbook's bundle goes on");
        assert!(merged_bundle("not json", &enrichment).is_err());
    }
}
