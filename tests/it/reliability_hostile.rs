//! Reliability under hostile clients (issue 12): idle sockets at a 1024 open-files limit,
//! slowloris, slow and unfinished bodies, clients that never read their reply, oversized
//! `Expect: 100-continue`. The real binary (debug build, `--demo`) is attacked over loopback;
//! through each attack `/healthcheck` must answer within 1 s, the process's peak memory
//! (`VmHWM`) must stay under a stated bound, and the held connections must be cut by the
//! timeouts. Bounds are for the debug build `cargo test` runs, with room for a busy machine.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::child::{binary_with_open_files, ChildServer};

/// How long a health check may take while the server is under attack.
const HEALTHY_WITHIN: Duration = Duration::from_secs(1);

/// Raises this process's own open-files limit: it holds the attackers' ends.
fn raise_own_fd_limit(needed: u64) {
    let got =
        rlimit::increase_nofile_limit(needed + 512).expect("cannot raise the open-files limit");
    assert!(
        got >= needed,
        "only {got} open files allowed; this test needs {needed}"
    );
}

/// One `/healthcheck` on a new connection; how long it took, or `None` when it got no
/// healthy answer within [`HEALTHY_WITHIN`].
async fn health(port: u16) -> Option<Duration> {
    let started = Instant::now();
    let check = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        String::from_utf8_lossy(&answer)
            .contains(r#"{"status":true}"#)
            .then_some(())
    };
    tokio::time::timeout(HEALTHY_WITHIN, check).await.ok()??;
    Some(started.elapsed())
}

/// Checks `/healthcheck` `times` times, `gap` apart; panics on the first slow or failed one.
async fn stays_healthy(server: &ChildServer, times: usize, gap: Duration, attack: &str) {
    for n in 0..times {
        if health(server.port).await.is_none() {
            panic!(
                "{attack}: /healthcheck did not answer within {HEALTHY_WITHIN:?} (check {n}); output:\n{}",
                tail(&server.output())
            );
        }
        tokio::time::sleep(gap).await;
    }
}

fn tail(text: &str) -> &str {
    &text[text.len().saturating_sub(4000)..]
}

/// Whether the server closed `stream` within `limit` (EOF or reset; bytes it sends first,
/// such as an error reply, are read and skipped).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 65536];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// The process's peak resident memory so far, in MiB.
fn peak_mib(server: &ChildServer) -> u64 {
    server.memory_kib().1 / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_at_a_1024_open_files_limit_cannot_lock_out_health_checks() {
    raise_own_fd_limit(1_300);
    // Soft and hard 1024: nothing to raise, so the connection cap must keep the server under
    // its limit, and evict idle sockets to let health checks in.
    let server =
        ChildServer::start_command(binary_with_open_files(1024, 1024), &["--demo"], &[]).await;
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        // Connections past the cap are closed (oldest idle first) or refused; either is fine,
        // the attacker just keeps connecting.
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", server.port)).await {
            idle.push(stream);
        }
    }
    stays_healthy(&server, 5, Duration::from_millis(200), "1,100 idle sockets").await;
    // A query is served too, not only the health check.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let bytes = client
        .post(format!("{}/query", server.url))
        .body(r#"{"module": "DomainTools-Iris-Enrich", "domain": "google.com"}"#)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        reply["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{reply}"
    );
    let output = server.output();
    assert!(
        output.contains("connections capped by the open-files limit") && output.contains("cap=480"),
        "{}",
        tail(&output)
    );
    // Evicted sockets close a moment after the new ones are accepted, so a burst may still
    // meet "Too many open files" at accept(): the loop waits 50 ms and goes on, and the health
    // checks above are what must hold.
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let server =
        ChildServer::start_command(binary_with_open_files(1024, 4096), &["--demo"], &[]).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        line.split_whitespace().filter(|w| *w == "4096").count() == 2,
        "{line}"
    );
    let output = server.output();
    assert!(
        output.contains("soft_before=1024 hard=4096 soft_now=4096"),
        "both limits are logged: {}",
        tail(&output)
    );
}

/// Peak memory allowed while 2,000 slowloris connections and 200 slow bodies are held (MiB,
/// debug build). Measured about 60 MiB.
const SLOW_PEAK_MIB: u64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_slow_bodies_are_cut_by_their_timeouts() {
    raise_own_fd_limit(2_500);
    let server = ChildServer::start(
        &[
            "--demo",
            "--header-read-timeout",
            "2",
            "--body-read-timeout",
            "3",
        ],
        &[],
    )
    .await;
    let started = Instant::now();
    let mut slowloris = Vec::new();
    for _ in 0..2_000 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        stream
            .write_all(b"POST /query HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slowloris.push(stream);
    }
    let mut slow_bodies = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        stream
            .write_all(
                b"POST /query HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"module\"",
            )
            .await
            .unwrap();
        slow_bodies.push(stream);
    }
    stays_healthy(
        &server,
        3,
        Duration::from_millis(300),
        "slowloris and slow bodies",
    )
    .await;
    // A byte now and then does not extend a slow body's time.
    for stream in &mut slow_bodies {
        let _ = stream.write_all(b" ").await;
    }
    let held_for =
        |limit: Duration| limit.saturating_sub(started.elapsed()) + Duration::from_secs(4);
    for stream in &mut slowloris {
        assert!(
            closed_within(stream, held_for(Duration::from_secs(2))).await,
            "a slowloris connection outlived the header-read timeout"
        );
    }
    for stream in &mut slow_bodies {
        assert!(
            closed_within(stream, held_for(Duration::from_secs(3))).await,
            "a slow body outlived the body-read timeout"
        );
    }
    assert!(
        peak_mib(&server) < SLOW_PEAK_MIB,
        "peak {} MiB",
        peak_mib(&server)
    );
    stays_healthy(&server, 1, Duration::ZERO, "after the attack").await;
}

