//! DomainTools-Iris-Pivot, -Iris-Import and -Iris-Detect end to end: MISP's request over real
//! TCP to our server, our server over real TCP to the fake DomainTools API, checking both the
//! reply MISP gets and the parameters DomainTools received.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use domaintools_fake::{FakeApi, Fault, LoggedRequest};
use misp_domaintools::http::Options;
use serde_json::{json, Value};

use crate::common::server::{TestServer, KEY, USER};

/// Parameters every call carries; left out when comparing an endpoint's own parameters.
const CALL_PARAMS: [&str; 5] = [
    "app_partner",
    "app_name",
    "app_version",
    "api_username",
    "timestamp",
];

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
        Self(
            TestServer::builder()
                // Today's date, not the golden day: Detect's date options are relative to it.
                .options(Options::default())
                // These tests count the calls each module makes for repeated identical lookups;
                // the response cache (tested in quota.rs) would answer the repeats.
                .client(|config| config.cache.max_bytes = 0)
                .start()
                .await,
        )
    }

    /// POSTs `/query` for `module` with `fields` (the attribute, `event_id`, `data`…) and
    /// `config` on top of the credentials.
    async fn query(&self, module: &str, fields: Value, config: Value) -> Value {
        let mut body = json!({"module": module, "config": {"username": USER, "api_key": KEY}});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        for (k, v) in config.as_object().unwrap() {
            body["config"][k] = v.clone();
        }
        let response = self
            .http
            .post(format!("{}/query", self.url))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    /// Requests the fake received on `path`.
    fn calls(&self, path: &str) -> Vec<LoggedRequest> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// A request's own parameters as `key=value`, without identification and auth.
fn own_params(request: &LoggedRequest) -> Vec<String> {
    request
        .params
        .iter()
        .filter(|(k, _)| !CALL_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn param<'a>(request: &'a LoggedRequest, key: &str) -> Option<&'a str> {
    request
        .params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Hover-form values: `{label: value}` → (label, value).
fn labelled(results: &Value) -> Vec<(String, Value)> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e["values"].as_object().unwrap().iter().next().unwrap();
            (k.clone(), v.clone())
        })
        .collect()
}

const INVESTIGATE: &str = "/v1/iris-investigate/";
const DETECT_NEW: &str = "/v1/iris-detect/domains/new/";
const DETECT_WATCHED: &str = "/v1/iris-detect/domains/watched/";
const ESCALATIONS: &str = "/v1/iris-detect/escalations/";

#[tokio::test]
async fn modules_lists_all_five_iris_modules() {
    let h = Misp::start().await;
    let body = h
        .http
        .get(format!("{}/modules", h.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listing: Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for name in [
        "DomainTools-Iris-Detect",
        "DomainTools-Iris-Enrich",
        "DomainTools-Iris-Import",
        "DomainTools-Iris-Investigate",
        "DomainTools-Iris-Pivot",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

#[tokio::test]
async fn pivot_on_a_domain_gives_the_full_profile() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"domain": "www.google.com"}),
            json!({"results_limit": null, "guided_pivot_threshold": null}),
        )
        .await;
    assert_eq!(reply["results"].as_array().unwrap().len(), 48, "{reply}");
    assert!(reply.get("error").is_none());
    let calls = h.calls(INVESTIGATE);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(own_params(&calls[0]), ["domain=google.com"]);
    assert_eq!(param(&calls[0], "app_name"), Some("DomainTools-Iris-Pivot"));
    assert_eq!(param(&calls[0], "app_partner"), Some("MISP"));
    let ssl = &reply["results"][23];
    assert_eq!(
        ssl["values"],
        json!({"SSL Hash": "fcebe5bb73f9541e544eb1a784ada0b35060412b"})
    );
    assert_eq!(ssl["tags"], json!(["DomainTools", "Iris", "Guided Pivot"]));
}

