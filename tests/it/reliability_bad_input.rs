//! Reliability: bad input against every module, over real TCP. Bodies that are not objects,
//! not UTF-8, nested without end, too large, or hold 10 MB strings; every config key of every
//! module with wrong types and nulls; unknown keys; every module with every attribute type
//! it does not take and with wrong values in those it does. Each must give a clear error (or
//! an answer), never a panic, never a 5xx, and leave the server healthy.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::common::server::{config, options, TestServer, KEY};

/// A server whose client does not learn the account's rate limits: the recorded account
/// allows reverse whois 10 calls a minute, and these tests send hundreds of lookups about
/// parsing, not pacing (rate limits have their own tests in quota.rs).
async fn start() -> TestServer {
    TestServer::builder()
        .client(|client| client.learn_rate_limits = false)
        .start()
        .await
}

/// What the server says when a module panicked: must never appear.
const PANIC_REPLY: &str = "Internal error in the module";

/// The modules as `/modules` describes them: name, input types, config keys.
async fn modules(server: &TestServer) -> Vec<(String, Vec<String>, Vec<String>)> {
    let bytes = reqwest::get(format!("{}/modules", server.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listing: Value = serde_json::from_slice(&bytes).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut keys = strings(&m["meta"]["config"]);
            if let Some(user) = m["mispattributes"]["userConfig"].as_object() {
                keys.extend(user.keys().cloned());
            }
            (
                m["name"].as_str().unwrap().to_owned(),
                strings(&m["mispattributes"]["input"]),
                keys,
            )
        })
        .collect()
}

/// A request that works for `module` (the base every mutation starts from).
fn good_request(module: &str, inputs: &[String]) -> Value {
    let mut request = json!({"module": module, "config": config()});
    match module {
        "DomainTools-Iris-Import" => {
            request["data"] = json!("VTJGc2RHVmtYMTliTmY0NlNaTW4K");
            request["event_id"] = json!("1");
        }
        "DomainTools-Iris-Detect" => {
            request["data"] = json!("");
            request["event_id"] = json!("1");
        }
        _ => {
            let key = inputs.first().map(String::as_str).unwrap_or("domain");
            request[key] = json!("google.com");
        }
    }
    request
}

/// Checks one reply: HTTP 200 or 400 with a JSON object; if 200, `results` is a list and any
/// `error` a non-empty string; never the panic reply. Returns the problem, if any.
fn check(what: &str, status: u16, reply: &Value) -> Option<String> {
    let problem = if status >= 500 {
        Some(format!("HTTP {status}"))
    } else if !reply.is_object() {
        Some(format!(
            "HTTP {status} with a body that is not a JSON object"
        ))
    } else if status == 200 && !reply["results"].is_array() {
        Some(format!("no results list: {}", short(reply)))
    } else if status != 200 && status != 400 {
        Some(format!("HTTP {status}: {}", short(reply)))
    } else if reply.get("error").is_some_and(|e| {
        !e.is_string()
            || e.as_str()
                .is_some_and(|s| s.trim().is_empty() || s.contains(PANIC_REPLY))
    }) {
        Some(format!("bad error: {}", short(reply)))
    } else if status == 400 && !reply["error"].is_string() {
        Some(format!("HTTP 400 without an error: {}", short(reply)))
    } else {
        None
    };
    problem.map(|p| format!("{what}: {p}"))
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(300).collect()
}

async fn post_bytes(server: &TestServer, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/query", server.url))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn assert_still_serving(server: &TestServer) {
    let health = reqwest::get(format!("{}/healthcheck", server.url))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": config()}))
        .await;
    assert_eq!(
        reply["results"].as_array().map(Vec::len),
        Some(61),
        "{}",
        short(&reply)
    );
}

