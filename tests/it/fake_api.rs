//! The fake DomainTools API over real TCP, driven by reqwest the way the project's client will
//! drive it: authentication, every route against its recording, derived data, faults and log.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use domaintools::auth::{sign, timestamp, Credentials, SignHash};
use domaintools_fake::{FakeApi, Fault, DEMO_API_KEY, DEMO_USERNAME, MANY_LIMIT};
use serde_json::{json, Value};

use crate::common::server::{fixture, http_client, TestFake, TestServer};

/// The account of the signature vectors computed with DomainTools' Python client (not the
/// harness's test account: the recorded signatures below are over this key).
const USER: &str = "test_user";
const KEY: &str = "test_key_0123456789";
const CLASSIC_JSON: &str = "application/json;charset=utf-8";
const DETECT_JSON: &str = "application/json";

/// Request parameters in a table of cases.
type Query = [(&'static str, &'static str)];

/// HMAC parameters as the Python client sends them, signed for `path` now.
fn signed_with(path: &str, user: &str, key: &str, hash: SignHash) -> Vec<(String, String)> {
    signed_at(path, user, key, hash, Utc::now())
}

fn signed_at(
    path: &str,
    user: &str,
    key: &str,
    hash: SignHash,
    at: DateTime<Utc>,
) -> Vec<(String, String)> {
    let ts = timestamp(at);
    let signature = sign(&Credentials::new(user, key), &ts, path, hash);
    vec![
        ("api_username".into(), user.into()),
        ("timestamp".into(), ts),
        ("signature".into(), signature),
    ]
}

fn signed(path: &str) -> Vec<(String, String)> {
    signed_with(path, USER, KEY, SignHash::Sha256)
}

fn pairs(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("a complete body");
        Self {
            status,
            content_type,
            text,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `response` member of a classic answer.
    fn response(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.text);
        self.json()["response"].clone()
    }
}

struct Harness {
    upstream: TestFake,
    fake: FakeApi,
    client: reqwest::Client,
    /// The fake's frozen clock, if any: requests are signed at that time.
    clock: Option<DateTime<Utc>>,
}

async fn start() -> Harness {
    start_with(FakeApi::new().with_user(USER, KEY)).await
}

async fn start_with(fake: FakeApi) -> Harness {
    let upstream = TestServer::builder().fake(fake.clone()).start_fake().await;
    Harness {
        upstream,
        fake,
        client: http_client(),
        clock: None,
    }
}

/// A fake whose clock is frozen at `at`, with requests signed at that time.
async fn start_at(at: DateTime<Utc>) -> Harness {
    let mut harness = start_with(FakeApi::new().with_user(USER, KEY).with_fixed_now(at)).await;
    harness.clock = Some(at);
    harness
}

impl Harness {
    fn signed(&self, path: &str) -> Vec<(String, String)> {
        let at = self.clock.unwrap_or_else(Utc::now);
        signed_at(path, USER, KEY, SignHash::Sha256, at)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.upstream.base_url())
    }

    /// A GET signed as `test_user`, with `params` after the auth ones.
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        let mut query = self.signed(path);
        query.extend(pairs(params));
        self.send_query(path, &query).await
    }

    async fn send_query(&self, path: &str, query: &[(String, String)]) -> Reply {
        let response = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .expect("request sent");
        Reply::from(response).await
    }

    /// A form POST signed as `test_user`, the Python client's way for Iris.
    async fn post(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        let mut form = self.signed(path);
        form.extend(pairs(params));
        self.post_form(path, &form).await
    }

    async fn post_form(&self, path: &str, form: &[(String, String)]) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("request sent");
        Reply::from(response).await
    }

    /// A JSON request with the auth parameters inside the body (the client's PATCH).
    async fn json_request(&self, method: reqwest::Method, path: &str, mut body: Value) -> Reply {
        for (key, value) in self.signed(path) {
            body[key] = Value::from(value);
        }
        let response = self
            .client
            .request(method, self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent");
        Reply::from(response).await
    }
}

fn domains_of(results: &Value) -> Vec<String> {
    results
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["domain"].as_str().expect("a domain").to_owned())
        .collect()
}

fn contains_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k == key || contains_key(v, key)),
        Value::Array(items) => items.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

// ---- authentication ---------------------------------------------------------------------

#[tokio::test]
async fn signed_get_succeeds_and_answers_as_the_account() {
    let h = start().await;
    let reply = h.get("/v1/account", &[]).await;
    assert_eq!(reply.content_type, CLASSIC_JSON);
    let account = reply.response();
    assert_eq!(account["account"]["api_username"], USER);
    let products = account["products"].as_array().unwrap();
    assert_eq!(products.len(), 43);
    assert_eq!(products[1]["id"], "iris-investigate");
    assert_eq!(products[1]["per_minute_limit"], "20");
}

#[tokio::test]
async fn signed_post_form_succeeds() {
    let h = start().await;
    let reply = h
        .post("/v1/iris-investigate/", &[("domain", "google.com")])
        .await;
    assert_eq!(reply.content_type, CLASSIC_JSON);
    let response = reply.response();
    assert_eq!(domains_of(&response["results"]), ["google.com"]);
}

#[tokio::test]
async fn sha1_signatures_are_accepted() {
    let h = start().await;
    let query = signed_with("/v1/account", USER, KEY, SignHash::Sha1);
    assert_eq!(query[2].1.len(), 40);
    assert_eq!(h.send_query("/v1/account", &query).await.status, 200);
}

#[tokio::test]
async fn the_python_clients_recorded_request_is_accepted() {
    // Reference §1.5: the exact query client 2.10.0 sent at 2024-01-02T03:04:05Z.
    let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    let h = start_with(FakeApi::new().with_user(USER, KEY).with_fixed_now(at)).await;
    let url = h.url("/v1/example.com/whois/parsed?app_name=python_wrapper&app_version=2.10.0&api_username=test_user&timestamp=2024-01-02T03%3A04%3A05Z&signature=253d29f886777acc47dfe7cddb38a52014a8b6b557def5e2e955cf00945ec0bd");
    let reply = Reply::from(h.client.get(url).send().await.unwrap()).await;
    // Authenticated: example.com simply has no recorded whois.
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json(), fixture("error-404-not-found.json"));
}

async fn assert_refused(reply: Reply) {
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.json(), fixture("error-403-bad-credentials.json"));
    assert_eq!(
        reply.json()["error"]["message"],
        "The credentials you entered do not match an active account."
    );
}

#[tokio::test]
async fn wrong_key_is_refused() {
    let h = start().await;
    let query = signed_with("/v1/account", USER, "not-the-key", SignHash::Sha256);
    assert_refused(h.send_query("/v1/account", &query).await).await;
}

#[tokio::test]
async fn unknown_user_is_refused() {
    let h = start().await;
    let query = signed_with("/v1/account", "notauser", KEY, SignHash::Sha256);
    assert_refused(h.send_query("/v1/account", &query).await).await;
}

