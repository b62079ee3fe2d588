//! The misp-domaintools binary: parse the settings, then serve until Ctrl-C or SIGTERM (or run
//! one of the other commands).

use clap::Parser;
use misp_domaintools::commands;
use misp_domaintools::config::{Command, Config};
use misp_domaintools::http::shutdown_signal;

// A query allocates thousands of small JSON nodes and strings and frees them all at once;
// glibc's malloc spent a third of the CPU of a query doing that (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::parse();
    config.read_secret_files().map_err(anyhow::Error::msg)?;
    match config.command {
        Some(Command::Healthcheck) => commands::healthcheck::run(&config).await,
        Some(Command::Stix { ref value }) => commands::stix::run(&config, value).await,
        Some(Command::Opencti(ref args)) => {
            commands::opencti::run(&config, args, shutdown_signal()).await
        }
        None => commands::serve::run(config, shutdown_signal()).await,
    }
}
