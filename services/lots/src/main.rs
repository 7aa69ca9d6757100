//! The `lots` binary: load config, set up logs, then serve until SIGTERM (or `migrate`,
//! `check-config`, `probe <url>`: see `gavel_common::cli`).

use gavel_common::cli::{Command, MigrateConfig, probe};
use gavel_common::config::load;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: gavel_lots::Config = match Command::from_args()? {
        Command::Probe(url) => std::process::exit(if probe(&url) { 0 } else { 1 }),
        Command::CheckConfig => {
            load::<gavel_lots::Config>()?;
            println!("the configuration is valid");
            return Ok(());
        }
        Command::Migrate => {
            let config: MigrateConfig = load()?;
            gavel_common::telemetry::init(&config.log);
            gavel_lots::migrate(&config.database.pool()?).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Command::Serve => load()?,
    };
    gavel_common::telemetry::init(&config.log);
    let service = gavel_lots::build(&config).await?;
    gavel_common::server::serve_until_signalled(
        service,
        gavel_common::server::Addresses {
            http: &config.http,
            admin: &config.admin,
            internal: None,
        },
        &config.shutdown,
    )
    .await?;
    Ok(())
}