#[tokio::test]
async fn stale_timestamps_are_refused_in_both_directions() {
    let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    let fake = FakeApi::new()
        .with_user(USER, KEY)
        .with_fixed_now(at)
        .with_freshness(Duration::from_secs(60));
    let h = start_with(fake).await;
    let query_at = |seconds: i64| {
        let ts = timestamp(at + chrono::TimeDelta::seconds(seconds));
        let signature = sign(
            &Credentials::new(USER, KEY),
            &ts,
            "/v1/account",
            SignHash::Sha256,
        );
        pairs(&[
            ("api_username", USER),
            ("timestamp", &ts),
            ("signature", &signature),
        ])
    };
    assert_eq!(
        h.send_query("/v1/account", &query_at(-60)).await.status,
        200
    );
    assert_eq!(h.send_query("/v1/account", &query_at(60)).await.status, 200);
    assert_refused(h.send_query("/v1/account", &query_at(-61)).await).await;
    assert_refused(h.send_query("/v1/account", &query_at(3600)).await).await;
    // A signature over a timestamp that does not parse is no signature.
    let signature = sign(
        &Credentials::new(USER, KEY),
        "yesterday",
        "/v1/account",
        SignHash::Sha256,
    );
    let query = pairs(&[
        ("api_username", USER),
        ("timestamp", "yesterday"),
        ("signature", &signature),
    ]);
    assert_refused(h.send_query("/v1/account", &query).await).await;
}

#[tokio::test]
async fn iso_timestamps_with_an_offset_are_accepted() {
    let at = Utc.with_ymd_and_hms(2011, 2, 1, 22, 37, 59).unwrap();
    let h = start_with(FakeApi::new().with_user(USER, KEY).with_fixed_now(at)).await;
    let ts = "2011-02-01T14:37:59-0800";
    let signature = sign(
        &Credentials::new(USER, KEY),
        ts,
        "/v1/account",
        SignHash::Sha256,
    );
    let query = pairs(&[
        ("api_username", USER),
        ("timestamp", ts),
        ("signature", &signature),
    ]);
    assert_eq!(h.send_query("/v1/account", &query).await.status, 200);
}