#[tokio::test]
async fn pivot_threshold_setting_changes_the_tags_and_garbage_is_refused() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"domain": "google.com"}),
            json!({"guided_pivot_threshold": "1000"}),
        )
        .await;
    let ip = reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["values"] == json!({"IP Address": "142.251.33.78"}))
        .unwrap();
    assert_eq!(ip["comment"], "IP Address (GP: 847) from DomainTools Iris");
    assert_eq!(ip["tags"], json!(["DomainTools", "Iris", "Guided Pivot"]));

    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"domain": "google.com"}),
            json!({"guided_pivot_threshold": "abc"}),
        )
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error(
            "The guided_pivot_threshold setting must be a whole number, not \"abc\"."
        )
    );
    assert_eq!(
        h.calls(INVESTIGATE).len(),
        1,
        "no call with a broken setting"
    );
}

#[tokio::test]
async fn pivot_on_every_other_input_type() {
    let h = Misp::start().await;
    let cases = [
        ("ip-src", "142.251.33.78", "ip", vec!["google.com"]),
        ("ip-dst", "54.239.28.85", "ip", vec!["amazon.com"]),
        (
            "whois-registrant-email",
            "dns-admin@google.com",
            "email",
            vec!["google.com"],
        ),
        ("email-dst", "root@amazon.com", "email", vec!["amazon.com"]),
        (
            "email-src",
            "dns-admin@google.com",
            "email",
            vec!["google.com"],
        ),
        (
            "hostname",
            "ns1.google.com",
            "nameserver_host",
            vec!["google.com"],
        ),
        (
            "whois-registrar",
            "MarkMonitor, Inc.",
            "registrar",
            vec!["amazon.com", "google.com"],
        ),
        (
            "whois-registrant-name",
            "Hostmaster, Amazon Legal Dept.",
            "registrant",
            vec!["amazon.com"],
        ),
        (
            "x509-fingerprint-sha1",
            "fcebe5bb73f9541e544eb1a784ada0b35060412b",
            "ssl_hash",
            vec!["google.com"],
        ),
    ];
    for (attribute_type, value, parameter, domains) in cases {
        h.fake.clear_requests();
        let reply = h
            .query(
                "DomainTools-Iris-Pivot",
                json!({ attribute_type: value }),
                json!({}),
            )
            .await;
        let mut expected: Vec<(String, Value)> = domains
            .iter()
            .map(|d| ("Domain".to_owned(), json!(d)))
            .collect();
        expected.push(("Connected Domains".to_owned(), json!(domains.len())));
        assert_eq!(
            labelled(&reply["results"]),
            expected,
            "{attribute_type}: {reply}"
        );
        assert!(
            reply.get("comment").is_none(),
            "{attribute_type}: nothing left out"
        );
        let calls = h.calls(INVESTIGATE);
        assert_eq!(calls.len(), 1, "{attribute_type}");
        assert_eq!(
            own_params(&calls[0]),
            [format!("{parameter}={value}")],
            "{attribute_type}"
        );
    }
}

#[tokio::test]
async fn pivot_without_results_says_so_with_the_hostname_hint() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"hostname": "www.google.com"}),
            json!({}),
        )
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error("No results found. Try searching by domain.")
    );
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"ip-src": "192.0.2.99"}),
            json!({}),
        )
        .await;
    assert_eq!(reply, crate::common::hover_error("No results found."));
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"domain": "localhost"}),
            json!({}),
        )
        .await;
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .starts_with("\"localhost\" has no registrable domain to look up"));
    assert_eq!(h.calls(INVESTIGATE).len(), 2, "no call for localhost");
}

