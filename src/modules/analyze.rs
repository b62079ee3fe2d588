//! DomainTools-Analyze (classic Enterprise, hover): whois data, a risk score and counts of
//! connected domains for a domain, an e-mail or registrant value, or an IP address.

use super::classic::{self, Flavor};
use super::{Context, Input, Module, ModuleError, Reply};

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Analyze",
    descriptor: include_str!("../../modules/DomainTools-Analyze.json"),
    run: |ctx, input| Box::pin(run(ctx, input)),
    replies_live_as: Some(domaintools::Family::Classic),
};

/// Domains: parsed whois, domain profile and risk; contact values: a reverse-whois quote
/// (counts only); IPs: the co-located domain count.
pub async fn run(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    classic::run(ctx, input, Flavor::Analyze).await
}
