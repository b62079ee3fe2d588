//! A real `redis-server` on loopback, started by the test and killed when dropped.
//!
//! Call [`super::redis_present`] first: it decides between a skip and a CI failure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::child::free_port;

/// A running `redis-server` with nothing saved to disk.
pub struct RedisServer {
    child: Child,
    /// The port it accepts connections on (its TLS port when started with one).
    pub port: u16,
}

impl RedisServer {
    /// On a free port, with `more` arguments; returns once it accepts connections.
    pub async fn start(more: &[&str]) -> RedisServer {
        let port = free_port();
        Self::start_on(port, port, more).await
    }

    /// Listening on `port` (0: no plain port) and ready once `ready_port` accepts connections
    /// (the TLS port for a TLS-only server).
    pub async fn start_on(port: u16, ready_port: u16, more: &[&str]) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(more)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = RedisServer {
            child,
            port: ready_port,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", ready_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start on port {ready_port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