#[tokio::test]
async fn pivot_pages_up_to_results_limit_and_says_how_many_exist() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"whois-registrar": "many-1234", "event_id": "7"}),
            json!({"results_limit": "700"}),
        )
        .await;
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), 702, "700 domains, the count, the summary");
    assert_eq!(results[0]["values"], json!(["d0001.example"]));
    assert_eq!(results[699]["values"], json!(["d0700.example"]));
    assert_eq!(results[700]["values"], json!(["1234"]));
    assert_eq!(
        summary(&reply),
        "DomainTools Iris has 1,234 domains for this registrar; only the first 700 are shown (results_limit is 700)."
    );
    let calls = h.calls(INVESTIGATE);
    assert_eq!(calls.len(), 2, "two pages of 500 cover 700");
    assert_eq!(own_params(&calls[0]), ["registrar=many-1234"]);
    assert!(param(&calls[1], "position").is_some_and(|p| !p.is_empty()));

    // The default limit is 100: one page is enough, and the note says so.
    h.fake.clear_requests();
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"whois-registrar": "many-150"}),
            json!({"results_limit": ""}),
        )
        .await;
    assert_eq!(reply["results"].as_array().unwrap().len(), 101);
    assert_eq!(
        summary(&reply),
        "DomainTools Iris has 150 domains for this registrar; only the first 100 are shown (results_limit is 100)."
    );
    assert_eq!(h.calls(INVESTIGATE).len(), 1);
}

#[tokio::test]
async fn pivot_over_iris_limit_is_a_clear_error() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"ip-src": "8.8.8.8"}),
            json!({}),
        )
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error("DomainTools Iris limit exceeded: Maximum 5000 returned - you may need to refine your query.")
    );
}

#[tokio::test]
async fn import_decodes_the_paste_and_imports_storable_domains() {
    let h = Misp::start().await;
    let data = STANDARD.encode("\"U2FsdGVkX19bNf46SZMn\"\n");
    let reply = h
        .query(
            "DomainTools-Iris-Import",
            json!({"data": data, "event_id": "56"}),
            json!({"results_limit": null}),
        )
        .await;
    assert_eq!(
        reply,
        json!({
            "results": [
                {"types": ["domain"], "values": ["amazon.com"],
                 "comment": "Domain from DomainTools Iris: risk score 0, created 1994-11-01, expires 2024-10-31, active",
                 "tags": ["DomainTools", "Iris"], "categories": ["External analysis"]},
                {"types": ["domain"], "values": ["google.com"],
                 "comment": "Domain from DomainTools Iris: risk score 0, created 1997-09-15, expires 2028-09-14, active",
                 "tags": ["DomainTools", "Iris"], "categories": ["External analysis"]},
                // The summary is an attribute of its own, not every attribute's comment.
                {"types": ["comment"], "values": ["DomainTools Iris: all 2 domains of this search hash imported."],
                 "comment": "Summary of this DomainTools answer", "tags": ["DomainTools"], "categories": ["Other"]}
            ]
        })
    );
    let calls = h.calls(INVESTIGATE);
    assert_eq!(calls.len(), 1);
    assert_eq!(own_params(&calls[0]), ["search_hash=U2FsdGVkX19bNf46SZMn"]);
    assert_eq!(
        param(&calls[0], "app_name"),
        Some("DomainTools-Iris-Import")
    );
}

#[tokio::test]
async fn import_values_are_strings_even_without_event_id() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Import",
            json!({"data": STANDARD.encode("U2FsdGVkX19bNf46SZMn")}),
            json!({}),
        )
        .await;
    assert_eq!(reply["results"][0]["values"], json!(["amazon.com"]));
}

#[tokio::test]
async fn import_follows_pages_up_to_results_limit() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Import",
            json!({"data": STANDARD.encode("many-1234"), "event_id": "1"}),
            json!({"results_limit": "1000"}),
        )
        .await;
    assert_eq!(
        reply["results"].as_array().unwrap().len(),
        1001,
        "and the summary"
    );
    assert_eq!(
        summary(&reply),
        "DomainTools Iris has 1,234 domains for this search hash; only the first 1,000 are imported (results_limit is 1000)."
    );
    let calls = h.calls(INVESTIGATE);
    assert_eq!(calls.len(), 2);
    assert_eq!(own_params(&calls[0]), ["search_hash=many-1234"]);
    assert_eq!(param(&calls[1], "search_hash"), Some("many-1234"));
    assert!(param(&calls[1], "position").is_some());

    // A limit above what exists reads every page and imports everything.
    h.fake.clear_requests();
    let reply = h
        .query(
            "DomainTools-Iris-Import",
            json!({"data": STANDARD.encode("many-1234"), "event_id": "1"}),
            json!({"results_limit": "5000"}),
        )
        .await;
    assert_eq!(
        reply["results"].as_array().unwrap().len(),
        1235,
        "and the summary: {}",
        reply["error"]
    );
    assert_eq!(
        summary(&reply),
        "DomainTools Iris: all 1,234 domains of this search hash imported."
    );
    assert_eq!(h.calls(INVESTIGATE).len(), 3);
}

