//! The misp-modules HTTP contract, driven through `router(state).oneshot(..)`: listing,
//! health, version, and every request problem that must be answered without calling
//! DomainTools (the client here points at a closed port, so a call would fail loudly).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use misp_domaintools::http::Options;
use misp_domaintools::registry::MODULES;
use serde_json::{json, Value};

use crate::common::server::TestServer;

/// Sends `request` through the router of a server with `options`, whose client points at a
/// closed port.
async fn send(options: Options, request: Request<Body>) -> (StatusCode, Value) {
    let app = TestServer::builder()
        .api_url("http://127.0.0.1:9")
        .options(options)
        .router()
        .await;
    let (status, reply) = app.json(request).await;
    (StatusCode::from_u16(status).unwrap(), reply)
}

async fn query(body: impl Into<Body>) -> (StatusCode, Value) {
    send(
        Options::default(),
        Request::post("/query").body(body.into()).unwrap(),
    )
    .await
}

#[tokio::test]
async fn modules_lists_every_descriptor_as_misp_expects() {
    let (status, body) = send(
        Options::default(),
        Request::get("/modules").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let modules = body.as_array().unwrap();
    assert_eq!(modules.len(), MODULES.len());
    for m in modules {
        assert!(m["name"].as_str().unwrap().starts_with("DomainTools-"));
        assert!(matches!(
            m["type"].as_str(),
            Some("expansion" | "import_mod")
        ));
        assert!(m["meta"]["module-type"].is_array());
        assert!(m["meta"]["config"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string));
        assert!(m["mispattributes"].is_object());
    }
    let investigate = modules
        .iter()
        .find(|m| m["name"] == "DomainTools-Iris-Investigate")
        .unwrap();
    assert_eq!(
        investigate["meta"]["module-type"],
        json!(["expansion", "hover"])
    );
    assert_eq!(investigate["mispattributes"]["input"], json!(["domain"]));
    assert_eq!(
        investigate["meta"]["config"],
        json!(["username", "api_key", "results_limit"])
    );
    assert_eq!(
        investigate["meta"]["description"],
        "\n                Designed for MISP tooltip or hover actions on domain names.\n                Provides risk scoring, domain age, hosting, Whois, MX and related infrastructure for a domain.\n                Guided Pivot counts help investigators identify connected attributes to other domain infrastructure.\n                Requires Iris Investigate account provisioning.\n                "
    );
}

#[tokio::test]
async fn healthcheck_and_version() {
    let (status, body) = send(
        Options::default(),
        Request::get("/healthcheck").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": true})));
    let (_, body) = send(
        Options::default(),
        Request::get("/version").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(body, json!({"version": env!("CARGO_PKG_VERSION")}));
}

#[tokio::test]
async fn unknown_paths_and_methods_are_not_module_errors() {
    let (status, _) = send(
        Options::default(),
        Request::get("/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        Options::default(),
        Request::get("/query").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_a_400() {
    for body in [&b"[1,2]"[..], b"\"x\"", b"{", b"\xff\xfe", b""] {
        let (status, reply) = query(body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .starts_with("The request body"),
            "{reply}"
        );
    }
}

#[tokio::test]
async fn module_problems_are_200_with_results_and_error() {
    // Every registered module, so the expected text follows the registry as modules are added.
    let provided: Vec<&str> = MODULES.iter().map(|m| m.name).collect();
    let unknown = format!(
        "Unknown module \"DomainTools-Nope\". This server provides: {}.",
        provided.join(", ")
    );
    let cases = [
        (json!({"domain": "example.com"}), "The request has no \"module\" field."),
        (json!({"module": 7}), "The \"module\" field must be a module name (a string)."),
        (json!({"module": "DomainTools-Nope", "domain": "x"}), unknown.as_str()),
        (json!({"module": "DomainTools-Iris-Investigate", "domain": "example.com"}), "Configuration is missing from the request."),
        (json!({"module": "DomainTools-Iris-Investigate", "domain": "example.com", "config": null}), "Configuration is missing from the request."),
        (json!({"module": "DomainTools-Iris-Investigate", "domain": "example.com", "config": {"username": null, "api_key": null, "results_limit": null}}), "DomainTools API username is not configured."),
        (json!({"module": "DomainTools-Iris-Enrich", "domain": "example.com", "config": {"username": "u", "api_key": null}}), "DomainTools API key is not configured."),
        (json!({"module": "DomainTools-Iris-Enrich", "ip-src": "1.2.3.4", "config": {"username": "u", "api_key": "k"}}), "DomainTools-Iris-Enrich does not handle this attribute: it takes domain."),
        (json!({"module": "DomainTools-Iris-Enrich", "domain": ["a"], "config": {"username": "u", "api_key": "k"}}), "The \"domain\" value must be a string."),
        (json!({"module": "DomainTools-Iris-Enrich", "domain": "localhost", "config": {"username": "u", "api_key": "k"}}), "\"localhost\" has no registrable domain to look up (IP addresses, bare suffixes and local names have none)."),
        (json!({"module": "DomainTools-Iris-Enrich", "domain": "x.com", "timeout": "soon", "config": {"username": "u", "api_key": "k"}}), "The \"timeout\" field must be a number of seconds."),
    ];
    for (body, error) in cases {
        let (status, reply) = query(body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // No event_id: a hover, whose error is also an entry MISP's popover shows (issue 11);
        // a request without a module name is no MISP hover and keeps the bare shape.
        let expected = if body.get("module").is_some_and(Value::is_string) {
            crate::common::hover_error(error)
        } else {
            json!({"results": [], "error": error})
        };
        assert_eq!(reply, expected, "{body}");
    }
}

#[tokio::test]
async fn no_content_type_is_needed_and_unknown_keys_are_ignored() {
    let body = json!({"module": "DomainTools-Iris-Enrich", "domain": "localhost", "persistent": 1,
                      "attribute_uuid": "x", "config": {"username": "u", "api_key": "k"}});
    let request = Request::post("/query")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, reply) = send(Options::default(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("no registrable domain"));
}

#[tokio::test]
async fn bodies_over_the_limit_get_a_json_error() {
    let options = Options {
        body_limit: 1024,
        ..Options::default()
    };
    let big = json!({"module": "DomainTools-Iris-Enrich", "domain": "a".repeat(4096)}).to_string();
    let (status, reply) = send(
        options,
        Request::post("/query").body(Body::from(big)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["results"], json!([]));
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("larger than this server accepts (1024 bytes"),
        "{reply}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_readable_error_without_secrets() {
    let body = json!({"module": "DomainTools-Iris-Enrich", "domain": "example.com",
                      "config": {"username": "u", "api_key": "SECRET-KEY-1234"}});
    let (status, reply) = query(body.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.starts_with("could not connect to the DomainTools API"),
        "{error}"
    );
    assert!(
        !error.contains("SECRET-KEY-1234") && !error.contains("signature"),
        "{error}"
    );
}
