//! The `convene` binary: parses the command line and runs `app`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONVENE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = convene::app::Cli::parse();
    match convene::app::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("error: {e}\n").as_bytes(),
            );
            std::process::ExitCode::from(2)
        }
    }
}
