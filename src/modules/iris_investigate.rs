//! DomainTools-Iris-Investigate: hover and enrichment of a domain from Iris Investigate, with
//! guided-pivot counts and the domain's hosting, name servers and mail servers.

use super::iris_record::{self, Product};
use super::Module;

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Iris-Investigate",
    descriptor: include_str!("../../modules/DomainTools-Iris-Investigate.json"),
    run: |ctx, input| Box::pin(iris_record::run(ctx, input, Product::Investigate)),
    replies_live_as: Some(domaintools::Family::Iris),
};
