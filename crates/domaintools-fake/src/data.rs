//! The recorded DomainTools answers, compiled into the binary so `--demo` needs no files, and
//! parsed once per process because several are hundreds of kilobytes.

use std::sync::OnceLock;

use serde_json::Value;

/// Every fixture, parsed.
pub(super) struct Fixtures {
    pub account: Value,
    pub domain_profile: Value,
    pub error_400: Value,
    pub error_403: Value,
    pub error_404: Value,
    pub host_domains: Value,
    pub hosting_history: Value,
    pub detect_escalate: Value,
    pub detect_ignored: Value,
    pub detect_manage: Value,
    pub detect_monitors: Value,
    pub detect_new: Value,
    pub detect_watched: Value,
    pub iris_enrich: Value,
    pub iris_investigate: Value,
    pub iris_limit_exceeded: Value,
    pub parsed_whois: Value,
    pub reputation: Value,
    pub reverse_ip: Value,
    pub reverse_whois: Value,
    pub risk_evidence: Value,
    pub risk_zerolist: Value,
    pub risk: Value,
    pub whois_history: Value,
    pub whois: Value,
}

macro_rules! fixture {
    ($file:literal) => {
        parse(
            $file,
            include_str!(concat!("../fixtures/domaintools/", $file)),
        )
    };
}

/// The embedded files are part of the build; one that does not parse is a build mistake the
/// test suite catches on its first request, not a condition to serve around.
fn parse(file: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("fixture {file} is not JSON: {error}"))
}

/// The fixtures, parsed on first use.
pub(super) fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| Fixtures {
        account: fixture!("account-information.json"),
        domain_profile: fixture!("domain-profile.json"),
        error_400: fixture!("error-400-bad-request.json"),
        error_403: fixture!("error-403-bad-credentials.json"),
        error_404: fixture!("error-404-not-found.json"),
        host_domains: fixture!("host-domains.json"),
        hosting_history: fixture!("hosting-history.json"),
        detect_escalate: fixture!("iris-detect-escalate.json"),
        detect_ignored: fixture!("iris-detect-ignored.json"),
        detect_manage: fixture!("iris-detect-manage-watchlist.json"),
        detect_monitors: fixture!("iris-detect-monitors.json"),
        detect_new: fixture!("iris-detect-new.json"),
        detect_watched: fixture!("iris-detect-watched.json"),
        iris_enrich: fixture!("iris-enrich.json"),
        iris_investigate: fixture!("iris-investigate-domain.json"),
        iris_limit_exceeded: fixture!("iris-investigate-limit-exceeded.json"),
        parsed_whois: fixture!("parsed-whois.json"),
        reputation: fixture!("reputation.json"),
        reverse_ip: fixture!("reverse-ip.json"),
        reverse_whois: fixture!("reverse-whois.json"),
        risk_evidence: fixture!("risk-evidence.json"),
        risk_zerolist: fixture!("risk-zerolist.json"),
        risk: fixture!("risk.json"),
        whois_history: fixture!("whois-history.json"),
        whois: fixture!("whois.json"),
    })
}

/// The records of a list inside a fixture (`response.results`, `watchlist_domains`, …);
/// empty when the path does not lead to an array.
pub(super) fn records<'a>(fixture: &'a Value, pointer: &str) -> &'a [Value] {
    fixture
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Sets a member of a JSON object; anything but an object is left alone, where indexing would
/// panic.
pub(super) fn set_field(target: &mut Value, key: &str, value: Value) {
    if let Some(members) = target.as_object_mut() {
        members.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_parses_and_has_its_envelope() {
        let f = fixtures();
        for wrapped in [
            &f.account,
            &f.domain_profile,
            &f.host_domains,
            &f.hosting_history,
            &f.iris_enrich,
            &f.iris_investigate,
            &f.iris_limit_exceeded,
            &f.parsed_whois,
            &f.reputation,
            &f.reverse_ip,
            &f.reverse_whois,
            &f.risk_evidence,
            &f.risk_zerolist,
            &f.risk,
            &f.whois_history,
            &f.whois,
        ] {
            assert!(wrapped.get("response").is_some());
        }
        for error in [&f.error_400, &f.error_403, &f.error_404] {
            assert!(error.pointer("/error/code").is_some());
        }
        assert_eq!(records(&f.iris_investigate, "/response/results").len(), 2);
        assert_eq!(records(&f.detect_new, "/watchlist_domains").len(), 100);
        assert_eq!(records(&f.whois_history, "/response/history").len(), 100);
        assert!(records(&f.detect_monitors, "/nope").is_empty());
    }
}
