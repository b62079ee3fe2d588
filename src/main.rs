//! The misp-domaintools binary: parse the settings, then serve until Ctrl-C or SIGTERM (or run
//! one of the other commands).

use clap::Parser;
use misp_domaintools::config::{Command, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    match config.command {
        Some(Command::Healthcheck) => misp_domaintools::healthcheck(&config).await,
        Some(Command::Stix { ref value }) => misp_domaintools::stix_command(&config, value).await,
        Some(Command::Opencti(ref args)) => {
            let shutdown = misp_domaintools::server::shutdown_signal();
            misp_domaintools::opencti_command(&config, args, shutdown).await
        }
        None => misp_domaintools::run(config, misp_domaintools::server::shutdown_signal()).await,
    }
}
