//! The misp-domaintools binary: parse the settings, run the server until Ctrl-C or SIGTERM.

use clap::Parser;
use misp_domaintools::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    misp_domaintools::run(config, misp_domaintools::server::shutdown_signal()).await
}
