//! DomainTools-Iris-Investigate-Objects: a domain (or the registrable domain of a hostname or
//! URL) from Iris Investigate as MISP objects, or an IP address, e-mail address or SSL
//! certificate as the domains connected to it (each with its own objects, within
//! `results_limit`), in MISP's `misp_standard` format.

use serde_json::Value;

use super::iris_objects::{with_hover_error, Builder, Enriched, Options};
use super::iris_pivot::{pivot_for, DEFAULT_RESULTS_LIMIT};
use super::iris_record::lookup_domain;
use super::{iris_error, iris_search, Context, Input, Module, ModuleError, Reply, DEMO_NOTE};
use domaintools::Stop;

/// The module's registry entry.
pub const MODULE: Module = Module {
    name: "DomainTools-Iris-Investigate-Objects",
    descriptor: include_str!("../../modules/DomainTools-Iris-Investigate-Objects.json"),
    run: |ctx, input| {
        Box::pin(async move {
            let form = ctx.form;
            with_hover_error(form, run(ctx, input).await)
        })
    },
    replies_live_as: Some(domaintools::Family::Iris),
};

/// The input types looked up as a domain; the others are pivots.
pub(crate) fn is_domain_like(attribute_type: &str) -> bool {
    matches!(attribute_type, "domain" | "hostname" | "url")
}

async fn run(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    let options = Options::from_settings(&ctx.settings, ctx.form, ctx.demo.then_some(DEMO_NOTE))?;
    let enriched = Enriched::new(
        &input.attribute_type,
        &input.value,
        input.attribute.as_ref(),
    );
    if is_domain_like(&input.attribute_type) {
        let domain = lookup_domain(&input.value)?;
        let response = ctx
            .client
            .iris_investigate(ctx.caller(), &[("domain", domain.as_str())])
            .await
            .map_err(iris_error)?;
        let record = own_record(&response.results, &domain)
            .ok_or_else(|| ModuleError::NoResults("No results found.".into()))?;
        let mut builder = Builder::new(&options, enriched);
        builder.record(&record, true);
        return Ok(Reply {
            standard: Some(builder.finish()),
            ..Reply::default()
        });
    }
    let pivot = pivot_for(&input.attribute_type)
        .filter(|_| input.attribute_type != "hostname")
        .ok_or_else(|| {
            ModuleError::Input(format!(
                "DomainTools-Iris-Investigate-Objects does not take {} attributes.",
                input.attribute_type
            ))
        })?;
    let limit = ctx
        .settings
        .number("results_limit", DEFAULT_RESULTS_LIMIT)?;
    let value = input.value.trim();
    if value.is_empty() {
        return Err(ModuleError::Input(format!(
            "The {} value is empty.",
            input.attribute_type
        )));
    }
    let collected = iris_search::collect(
        &ctx,
        &[(pivot.parameter, value)],
        limit,
        "No results found.",
    )
    .await?;
    let mut builder = Builder::new(&options, enriched);
    for record in &collected.records {
        builder.record(record, false);
    }
    if let Some(total) = collected.total() {
        builder.tag_input("connected-domains", &total.to_string());
    }
    let note = iris_search::truncation_note(
        &collected,
        pivot.subject,
        "shown",
        collected.records.len(),
        limit,
    );
    let (error, comment) = match collected.stopped_early {
        Some(Stop::Failed(_)) => (note, None),
        _ => (None, note),
    };
    Ok(Reply {
        standard: Some(builder.finish()),
        error,
        comment,
        ..Reply::default()
    })
}

/// The record of `domain` in an answer (Iris may answer with more than the one asked for).
pub(crate) fn own_record(records: &[domaintools::Record], domain: &str) -> Option<Value> {
    records
        .iter()
        .find(|r| r.domain().is_some_and(|d| d.eq_ignore_ascii_case(domain)))
        .or_else(|| records.last())
        .map(domaintools::Record::value)
}
