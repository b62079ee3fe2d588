//! `misp-domaintools healthcheck`: asks a running server for `/healthcheck` (the Docker
//! HEALTHCHECK, which has no curl in the image).

use std::time::Duration;

use crate::config::Config;

/// Asks the server configured by `config` for `/healthcheck` (a wildcard listen address is
/// reached on loopback).
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let host = match config.listen.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    let url = format!("http://{host}:{}/healthcheck", config.port);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()?;
    let bytes = client
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let body: serde_json::Value = serde_json::from_slice(&bytes)?;
    anyhow::ensure!(body["status"] == true, "{url} answered {body}");
    Ok(())
}
