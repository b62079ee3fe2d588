//! Several replicas behind a load balancer spend quota once: two server processes share a real
//! Redis (started here, on loopback), and keep answering when Redis goes away.
//!
//! Needs `redis-server` (Debian package `redis-server`, installed by `.ci/run`). Without it the
//! test fails in CI and is skipped, with a notice, elsewhere.

use std::time::{Duration, Instant};

use domaintools_fake::{FakeApi, Fault};
use serde_json::{json, Value};

use crate::common::child::{free_port, ChildServer};
use crate::common::redis::RedisServer;
use crate::common::redis_present;
use crate::common::server::{sum_metric, TestFake, TestServer};

const USER: &str = "replica-test";
const KEY: &str = "SECRET-replica-key-42";
const CACHE_SECRET: &str = "SECRET-shared-by-the-replicas";

/// A replica: the real binary, with the server's own credentials, in front of the fake API
/// and sharing `redis_port`'s Redis.
async fn start_replica(api_url: &str, redis_port: u16) -> ChildServer {
    start_replica_with(api_url, redis_port, CACHE_SECRET, &[]).await
}

async fn start_replica_with(
    api_url: &str,
    redis_port: u16,
    cache_secret: &str,
    more: &[&str],
) -> ChildServer {
    let redis_url = format!("redis://127.0.0.1:{redis_port}/0");
    start_replica_at(api_url, &redis_url, cache_secret, more).await
}

async fn start_replica_at(
    api_url: &str,
    redis_url: &str,
    cache_secret: &str,
    more: &[&str],
) -> ChildServer {
    let mut args = vec![
        "--api-url",
        api_url,
        "--cache-url",
        redis_url,
        "--log-format",
        "json",
    ];
    args.extend_from_slice(more);
    ChildServer::start(
        &args,
        &[
            ("DOMAINTOOLS_USERNAME", USER),
            ("DOMAINTOOLS_API_KEY", KEY),
            ("MISP_DOMAINTOOLS_CACHE_SECRET", cache_secret),
        ],
    )
    .await
}