#[tokio::test]
async fn import_refuses_bad_pastes_without_calling_domaintools() {
    let h = Misp::start().await;
    let reply = h
        .query("DomainTools-Iris-Import", json!({"data": ""}), json!({}))
        .await;
    assert_eq!(
        reply,
        json!({"results": [], "error": "Query is empty. Please input a valid search hash."})
    );
    let reply = h
        .query("DomainTools-Iris-Import", json!({"data": "%%%"}), json!({}))
        .await;
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .starts_with("The import data is not valid base64"));
    let reply = h
        .query(
            "DomainTools-Iris-Import",
            json!({"data": STANDARD.encode("x")}),
            json!({"results_limit": "ten"}),
        )
        .await;
    assert_eq!(
        reply["error"],
        "The results_limit setting must be a whole number, not \"ten\"."
    );
    assert_eq!(h.calls(INVESTIGATE).len(), 0);
}

#[tokio::test]
async fn detect_default_form_imports_one_page_of_new_domains() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": "", "event_id": "3"}),
            json!({
                "api_endpoint": "0", "test_mode": "0", "monitor_id": "", "risk_score_ranges": "0",
                "discovered_date": "", "changed_since": "", "escalated_since": "",
                "escalation_types": "0", "tag_domains_as_blocked": "0", "include_domain_data": "0",
                "results_limit": null
            }),
        )
        .await;
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), 101, "100 domains and the summary");
    assert_eq!(
        results[0],
        json!({"categories": ["External analysis"], "type": "domain", "values": "googletydep.com",
               "tags": ["DomainTools", "Iris Detect"],
               "comment": "Iris Detect new domain, discovered 2025-04-05, changed 2025-04-05, risk score 100, active, monitored term google"})
    );
    assert!(results[..100]
        .iter()
        .all(|e| e["values"].is_string() && e["type"] == "domain"));
    assert_eq!(
        summary(&reply),
        "DomainTools Iris Detect: imported all 100 new domains."
    );
    let calls = h.calls(DETECT_NEW);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert_eq!(
        own_params(&calls[0]),
        ["include_domain_data=false", "preview=false", "offset=0"]
    );
    assert_eq!(h.calls(ESCALATIONS).len(), 0);
}

#[tokio::test]
async fn detect_watched_sends_every_filter() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({
                "api_endpoint": "1", "monitor_id": "nAwmQg2pqg", "risk_score_ranges": "4",
                "discovered_date": "2020-01-01", "changed_since": "2020-01-01",
                "escalated_since": "2020-01-01T00:00:00+00:00", "escalation_types": "2",
                "include_domain_data": "0", "test_mode": "0"
            }),
        )
        .await;
    let calls = h.calls(DETECT_WATCHED);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        own_params(&calls[0]),
        [
            "monitor_id=nAwmQg2pqg",
            "include_domain_data=false",
            "preview=false",
            "offset=0",
            "changed_since=2020-01-01",
            "escalated_since=2020-01-01T00:00:00+00:00",
            "escalation_types[]=google_safe",
            "risk_score_ranges[]=70-99",
        ]
    );
    // The recorded watched domains carry no escalations, so nothing matches.
    assert_eq!(reply, json!({"results": [], "error": "No results found."}));

    h.fake.clear_requests();
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"api_endpoint": "1", "risk_score_ranges": "4", "discovered_date": "2020-01-01"}),
        )
        .await;
    assert!(!reply["results"].as_array().unwrap().is_empty(), "{reply}");
    let comment = summary(&reply).as_str().unwrap();
    assert!(
        comment.ends_with(
            "Not used with the watched list (as in DomainTools' own module): discovered_date."
        ),
        "{comment}"
    );
    assert_eq!(
        own_params(&h.calls(DETECT_WATCHED)[0]),
        [
            "include_domain_data=false",
            "preview=false",
            "offset=0",
            "risk_score_ranges[]=70-99"
        ]
    );
}

