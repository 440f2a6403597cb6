//! `goblin`: the Goblin Assistant server and its command line.

use std::process::ExitCode;

/// jemalloc rather than glibc's malloc: the gateway allocates and frees a few hundred small blocks a
/// request across two worker threads, and glibc's malloc spent about a sixth of the server's CPU time
/// on them (BENCHMARKS.md, "Gateway and mock upstream"). jemalloc is built from crates.io with the
/// server; SQLite and the other C code keep the system allocator.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hand freed pages back to the system at once rather than after jemalloc's default ten seconds: the
/// resident size then follows what is in use, also after a burst (building the tokenizer, a thousand
/// streams opening together). The `_RJEM_MALLOC_CONF` environment variable overrides it.
#[cfg(all(unix, not(target_env = "musl")))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 34] = b"dirty_decay_ms:0,muzzy_decay_ms:0\0";

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