async fn query(http: &reqwest::Client, port: u16, domain: &str) -> Value {
    let body = json!({"module": "DomainTools-Iris-Investigate", "domain": domain,
                      "config": {"username": null, "api_key": null, "results_limit": null}});
    let response = http
        .post(format!("http://127.0.0.1:{port}/query"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn metric(http: &reqwest::Client, port: u16, prefix: &str) -> f64 {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(KEY));
    sum_metric(&text, prefix)
}

async fn started_redis() -> (RedisServer, u16) {
    let redis = RedisServer::start(&[]).await;
    let redis_port = redis.port;
    (redis, redis_port)
}

#[tokio::test]
async fn replicas_share_one_redis_and_survive_its_loss() {
    if !redis_present() {
        return;
    }
    let running = TestServer::builder()
        .fake(FakeApi::new().with_user(USER, KEY))
        .start_fake()
        .await;
    let fake = running.fake.clone();
    let (redis, redis_port) = started_redis().await;

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Both are healthy once started.
    let a = start_replica(&running.base_url(), redis_port).await;
    let b = start_replica(&running.base_url(), redis_port).await;
    let (port_a, port_b) = (a.port, b.port);

    let first = query(&http, port_a, "google.com").await;
    assert_eq!(first["results"].as_array().unwrap().len(), 61, "{first}");
    assert_eq!(fake.calls_to("/v1/iris-investigate/"), 1);

    // Replica A writes Redis in the background; give it a moment, then ask replica B.
    let started = Instant::now();
    loop {
        let second = query(&http, port_b, "google.com").await;
        assert_eq!(
            second["results"], first["results"],
            "the same answer from the shared cache"
        );
        if metric(
            &http,
            port_b,
            "misp_domaintools_cache_lookups_total{layer=\"redis\",result=\"hit\"}",
        )
        .await
            >= 1.0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "replica B never found A's answer in Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fake.calls_to("/v1/iris-investigate/"),
        1,
        "the second replica spent no quota"
    );

    // Redis goes away: both replicas keep answering, from their memory or from DomainTools.
    drop(redis);
    for (port, domain) in [
        (port_b, "amazon.com"),
        (port_a, "google.com"),
        (port_a, "synthetic-0001.com"),
    ] {
        let asked = Instant::now();
        let reply = query(&http, port, domain).await;
        assert!(reply.get("error").is_none(), "{domain}: {reply}");
        assert!(!reply["results"].as_array().unwrap().is_empty());
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "a dead Redis must not stall answers"
        );
    }
    assert_eq!(
        fake.calls_to("/v1/iris-investigate/"),
        3,
        "amazon.com and synthetic-0001.com from DomainTools"
    );
    assert!(
        metric(&http, port_a, "misp_domaintools_cache_errors_total").await >= 1.0,
        "failures are counted"
    );
    for port in [port_a, port_b] {
        let health = http
            .get(format!("http://127.0.0.1:{port}/healthcheck"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let health: Value = serde_json::from_slice(&health).unwrap_or(Value::Null);
        assert_eq!(health, json!({"status": true}));
    }
}

/// The entry the replicas wrote that holds `needle` (its Redis key and value), once it is there.
async fn entry_with(
    redis: &mut redis::aio::MultiplexedConnection,
    needle: &str,
) -> (String, Vec<u8>) {
    let started = Instant::now();
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("misp-domaintools:*")
            .query_async(redis)
            .await
            .unwrap();
        // Rate-limit buckets (hashes) live beside the entries.
        for key in keys.into_iter().filter(|k| !k.contains(":rate:")) {
            let value: Vec<u8> = redis::cmd("GET")
                .arg(&key)
                .query_async(redis)
                .await
                .unwrap();
            if String::from_utf8_lossy(&value).contains(needle) {
                return (key, value);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no entry holding {needle} was written to Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn forged_foreign_and_oversized_entries_are_refused_and_counted() {
    if !redis_present() {
        return;
    }
    let running = TestServer::builder()
        .fake(FakeApi::new().with_user(USER, KEY))
        .start_fake()
        .await;
    let fake = running.fake.clone();
    let (_redis, redis_port) = started_redis().await;
    let patient =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(20)));
    let mut redis = redis::Client::open(format!("redis://127.0.0.1:{redis_port}/0"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&patient)
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // No in-process cache and no reply cache: every lookup reads Redis.
    let no_memory = ["--cache-size-mb", "0", "--reply-cache-ttl", "0"];
    let ours = start_replica_with(&running.base_url(), redis_port, CACHE_SECRET, &no_memory).await;
    let theirs = start_replica_with(
        &running.base_url(),
        redis_port,
        "SECRET-of-another-deployment",
        &no_memory,
    )
    .await;
    let calls = || fake.calls_to("/v1/iris-investigate/");
    let rejected = |port, reason: &str| {
        let http = http.clone();
        let prefix = format!("misp_domaintools_cache_rejected_total{{reason=\"{reason}\"}}");
        async move { metric(&http, port, &prefix).await }
    };

    let genuine = query(&http, ours.port, "google.com").await;
    assert_eq!(
        genuine["results"].as_array().unwrap().len(),
        61,
        "{genuine}"
    );
    let (key, value) = entry_with(&mut redis, "google.com").await;
    assert!(
        !String::from_utf8_lossy(&value).contains(KEY),
        "entries hold no credential"
    );
    assert_eq!(query(&http, ours.port, "google.com").await, genuine);
    assert_eq!(calls(), 1, "the sealed entry is served");

    // Another deployment's secret: the entry is not trusted, DomainTools is asked.
    assert_eq!(query(&http, theirs.port, "google.com").await, genuine);
    assert_eq!(calls(), 2);
    assert!(rejected(theirs.port, "foreign_secret").await >= 1.0);
    // It then writes its own entry in the background: let that land before forging.
    let started = Instant::now();
    loop {
        let now: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if now != value {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A forged answer under the real key (one the attacker found with KEYS), keeping the
    // header: the MAC no longer matches.
    // The header: magic, key id, expiry and MAC (4 + 8 + 8 + 32 bytes).
    let (header, body) = value.split_at(52);
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("google.com"));
    let forged = [
        header,
        body.replace("google.com", "evil.example").as_bytes(),
    ]
    .concat();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&forged)
        .arg("PX")
        .arg(600_000)
        .query_async(&mut redis)
        .await
        .unwrap();
    let after_forgery = query(&http, ours.port, "google.com").await;
    assert!(!after_forgery.to_string().contains("evil.example"));
    assert_eq!(after_forgery, genuine);
    assert!(rejected(ours.port, "tampered").await >= 1.0);
    assert!(calls() >= 3, "the forged entry cost a real call");

    // 40 MiB under the key, more than any DomainTools answer may be: refused unread.
    let before = calls();
    let huge = vec![b'x'; 40 * 1024 * 1024];
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&huge)
        .arg("PX")
        .arg(600_000)
        .query_async(&mut redis)
        .await
        .unwrap();
    drop(huge);
    let (_, peak_before) = ours.memory_kib();
    assert_eq!(query(&http, ours.port, "google.com").await, genuine);
    assert!(rejected(ours.port, "oversized").await >= 1.0);
    assert_eq!(calls(), before + 1);
    let (_, peak_after) = ours.memory_kib();
    assert!(
        peak_after < peak_before + 20 * 1024,
        "the 40 MiB value was not read: peak {peak_before} KiB before, {peak_after} KiB after"
    );
    for (server, reason) in [
        (&ours, "foreign_secret"),
        (&theirs, "tampered"),
        (&theirs, "oversized"),
    ] {
        assert_eq!(rejected(server.port, reason).await, 0.0, "{reason}");
    }
}

/// Three replicas in front of one Redis and one fake API, with an account allowed `per_minute`
/// Iris Investigate calls a minute.
async fn three_replicas(
    per_minute: u32,
) -> (FakeApi, TestFake, RedisServer, u16, Vec<ChildServer>) {
    let running = TestServer::builder()
        .fake(
            FakeApi::new()
                .with_user(USER, KEY)
                .with_per_minute_limit("iris-investigate", per_minute),
        )
        .start_fake()
        .await;
    let fake = running.fake.clone();
    let (redis, redis_port) = started_redis().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(start_replica(&running.base_url(), redis_port).await);
    }
    (fake, running, redis, redis_port, replicas)
}

#[tokio::test]
async fn three_replicas_spend_one_rate_limit() {
    if !redis_present() {
        return;
    }
    let (fake, _running, _redis, _, replicas) = three_replicas(12).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Each replica meets the account once, and learns its limits (from DomainTools or from
    // the answer another replica left in Redis).
    for (n, replica) in replicas.iter().enumerate() {
        let reply = query(
            &http,
            replica.port,
            &format!("synthetic-{:04}.com", 900 + n),
        )
        .await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fake.calls_to("/v1/iris-investigate/");

    // 36 distinct lookups at once, 12 on each replica: three separate buckets would let all
    // 36 through; one shared bucket lets 12 go, then one every 5 s while budgets last.
    let started = Instant::now();
    let replies = futures_util::future::join_all((0..36).map(|n| {
        let http = http.clone();
        let port = replicas[n % 3].port;
        async move { query(&http, port, &format!("synthetic-{:04}.com", 100 + n)).await }
    }))
    .await;
    let elapsed = started.elapsed();
    let calls = fake.calls_to("/v1/iris-investigate/") - before;
    let answered = replies.iter().filter(|r| r.get("error").is_none()).count();
    let refused = replies
        .iter()
        .filter(|r| r["error"].as_str().is_some_and(|e| e.contains("limit")))
        .count();
    assert_eq!(answered + refused, 36, "{replies:?}");
    assert_eq!(answered, calls, "every call made was an answer");
    // What one replica alone would allow: the bucket's 12, plus one per 5 s elapsed.
    let one_replica = 12 + (elapsed.as_secs_f64() / 5.0).ceil() as usize;
    assert!(
        calls <= one_replica,
        "{calls} calls in {elapsed:?}; one replica would make at most {one_replica}"
    );
    // The warm-up lookups made after a replica had learned its limits took turns too.
    assert!(calls >= 9, "the bucket's capacity is used: {calls}");
}

#[tokio::test]
async fn identical_lookups_on_three_replicas_cost_one_call() {
    if !redis_present() {
        return;
    }
    let (fake, _running, _redis, _, replicas) = three_replicas(600).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Answers take a while, as DomainTools' do: the others find the first call still going.
    fake.set_latency(Duration::from_millis(300));
    let replies = futures_util::future::join_all((0..150).map(|n| {
        let http = http.clone();
        let port = replicas[n % 3].port;
        async move { query(&http, port, "google.com").await }
    }))
    .await;
    for reply in &replies {
        assert_eq!(
            reply["results"].as_array().map(Vec::len),
            Some(61),
            "{reply}"
        );
    }
    assert_eq!(
        fake.calls_to("/v1/iris-investigate/"),
        1,
        "150 identical lookups over three replicas, one upstream call"
    );
    let mut coalesced = 0.0;
    for replica in &replicas {
        coalesced += metric(
            &http,
            replica.port,
            "misp_domaintools_coalesced_requests_total",
        )
        .await;
    }
    assert!(
        coalesced >= 2.0,
        "the other replicas waited for the first: {coalesced}"
    );
}

#[tokio::test]
async fn redis_killed_mid_load_costs_nothing_after_seconds() {
    if !redis_present() {
        return;
    }
    let (fake, _running, redis, _, replicas) = three_replicas(100_000).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    let started = Instant::now();
    let killed_at = Duration::from_millis(1500);
    let load = tokio::spawn({
        let http = http.clone();
        async move {
            // Four clients, each asking for cold lookups one after the other for 5 s.
            let workers = (0..4).map(|worker| {
                let (http, ports) = (http.clone(), ports.clone());
                async move {
                    let mut seen = Vec::new();
                    let mut n = 0;
                    while started.elapsed() < Duration::from_secs(5) {
                        let port = ports[n % 3];
                        let domain = format!("synthetic-{:04}.com", worker * 2000 + n);
                        let asked = started.elapsed();
                        let reply = query(&http, port, &domain).await;
                        seen.push((asked, started.elapsed() - asked, reply));
                        n += 1;
                    }
                    seen
                }
            });
            futures_util::future::join_all(workers).await
        }
    });
    tokio::time::sleep(killed_at).await;
    drop(redis);
    let seen: Vec<_> = load.await.unwrap().into_iter().flatten().collect();
    for (asked, _, reply) in &seen {
        assert!(reply.get("error").is_none(), "at {asked:?}: {reply}");
        assert!(!reply["results"].as_array().unwrap().is_empty());
    }
    let after: Vec<Duration> = seen
        .iter()
        .filter(|(asked, _, _)| *asked > killed_at + Duration::from_secs(2))
        .map(|(_, took, _)| *took)
        .collect();
    assert!(
        after.len() >= 8,
        "the load went on: {} lookups",
        after.len()
    );
    let slowest = after.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_secs(1),
        "two seconds after Redis died, a lookup took {slowest:?}"
    );
    // The breaker: lookups after the loss skip Redis instead of each failing on it.
    let (mut errors, mut skipped) = (0.0, 0.0);
    for replica in &replicas {
        errors += metric(&http, replica.port, "misp_domaintools_cache_errors_total").await;
        skipped += metric(
            &http,
            replica.port,
            "misp_domaintools_cache_lookups_total{layer=\"redis\",result=\"skipped\"}",
        )
        .await;
    }
    assert!(
        skipped >= after.len() as f64,
        "{skipped} lookups skipped Redis"
    );
    assert!(
        errors < after.len() as f64,
        "{errors} Redis failures for {} lookups: each one waited on Redis",
        after.len()
    );
    assert_eq!(
        fake.calls_to("/v1/iris-investigate/"),
        seen.len(),
        "every lookup was cold"
    );
}

#[tokio::test]
async fn an_acl_user_in_the_url_is_used_and_never_shown() {
    if !redis_present() {
        return;
    }
    const PASSWORD: &str = "SECRET-redis-acl-password";
    let running = TestServer::builder()
        .fake(FakeApi::new().with_user(USER, KEY))
        .start_fake()
        .await;
    let port = free_port();
    let password_rule = format!(">{PASSWORD}");
    // The default user is off: only `replica`, with its password, may use this Redis.
    let _redis = RedisServer::start_on(
        port,
        port,
        &[
            "--user",
            "default",
            "off",
            "--user",
            "replica",
            "on",
            &password_rule,
            "~*",
            "&*",
            "+@all",
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let good = format!("redis://replica:{PASSWORD}@127.0.0.1:{port}/0");
    let bad = format!("redis://replica:{PASSWORD}-wrong@127.0.0.1:{port}/0");
    let with_acl = start_replica_at(&running.base_url(), &good, CACHE_SECRET, &[]).await;
    let refused = start_replica_at(&running.base_url(), &bad, CACHE_SECRET, &[]).await;

    let reply = query(&http, with_acl.port, "google.com").await;
    assert!(reply.get("error").is_none(), "{reply}");
    let mut redis = redis::Client::open(good.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    entry_with(&mut redis, "google.com").await;

    // A wrong password: answers go on from DomainTools, the failure is counted.
    let reply = query(&http, refused.port, "amazon.com").await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(metric(&http, refused.port, "misp_domaintools_cache_errors_total").await >= 1.0);
    for replica in [with_acl, refused] {
        let text = http
            .get(format!("http://127.0.0.1:{}/metrics", replica.port))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(PASSWORD));
        let output = replica.stop_and_collect();
        assert!(!output.contains(PASSWORD), "{output}");
        assert!(!output.contains(CACHE_SECRET), "{output}");
    }
}

#[tokio::test]
async fn a_tls_redis_behind_a_corporate_ca_needs_the_ca_file() {
    if !redis_present() {
        return;
    }
    const PASSWORD: &str = "SECRET-tls-redis-password";
    let running = TestServer::builder()
        .fake(FakeApi::new().with_user(USER, KEY))
        .start_fake()
        .await;
    let fake = running.fake.clone();
    let ca = crate::common::tls::TestCa::new();
    let server = ca.server_cert();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    std::fs::write(&cert, &server.cert_pem).unwrap();
    std::fs::write(&key, &server.key_pem).unwrap();
    let ca_file = ca.write_pem(dir.path());
    let ca_file = ca_file.to_str().unwrap();
    let tls_port = free_port();
    // TLS only: `--port 0` closes the plain port, so nothing can reach it in clear.
    let _redis = RedisServer::start_on(
        0,
        tls_port,
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            PASSWORD,
        ],
    )
    .await;
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{tls_port}/0");

    // The feed leases' Redis (`--feeds-lock-url`) trusts the same roots.
    let lock_url = domaintools::SecretString::from(url.clone());
    let lease = Duration::from_secs(5);
    let roots = domaintools::ExtraRoots::from_pem(ca.pem().as_bytes()).unwrap();
    let leases = misp_domaintools::feeds::leader::Leases::connect(&lock_url, &roots, lease)
        .await
        .unwrap();
    assert!(
        leases.hold("tls-test-cursor").await,
        "the lease is taken over TLS"
    );
    let refused = misp_domaintools::feeds::leader::Leases::connect(
        &lock_url,
        &domaintools::ExtraRoots::none(),
        lease,
    )
    .await
    .unwrap_err();
    let refused = format!("{refused:#}");
    assert!(refused.contains("certificate"), "{refused}");
    assert!(!refused.contains(PASSWORD), "{refused}");

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let with_ca = ["--ca-file", ca_file];
    let a = start_replica_at(&running.base_url(), &url, CACHE_SECRET, &with_ca).await;
    let b = start_replica_at(&running.base_url(), &url, CACHE_SECRET, &with_ca).await;
    let untrusting = start_replica_at(&running.base_url(), &url, CACHE_SECRET, &[]).await;

    // Trusted: A's answer reaches B through the TLS Redis, one call upstream.
    let first = query(&http, a.port, "google.com").await;
    assert_eq!(first["results"].as_array().unwrap().len(), 61, "{first}");
    let started = Instant::now();
    loop {
        let second = query(&http, b.port, "google.com").await;
        assert_eq!(second["results"], first["results"]);
        let hit = "misp_domaintools_cache_lookups_total{layer=\"redis\",result=\"hit\"}";
        if metric(&http, b.port, hit).await >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "replica B never found A's answer in the TLS Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.calls_to("/v1/iris-investigate/"), 1);
    for replica in [&a, &b] {
        assert_eq!(
            metric(&http, replica.port, "misp_domaintools_cache_errors_total").await,
            0.0,
            "no Redis failure with the CA"
        );
    }

    // Not trusted: Redis is refused, the lookup is answered from DomainTools all the same,
    // and the log says why without the password.
    let reply = query(&http, untrusting.port, "amazon.com").await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(!reply["results"].as_array().unwrap().is_empty(), "{reply}");
    assert_eq!(fake.calls_to("/v1/iris-investigate/"), 2);
    assert!(
        metric(
            &http,
            untrusting.port,
            "misp_domaintools_cache_errors_total"
        )
        .await
            >= 1.0
    );
    let output = untrusting.stop_and_collect();
    let refusal = output
        .lines()
        .find(|line| line.contains("shared cache (Redis) unavailable"))
        .unwrap_or_else(|| panic!("no Redis failure logged:\n{output}"));
    assert!(
        refusal.to_lowercase().contains("certificate"),
        "the reason names the certificate: {refusal}"
    );
    for replica in [a, b] {
        let text = replica.stop_and_collect();
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(!output.contains(PASSWORD), "{output}");
    assert!(!output.contains(CACHE_SECRET), "{output}");
}

#[tokio::test]
async fn a_503_pause_on_one_replica_pauses_the_others() {
    if !redis_present() {
        return;
    }
    let running = TestServer::builder()
        .fake(FakeApi::new().with_user(USER, KEY))
        .start_fake()
        .await;
    let fake = running.fake.clone();
    let (_redis, redis_port) = started_redis().await;
    // No limit is learned: a 503 is all the replicas know of the account's limit.
    let off = ["--rate-limits", "off"];
    let a = start_replica_with(&running.base_url(), redis_port, CACHE_SECRET, &off).await;
    let b = start_replica_with(&running.base_url(), redis_port, CACHE_SECRET, &off).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut redis = redis::Client::open(format!("redis://127.0.0.1:{redis_port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // A meets a 503 without Retry-After: it pauses (2 s) and tries again within its budget.
    fake.inject("/v1/iris-investigate", Fault::RateLimited, Some(1));
    let asked_a = tokio::spawn({
        let http = http.clone();
        let port = a.port;
        async move { query(&http, port, "google.com").await }
    });
    let started = Instant::now();
    loop {
        let pauses: Vec<String> = redis::cmd("KEYS")
            .arg("misp-domaintools:v2:pause:*")
            .query_async(&mut redis)
            .await
            .unwrap();
        if !pauses.is_empty() {
            assert!(
                !pauses.iter().any(|key| key.contains(USER)),
                "the key names no account: {pauses:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "replica A never shared its pause"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // B never met a 503 and knows no limit, yet it waits for the end of A's pause.
    let reply = query(&http, b.port, "amazon.com").await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(!reply["results"].as_array().unwrap().is_empty(), "{reply}");
    let waited = "misp_domaintools_rate_limit_wait_seconds_count";
    assert!(
        metric(&http, b.port, waited).await >= 1.0,
        "replica B did not wait for the pause replica A shared"
    );
    let reply = asked_a.await.unwrap();
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(metric(&http, a.port, waited).await >= 1.0);
}