#[tokio::test]
async fn detect_new_sends_discovered_since_and_risk_range() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"monitor_id": "nAwmQg2pqg", "risk_score_ranges": "5", "discovered_date": "2025-01-01"}),
        )
        .await;
    assert!(
        reply["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{reply}"
    );
    assert_eq!(
        own_params(&h.calls(DETECT_NEW)[0]),
        [
            "monitor_id=nAwmQg2pqg",
            "include_domain_data=false",
            "preview=false",
            "offset=0",
            "discovered_since=2025-01-01",
            "risk_score_ranges[]=100-100"
        ]
    );
}

#[tokio::test]
async fn detect_pages_with_domain_data_and_maps_its_infrastructure() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"include_domain_data": "1", "results_limit": "100"}),
        )
        .await;
    let calls = h.calls(DETECT_NEW);
    let offsets: Vec<_> = calls.iter().map(|c| param(c, "offset").unwrap()).collect();
    assert_eq!(offsets, ["0", "50"], "pages of 50 with domain data");
    assert!(calls
        .iter()
        .all(|c| param(c, "include_domain_data") == Some("true")));
    let results = reply["results"].as_array().unwrap();
    let domains = results.iter().filter(|e| is_detect_domain(e)).count();
    assert_eq!(domains, 100);
    let name_server = results
        .iter()
        .find(|e| {
            e["comment"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Name Server ")
        })
        .unwrap();
    assert_eq!(name_server["type"], "domain");
    assert!(name_server["comment"]
        .as_str()
        .unwrap()
        .starts_with("Name Server googletydep.com"));
    assert_eq!(name_server["tags"], json!(["DomainTools", "Iris Detect"]));
    let ip = results
        .iter()
        .find(|e| e["comment"].as_str().unwrap_or_default().starts_with("IP "))
        .unwrap();
    assert_eq!(ip["type"], "ip-src");
    assert!(ip["values"].is_string());
    assert_eq!(
        summary(&reply),
        "DomainTools Iris Detect: imported all 100 new domains."
    );
}

#[tokio::test]
async fn detect_stops_at_results_limit_and_says_so() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"include_domain_data": "1", "results_limit": "60"}),
        )
        .await;
    assert_eq!(h.calls(DETECT_NEW).len(), 2);
    assert_eq!(
        summary(&reply),
        "DomainTools Iris Detect: imported 60 of 100 new domains (results_limit is 60)."
    );
}

#[tokio::test]
async fn detect_test_mode_is_one_preview_page() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"test_mode": "1", "results_limit": "500"}),
        )
        .await;
    let calls = h.calls(DETECT_NEW);
    assert_eq!(calls.len(), 1);
    assert_eq!(param(&calls[0], "preview"), Some("true"));
    assert_eq!(
        reply["results"].as_array().unwrap().len(),
        11,
        "and the summary"
    );
    assert_eq!(
        summary(&reply),
        "DomainTools Iris Detect: imported 10 of 100 new domains (test mode returns a preview only)."
    );
}

