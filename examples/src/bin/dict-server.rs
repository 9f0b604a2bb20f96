//! `dict-server`: a Redis-protocol key-value server whose every command, and every
//! `MULTI`/`EXEC` block, is one Concord STM transaction. See the
//! [`concord_examples::dict`] module docs for the design, the commands and a `redis-cli`
//! session.
//!
//! ```text
//! cargo run --release -p concord-examples --bin dict-server -- --port 6380
//! redis-cli -p 6380 ping
//! ```

use clap::Parser;
use concord_examples::dict::{Config, Server};

/// A Redis-protocol key-value server on Concord's STM.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The TCP port.
    #[arg(long, default_value_t = 6380)]
    port: u16,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Require clients to `AUTH` with this password.
    #[arg(long)]
    requirepass: Option<String>,
    /// The most clients connected at once.
    #[arg(long, default_value_t = 10_000)]
    maxclients: usize,
    /// The longest bulk argument a request may declare, in bytes.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    max_bulk_len: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let defaults = Config::default();
    let config = Config {
        bind: args.bind,
        port: args.port,
        threads: args.threads.unwrap_or(defaults.threads).max(1),
        requirepass: args.requirepass,
        maxclients: args.maxclients,
        max_bulk_len: args.max_bulk_len,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        println!("dict-server listening on {}", server.local_addr()?);
        server.run(shutdown_signal()).await?;
        println!("dict-server stopped");
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
