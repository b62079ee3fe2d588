//! The connector's log under text from outside: what the platform or a work message says
//! reaches the text log escaped and cut, so a newline in an id, a type or a value cannot
//! forge a log line, and a huge one cannot flood the log. Runs the real binary (`--demo`),
//! whose text-format log is what an operator reads.

use std::io::Read as _;
use std::process::Stdio;

use crate::common::child::{binary, free_port};
use crate::common::opencti::{enrichment_message, post_callback, FakeOpencti, CONNECTOR_ID, TOKEN};

/// What a forged line would start with: a timestamp and a level, as the text format writes.
const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR forged";

#[tokio::test]
async fn a_newline_from_the_platform_or_a_message_cannot_forge_a_log_line() {
    let platform = FakeOpencti::start().await;
    // The platform's text: an entity type holding a line of its own.
    platform.add_observable(
        "entity-typed",
        &format!("Evil-Type\n{FORGED}: from the platform"),
        "example.com",
        None,
    );
    let callback_port = free_port();
    let mut child = binary()
        .args([
            "--demo",
            "--listen",
            "127.0.0.1",
            "--log-format",
            "text",
            "opencti",
            "--opencti-url",
            &platform.url,
            "--opencti-token",
            TOKEN,
            "--connector-id",
            CONNECTOR_ID,
            "--listen-protocol",
            "API",
            "--queue-protocol",
            "api",
            "--callback-port",
            &callback_port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes: an unbounded line must fail the test, not fill the pipe and hang it.
    let drain = |mut stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stream.read_to_end(&mut all);
            all
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let uri = platform.callback_uri().await;
    // The message's text: an entity id with a line of its own, and a huge one.
    let forged_id = format!("entity-missing\n{FORGED}: from the message");
    let huge_id = "x".repeat(200_000);
    for (work, entity) in [
        ("work-typed", "entity-typed"),
        ("work-forged-id", forged_id.as_str()),
        ("work-huge-id", huge_id.as_str()),
    ] {
        let message = enrichment_message(work, entity, "Domain-Name").to_string();
        let (status, answer) = post_callback(&uri, Some(TOKEN), &message).await;
        assert_eq!(status, 202, "{work}: {answer}");
        let processed = platform.processed(work).await;
        assert_eq!(processed.variables["inError"], true, "{work}");
    }
    // Each line is written before its work is reported: the output is complete.
    let _ = child.kill();
    let _ = child.wait();
    let output = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned()
        + &String::from_utf8_lossy(&stderr.join().unwrap());

    assert!(
        output.contains("\\n2026-01-01T00:00:00.000000Z ERROR forged: from the message"),
        "the message's id is logged, escaped:\n{output}"
    );
    assert!(
        output.contains("\\n2026-01-01T00:00:00.000000Z ERROR forged: from the platform"),
        "the platform's type is logged, escaped:\n{output}"
    );
    for line in output.lines() {
        assert!(
            !line.trim_start().starts_with("2026-01-01T00:00:00"),
            "a forged line:\n{line}\nin\n{output}"
        );
        assert!(line.len() < 4096, "a {} byte line", line.len());
    }
}