#[tokio::test]
async fn a_signature_for_another_path_is_refused() {
    let h = start().await;
    // Signed for google.com, sent for amazon.com; and the trailing slash is part of the path.
    let query = signed("/v1/google.com/whois/parsed");
    assert_refused(h.send_query("/v1/amazon.com/whois/parsed", &query).await).await;
    assert_refused(h.send_query("/v1/google.com/whois/parsed/", &query).await).await;
    assert_eq!(
        h.send_query("/v1/google.com/whois/parsed", &query)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn no_credentials_at_all_are_refused() {
    let h = start().await;
    let reply = Reply::from(h.client.get(h.url("/v1/account")).send().await.unwrap()).await;
    assert_refused(reply).await;
    let reply = Reply::from(
        h.client
            .post(h.url("/v1/iris-enrich/"))
            .form(&[("domain", "google.com")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_refused(reply).await;
}

#[tokio::test]
async fn open_key_parameter_is_accepted() {
    let h = start().await;
    let good = pairs(&[("api_username", USER), ("api_key", KEY)]);
    assert_eq!(h.send_query("/v1/account", &good).await.status, 200);
    let bad = pairs(&[("api_username", USER), ("api_key", "nope")]);
    assert_refused(h.send_query("/v1/account", &bad).await).await;
    let no_user = pairs(&[("api_key", KEY)]);
    assert_refused(h.send_query("/v1/account", &no_user).await).await;
}

#[tokio::test]
async fn x_api_key_header_is_accepted() {
    let h = start().await;
    let send = |key: &'static str, user: Option<&'static str>| {
        let mut request = h.client.get(h.url("/v1/account")).header("X-Api-Key", key);
        if let Some(user) = user {
            request = request.query(&[("api_username", user)]);
        }
        async move { Reply::from(request.send().await.unwrap()).await }
    };
    let with_user = send(KEY, Some(USER)).await;
    assert_eq!(with_user.response()["account"]["api_username"], USER);
    // Without a username, the key alone names the account.
    let key_only = send(DEMO_API_KEY, None).await;
    assert_eq!(
        key_only.response()["account"]["api_username"],
        DEMO_USERNAME
    );
    assert_refused(send("nope", None).await).await;
    assert_refused(send(DEMO_API_KEY, Some(USER)).await).await;
}

#[tokio::test]
async fn the_demo_account_works_out_of_the_box_and_debug_hides_keys() {
    let h = start_with(FakeApi::new()).await;
    let query = signed_with("/v1/account", DEMO_USERNAME, DEMO_API_KEY, SignHash::Sha256);
    assert_eq!(h.send_query("/v1/account", &query).await.status, 200);
    let fake = FakeApi::default().with_user(USER, KEY);
    let shown = format!("{fake:?}");
    assert!(
        shown.contains(DEMO_USERNAME) && shown.contains(USER),
        "{shown}"
    );
    assert!(
        !shown.contains(DEMO_API_KEY) && !shown.contains(KEY),
        "{shown}"
    );
    // Replacing an account's key takes effect.
    let h = start_with(
        FakeApi::new()
            .with_user(USER, KEY)
            .with_user(USER, "rotated"),
    )
    .await;
    assert_refused(h.get("/v1/account", &[]).await).await;
}

#[tokio::test]
async fn the_log_never_holds_a_secret() {
    let h = start().await;
    let query = signed("/v1/account");
    let signature = query[2].1.clone();
    h.send_query("/v1/account", &query).await;
    h.send_query(
        "/v1/account",
        &pairs(&[("api_username", USER), ("api_key", KEY), ("app_name", "t")]),
    )
    .await;
    h.post("/v1/iris-enrich/", &[("domain", "google.com")])
        .await;
    h.send_query(
        "/v1/account",
        &pairs(&[("api_username", "x"), ("api_key", "y")]),
    )
    .await;
    let log = h.fake.requests();
    assert_eq!(log.len(), 4);
    for entry in &log {
        for (key, value) in &entry.params {
            assert!(key != "signature" && key != "api_key", "{entry:?}");
            assert!(value != KEY && *value != signature, "{entry:?}");
        }
    }
    assert_eq!(
        log[1].params,
        pairs(&[("api_username", USER), ("app_name", "t")])
    );
    assert_eq!(log[2].method, "POST");
    assert_eq!(log[2].path, "/v1/iris-enrich/");
    assert_eq!(log[2].username.as_deref(), Some(USER));
    assert_eq!(
        log[2].params.last(),
        Some(&("domain".to_owned(), "google.com".to_owned()))
    );
    assert_eq!(
        log.iter().map(|e| e.status).collect::<Vec<_>>(),
        [200, 200, 200, 403]
    );
    assert_eq!(log[3].username.as_deref(), Some("x"));
}

// ---- classic routes -----------------------------------------------------------------------

#[tokio::test]
async fn each_classic_route_serves_its_recording() {
    let h = start().await;
    let cases: &[(&str, &Query, &str)] = &[
        ("/v1/google.com/whois/parsed", &[], "parsed-whois.json"),
        ("/v1/google.com/whois", &[], "whois.json"),
        ("/v1/woot.com/whois/history", &[], "whois-history.json"),
        (
            "/v1/google.com/hosting-history",
            &[],
            "hosting-history.json",
        ),
        ("/v1/google.com", &[], "domain-profile.json"),
        (
            "/v1/risk",
            &[("domain", "google.com")],
            "risk-zerolist.json",
        ),
        ("/v1/risk", &[("domain", "hug.rest")], "risk.json"),
        (
            "/v1/risk/evidence/",
            &[("domain", "google.com")],
            "risk-evidence.json",
        ),
        (
            "/v1/reputation",
            &[("domain", "google.com"), ("include_reasons", "false")],
            "reputation.json",
        ),
        ("/v1/google.com/reverse-ip", &[], "reverse-ip.json"),
        ("/v1/199.30.228.112/host-domains", &[], "host-domains.json"),
        (
            "/v1/reverse-whois",
            &[
                ("terms", "Google"),
                ("exclude", ""),
                ("scope", "current"),
                ("mode", "purchase"),
            ],
            "reverse-whois.json",
        ),
    ];
    for (path, params, file) in cases {
        let reply = h.get(path, params).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.content_type, CLASSIC_JSON, "{path}");
        assert_eq!(reply.json(), fixture(file), "{path}");
    }
    assert_eq!(h.fake.requests().len(), cases.len());
}

#[tokio::test]
async fn each_detect_route_serves_its_recording() {
    let h = start().await;
    for (list, file) in [
        ("watched", "iris-detect-watched.json"),
        ("ignored", "iris-detect-ignored.json"),
    ] {
        let path = format!("/v1/iris-detect/domains/{list}/");
        let reply = h
            .get(&path, &[("include_domain_data", "false"), ("offset", "0")])
            .await;
        assert_eq!(reply.content_type, DETECT_JSON);
        assert_eq!(reply.json(), fixture(file), "{list}");
    }
    let monitors = h
        .get(
            "/v1/iris-detect/monitors/",
            &[("offset", "0"), ("order", "desc")],
        )
        .await;
    assert_eq!(monitors.content_type, DETECT_JSON);
    assert_eq!(monitors.json(), fixture("iris-detect-monitors.json"));
    let new = h.get("/v1/iris-detect/domains/new/", &[]).await.json();
    assert_eq!(
        new["watchlist_domains"],
        fixture("iris-detect-new.json")["watchlist_domains"]
    );
    // Only the 100 recorded domains exist here, and the totals say so.
    assert_eq!(
        (new["total_count"].as_u64(), new["count"].as_u64()),
        (Some(100), Some(100))
    );
}

#[tokio::test]
async fn trailing_slashes_are_optional_and_values_case_insensitive() {
    let h = start().await;
    for path in [
        "/v1/account/",
        "/v1/Google.COM/whois/parsed/",
        "/v1/iris-detect/monitors",
        "/v1/google.com/",
    ] {
        assert_eq!(h.get(path, &[]).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn lookups_without_data_get_the_recorded_404() {
    let h = start().await;
    let not_found = fixture("error-404-not-found.json");
    for (path, params) in [
        ("/v1/amazon.com/whois/parsed", vec![]),
        ("/v1/steianrstierstnrsiatiarstnsto.com/whois", vec![]),
        ("/v1/amazon.com/whois/history", vec![]),
        ("/v1/amazon.com", vec![]),
        ("/v1/8.8.4.4/host-domains", vec![]),
        ("/v1/2001:db8::1/whois", vec![]),
        ("/v1/192.0.2.1/whois/parsed", vec![]),
        ("/v1/example.org/reverse-ip", vec![]),
        ("/v1/risk", vec![("domain", "nothing-here.test")]),
        ("/v1/reputation", vec![("domain", "nothing-here.test")]),
    ] {
        let reply = h.get(path, &params).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json(), not_found, "{path}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_envelopes() {
    let h = start().await;
    for path in [
        "/v2/domain-search",
        "/v1/iris-investigate/extra/",
        "/v1/feed/nod/",
        "/",
        "/v1/a.com/unknown",
    ] {
        let reply = h.get(path, &[]).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json()["error"]["code"], 404, "{path}");
        assert!(reply.json()["resources"]["support"].is_string());
    }
    let mut form = signed("/v1/account");
    form.push(("x".into(), "y".into()));
    let reply = h.post_form("/v1/account", &form).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["error"]["code"], 405);
}

#[tokio::test]
async fn invalid_values_get_the_recorded_400() {
    let h = start().await;
    let bad = fixture("error-400-bad-request.json");
    for (path, params) in [
        ("/v1/ss/reverse-ip", vec![]),
        ("/v1/ss/whois/parsed", vec![]),
        ("/v1/ss", vec![]),
        ("/v1/google.com/host-domains", vec![]),
        ("/v1/risk", vec![]),
        ("/v1/risk", vec![("domain", "ss")]),
        ("/v1/reverse-whois", vec![("terms", "")]),
        ("/v1/reverse-whois", vec![("terms", "x"), ("mode", "steal")]),
        ("/v1/woot.com/whois/history", vec![("offset", "-1")]),
        (
            "/v1/reputation",
            vec![("domain", "google.com"), ("include_reasons", "maybe")],
        ),
    ] {
        let reply = h.get(path, &params).await;
        assert_eq!(reply.status, 400, "{path} {params:?}");
        assert_eq!(reply.json(), bad, "{path}");
    }
}

#[tokio::test]
async fn whois_history_pages_over_all_records() {
    let h = start().await;
    let page = |offset: &'static str, limit: &'static str| {
        let h = &h;
        async move {
            h.get(
                "/v1/woot.com/whois/history",
                &[("offset", offset), ("limit", limit)],
            )
            .await
            .response()
        }
    };
    let recorded = fixture("whois-history.json")["response"]["history"].clone();
    let second = page("100", "5").await;
    assert_eq!(second["record_count"], 624);
    let history = second["history"].as_array().unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(history[0]["date"], "2020-01-13");
    assert_eq!(history[0]["whois"], recorded[0]["whois"]);
    assert_eq!(
        page("600", "100").await["history"]
            .as_array()
            .unwrap()
            .len(),
        24
    );
    assert_eq!(
        page("624", "100").await["history"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // limit is capped at 100, as the API does.
    assert_eq!(page("0", "500").await["history"], recorded);
    let oldest_first = h
        .get(
            "/v1/woot.com/whois/history",
            &[("sort", "date_asc"), ("limit", "1")],
        )
        .await
        .response();
    let newest = page("623", "1").await;
    assert_eq!(oldest_first["history"], newest["history"]);
}

#[tokio::test]
async fn reverse_whois_quote_and_unknown_terms() {
    let h = start().await;
    let quote = h
        .get(
            "/v1/reverse-whois",
            &[("terms", "foo|GOOGLE llc"), ("mode", "quote")],
        )
        .await
        .response();
    assert_eq!(
        quote,
        json!({
            "domain_count": {"current": 35556, "historic": 109886637},
            "report_price": {"current": 3555, "historic": 0},
            "report_cost": {"current": 0, "historic": 0},
        })
    );
    let none = h
        .get(
            "/v1/reverse-whois",
            &[("terms", "nobody at all"), ("exclude", "")],
        )
        .await
        .response();
    assert_eq!(none["domain_count"], json!({"current": 0, "historic": 0}));
    assert_eq!(none["domains"], json!([]));
}

#[tokio::test]
async fn reverse_ip_limit_applies_per_address_and_reputation_reasons() {
    let h = start().await;
    let limited = h
        .get("/v1/google.com/reverse-ip", &[("limit", "0")])
        .await
        .response();
    let entry = &limited["ip_addresses"][0];
    assert_eq!(entry["domain_count"], 76);
    assert_eq!(entry["domain_names"], json!([]));
    let three = h
        .get("/v1/199.30.228.112/host-domains", &[("limit", "3")])
        .await
        .response();
    assert_eq!(
        three["ip_addresses"]["domain_names"],
        json!(["whoisapi.com"])
    );
    let reasons = h
        .get(
            "/v1/reputation",
            &[("domain", "hug.rest"), ("include_reasons", "true")],
        )
        .await
        .response();
    assert_eq!(reasons["risk_score"], 100);
    assert!(!reasons["reasons"].as_array().unwrap().is_empty());
}

// ---- Iris Investigate -------------------------------------------------------------------

#[tokio::test]
async fn investigate_filters_by_domain_and_lists_missing_ones() {
    let h = start().await;
    let response = h
        .post(
            "/v1/iris-investigate/",
            &[(
                "domain",
                "Google.com, nothing-here.test,amazon.com,google.com",
            )],
        )
        .await
        .response();
    assert_eq!(
        domains_of(&response["results"]),
        ["google.com", "amazon.com"]
    );
    assert_eq!(response["missing_domains"], json!(["nothing-here.test"]));
    assert_eq!(response["results_count"], 2);
    assert_eq!(response["total_count"], 2);
    assert_eq!(response["has_more_results"], false);
    assert_eq!(response["message"], "Enjoy your data.");
    // The record is the recorded one, counts and all.
    let recorded = fixture("iris-investigate-domain.json")["response"]["results"][1].clone();
    assert_eq!(response["results"][0], recorded);

    let unknown = h
        .post("/v1/iris-investigate/", &[("domain", "nothing-here.test")])
        .await
        .response();
    assert_eq!(unknown["results"], json!([]));
    assert_eq!(unknown["results_count"], 0);
    assert_eq!(unknown["missing_domains"], json!(["nothing-here.test"]));
}

#[tokio::test]
async fn investigate_both_recorded_domains_like_the_recording() {
    let h = start().await;
    let reply = h
        .post(
            "/v1/iris-investigate/",
            &[
                ("app_name", "python_wrapper"),
                ("domain", "amazon.com,google.com"),
            ],
        )
        .await;
    assert_eq!(reply.json(), fixture("iris-investigate-domain.json"));
    // GET with the same parameters in the query works too.
    let get = h
        .get(
            "/v1/iris-investigate/",
            &[("domain", "amazon.com,google.com")],
        )
        .await;
    assert_eq!(get.json(), fixture("iris-investigate-domain.json"));
}

#[tokio::test]
async fn investigate_pivots() {
    let h = start().await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("ip", "54.239.28.85", &["amazon.com"]),
        ("ip", "142.251.33.68", &["google.com"]),
        ("email", "dns-admin@google.com", &["google.com"]),
        ("email", "HOSTMASTER@AMAZON.COM", &["amazon.com"]),
        (
            "email",
            "abusecomplaints@markmonitor.com",
            &["amazon.com", "google.com"],
        ),
        ("nameserver_host", "ns1.google.com", &["google.com"]),
        ("nameserver_host", "pdns1.ultradns.net", &["amazon.com"]),
        (
            "registrar",
            "markmonitor, inc.",
            &["amazon.com", "google.com"],
        ),
        ("registrant", "Google LLC", &["google.com"]),
        (
            "registrant",
            "hostmaster, amazon legal dept.",
            &["amazon.com"],
        ),
        (
            "ssl_hash",
            "fcebe5bb73f9541e544eb1a784ada0b35060412b",
            &["google.com"],
        ),
        (
            "ssl_hash",
            "08040755C8B6852A5DB945A2B380571111DEFD2D",
            &["amazon.com"],
        ),
        ("ssl_hash", "0000000000000000000000000000000000000000", &[]),
        (
            "search_hash",
            "U2FsdGVkX1+anything",
            &["amazon.com", "google.com"],
        ),
        ("website_title", "Google", &[]),
    ];
    for (name, value, expected) in cases {
        let response = h
            .post("/v1/iris-investigate/", &[(name, value)])
            .await
            .response();
        assert_eq!(
            domains_of(&response["results"]),
            *expected,
            "{name}={value}"
        );
        assert_eq!(response["total_count"], expected.len(), "{name}={value}");
        assert_eq!(response["missing_domains"], json!([]));
    }
    // Several criteria must all hold.
    let both = h
        .post(
            "/v1/iris-investigate/",
            &[("registrar", "MarkMonitor, Inc."), ("ip", "142.251.33.78")],
        )
        .await
        .response();
    assert_eq!(domains_of(&both["results"]), ["google.com"]);
}

#[tokio::test]
async fn investigate_limit_exceeded_and_bad_requests() {
    let h = start().await;
    let limit = h.post("/v1/iris-investigate/", &[("ip", "8.8.8.8")]).await;
    assert_eq!(limit.status, 200);
    assert_eq!(
        limit.json(),
        fixture("iris-investigate-limit-exceeded.json")
    );
    let too_many = format!("many-{}", MANY_LIMIT + 1);
    let limit = h
        .post("/v1/iris-investigate/", &[("search_hash", &too_many)])
        .await;
    assert_eq!(limit.response()["limit_exceeded"], true);

    let bad = fixture("error-400-bad-request.json");
    let hundred_and_one: Vec<String> = (0..101).map(|i| format!("d{i}.example")).collect();
    let hundred_and_one = hundred_and_one.join(",");
    for params in [
        vec![],
        vec![("app_name", "x"), ("page_size", "10")],
        vec![("domain", " , ")],
        vec![("domain", hundred_and_one.as_str())],
        vec![("domain", "google.com"), ("page_size", "ten")],
        vec![("domain", "google.com"), ("page_size", "0")],
        vec![("domain", "google.com"), ("position", "garbage")],
        vec![("domain", "google.com"), ("active", "perhaps")],
    ] {
        let reply = h.post("/v1/iris-investigate/", &params).await;
        assert_eq!(reply.status, 400, "{params:?}");
        assert_eq!(reply.json(), bad);
    }
}

#[tokio::test]
async fn investigate_pages_many_results_with_position() {
    let h = start().await;
    let mut seen = Vec::new();
    let mut position: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = vec![("search_hash", "many-1234".to_owned())];
        if let Some(position) = &position {
            params.push(("position", position.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = h.post("/v1/iris-investigate/", &params).await.response();
        pages += 1;
        assert_eq!(response["total_count"], 1234);
        let domains = domains_of(&response["results"]);
        assert_eq!(response["results_count"], domains.len());
        seen.extend(domains);
        if response["has_more_results"] == true {
            assert_eq!(response["message"], "There is more data for you to enjoy.");
            assert_eq!(response["results_count"], 500);
            position = Some(
                response["position"]
                    .as_str()
                    .expect("a position")
                    .to_owned(),
            );
        } else {
            assert_eq!(response["message"], "Enjoy your data.");
            assert!(response.get("position").is_none());
            assert_eq!(response["results_count"], 234);
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=1234).map(|i| format!("d{i:04}.example")).collect();
    assert_eq!(seen, expected);
    assert_eq!(h.fake.calls_to("/v1/iris-investigate/"), 3);
}

#[tokio::test]
async fn investigate_page_size_registrar_many_and_foreign_positions() {
    let h = start().await;
    let first = h
        .post(
            "/v1/iris-investigate/",
            &[("registrar", "many-25"), ("page_size", "10")],
        )
        .await
        .response();
    assert_eq!(
        (
            first["results_count"].as_u64(),
            first["total_count"].as_u64()
        ),
        (Some(10), Some(25))
    );
    let record = &first["results"][9];
    assert_eq!(record["domain"], "d0010.example");
    assert_eq!(
        record["whois_url"],
        "https://whois.domaintools.com/d0010.example"
    );
    assert_eq!(record["tld"], "example");
    assert_eq!(record["ip"][0]["address"]["count"], 847);
    let position = first["position"].as_str().unwrap().to_owned();
    let second = h
        .post(
            "/v1/iris-investigate/",
            &[
                ("registrar", "many-25"),
                ("page_size", "10"),
                ("position", &position),
            ],
        )
        .await
        .response();
    assert_eq!(domains_of(&second["results"])[0], "d0011.example");
    // A cursor only continues the query it came from.
    let foreign = h
        .post(
            "/v1/iris-investigate/",
            &[("registrar", "many-26"), ("position", &position)],
        )
        .await;
    assert_eq!(foreign.status, 400);
    // Other criteria still apply to synthetic results.
    let filtered = h
        .post(
            "/v1/iris-investigate/",
            &[("search_hash", "many-30"), ("ip", "54.239.28.85")],
        )
        .await
        .response();
    assert_eq!(filtered["total_count"], 0);
    let named = h
        .post(
            "/v1/iris-investigate/",
            &[
                ("search_hash", "many-30"),
                ("domain", "d0002.example,d0031.example"),
            ],
        )
        .await
        .response();
    assert_eq!(domains_of(&named["results"]), ["d0002.example"]);
    assert_eq!(named["missing_domains"], json!(["d0031.example"]));
}

// ---- Iris Enrich ------------------------------------------------------------------------

#[tokio::test]
async fn enrich_serves_the_recording_for_google() {
    let h = start().await;
    let reply = h
        .post("/v1/iris-enrich/", &[("domain", "google.com")])
        .await;
    assert_eq!(reply.content_type, CLASSIC_JSON);
    assert_eq!(reply.json(), fixture("iris-enrich.json"));
}

#[tokio::test]
async fn enrich_derives_amazon_from_investigate_without_counts() {
    let h = start().await;
    let response = h
        .post(
            "/v1/iris-enrich/",
            &[("domain", "amazon.com,nothing-here.test")],
        )
        .await
        .response();
    assert_eq!(response["results_count"], 1);
    assert_eq!(response["missing_domains"], json!(["nothing-here.test"]));
    let amazon = &response["results"][0];
    assert_eq!(amazon["domain"], "amazon.com");
    assert!(!contains_key(amazon, "count"));
    assert_eq!(amazon["ip"][0]["address"], json!({"value": "54.239.28.85"}));
    assert_eq!(amazon["registrar"], json!({"value": "MarkMonitor, Inc."}));
    assert_eq!(amazon["alexa"], 8);
    let investigate = &fixture("iris-investigate-domain.json")["response"]["results"][0];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(amazon), keys(investigate));
}

#[tokio::test]
async fn enrich_batches_of_synthetic_domains() {
    let h = start().await;
    let domains: Vec<String> = (1..=250).map(|i| format!("d{i:04}.example")).collect();
    let mut enriched = Vec::new();
    for batch in domains.chunks(100) {
        let list = batch.join(",");
        let response = h
            .post("/v1/iris-enrich/", &[("domain", &list)])
            .await
            .response();
        assert_eq!(response["results_count"], batch.len());
        assert_eq!(response["missing_domains"], json!([]));
        for record in response["results"].as_array().unwrap() {
            assert!(!contains_key(record, "count"));
            assert_eq!(record["registrar"]["value"], "MarkMonitor, Inc.");
        }
        enriched.extend(domains_of(&response["results"]));
    }
    assert_eq!(enriched, domains);
    let over = domains[..101].join(",");
    let reply = h.post("/v1/iris-enrich/", &[("domain", &over)]).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json(), fixture("error-400-bad-request.json"));
    let none = h.post("/v1/iris-enrich/", &[]).await;
    assert_eq!(none.status, 400);
    assert_eq!(h.fake.calls_to("/v1/iris-enrich/"), 5);
}

// ---- Iris Detect ------------------------------------------------------------------------

fn watchlist(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, DETECT_JSON);
    domains_of(&reply.json()["watchlist_domains"])
}

#[tokio::test]
async fn detect_offset_and_limit_page_the_list() {
    let h = start().await;
    let recorded = domains_of(&fixture("iris-detect-new.json")["watchlist_domains"]);
    let reply = h
        .get(
            "/v1/iris-detect/domains/new/",
            &[("offset", "90"), ("limit", "20")],
        )
        .await;
    assert_eq!(watchlist(&reply), recorded[90..]);
    let page = reply.json();
    assert_eq!(
        (
            page["total_count"].as_u64(),
            page["count"].as_u64(),
            page["offset"].as_u64(),
            page["limit"].as_u64()
        ),
        (Some(100), Some(10), Some(90), Some(20))
    );
    let capped = h
        .get("/v1/iris-detect/domains/new/", &[("limit", "1000")])
        .await
        .json();
    assert_eq!(
        (capped["count"].as_u64(), capped["limit"].as_u64()),
        (Some(100), Some(100))
    );
    let preview = h
        .get("/v1/iris-detect/domains/new/", &[("preview", "true")])
        .await
        .json();
    assert_eq!(
        (preview["count"].as_u64(), preview["limit"].as_u64()),
        (Some(10), Some(10))
    );
    let past = h
        .get("/v1/iris-detect/domains/new/", &[("offset", "500")])
        .await
        .json();
    assert_eq!(
        (past["count"].as_u64(), past["total_count"].as_u64()),
        (Some(0), Some(100))
    );
}

#[tokio::test]
async fn detect_filters() {
    let h = start().await;
    let watched = "/v1/iris-detect/domains/watched/";
    let cases: &[(&str, &Query, &[&str])] = &[
        (
            watched,
            &[("risk_score_ranges[]", "70-99")],
            &["go-google.net", "needgoogle.top", "googleegad.icu"],
        ),
        (watched, &[("risk_score_ranges", "0-10")], &["googleco.net"]),
        (
            watched,
            &[
                ("risk_score_ranges[]", "0-0"),
                ("risk_score_ranges[]", "13-13"),
            ],
            &["googleadspodcast.com"],
        ),
        (
            watched,
            &[("escalation_types[]", "blocked")],
            &["googleadspodcast.com"],
        ),
        (watched, &[("escalation_types[]", "google_safe")], &[]),
        (
            watched,
            &[("escalated_since", "2024-06-01")],
            &["googleadspodcast.com"],
        ),
        (
            watched,
            &[("escalated_since", "2024-07-01T00:00:00+00:00")],
            &[],
        ),
        (
            watched,
            &[("discovered_since", "2025-08-01")],
            &[
                "go-google.net",
                "needgoogle.top",
                "googleegad.icu",
                "googleco.net",
            ],
        ),
        (
            watched,
            &[("discovered_since", "2025-08-01T15:00:00Z")],
            &["go-google.net", "needgoogle.top", "googleco.net"],
        ),
        (
            watched,
            &[("changed_since", "2025-12-20 00:00:00+00:00")],
            &["go-google.net", "googleco.net"],
        ),
        (
            watched,
            &[("monitor_id", "nAwmQg2pqg"), ("tlds[]", "net")],
            &["go-google.net", "googleco.net"],
        ),
        (watched, &[("monitor_id", "DKObxJVjYJ")], &[]),
        (watched, &[("search", "CO.NET")], &["googleco.net"]),
        (
            watched,
            &[("sort[]", "risk_score"), ("order", "asc"), ("limit", "2")],
            &["googleco.net", "googleadspodcast.com"],
        ),
    ];
    for (path, params, expected) in cases {
        let reply = h.get(path, params).await;
        assert_eq!(watchlist(&reply), *expected, "{params:?}");
        if params.iter().all(|(key, _)| *key != "limit") {
            assert_eq!(reply.json()["total_count"], expected.len(), "{params:?}");
        }
    }
    let ignored = h
        .get(
            "/v1/iris-detect/domains/ignored/",
            &[("monitor_id", "DKObxJVjYJ")],
        )
        .await;
    assert!(!watchlist(&ignored).is_empty());
    let new = h
        .get(
            "/v1/iris-detect/domains/new/",
            &[
                ("monitor_id", "nAwmQg2pqg"),
                ("risk_score_ranges[]", "100-100"),
                ("discovered_since", "2026-01-01"),
            ],
        )
        .await;
    assert_eq!(
        watchlist(&new),
        [
            "off-google.com.cn",
            "boy-google.com.cn",
            "man-google.com.cn",
            "4k-google.com.cn"
        ]
    );
    for params in [
        [("risk_score_ranges[]", "high")],
        [("discovered_since", "last week")],
        [("limit", "many")],
        [("sort[]", "name")],
    ] {
        let reply = h.get(watched, &params).await;
        assert_eq!(reply.status, 400, "{params:?}");
        assert_eq!(reply.content_type, DETECT_JSON);
    }
}

#[tokio::test]
async fn detect_include_domain_data_adds_deterministic_fields() {
    let h = start().await;
    let path = "/v1/iris-detect/domains/new/";
    let first = h
        .get(path, &[("include_domain_data", "true"), ("limit", "100")])
        .await
        .json();
    assert_eq!(
        (first["count"].as_u64(), first["limit"].as_u64()),
        (Some(50), Some(50))
    );
    for domain in first["watchlist_domains"].as_array().unwrap() {
        assert!(domain["name_server"][0]["host"]
            .as_str()
            .unwrap()
            .ends_with(".example"));
        assert!(domain["mx"].is_array());
        assert!(domain["ip"][0]["ip"].as_str().unwrap().contains('.'));
        assert!(domain["ip"][0]["country_code"].is_string());
        assert!(domain["ip"][0]["isp"].is_string());
        assert!(domain["registrar"].is_string());
        let created = domain["create_date"].as_u64().unwrap();
        let discovered = domain["discovered_date"].as_str().unwrap()[..10].replace('-', "");
        assert_eq!(created.to_string(), discovered);
        assert!(domain["registrant_contact_email"][0]
            .as_str()
            .unwrap()
            .contains('@'));
    }
    let again = h
        .get(path, &[("include_domain_data", "true"), ("limit", "100")])
        .await
        .json();
    assert_eq!(first, again);
    let plain = h
        .get(path, &[("include_domain_data", "false")])
        .await
        .json();
    assert!(plain["watchlist_domains"][0].get("name_server").is_none());
}

#[tokio::test]
async fn detect_monitor_counts() {
    let h = start().await;
    let counted = h
        .get(
            "/v1/iris-detect/monitors/",
            &[
                ("include_counts", "true"),
                ("datetime_counts_since", "2026-01-01T00:00:00Z"),
            ],
        )
        .await
        .json();
    let google = &counted["monitors"][1];
    assert_eq!(google["id"], "nAwmQg2pqg");
    assert_eq!(google["domain_counts"]["new"], 4);
    let missing_since = h
        .get("/v1/iris-detect/monitors/", &[("include_counts", "true")])
        .await;
    assert_eq!(missing_since.status, 400);
}

#[tokio::test]
async fn detect_escalate_one_entry_per_id() {
    let at = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
    let h = start_at(at).await;
    let path = "/v1/iris-detect/escalations/";
    let reply = h
        .post(
            path,
            &[
                ("escalation_type", "blocked"),
                ("watchlist_domain_ids[]", "ka0oL0AegW"),
                ("watchlist_domain_ids[]", "pEkwVQnKBE"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, DETECT_JSON);
    let escalations = reply.json()["escalations"].as_array().unwrap().clone();
    assert_eq!(escalations.len(), 2);
    assert_eq!(escalations[1]["watchlist_domain_id"], "pEkwVQnKBE");
    assert_eq!(escalations[0]["escalation_type"], "blocked");
    assert_eq!(
        escalations[0]["created_date"],
        "2024-05-06T07:08:09.000000+00:00"
    );
    assert_eq!(escalations[0]["id"].as_str().unwrap().len(), 10);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&escalations[0]),
        keys(&fixture("iris-detect-escalate.json")["escalations"][0])
    );
    let json = h
        .json_request(
            reqwest::Method::POST,
            path,
            json!({"escalation_type": "google_safe", "watchlist_domain_ids": ["OWxzqKqQEY"]}),
        )
        .await;
    assert_eq!(
        json.json()["escalations"][0]["escalation_type"],
        "google_safe"
    );
    for params in [
        vec![("escalation_type", "blocked")],
        vec![("watchlist_domain_ids[]", "ka0oL0AegW")],
        vec![
            ("escalation_type", "delete"),
            ("watchlist_domain_ids[]", "ka0oL0AegW"),
        ],
    ] {
        assert_eq!(h.post(path, &params).await.status, 400, "{params:?}");
    }
}

#[tokio::test]
async fn detect_watch_and_ignore_with_patch() {
    let h = start().await;
    let path = "/v1/iris-detect/domains/";
    let reply = h
        .json_request(reqwest::Method::PATCH, path, json!({"app_name": "python_wrapper", "state": "watched", "watchlist_domain_ids": ["ka0oL0AegW", "gae08rdVWG"]}))
        .await;
    assert_eq!(reply.content_type, DETECT_JSON);
    let changed = reply.json()["watchlist_domains"].clone();
    assert_eq!(
        domains_of(&changed),
        ["googletydep.com", "googletalker.com.cn"]
    );
    assert_eq!(changed[0]["state"], "watched");
    assert_eq!(changed[0]["id"], "ka0oL0AegW");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&changed[0]),
        keys(&fixture("iris-detect-manage-watchlist.json")["watchlist_domains"][0])
    );
    for body in [
        json!({"state": "deleted", "watchlist_domain_ids": ["ka0oL0AegW"]}),
        json!({"state": "ignored"}),
        json!({"state": "ignored", "watchlist_domain_ids": ["unknownid1"]}),
    ] {
        let reply = h
            .json_request(reqwest::Method::PATCH, path, body.clone())
            .await;
        assert_eq!(reply.status, 400, "{body}");
    }
    let log = h.fake.requests();
    assert_eq!(log[0].method, "PATCH");
    assert_eq!(log[0].username.as_deref(), Some(USER));
    assert!(log[0]
        .params
        .contains(&("watchlist_domain_ids".to_owned(), "gae08rdVWG".to_owned())));
}

// ---- faults, latency, log ---------------------------------------------------------------

#[tokio::test]
async fn status_faults_use_the_real_envelope() {
    let h = start().await;
    h.fake
        .inject("/v1/iris-enrich/", Fault::RateLimited, Some(1));
    h.fake.inject(
        "/v1/iris-enrich/",
        Fault::Status {
            status: 500,
            message: "backend trouble".into(),
        },
        Some(1),
    );
    let limited = h
        .post("/v1/iris-enrich/", &[("domain", "google.com")])
        .await;
    assert_eq!(limited.status, 503);
    assert_eq!(
        limited.json(),
        json!({
            "error": {"code": 503, "message": "You have exceeded the maximum number of requests per minute allowed under your service level (/min)."},
            "resources": {"support": "https://docs.domaintools.com"},
        })
    );
    let failed = h
        .post("/v1/iris-enrich/", &[("domain", "google.com")])
        .await;
    assert_eq!(failed.status, 500);
    assert_eq!(
        failed.json()["error"],
        json!({"code": 500, "message": "backend trouble"})
    );
    // Both rules are used up.
    assert_eq!(
        h.post("/v1/iris-enrich/", &[("domain", "google.com")])
            .await
            .status,
        200
    );
    let statuses: Vec<u16> = h.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 500, 200]);
}

#[tokio::test]
async fn body_faults_break_parsing() {
    let h = start().await;
    h.fake.inject(
        "/v1/account",
        Fault::NonJson {
            status: 500,
            body: "oops not json".into(),
        },
        Some(1),
    );
    let reply = h.get("/v1/account", &[]).await;
    assert_eq!((reply.status, reply.text.as_str()), (500, "oops not json"));
    assert!(!reply.content_type.contains("json"));

    h.fake.inject("/v1/account", Fault::InvalidJson, Some(1));
    let reply = h.get("/v1/account", &[]).await;
    assert_eq!(reply.status, 200);
    assert!(serde_json::from_str::<Value>(&reply.text).is_err());

    h.fake.inject("/v1/", Fault::WrongShape, Some(2));
    assert_eq!(
        h.get("/v1/account", &[]).await.json(),
        json!({"response": "nope"})
    );
    assert_eq!(
        h.get("/v1/iris-detect/monitors/", &[]).await.json(),
        json!([1, 2, 3])
    );

    h.fake
        .inject("/v1/iris-investigate/", Fault::LimitExceeded, None);
    let reply = h
        .post("/v1/iris-investigate/", &[("domain", "google.com")])
        .await;
    assert_eq!(
        reply.json(),
        fixture("iris-investigate-limit-exceeded.json")
    );
    h.fake.clear_faults();
    let reply = h
        .post("/v1/iris-investigate/", &[("domain", "google.com")])
        .await;
    assert_eq!(reply.response()["results_count"], 1);
}

#[tokio::test]
async fn cut_bodies_fail_while_reading() {
    let h = start().await;
    h.fake
        .inject("/v1/google.com/whois/parsed", Fault::CutBody, Some(1));
    let response = h
        .client
        .get(h.url("/v1/google.com/whois/parsed"))
        .query(&signed("/v1/google.com/whois/parsed"))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(response.status().as_u16(), 200);
    let error = response.bytes().await.expect_err("the body must break");
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    // The next request is whole again.
    assert_eq!(
        h.get("/v1/google.com/whois/parsed", &[]).await.json(),
        fixture("parsed-whois.json")
    );
}

#[tokio::test]
async fn slow_answers_are_logged_before_they_arrive() {
    let h = start().await;
    h.fake.inject(
        "/v1/account",
        Fault::Slow(Duration::from_millis(800)),
        Some(1),
    );
    let started = Instant::now();
    let pending = {
        let client = h.client.clone();
        let url = h.url("/v1/account");
        let query = signed("/v1/account");
        tokio::spawn(async move { client.get(url).query(&query).send().await })
    };
    for _ in 0..50 {
        if h.fake.calls_to("/v1/account") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fake.calls_to("/v1/account"), 1);
    assert!(
        !pending.is_finished(),
        "the answer should still be on its way"
    );
    assert_eq!(h.fake.requests()[0].status, 200);
    let response = pending.await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(response.status().as_u16(), 200);

    // A client deadline shorter than the pause times out.
    h.fake
        .inject("/v1/account", Fault::Slow(Duration::from_secs(5)), Some(1));
    let error = h
        .client
        .get(h.url("/v1/account"))
        .query(&signed("/v1/account"))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .expect_err("deadline");
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn slow_drip_delivers_the_whole_body_slowly() {
    let h = start().await;
    let interval = Duration::from_millis(20);
    h.fake
        .inject("/v1/risk", Fault::SlowDrip { interval }, Some(2));
    let started = Instant::now();
    let reply = h.get("/v1/risk", &[("domain", "google.com")]).await;
    assert_eq!(reply.json(), fixture("risk-zerolist.json"));
    let chunks = reply.text.len().div_ceil(16) as u32;
    assert!(chunks > 3);
    assert!(
        started.elapsed() >= interval * (chunks - 1),
        "{:?}",
        started.elapsed()
    );
    let mut query = signed("/v1/risk");
    query.push(("domain".into(), "google.com".into()));
    let request = h
        .client
        .get(h.url("/v1/risk"))
        .query(&query)
        .timeout(interval * 2);
    let outcome = match request.send().await {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(error) => Err(error),
    };
    let error = outcome.expect_err("the body cannot finish in time");
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn faults_need_authentication_and_match_by_prefix() {
    let h = start().await;
    h.fake.inject("/v1/iris", Fault::RateLimited, Some(1));
    // A refused request does not use the fault up.
    let anonymous = h
        .client
        .post(h.url("/v1/iris-enrich/"))
        .form(&[("domain", "google.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 403);
    assert_eq!(h.get("/v1/account", &[]).await.status, 200);
    assert_eq!(h.get("/v1/iris-detect/monitors/", &[]).await.status, 503);
    assert_eq!(h.get("/v1/iris-detect/monitors/", &[]).await.status, 200);
}

#[tokio::test]
async fn latency_applies_to_every_answer() {
    let h = start().await;
    let latency = Duration::from_millis(300);
    h.fake.set_latency(latency);
    let started = Instant::now();
    assert_eq!(h.get("/v1/account", &[]).await.status, 200);
    assert!(started.elapsed() >= latency);
    let started = Instant::now();
    let refused = Reply::from(h.client.get(h.url("/v1/account")).send().await.unwrap()).await;
    assert_eq!(refused.status, 403);
    assert!(started.elapsed() >= latency);
    h.fake.set_latency(Duration::ZERO);
    let started = Instant::now();
    h.get("/v1/account", &[]).await;
    assert!(started.elapsed() < latency);
}

#[tokio::test]
async fn calls_to_counts_every_method_and_outcome() {
    let h = start().await;
    h.post("/v1/iris-enrich/", &[("domain", "google.com")])
        .await;
    h.get("/v1/iris-enrich/", &[("domain", "google.com")]).await;
    Reply::from(
        h.client
            .post(h.url("/v1/iris-enrich/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    h.get("/v1/iris-enrich", &[("domain", "google.com")]).await;
    assert_eq!(h.fake.calls_to("/v1/iris-enrich/"), 3);
    assert_eq!(h.fake.calls_to("/v1/iris-enrich"), 1);
    assert_eq!(h.fake.calls_to("/v1/account"), 0);
    // Clones share the log.
    let clone = h.fake.clone();
    clone.clear_requests();
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn hostile_input_gets_envelopes_never_a_broken_connection() {
    let h = start().await;
    let key_pairs = pairs(&[("api_username", USER), ("api_key", KEY)]);
    let huge = "a".repeat(100_000);
    // Invalid UTF-8 and a huge parameter in the query.
    let reply = Reply::from(
        h.client
            .get(h.url("/v1/iris-investigate/?domain=%FF%FE&api_username=test_user&api_key=test_key_0123456789"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply.response()["missing_domains"],
        json!(["\u{fffd}\u{fffd}"])
    );
    let mut form = key_pairs.clone();
    form.push(("domain".into(), huge));
    let reply = h.post_form("/v1/iris-enrich/", &form).await;
    assert_eq!(reply.response()["results_count"], 0);
    // Bodies that are not what they claim, or too large.
    let raw = |content_type: &'static str, body: Vec<u8>| {
        let request = h
            .client
            .post(h.url("/v1/iris-enrich/?api_username=test_user&api_key=test_key_0123456789"))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        async move { Reply::from(request.send().await.unwrap()).await }
    };
    assert_eq!(
        raw("application/json", b"{\"domain\":".to_vec())
            .await
            .status,
        400
    );
    assert_eq!(
        raw("application/json", b"[\"google.com\"]".to_vec())
            .await
            .status,
        400
    );
    assert_eq!(
        raw(
            "application/x-www-form-urlencoded",
            b"domain=\xff\xfe".to_vec()
        )
        .await
        .status,
        200
    );
    assert_eq!(
        raw("text/plain", b"domain = google.com".to_vec())
            .await
            .status,
        400
    );
    // Odd paths.
    for path in [
        "/v1/%FF/whois",
        "/v1/%/whois",
        "/v1//whois",
        "/v1/a.com/whois/history?offset=99999999999999999999",
    ] {
        let reply = Reply::from(
            h.client
                .get(format!(
                    "{}&api_username=test_user&api_key=test_key_0123456789",
                    h.url(&format!(
                        "{path}{}",
                        if path.contains('?') { "" } else { "?x=1" }
                    ))
                ))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            matches!(reply.status, 400 | 404),
            "{path}: {}",
            reply.status
        );
        assert!(reply.json()["error"]["code"].is_u64(), "{path}");
    }
    assert_eq!(h.fake.requests().len(), 10);
}

#[tokio::test]
async fn the_router_works_without_a_socket_and_the_task_stops_on_drop() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let fake = FakeApi::new().with_user(USER, KEY);
    let uri = format!(
        "/v1/google.com?{}",
        signed("/v1/google.com")
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A")))
            .collect::<Vec<_>>()
            .join("&")
    );
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = fake.router().oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value, fixture("domain-profile.json"));
    assert_eq!(fake.calls_to("/v1/google.com"), 1);

    // A body over the fake's limit is a 400, not a dropped connection.
    let request = axum::http::Request::post(
        "/v1/iris-enrich/?api_username=test_user&api_key=test_key_0123456789",
    )
    .header("content-type", "application/json")
    .body(axum::body::Body::from(vec![b' '; 5 * 1024 * 1024]))
    .unwrap();
    let response = fake.router().oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let running = fake.spawn().await.unwrap();
    let base = running.base_url();
    assert_eq!(base, format!("http://127.0.0.1:{}", running.addr().port()));
    assert!(!base.ends_with('/'));
    drop(running);
    let client = reqwest::Client::new();
    let mut refused = false;
    for _ in 0..50 {
        if client
            .get(format!("{base}/v1/account"))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "the fake kept serving after RunningFake was dropped"
    );
}
