//! `rota-node`: the Rota daemon, one per library. A thin shell over the `rota_node` library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rota-node",
    version,
    about = "The Rota node: one per library. It keeps your holdings, partners and agreements, and lends and borrows with partner libraries over mutual TLS."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new library's data directory: config, institution CA, node certificate,
    /// an admin staff certificate with its CLI profile, and the database.
    #[command(
        after_help = "Example:\n  rota-node init --data-dir /var/lib/rota --symbol DGW \\\n    --name \"George Washington University Libraries\" \\\n    --listen 0.0.0.0:7443 --public-url https://rota.library.gwu.edu:7443"
    )]
    Init {
        /// Where the node keeps everything (created; must not exist or be empty).
        #[arg(long, env = "ROTA_DATA_DIR")]
        data_dir: PathBuf,
        /// Your institution symbol: 2-16 characters from A-Z, 0-9 and '-', e.g. DGW or US-DGW.
        #[arg(long)]
        symbol: String,
        /// Your library's display name, shown to partners.
        #[arg(long)]
        name: String,
        /// Address to listen on, e.g. 0.0.0.0:7443.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: String,
        /// The https:// URL partners use to reach this node; its host goes in the node certificate.
        #[arg(long)]
        public_url: String,
    },
    /// Serve the node until SIGTERM or Ctrl-C.
    #[command(
        after_help = "Example:\n  rota-node run --data-dir /var/lib/rota\n\nLogging: set ROTA_LOG (e.g. ROTA_LOG=debug or ROTA_LOG=rota_node=debug)."
    )]
    Run {
        #[arg(long, env = "ROTA_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Start a local demo network of three libraries on loopback, place a request that rolls
    /// from the consortium partner to the peer-to-peer partner, and print its timeline.
    Demo {
        /// Where the demo libraries live (recreated on each run).
        #[arg(long, default_value = "rota-demo")]
        dir: PathBuf,
        /// Exit after printing the timeline instead of keeping the network running.
        #[arg(long)]
        once: bool,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::query=error"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

#[tokio::main]
async fn main() {
    rota_certs::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Init { data_dir, symbol, name, listen, public_url } => {
            let opts = rota_node::init::InitOptions { data_dir, symbol, name, listen, public_url };
            match rota_node::init::init(&opts).await {
                Ok(r) => {
                    println!("Initialised {} in {}", opts.symbol, r.data_dir.display());
                    println!("  config:      {}", r.config.display());
                    println!("  fingerprint: {}  (read this to partners when you exchange cards)", r.fingerprint);
                    println!("  admin CLI profile: {}", r.profile.display());
                    println!();
                    println!("Next: rota-node run --data-dir {}", r.data_dir.display());
                    println!("Then: rota --profile {} whoami", r.profile.display());
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Cmd::Run { data_dir } => {
            init_tracing();
            run(data_dir).await
        }
        Cmd::Demo { dir, once } => {
            if std::env::var_os("ROTA_LOG").is_some() {
                init_tracing();
            }
            rota_node::demo::run(&dir, once).await
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(data_dir: PathBuf) -> anyhow::Result<()> {
    let mut node = rota_node::runtime::RunningNode::start(&data_dir).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = node.wait() => return r,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    node.stop().await
}
