//! `goblin-mock-upstream`: serves the mock provider APIs for browser tests and benchmarks.
//!
//! Prints `mock-upstream listening on http://ADDR` on stdout once it accepts connections, then serves
//! until killed or interrupted. Requests are not recorded (nothing could read them).

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use goblin_mock_upstream::{MockConfig, MockUpstream};

/// Mock of the LLM provider APIs Goblin Assistant's gateway talks to. Test support only.
#[derive(Parser, Debug)]
#[command(name = "goblin-mock-upstream", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Comma-separated API keys to accept; without any, every request is accepted.
    #[arg(long, value_delimiter = ',')]
    keys: Vec<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let keys = args.keys.into_iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
    let server = MockUpstream::start_on(args.listen, MockConfig { keys }).await?;
    server.state().set_recording(false);
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mock-upstream listening on http://{}", server.addr())?;
        stdout.flush()?;
    }
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling here: serve until killed.
        std::future::pending::<()>().await;
    }
    server.shutdown().await;
    Ok(())
}
