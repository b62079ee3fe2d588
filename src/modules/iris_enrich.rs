//! DomainTools-Iris-Enrich: hover and enrichment of a domain from Iris Enrich, DomainTools'
//! high-volume product (values only, no guided-pivot counts).

use super::iris_record::{self, Product};
use super::Module;

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Iris-Enrich",
    descriptor: include_str!("../../modules/DomainTools-Iris-Enrich.json"),
    run: |ctx, input| Box::pin(iris_record::run(ctx, input, Product::Enrich)),
    replies_live_as: Some(domaintools::Family::Iris),
};
