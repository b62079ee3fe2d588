//! DomainTools-Iris-Enrich-Objects: a domain (or the registrable domain of a hostname or URL)
//! from Iris Enrich, for accounts that have only that product, as MISP objects in MISP's
//! `misp_standard` format (Enrich records have no guided-pivot counts, so no pivot links).

use super::iris_investigate_objects::own_record;
use super::iris_objects::{with_hover_error, Builder, Enriched, Options};
use super::iris_record::lookup_domain;
use super::{iris_error, Context, Input, Module, ModuleError, Reply, DEMO_NOTE};

/// The module's registry entry.
pub const MODULE: Module = Module {
    name: "DomainTools-Iris-Enrich-Objects",
    descriptor: include_str!("../../modules/DomainTools-Iris-Enrich-Objects.json"),
    run: |ctx, input| {
        Box::pin(async move {
            let form = ctx.form;
            with_hover_error(form, run(ctx, input).await)
        })
    },
    replies_live_as: Some(domaintools::Family::Iris),
};

async fn run(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    let options = Options::from_settings(&ctx.settings, ctx.form, ctx.demo.then_some(DEMO_NOTE))?;
    let enriched = Enriched::new(
        &input.attribute_type,
        &input.value,
        input.attribute.as_ref(),
    );
    let domain = lookup_domain(&input.value)?;
    // The same call as DomainTools-Iris-Enrich, so both share its batching and its cache.
    let response = ctx
        .client
        .iris_enrich(ctx.caller(), &[domain.as_str()])
        .await
        .map_err(iris_error)?;
    let record = own_record(&response.results, &domain)
        .ok_or_else(|| ModuleError::NoResults("No results found.".into()))?;
    let mut builder = Builder::new(&options, enriched);
    builder.record(&record, true);
    Ok(Reply {
        standard: Some(builder.finish()),
        ..Reply::default()
    })
}