#[tokio::test]
async fn malformed_bodies_get_a_clear_error() {
    let server = start().await;
    let deep_array = "[".repeat(100_000);
    let deep_object = "{\"a\":".repeat(50_000);
    let bodies: Vec<(&str, Vec<u8>)> =
        vec![
        ("empty", Vec::new()),
        ("array", b"[1,2,3]".to_vec()),
        ("number", b"42".to_vec()),
        ("string", b"\"DomainTools-Iris-Investigate\"".to_vec()),
        ("null", b"null".to_vec()),
        ("boolean", b"true".to_vec()),
        ("truncated", br#"{"module": "DomainTools-Iris-Investigate", "domain": "goo"#.to_vec()),
        ("trailing garbage", br#"{"module": "x"} {"#.to_vec()),
        (
            "invalid UTF-8 in a string",
            b"{\"module\": \"DomainTools-Iris-Investigate\", \"domain\": \"goo\xff\xfegle.com\"}"
                .to_vec(),
        ),
        ("invalid UTF-8 outside strings", b"{\xc3\x28: 1}".to_vec()),
        ("UTF-16 BOM", b"\xff\xfe{\x00}\x00".to_vec()),
        ("NUL bytes", b"{\"module\": \"\x00\"}".to_vec()),
        ("deeply nested arrays", deep_array.into_bytes()),
        ("deeply nested objects", deep_object.into_bytes()),
        ("duplicate keys", br#"{"module": 1, "module": "DomainTools-Iris-Investigate"}"#.to_vec()),
        ("lone surrogate escape", br#"{"module": "\ud800"}"#.to_vec()),
        ("huge number", format!("{{\"timeout\": 1{}}}", "0".repeat(400)).into_bytes()),
    ];
    let mut problems = Vec::new();
    for (what, body) in bodies {
        let started = Instant::now();
        let (status, reply) = post_bytes(&server, body).await;
        problems.extend(check(what, status, &reply));
        if reply.get("error").is_none() {
            problems.push(format!("{what}: no error in {}", short(&reply)));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn bodies_over_the_limit_and_ten_megabyte_strings() {
    // Default limit (8 MiB): a 9 MiB body is refused with the reason, before any parsing.
    let server = start().await;
    let over = format!(
        "{{\"module\": \"DomainTools-Iris-Investigate\", \"domain\": \"{}\"}}",
        "a".repeat(9 * 1024 * 1024)
    );
    let (status, reply) = post_bytes(&server, over.into_bytes()).await;
    assert_eq!(status, 200, "{}", short(&reply));
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("larger than this server accepts")),
        "{}",
        short(&reply)
    );
    assert_still_serving(&server).await;

    // A server that accepts 32 MiB: 10 MB strings in every place a string goes, each answered
    // with a clear error (a 10 MB domain is not a domain), quickly and without echoing it.
    let server = TestServer::builder()
        .options(misp_domaintools::http::Options {
            body_limit: 32 * 1024 * 1024,
            ..options()
        })
        .client(|client| client.learn_rate_limits = false)
        .start()
        .await;
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let cases = [
        json!({"module": "DomainTools-Iris-Investigate", "domain": ten_mb, "config": config()}),
        json!({"module": "DomainTools-Analyze", "url": format!("http://{ten_mb}.com/"), "config": config()}),
        json!({"module": "DomainTools-Iris-Pivot", "whois-registrant-email": ten_mb, "event_id": "1", "config": config()}),
        json!({"module": "DomainTools-Iris-Import", "data": ten_mb, "event_id": "1", "config": config()}),
        json!({"module": ten_mb, "domain": "google.com", "config": config()}),
        json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
               "config": {"username": ten_mb, "api_key": KEY, "results_limit": ten_mb}}),
    ];
    let mut problems = Vec::new();
    for (i, request) in cases.iter().enumerate() {
        let started = Instant::now();
        let (status, reply) = server.post(request).await;
        let what = format!("10 MB case {i}");
        problems.extend(check(&what, status, &reply));
        let text = reply.to_string();
        if text.len() > 64 * 1024 {
            problems.push(format!(
                "{what}: a {} byte reply echoes the input",
                text.len()
            ));
        }
        if started.elapsed() > Duration::from_secs(10) {
            problems.push(format!("{what}: took {:?}", started.elapsed()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_still_serving(&server).await;
}

/// Values of the wrong type (and a few wrong values of the right one) for config keys.
fn bad_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(u64::MAX),
        json!(true),
        json!([]),
        json!(["1"]),
        json!({}),
        json!({"nested": {"deeper": [1]}}),
        json!(""),
        json!(" "),
        json!("-1"),
        json!("abc"),
        json!("99999999999999999999999"),
        json!("9".repeat(5000)),
        json!("\u{0}"),
        json!("1; DROP TABLE"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_config_key_of_every_module_with_wrong_types_and_nulls() {
    let server = start().await;
    let mut problems = Vec::new();
    let mut sent = 0;
    for (module, inputs, keys) in modules(&server).await {
        let good = good_request(&module, &inputs);
        let mut all_keys: BTreeSet<String> = keys.into_iter().collect();
        all_keys.insert("an_unknown_key".to_owned());
        for key in &all_keys {
            for value in bad_values() {
                let mut request = good.clone();
                request["config"][key] = value.clone();
                let (status, reply) = server.post(&request).await;
                problems.extend(check(
                    &format!("{module} config.{key} = {value}"),
                    status,
                    &reply,
                ));
                sent += 1;
            }
        }
        // The config itself of the wrong type, or absent.
        for config in [Value::Null, json!([]), json!("x"), json!(1), json!(true)] {
            let mut request = good.clone();
            request["config"] = config.clone();
            let (status, reply) = server.post(&request).await;
            problems.extend(check(
                &format!("{module} config = {config}"),
                status,
                &reply,
            ));
            sent += 1;
        }
        let mut request = good.clone();
        request.as_object_mut().unwrap().remove("config");
        let (status, reply) = server.post(&request).await;
        problems.extend(check(&format!("{module} without config"), status, &reply));
    }
    assert!(sent > 500, "{sent} requests");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_level_fields_of_the_wrong_type() {
    let server = start().await;
    let mut problems = Vec::new();
    for (module, inputs, _) in modules(&server).await {
        let good = good_request(&module, &inputs);
        for field in [
            "module",
            "timeout",
            "event_id",
            "persistent",
            "attribute_uuid",
            "zzz-unknown",
        ] {
            for value in bad_values() {
                let mut request = good.clone();
                request[field] = value.clone();
                let (status, reply) = server.post(&request).await;
                problems.extend(check(
                    &format!("{module} {field} = {value}"),
                    status,
                    &reply,
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_still_serving(&server).await;
}

/// Every attribute type any module takes, plus types none takes.
fn all_attribute_types(modules: &[(String, Vec<String>, Vec<String>)]) -> BTreeSet<String> {
    let mut types: BTreeSet<String> = modules
        .iter()
        .flat_map(|(_, inputs, _)| inputs.iter().cloned())
        .collect();
    for other in [
        "md5",
        "sha256",
        "url",
        "link",
        "filename",
        "attachment",
        "data",
        "attribute",
    ] {
        types.insert(other.to_owned());
    }
    types
}

/// Wrong values for an attribute type the module does take.
fn wrong_values() -> Vec<Value> {
    let mut values = vec![
        Value::Null,
        json!(0),
        json!(1.5),
        json!(true),
        json!([]),
        json!(["google.com"]),
        json!({"value": "google.com"}),
        json!(""),
        json!(" "),
        json!("\u{0}"),
    ];
    values.extend([
        json!("1.2.3.4"),
        json!("::1"),
        json!("256.256.256.256"),
        json!("google.com"),
        json!("not an email"),
        json!("@"),
        json!("a@b@c"),
        json!("localhost"),
        json!("com"),
        json!(".."),
        json!("../../v1/account"),
        json!("google.com/../../v1/account?x=1#y"),
        json!("ｇｏｏｇｌｅ．ｃｏｍ"),
        json!("xn--"),
        json!("http://[::1]:80/"),
        json!("\u{202e}moc.elgoog"),
        json!("A".repeat(300)),
        json!("a.".repeat(200)),
        json!("=?utf-8?b?Z29vZ2xl?="),
        json!("!!!not base64!!!"),
    ]);
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_module_with_every_attribute_type_and_wrong_values() {
    let server = start().await;
    let modules = modules(&server).await;
    let types = all_attribute_types(&modules);
    let mut problems = Vec::new();
    for (module, inputs, _) in &modules {
        let base = {
            let mut request = Map::new();
            request.insert("module".into(), json!(module));
            request.insert("config".into(), config());
            request.insert("event_id".into(), json!("1"));
            request
        };
        // A type the module does not take: a clear refusal naming what it takes.
        for attribute_type in types.iter().filter(|t| !inputs.contains(t)) {
            if *attribute_type == "data" && module.contains("Import") || module.contains("Detect") {
                continue;
            }
            let mut request = base.clone();
            request.insert(attribute_type.clone(), json!("google.com"));
            let (status, reply) = server.post(&Value::Object(request)).await;
            let what = format!("{module} with {attribute_type}");
            problems.extend(check(&what, status, &reply));
            if reply["error"].is_null()
                && inputs.iter().all(|i| i != attribute_type)
                && !inputs.is_empty()
            {
                problems.push(format!(
                    "{what}: accepted a type it does not take: {}",
                    short(&reply)
                ));
            }
        }
        // Each type it takes, with wrong values; with the hover form too.
        let takes: Vec<String> = if inputs.is_empty() {
            vec!["data".to_owned()]
        } else {
            inputs.clone()
        };
        for attribute_type in &takes {
            for (i, value) in wrong_values().into_iter().enumerate() {
                // Hover and stored forms in turn: both paths, half the requests.
                let hover = i % 2 == 0;
                {
                    let mut request = base.clone();
                    if hover {
                        request.remove("event_id");
                    }
                    request.insert(attribute_type.clone(), value.clone());
                    let (status, reply) = server.post(&Value::Object(request)).await;
                    problems.extend(check(
                        &format!("{module} {attribute_type} = {value} (hover {hover})"),
                        status,
                        &reply,
                    ));
                }
            }
        }
    }
    // Nothing that is not a well-formed lookup may have reached DomainTools' URL paths.
    for request in server.fake.requests() {
        let path = &request.path;
        if path.contains("..") || path.contains('%') || path.contains(' ') || path.contains('?') {
            problems.push(format!("a malformed path reached the API: {path}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_still_serving(&server).await;
}