#[tokio::test]
async fn detect_tags_new_domains_as_blocked() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"tag_domains_as_blocked": "1", "api_endpoint": "0"}),
        )
        .await;
    let escalations = h.calls(ESCALATIONS);
    assert_eq!(escalations.len(), 1);
    assert_eq!(escalations[0].method, "POST");
    assert_eq!(param(&escalations[0], "escalation_type"), Some("blocked"));
    let ids: Vec<&str> = escalations[0]
        .params
        .iter()
        .filter(|(k, _)| k == "watchlist_domain_ids[]")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(ids.len(), 100);
    assert_eq!(ids[0], "ka0oL0AegW");
    assert_eq!(
        summary(&reply),
        "DomainTools Iris Detect: imported all 100 new domains. Tagged 100 of them as blocked in Iris Detect."
    );
    assert!(reply.get("error").is_none());

    // The watched list is never escalated (reference), and the reply says so.
    h.fake.clear_requests();
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"tag_domains_as_blocked": "1", "api_endpoint": "1"}),
        )
        .await;
    assert_eq!(h.calls(ESCALATIONS).len(), 0);
    assert!(summary(&reply).as_str().unwrap().ends_with(
        "Not used with the watched list (as in DomainTools' own module): tag_domains_as_blocked."
    ));
}

#[tokio::test]
async fn detect_failed_escalation_keeps_the_results() {
    let h = Misp::start().await;
    h.fake.inject(
        ESCALATIONS,
        Fault::Status {
            status: 403,
            message: "You are not authorized to access this API product.".into(),
        },
        None,
    );
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"tag_domains_as_blocked": "1"}),
        )
        .await;
    assert_eq!(
        reply["results"].as_array().unwrap().len(),
        101,
        "and the summary"
    );
    assert_eq!(
        reply["error"],
        "The domains were imported, but tagging them as blocked in Iris Detect failed: DomainTools API error 403: You are not authorized to access this API product."
    );
}

#[tokio::test]
async fn detect_refuses_a_bad_form_without_calling_domaintools() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"changed_since": "yesterday"}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"results": [], "error": "Incorrect data format for changed_since (\"yesterday\"), should be YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+00:00 (for example 2022-02-28 or 2022-02-28T01:23:45+00:00)."})
    );
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"risk_score_ranges": "9"}),
        )
        .await;
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .starts_with("The risk_score_ranges setting must be an option number from 0 to 5"));
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn detect_upstream_failure_is_readable() {
    let h = Misp::start().await;
    h.fake.inject(DETECT_NEW, Fault::RateLimited, None);
    let reply = h
        .query("DomainTools-Iris-Detect", json!({"data": ""}), json!({}))
        .await;
    assert_eq!(
        reply,
        json!({"results": [], "error": "DomainTools API error 503: You have exceeded the maximum number of requests per minute allowed under your service level (/min)."})
    );
}

#[tokio::test]
async fn no_secret_reaches_a_reply() {
    let h = Misp::start().await;
    h.fake.inject(
        INVESTIGATE,
        Fault::NonJson {
            status: 500,
            body: "oops not json".into(),
        },
        None,
    );
    for (module, fields) in [
        ("DomainTools-Iris-Pivot", json!({"ip-src": "142.251.33.78"})),
        (
            "DomainTools-Iris-Import",
            json!({"data": STANDARD.encode("x")}),
        ),
    ] {
        let reply = h.query(module, fields, json!({})).await;
        let text = reply.to_string();
        assert!(reply["error"].is_string(), "{text}");
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains("signature"), "{text}");
    }
}

/// Lets the next request on `path` through, then fails every later one with a 503.
fn fail_after_first(fake: &FakeApi, path: &str) {
    fake.inject(path, Fault::Slow(std::time::Duration::ZERO), Some(1));
    fake.inject(path, Fault::RateLimited, None);
}

#[tokio::test]
async fn import_keeps_the_pages_read_when_a_later_one_fails() {
    let h = Misp::start().await;
    fail_after_first(&h.fake, INVESTIGATE);
    let reply = h
        .query(
            "DomainTools-Iris-Import",
            json!({"data": STANDARD.encode("many-1234"), "event_id": "1"}),
            json!({"results_limit": "1000"}),
        )
        .await;
    assert_eq!(reply["results"].as_array().unwrap().len(), 500);
    assert_eq!(
        reply["error"],
        "DomainTools Iris has 1,234 domains for this search hash; only the first 500 are imported (reading the next page failed: DomainTools API error 503: You have exceeded the maximum number of requests per minute allowed under your service level (/min))."
    );
    assert!(reply.get("comment").is_none());
}

