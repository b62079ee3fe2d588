//! DomainTools-Analyze, -Pivot and -Historic end to end over real TCP: MISP's request goes to
//! our server, which calls the fake DomainTools API; the replies are checked against the pure
//! mappings of the same recordings, and the fake's request log proves which calls were made,
//! with which parameters, and that no path-safety attack ever reached it.

use domaintools_fake::{Fault, LoggedRequest, DEMO_API_KEY, DEMO_USERNAME};
use misp_domaintools::misp::{render, Form, Payload};
use misp_domaintools::modules::classic::{map_domain, map_host_domains, Flavor};
use misp_domaintools::modules::historic;
use serde_json::{json, Value};

use crate::common::server::{fixture, golden_day, TestServer, KEY, USER};

const NOT_FOUND: &str = "DomainTools API error 404: We have no recent WHOIS information available for this domain/IP Address.";

/// The `response` of a recorded answer.
fn answer(name: &str) -> Value {
    fixture(name)["response"].clone()
}

/// MISP's requests to our server (the shared harness's, in front of a fresh fake).
struct Misp(TestServer);

impl std::ops::Deref for Misp {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl Misp {
    async fn start() -> Self {
        Self(TestServer::start().await)
    }

    /// POSTs `{"module": module, attribute_type: value, "config": …}` plus `extra` keys.
    async fn ask(&self, module: &str, attribute_type: &str, value: &str, extra: Value) -> Value {
        let mut body = json!({
            "module": module,
            attribute_type: value,
            "config": {"username": USER, "api_key": KEY, "results_limit": null},
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        self.post(body.to_string()).await
    }

    /// POSTs a raw body to `/query` and returns the JSON reply (always HTTP 200 here).
    async fn post(&self, body: String) -> Value {
        let response = self
            .http
            .post(format!("{}/query", self.url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(!text.contains(KEY), "the key leaked into a reply: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The lookups the fake received; the background read of the account's rate limits
    /// (`/v1/account`, once per account) is not a lookup and is left out.
    fn requests(&self) -> Vec<LoggedRequest> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.path != "/v1/account")
            .collect()
    }
}

fn param<'a>(request: &'a LoggedRequest, name: &str) -> Option<&'a str> {
    request
        .params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn paths(requests: &[LoggedRequest]) -> Vec<String> {
    let mut paths: Vec<String> = requests.iter().map(|r| r.path.clone()).collect();
    // The domain lookups run concurrently; their arrival order is not part of the contract.
    paths.sort();
    paths
}

fn hover(payload: &Payload) -> Value {
    json!(render(payload.entries(), Form::Hover, None))
}

fn google_com(flavor: Flavor) -> Value {
    hover(&map_domain(
        "google.com",
        Some(&answer("parsed-whois.json")),
        Some(&answer("domain-profile.json")),
        Some(&answer("risk-zerolist.json")),
        flavor,
        golden_day(),
    ))
}

#[tokio::test]
async fn modules_lists_the_classic_descriptors_as_the_reference() {
    let h = Misp::start().await;
    let text = h
        .http
        .get(format!("{}/modules", h.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listing: Value = serde_json::from_str(&text).unwrap();
    let find = |name: &str| {
        listing
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    let inputs = json!([
        "domain",
        "hostname",
        "url",
        "uri",
        "email-src",
        "email-dst",
        "target-email",
        "whois-registrant-email",
        "whois-registrant-name",
        "whois-registrant-phone",
        "ip-src",
        "ip-dst",
        "whois-creation-date",
        "text",
        "x509-fingerprint-sha1"
    ]);
    let outputs = json!([
        "whois-registrant-email",
        "whois-registrant-phone",
        "whois-registrant-name",
        "whois-registrar",
        "whois-creation-date",
        "comment",
        "domain",
        "ip-src",
        "ip-dst",
        "text"
    ]);
    let indent = " ".repeat(16);
    let description = |lines: &[&str]| {
        let mut text = String::from("\n");
        for line in lines {
            text.push_str(&format!("{indent}{line}\n"));
        }
        text.push_str(&indent);
        text
    };
    for (name, module_type, lines) in [
        ("DomainTools-Analyze", "hover", vec![
            "This module is superseded by the Iris Investigate module but remains here for backward compatibility.",
            "Optimized for MISP hover actions, the Analyze capability provides Whois data, a Domain Risk Score and counts of connected domains to help give quick context on an indicator to inform an interesting pivot and map connected infrastructure.",
            "Leverages the following DomainTools endpoints: Parsed Whois, Domain Profile, Risk, Reverse IP, Reverse Whois.",
        ]),
        ("DomainTools-Pivot", "expansion", vec![
            "The module is superseded by the Iris Pivot module, but remains here for backward compatibility.",
            "Optimized for enrichment actions, the Pivot capability provides additional context on indicators by automatically building out a list of connected infrastructure from the counts presented in the Analyze capability.",
            "The Pivot module will also expand email addresses to a list of other domains that share the same contact information, and expand IP addresses to the list of other domains pointed to the same IP.",
            "Leverages the following DomainTools endpoints: Parsed Whois, Domain Profile, Risk, Reverse IP, Reverse Whois.",
        ]),
        ("DomainTools-Historic", "expansion", vec![
            "The Historic capability will act on Domains or URLs to find historical context by expanding domain names to lists of registrars, IPs and emails historically connected with that indicator.",
            "Leverages the following DomainTools endpoints: Whois History, Hosting History, Domain Profile, Reverse IP, Reverse Whois, Parsed Whois, Whois.",
        ]),
    ] {
        assert_eq!(
            find(name),
            json!({
                "name": name,
                "type": "expansion",
                "mispattributes": {"input": inputs, "output": outputs},
                "meta": {
                    "version": "2.6",
                    "author": "DomainTools, LLC",
                    "description": description(&lines),
                    "module-type": [module_type],
                    "config": ["username", "api_key", "results_limit"]
                }
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn analyze_and_pivot_on_a_domain_make_the_three_lookups_and_map_them_as_the_reference() {
    for (module, flavor) in [
        ("DomainTools-Analyze", Flavor::Analyze),
        ("DomainTools-Pivot", Flavor::Pivot),
    ] {
        let h = Misp::start().await;
        let reply = h.ask(module, "domain", "google.com", json!({})).await;
        assert_eq!(reply, json!({"results": google_com(flavor)}), "{module}");
        let log = h.requests();
        assert_eq!(
            paths(&log),
            ["/v1/google.com", "/v1/google.com/whois/parsed", "/v1/risk"],
            "no account lookup, no other call"
        );
        for request in &log {
            assert_eq!(request.method, "GET");
            assert_eq!(request.status, 200);
            assert_eq!(request.username.as_deref(), Some(USER));
            assert_eq!(param(request, "app_partner"), Some("MISP"));
            assert_eq!(param(request, "app_name"), Some(module));
        }
        let risk = log.iter().find(|r| r.path == "/v1/risk").unwrap();
        assert_eq!(param(risk, "domain"), Some("google.com"));
    }
}

#[tokio::test]
async fn every_domain_like_input_type_reduces_to_the_registrable_domain() {
    for (attribute_type, value) in [
        ("hostname", "www.google.com"),
        ("url", "https://www.google.com/search?q=a%2Fb#top"),
        ("uri", "//maps.google.com/maps"),
        ("text", "google.com"),
        ("domain", "google.com."),
    ] {
        let h = Misp::start().await;
        let reply = h
            .ask("DomainTools-Analyze", attribute_type, value, json!({}))
            .await;
        assert_eq!(
            reply,
            json!({"results": google_com(Flavor::Analyze)}),
            "{attribute_type} {value}"
        );
        assert_eq!(
            paths(&h.requests()),
            ["/v1/google.com", "/v1/google.com/whois/parsed", "/v1/risk"]
        );
    }
}

#[tokio::test]
async fn contact_inputs_use_reverse_whois_quote_for_analyze_and_purchase_for_pivot() {
    let counts = json!([
        {"types": ["text"], "values": {"current domain count": 35556},
         "comment": "domain count current from DomainTools",
         "tags": ["DomainTools", "reverse whois domain"], "categories": ["External analysis"]},
        {"types": ["text"], "values": {"historic domain count": 109886637},
         "comment": "historic domain count from DomainTools",
         "tags": ["DomainTools", "reverse whois"], "categories": ["External analysis"]},
    ]);
    for attribute_type in [
        "email-src",
        "email-dst",
        "target-email",
        "whois-registrant-email",
        "whois-registrant-name",
        "whois-registrant-phone",
        "whois-creation-date",
    ] {
        let h = Misp::start().await;
        let reply = h
            .ask(
                "DomainTools-Analyze",
                attribute_type,
                " Google LLC ",
                json!({}),
            )
            .await;
        assert_eq!(reply, json!({"results": counts}), "{attribute_type}");
        let log = h.requests();
        assert_eq!(log.len(), 1, "{attribute_type}");
        assert_eq!(log[0].path, "/v1/reverse-whois");
        let sent: Vec<(&str, &str)> = log[0]
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| {
                !matches!(
                    *k,
                    "app_partner" | "app_name" | "app_version" | "api_username" | "timestamp"
                )
            })
            .collect();
        assert_eq!(
            sent,
            [
                ("terms", "Google LLC"),
                ("exclude", ""),
                ("scope", "current"),
                ("mode", "quote")
            ]
        );
    }

    let h = Misp::start().await;
    let reply = h
        .ask(
            "DomainTools-Pivot",
            "whois-registrant-email",
            "dns-admin@google.com",
            json!({}),
        )
        .await;
    let results = reply["results"].as_array().unwrap();
    // results_limit (default 100) caps the purchased domains (issue 11: the reference stored
    // all 25,000), then a note says how many exist, then the counts.
    assert_eq!(results.len(), 103, "100 domains, the note, the counts");
    assert_eq!(
        results[0]["values"],
        json!({"reverse whois domain": "0-8.ca"})
    );
    assert_eq!(
        results[100]["values"],
        json!({"reverse whois domains": "DomainTools Reverse Whois lists 25,000 domains; only the first 100 are shown (results_limit is 100)."})
    );
    assert_eq!(json!(results[101..]), counts);
    assert!(reply.get("error").is_none());
    assert_eq!(param(&h.requests()[0], "mode"), Some("purchase"));
}

#[tokio::test]
async fn reverse_whois_terms_cannot_inject_parameters() {
    let h = Misp::start().await;
    let terms = "google&mode=purchase#x?scope=historic";
    let reply = h
        .ask("DomainTools-Analyze", "email-src", terms, json!({}))
        .await;
    assert_eq!(reply["results"].as_array().unwrap().len(), 2, "{reply}");
    let log = h.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(param(&log[0], "terms"), Some(terms));
    assert_eq!(param(&log[0], "mode"), Some("quote"));
    assert_eq!(param(&log[0], "scope"), Some("current"));
}

#[tokio::test]
async fn ip_inputs_use_host_domains() {
    let h = Misp::start().await;
    let reply = h
        .ask("DomainTools-Analyze", "ip-src", "199.30.228.112", json!({}))
        .await;
    let mut count_only = Payload::new();
    map_host_domains(
        &mut count_only,
        &answer("host-domains.json"),
        Flavor::Analyze,
        100,
    );
    assert_eq!(reply, json!({"results": hover(&count_only)}));
    let log = h.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].path, "/v1/199.30.228.112/host-domains");
    assert_eq!(
        param(&log[0], "limit"),
        Some("0"),
        "Analyze asks for the count only"
    );

    let h = Misp::start().await;
    let reply = h
        .ask("DomainTools-Pivot", "ip-dst", "199.30.228.112", json!({}))
        .await;
    assert_eq!(
        reply["results"],
        json!([
            {"types": ["text"], "values": {"co-located domain count": 1},
             "comment": "co-located domain count from DomainTools",
             "tags": ["DomainTools", "co-located domain count"], "categories": ["External analysis"]},
            {"types": ["domain"], "values": {"co-located domain": "whoisapi.com"},
             "comment": "co-located domain from DomainTools",
             "tags": ["DomainTools", "co-located domain"]}
        ])
    );
    let log = h.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(param(&log[0], "limit"), None, "Pivot sends no limit");
}

#[tokio::test]
async fn pivot_applies_results_limit_to_co_located_domains_and_checks_it_before_calling() {
    let h = Misp::start().await;
    let reply = h
        .ask(
            "DomainTools-Pivot",
            "ip-src",
            "199.30.228.112",
            json!({"config": {"username": USER, "api_key": KEY, "results_limit": "0"}}),
        )
        .await;
    assert_eq!(reply["results"].as_array().unwrap().len(), 1);

    let h = Misp::start().await;
    let reply = h
        .ask(
            "DomainTools-Pivot",
            "ip-src",
            "199.30.228.112",
            json!({"config": {"username": USER, "api_key": KEY, "results_limit": "lots"}}),
        )
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error(
            "The results_limit setting must be a whole number, not \"lots\"."
        )
    );
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn historic_maps_hosting_and_whois_history_with_partial_results() {
    let h = Misp::start().await;
    let reply = h
        .ask("DomainTools-Historic", "domain", "google.com", json!({}))
        .await;
    // The fake has google.com's hosting history and woot.com's whois history only.
    let error = format!("Whois History lookup failed: {NOT_FOUND}");
    let mut expected = hover(&historic::map(Some(&answer("hosting-history.json")), None));
    expected
        .as_array_mut()
        .unwrap()
        .push(crate::common::error_entry(&error));
    assert_eq!(reply["results"], expected);
    assert_eq!(reply["results"].as_array().unwrap().len(), 92);
    assert_eq!(reply["error"], error);
    assert_eq!(
        paths(&h.requests()),
        [
            "/v1/google.com/hosting-history",
            "/v1/google.com/whois/history"
        ]
    );
    for request in h.requests() {
        assert_eq!(param(&request, "app_name"), Some("DomainTools-Historic"));
        for absent in ["mode", "sort", "offset", "limit"] {
            assert_eq!(
                param(&request, absent),
                None,
                "the reference sends no {absent}"
            );
        }
    }

    let h = Misp::start().await;
    let reply = h
        .ask(
            "DomainTools-Historic",
            "url",
            "http://www.woot.com/deals",
            json!({}),
        )
        .await;
    let mut expected = hover(&historic::map(None, Some(&answer("whois-history.json"))));
    expected
        .as_array_mut()
        .unwrap()
        .push(crate::common::error_entry(reply["error"].as_str().unwrap()));
    assert_eq!(reply["results"], expected);
    assert_eq!(
        reply["results"][0]["values"],
        json!({"email": "abusecomplaints@markmonitor.com"})
    );
    assert_eq!(
        reply["error"],
        format!("Hosting History lookup failed: {NOT_FOUND}")
    );
}

#[tokio::test]
async fn historic_refuses_other_input_types_clearly_without_calling() {
    let h = Misp::start().await;
    for (attribute_type, value) in [
        ("ip-src", "199.30.228.112"),
        ("email-src", "a@google.com"),
        ("whois-registrant-name", "Google LLC"),
        (
            "x509-fingerprint-sha1",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
    ] {
        let reply = h
            .ask("DomainTools-Historic", attribute_type, value, json!({}))
            .await;
        assert_eq!(
            reply,
            crate::common::hover_error(
                "DomainTools-Historic supports domain, hostname, url, uri and text inputs"
            ),
            "{attribute_type}"
        );
    }
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn a_failing_lookup_leaves_the_others_results_and_a_readable_error() {
    let h = Misp::start().await;
    h.fake.inject(
        "/v1/risk",
        Fault::Status {
            status: 403,
            message: "You are not authorized to access this API product.".into(),
        },
        None,
    );
    let reply = h
        .ask("DomainTools-Analyze", "domain", "google.com", json!({}))
        .await;
    let error = "Risk lookup failed: DomainTools API error 403: You are not authorized to access this API product.";
    let mut expected = google_com(Flavor::Analyze);
    expected.as_array_mut().unwrap().pop(); // the risk reason entry
                                            // The hover popover shows only results: the error ends them (issue 11).
    expected
        .as_array_mut()
        .unwrap()
        .push(crate::common::error_entry(error));
    assert_eq!(reply["results"], expected);
    assert_eq!(reply["error"], error);

    // hug.rest: only risk is recorded, so whois and profile fail the same way, named together.
    let h = Misp::start().await;
    let reply = h
        .ask("DomainTools-Pivot", "domain", "hug.rest", json!({}))
        .await;
    assert_eq!(reply["results"].as_array().unwrap().len(), 7, "{reply}");
    assert_eq!(reply["results"][0]["values"], json!({"risk score": 100}));
    assert_eq!(
        reply["error"],
        format!("Parsed Whois and Domain Profile lookups failed: {NOT_FOUND}")
    );

    // Nothing recorded at all: every lookup failed, no results.
    let h = Misp::start().await;
    let reply = h
        .ask(
            "DomainTools-Analyze",
            "domain",
            "nothing-here.com",
            json!({}),
        )
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error(&format!(
            "Parsed Whois, Domain Profile and Risk lookups failed: {NOT_FOUND}"
        ))
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_readable_error_without_the_key() {
    let h = Misp::start().await;
    let reply = h
        .ask(
            "DomainTools-Analyze",
            "ip-src",
            "199.30.228.112",
            json!({"config": {"username": USER, "api_key": "SECRET-WRONG-KEY"}}),
        )
        .await;
    let error = reply["error"].as_str().unwrap();
    assert_eq!(
        error,
        "Host Domains lookup failed: DomainTools API error 403: The credentials you entered do not match an active account."
    );
    assert!(!error.contains("SECRET") && !error.contains("signature"));
}

#[tokio::test]
async fn enrichment_requests_get_storable_values() {
    let h = Misp::start().await;
    let reply = h
        .ask(
            "DomainTools-Pivot",
            "ip-src",
            "199.30.228.112",
            json!({"event_id": "12"}),
        )
        .await;
    assert_eq!(
        reply["results"][1],
        json!({"types": ["domain"], "values": ["whoisapi.com"],
               "comment": "co-located domain from DomainTools",
               "tags": ["DomainTools"]}),
        "stored: only product tags (issue 11)"
    );
    assert_eq!(reply["results"][0]["values"], json!(["1"]));
}

#[tokio::test]
async fn inputs_without_a_classic_lookup_get_clear_errors_and_no_call() {
    let h = Misp::start().await;
    let cases = [
        ("DomainTools-Analyze", "x509-fingerprint-sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
         "DomainTools-Analyze has no lookup for x509-fingerprint-sha1 values; DomainTools-Iris-Pivot can pivot on them."),
        ("DomainTools-Pivot", "domain", "localhost",
         "\"localhost\" has no registrable domain to look up (IP addresses, bare suffixes and local names have none)."),
        ("DomainTools-Analyze", "text", "8.8.8.8",
         "\"8.8.8.8\" has no registrable domain to look up (IP addresses, bare suffixes and local names have none)."),
        ("DomainTools-Pivot", "email-src", "   ",
         "The email-src value is empty; there is nothing to search for."),
    ];
    for (module, attribute_type, value, error) in cases {
        let reply = h.ask(module, attribute_type, value, json!({})).await;
        assert_eq!(
            reply,
            crate::common::hover_error(error),
            "{module} {attribute_type}"
        );
    }
    assert!(h.requests().is_empty());
}

/// Values that would change the request path or query if they were pasted into it.
fn domain_attacks() -> Vec<(&'static str, String)> {
    let long_label = format!("{}.com", "a".repeat(64));
    let mut cases: Vec<(&'static str, String)> = Vec::new();
    for value in [
        "../../v1/account",
        "google.com/../../v1/account",
        "..",
        "google..com",
        "google.com?x=1",
        "google.com?",
        "google.com#frag",
        "google.com%2f..%2faccount",
        "%2e%2e%2faccount.com",
        "goo gle.com",
        "google.com ",
        "google.com\u{0}",
        "google.com\r\nX-Injected: 1",
        "google.com\t",
        "google\\..\\account.com",
        "google.com:443",
        long_label.as_str(),
    ] {
        for attribute_type in ["domain", "hostname"] {
            cases.push((attribute_type, value.to_owned()));
        }
    }
    // URLs and text are reduced first (like the reference); these reduce to names that would
    // still change the path, and are refused.
    for (attribute_type, value) in [
        ("url", "http://goo gle.com/x".to_owned()),
        ("url", format!("http://www.{long_label}/")),
        ("uri", "https://evil%2f..%2fx.com/".to_owned()),
        ("text", "evil.com%2f..%2fx.com".to_owned()),
        ("text", "x.goo\u{7}gle.com".to_owned()),
    ] {
        cases.push((attribute_type, value));
    }
    cases
}

fn ip_attacks() -> Vec<&'static str> {
    vec![
        "199.30.228.112/../../v1/account",
        "../199.30.228.112",
        "199.30.228.112?limit=1000",
        "199.30.228.112#x",
        "199.30.228.112%2f..",
        "199.30.228.112 x",
        "199.30.228.112\n",
        "199.30.228.112\u{0}",
        "fe80::1%eth0",
        "[::1]",
        "1.2.3",
        "199.30.228.112:80",
    ]
}

#[tokio::test]
async fn path_attacks_get_a_clear_error_and_never_reach_domaintools() {
    let h = Misp::start().await;
    let mut checked = 0;
    for module in [
        "DomainTools-Analyze",
        "DomainTools-Pivot",
        "DomainTools-Historic",
    ] {
        for (attribute_type, value) in domain_attacks() {
            let reply = h.ask(module, attribute_type, &value, json!({})).await;
            let error = reply["error"].as_str().unwrap_or_default();
            assert_eq!(
                reply["results"],
                json!([crate::common::error_entry(error)]),
                "{module} {attribute_type} {value:?}"
            );
            assert!(
                error.contains("is not a valid domain name")
                    || error.contains("has no registrable domain"),
                "{module} {attribute_type} {value:?}: {error}"
            );
            assert!(
                !error.chars().any(char::is_control),
                "control characters are escaped in {error:?}"
            );
            checked += 1;
        }
        if module == "DomainTools-Historic" {
            continue;
        }
        for value in ip_attacks() {
            for attribute_type in ["ip-src", "ip-dst"] {
                let reply = h.ask(module, attribute_type, value, json!({})).await;
                let error = reply["error"].as_str().unwrap_or_default();
                assert_eq!(reply["results"], json!([crate::common::error_entry(error)]));
                assert!(
                    error.contains("is not a valid IP address (IPv4 or IPv6)."),
                    "{module} {value:?}: {error}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "{checked}");
    assert_eq!(h.requests(), [], "no attack reached the DomainTools API");
}

#[tokio::test]
async fn the_refusal_messages_name_the_problem() {
    let h = Misp::start().await;
    let cases = [
        ("domain", "google.com/../x", "\"google.com/../x\" is not a valid domain name: it contains '/'."),
        ("domain", "google.com?x", "\"google.com?x\" is not a valid domain name: it contains '?'."),
        ("hostname", "a b.com", "\"a b.com\" is not a valid domain name: it contains a space."),
        ("domain", "x\u{0}.com", "\"x\\0.com\" is not a valid domain name: it contains a control character (\\u{0})."),
        ("text", "evil.com%2f..%2fx.com", "\"%2fx.com\" is not a valid domain name: it contains '%'. It is the registrable domain of the text value."),
    ];
    for (attribute_type, value, error) in cases {
        let reply = h
            .ask("DomainTools-Analyze", attribute_type, value, json!({}))
            .await;
        assert_eq!(reply["error"], error, "{value:?}");
    }
    let long = format!("{}.com", "a".repeat(64));
    let reply = h.ask("DomainTools-Pivot", "domain", &long, json!({})).await;
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .ends_with("is longer than 63 characters."));
    let reply = h
        .ask("DomainTools-Pivot", "ip-src", "1.2.3.4/x", json!({}))
        .await;
    assert_eq!(
        reply["error"],
        "\"1.2.3.4/x\" is not a valid IP address (IPv4 or IPv6)."
    );
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn internationalised_domains_are_looked_up_in_punycode() {
    let h = Misp::start().await;
    let reply = h
        .ask("DomainTools-Analyze", "domain", "www.bücher.de", json!({}))
        .await;
    // Not recorded: the fake answers 404, but the path it was asked for is the point here.
    assert_eq!(
        reply["results"],
        json!([crate::common::error_entry(reply["error"].as_str().unwrap())])
    );
    assert_eq!(
        paths(&h.requests()),
        [
            "/v1/risk",
            "/v1/xn--bcher-kva.de",
            "/v1/xn--bcher-kva.de/whois/parsed"
        ]
    );
    let risk = h
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/risk")
        .unwrap();
    assert_eq!(param(&risk, "domain"), Some("xn--bcher-kva.de"));
}

#[tokio::test]
async fn the_client_itself_refuses_unsafe_path_values_before_any_request() {
    use domaintools::{Caller, Credentials, Error};
    let upstream = TestServer::builder().start_client().await;
    let (client, fake) = (&upstream.client, &upstream.fake);
    let credentials = Credentials::new(USER, KEY);
    let caller = Caller::new(&credentials, "DomainTools-Analyze");
    let mut refused = 0;
    for (_, value) in domain_attacks() {
        let results = [
            client.parsed_whois(caller, &value).await,
            client.domain_profile(caller, &value).await,
            client.risk(caller, &value).await,
            client.hosting_history(caller, &value).await,
            client.whois_history(caller, &value).await,
        ];
        for result in results {
            match result {
                Err(Error::InvalidInput(message)) => {
                    assert!(message.contains("is not a valid domain name"), "{message}");
                    refused += 1;
                }
                other => panic!("{value:?} was not refused: {other:?}"),
            }
        }
    }
    for value in ip_attacks() {
        for limit in [None, Some(0)] {
            let result = client.host_domains(caller, value, limit).await;
            assert!(matches!(result, Err(Error::InvalidInput(_))), "{value:?}");
            refused += 1;
        }
    }
    // The URL and text attacks are whole URLs here, refused as domain names too.
    assert!(refused > 100, "{refused}");
    assert_eq!(fake.requests(), []);

    // And the same client does reach the fake with a good value.
    let profile = client.domain_profile(caller, "google.com").await.unwrap();
    assert_eq!(profile["server"]["ip_address"], "142.250.73.68");
    assert_eq!(fake.calls_to("/v1/google.com"), 1);
}

#[tokio::test]
async fn the_classic_examples_run_on_the_demo_data() {
    let h = Misp(
        TestServer::builder()
            .default_credentials(DEMO_USERNAME, DEMO_API_KEY)
            .start()
            .await,
    );
    let whois_404 = format!("Whois History lookup failed: {NOT_FOUND}");
    let hosting_404 = format!("Hosting History lookup failed: {NOT_FOUND}");
    let risk_only = format!("Parsed Whois and Domain Profile lookups failed: {NOT_FOUND}");
    let cases: [(&str, usize, Option<&str>); 12] = [
        ("analyze-domain.json", 27, None),
        ("analyze-url.json", 27, None),
        ("analyze-risk.json", 6, Some(&risk_only)),
        ("analyze-email.json", 2, None),
        ("analyze-ip.json", 1, None),
        // Stored: same type and value merged into one entry (issue 11), and results_limit
        // caps the reverse whois domains.
        ("pivot-domain.json", 26, None),
        ("pivot-registrant.json", 103, None),
        ("pivot-ip.json", 2, None),
        ("historic-domain.json", 91, Some(&whois_404)),
        ("historic-whois-history.json", 1, Some(&hosting_404)),
        (
            "error-historic-ip.json",
            0,
            Some("DomainTools-Historic supports domain, hostname, url, uri and text inputs"),
        ),
        (
            "error-path-attack.json",
            0,
            Some("\"google.com/../../v1/account\" is not a valid domain name: it contains '/'."),
        ),
    ];
    for (file, count, error) in cases {
        let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read_to_string(&path).unwrap();
        let stored = body.contains("event_id");
        let reply = h.post(body).await;
        let results = reply["results"].as_array().unwrap();
        // A hover's error is also its last entry (issue 11).
        let count = count + usize::from(!stored && error.is_some());
        assert_eq!(results.len(), count, "{file}: {}", reply["error"]);
        assert_eq!(reply["error"].as_str(), error, "{file}");
        if let Some(first) = results.first() {
            assert_eq!(
                first["values"].is_array(),
                stored,
                "{file}: stored form iff event_id"
            );
        }
    }
}
