//! Demo mode: the fake DomainTools API of the `domaintools-fake` crate, run inside this
//! process on a loopback port with its bundled sample data. Built only with the `demo` cargo
//! feature (on by default); without it the server has no `--demo` and no fake.

use crate::config::Config;

/// The running demo API; it stops when this is dropped.
#[cfg(feature = "demo")]
#[derive(Debug)]
pub(crate) struct DemoApi(domaintools_fake::RunningFake);

/// Without the `demo` feature there is never a demo API.
#[cfg(not(feature = "demo"))]
#[derive(Debug)]
pub(crate) enum DemoApi {}

#[cfg(feature = "demo")]
impl DemoApi {
    pub(crate) fn base_url(&self) -> String {
        self.0.base_url()
    }

    /// The one account the demo API accepts (public on purpose: it opens nothing else).
    pub(crate) fn credentials(&self) -> (&'static str, &'static str) {
        (
            domaintools_fake::DEMO_USERNAME,
            domaintools_fake::DEMO_API_KEY,
        )
    }
}

#[cfg(not(feature = "demo"))]
impl DemoApi {
    pub(crate) fn base_url(&self) -> String {
        match *self {}
    }

    pub(crate) fn credentials(&self) -> (&'static str, &'static str) {
        match *self {}
    }
}

/// Starts the demo API when `config` asks for demo mode, and says so loudly.
#[cfg(feature = "demo")]
pub(crate) async fn start(
    config: &Config,
    credentials_note: &str,
) -> anyhow::Result<Option<DemoApi>> {
    use anyhow::Context as _;
    if !config.demo {
        return Ok(None);
    }
    // The feeds replay their recorded lines, one a minute per feed, timestamped as they replay.
    let running = domaintools_fake::FakeApi::new()
        .with_feed_replay(std::time::Duration::from_secs(60))
        .spawn()
        .await
        .context("starting the built-in demo DomainTools API")?;
    tracing::warn!(
        demo_api = %running.base_url(),
        "DEMO MODE: answers come from bundled sample data (google.com, amazon.com, …) through the \
         built-in fake DomainTools API, not from DomainTools; {credentials_note}"
    );
    Ok(Some(DemoApi(running)))
}

#[cfg(not(feature = "demo"))]
pub(crate) async fn start(
    _config: &Config,
    _credentials_note: &str,
) -> anyhow::Result<Option<DemoApi>> {
    Ok(None)
}
