//! `goblin`: the Goblin Assistant server and its command line.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <goblin_server::cli::Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(goblin_server::cli::run(cli))
}
