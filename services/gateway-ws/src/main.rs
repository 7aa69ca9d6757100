//! The `gateway-ws` binary: load config, set up logs, build, serve until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: gavel_gateway_ws::Config = gavel_common::config::load()?;
    gavel_common::telemetry::init(&config.log);
    let service = gavel_gateway_ws::build(&config).await?;
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