#[tokio::test]
async fn detect_keeps_the_pages_read_when_a_later_one_fails() {
    let h = Misp::start().await;
    fail_after_first(&h.fake, DETECT_NEW);
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"results_limit": "100", "include_domain_data": "1"}),
        )
        .await;
    let domains = reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| is_detect_domain(e))
        .count();
    assert_eq!(domains, 50);
    assert_eq!(
        summary(&reply),
        "DomainTools Iris Detect: imported 50 of 100 new domains (a page could not be read)."
    );
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .starts_with("Reading the next Iris Detect page failed, so the import is partial: DomainTools API error 503"));
}

/// The request bodies in `examples/` (run with curl against `--demo`) work against the fake,
/// with the demo credentials replaced by the test account.
#[tokio::test]
async fn the_examples_run() {
    let h = Misp::start().await;
    for (name, expected) in [
        // Stored replies: the same type and value merged into one entry, and a summary of
        // its own where there is one (issue 11).
        ("iris-pivot-domain.json", 35),
        ("iris-pivot-ip.json", 2),
        ("iris-pivot-registrar-limited.json", 3),
        ("iris-import.json", 3),
        ("iris-detect-new.json", 101),
        ("iris-detect-watched.json", 11),
    ] {
        let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut body: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let module = body["module"].as_str().unwrap().to_owned();
        let mut config = body["config"].take();
        for secret in ["username", "api_key"] {
            config.as_object_mut().unwrap().remove(secret);
        }
        let mut fields = body.as_object().unwrap().clone();
        fields.remove("config");
        let reply = h.query(&module, Value::Object(fields), config).await;
        assert!(reply.get("error").is_none(), "{name}: {reply}");
        let got = reply["results"].as_array().unwrap().len();
        assert_eq!(got, expected, "{name}: {reply}");
    }
}

#[tokio::test]
async fn results_limit_zero_means_count_only_for_pivot_and_is_refused_by_imports() {
    let h = Misp::start().await;
    let reply = h
        .query(
            "DomainTools-Iris-Pivot",
            json!({"whois-registrar": "MarkMonitor, Inc."}),
            json!({"results_limit": "0"}),
        )
        .await;
    assert_eq!(
        labelled(&reply["results"]),
        [("Connected Domains".to_owned(), json!(2))]
    );
    assert_eq!(
        summary(&reply),
        "DomainTools Iris has 2 domains for this registrar; none are shown (results_limit is 0)."
    );
    let refused = "The results_limit setting is 0, so nothing would be imported: set it to at least 1 (empty means 100).";
    let reply = h
        .query(
            "DomainTools-Iris-Import",
            json!({"data": STANDARD.encode("x")}),
            json!({"results_limit": "0"}),
        )
        .await;
    assert_eq!(reply["error"], refused);
    let reply = h
        .query(
            "DomainTools-Iris-Detect",
            json!({"data": ""}),
            json!({"results_limit": 0}),
        )
        .await;
    assert_eq!(reply["error"], refused);
    assert_eq!(h.calls(INVESTIGATE).len(), 1, "only the pivot called");
    assert_eq!(h.calls(DETECT_NEW).len(), 0);
}

/// The reply's summary: an attribute of its own in stored replies (issue 11: MISP would put a
/// top-level comment on every attribute), the top-level comment in hover replies.
fn summary(reply: &Value) -> &Value {
    reply["results"]
        .as_array()
        .and_then(|results| results.iter().find(|e| e["types"] == json!(["comment"])))
        .map_or(&reply["comment"], |entry| &entry["values"][0])
}

/// An Iris-Detect domain entry (its name servers, mail hosts and IPs say whose they are).
fn is_detect_domain(entry: &Value) -> bool {
    entry["type"] == "domain"
        && entry["comment"]
            .as_str()
            .is_some_and(|c| c.starts_with("Iris Detect "))
}
