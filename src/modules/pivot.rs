//! DomainTools-Pivot (classic Enterprise, expansion): the Analyze lookups, expanded into lists
//! of connected infrastructure: the domains sharing a registrant value or an IP address.

use super::classic::{self, Flavor};
use super::{Context, Input, Module, ModuleError, Reply};

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Pivot",
    descriptor: include_str!("../../modules/DomainTools-Pivot.json"),
    run: |ctx, input| Box::pin(run(ctx, input)),
    replies_live_as: Some(domaintools::Family::Classic),
};

/// Domains: parsed whois, domain profile and risk (as Analyze); contact values: the purchased
/// reverse-whois domain list; IPs: the co-located domains, up to `results_limit`.
pub async fn run(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    classic::run(ctx, input, Flavor::Pivot).await
}