/// Peak memory allowed while 60 bodies of 8 MiB − 1 byte are held unfinished, with the
/// request buffer at 32 MiB (MiB, debug build). Measured about 70 MiB; before the buffer,
/// the release build reached 498 MiB.
const BODIES_PEAK_MIB: u64 = 160;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_large_bodies_hold_no_more_than_the_request_buffer() {
    let server = ChildServer::start(
        &[
            "--demo",
            "--request-buffer-mb",
            "32",
            "--body-read-timeout",
            "4",
        ],
        &[],
    )
    .await;
    let piece = vec![b' '; 1024 * 1024];
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let head = format!(
            "POST /query HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{{\"module\": \"",
            8 * 1024 * 1024 - 1
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // 2 MiB of the body, then nothing more; a refused one may see its writes fail.
        let mut sent_all = true;
        for _ in 0..2 {
            let write =
                tokio::time::timeout(Duration::from_secs(2), stream.write_all(&piece)).await;
            if !matches!(write, Ok(Ok(()))) {
                sent_all = false;
                break;
            }
        }
        if !sent_all {
            refused += 1;
        }
        held.push(stream);
    }
    stays_healthy(
        &server,
        3,
        Duration::from_millis(300),
        "60 unfinished 8 MiB bodies",
    )
    .await;
    assert!(
        peak_mib(&server) < BODIES_PEAK_MIB,
        "peak {} MiB",
        peak_mib(&server)
    );
    // Every one is answered (the busy ones at once) and closed by the body-read timeout.
    for stream in &mut held {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "a body was held past its timeout"
        );
    }
    let _ = refused;
}

/// Peak memory allowed while 150 clients never read the 4.7 MB Pivot reply, with the reply
/// buffer at 32 MiB (MiB, debug build). Before, the release build reached 942 MiB and
/// missed health checks.
const UNREAD_PEAK_MIB: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_a_large_reply_hold_no_more_than_the_reply_buffer() {
    let server = ChildServer::start(
        &["--demo", "--reply-buffer-mb", "32", "--write-timeout", "3"],
        &[],
    )
    .await;
    // Every reverse-whois domain (results_limit caps them at 100 by default since issue 11):
    // the 4.7 MB reply.
    let mut query: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/pivot-registrant.json"
        ))
        .unwrap(),
    )
    .unwrap();
    query["config"]["results_limit"] = serde_json::json!("1000000");
    let query = query.to_string().into_bytes();
    let mut readers = Vec::new();
    for _ in 0..150 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket
            .connect(([127, 0, 0, 1], server.port).into())
            .await
            .unwrap();
        let head = format!(
            "POST /query HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            query.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&query).await.unwrap();
        readers.push(stream);
    }
    stays_healthy(
        &server,
        8,
        Duration::from_millis(500),
        "150 clients not reading",
    )
    .await;
    assert!(
        peak_mib(&server) < UNREAD_PEAK_MIB,
        "peak {} MiB",
        peak_mib(&server)
    );
    // The write timeout cut the ones whose replies were left unread: reading now, they end
    // before their Content-Length.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (rss_kib, _) = server.memory_kib();
    assert!(
        rss_kib / 1024 < UNREAD_PEAK_MIB,
        "RSS {} MiB",
        rss_kib / 1024
    );
    let mut reads = tokio::task::JoinSet::new();
    for mut stream in readers {
        reads.spawn(async move {
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
            answer
        });
    }
    let (mut cut, mut busy) = (0, 0);
    while let Some(answer) = reads.join_next().await {
        let answer = answer.unwrap();
        let text = String::from_utf8_lossy(&answer[..answer.len().min(4096)]).to_ascii_lowercase();
        if text.contains("too many other large replies") {
            busy += 1;
        }
        let declared = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse::<usize>().ok());
        let head = text.find("\r\n\r\n").map_or(answer.len(), |i| i + 4);
        if declared.is_some_and(|n| answer.len() - head.min(answer.len()) < n) {
            cut += 1;
        }
    }
    // How many were told "busy" depends on how fast the modules map (slow in a debug build).
    assert!(cut > 0, "no unread reply was cut (busy: {busy})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_over_the_body_limit_is_refused_at_once() {
    let server = ChildServer::start(&["--demo", "--body-limit", "1000"], &[]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream
        .write_all(b"POST /query HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(
        answer.contains("larger than this server accepts (1000 bytes"),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}
