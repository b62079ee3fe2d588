//! Property tests of registrable-domain reduction, on inputs proptest makes up.

use proptest::prelude::*;

use super::registrable_domain;
use crate::strategies::hostname;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn registrable_domain_never_panics(input in ".{0,200}") {
        let _ = registrable_domain(&input);
    }

    #[test]
    fn registrable_domain_is_a_case_preserving_suffix_of_the_host(
        host in hostname(),
        scheme in prop_oneof![Just(""), Just("http://"), Just("https://user:pw@"), Just("//")],
        tail in prop_oneof![Just(""), Just(":8080"), Just("/a/b?c=d#e"), Just(".")],
    ) {
        let input = format!("{scheme}{host}{tail}");
        if let Some(domain) = registrable_domain(&input) {
            prop_assert!(host.ends_with(&domain), "{} is not a suffix of {}", domain, host);
            prop_assert!(
                domain.len() == host.len() || host[..host.len() - domain.len()].ends_with('.'),
                "{} does not start at a label of {}", domain, host
            );
            // At least two labels: a name under a public suffix, never the suffix alone.
            prop_assert!(domain.contains('.'));
            // The same name whatever the case: the reduction depends on labels, not case.
            let lower = registrable_domain(&input.to_lowercase());
            prop_assert_eq!(lower, Some(domain.to_lowercase()));
        }
    }
}
