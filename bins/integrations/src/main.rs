//! `integrations`: serve the API, run migrations, manage tenants and master keys.

use std::process::ExitCode;

// The hot paths allocate many small, short-lived buffers across threads (headers, JSON, bodies);
// glibc's malloc spent a tenth of the CPU on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use integrations::{build_app, keyring, load_keyring, open_store, replace_key_file, Config, KeySource};
use integrations_core::PluginRegistry;
use integrations_secrets::MasterKey;
use serde_json::{Map, Value};

#[derive(Parser)]
#[command(name = "integrations", version, about = "Multi-tenant integrations service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API and the MCP endpoint (INTEGRATIONS_BIND, default 127.0.0.1:8085).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// List the compiled-in plugins and their tools.
    Plugins,
    /// Manage master keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its API key (shown once).
    Create {
        /// Tenant id (a-z, 0-9, '-', '_').
        id: String,
        /// A flag trait, key=value (repeatable); true/false and integers are typed.
        #[arg(long = "trait", value_name = "KEY=VALUE")]
        traits: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random master key (base64).
    Generate,
    /// Re-wrap every tenant's data key under a new master key; secrets are not touched.
    Rotate {
        /// The new master key, base64 of 32 bytes.
        #[arg(long, env = "INTEGRATIONS_NEW_MASTER_KEY", hide_env_values = true)]
        new_master_key: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    match cli.command {
        Command::Serve => serve(&config).await,
        Command::Migrate => {
            open_store(&config).await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Create { id, traits },
        } => {
            let app = build_app(&config).await.map_err(|e| e.to_string())?;
            let created = app
                .service
                .create_tenant(&id, parse_traits(&traits)?, &[], Default::default())
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", created.api_key);
            Ok(())
        }
        Command::Plugins => {
            let registry = PluginRegistry::linked().map_err(|e| e.to_string())?;
            for registered in registry.plugins() {
                let manifest = registered.plugin.manifest();
                println!("{} {} - {}", manifest.name, manifest.version, manifest.description);
                for tool in &registered.tools {
                    println!("  {} - {}", tool.name, tool.description);
                }
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Generate,
        } => {
            let (_, encoded) = MasterKey::generate().map_err(|e| e.to_string())?;
            println!("{encoded}");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate { new_master_key },
        } => rotate(&config, &new_master_key).await,
    }
}

async fn serve(config: &Config) -> Result<(), String> {
    // First, so that the database pool and every connection after it have the raised limit.
    let limits = config.server_limits().within_open_file_limit();
    let app = build_app(config).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot bind {}: {e}", config.bind))?;
    tracing::info!(
        address = %config.bind,
        max_connections = limits.max_connections,
        plugins = ?app.service.registry().names(),
        "serving"
    );
    let mcp_sessions = app.mcp_sessions.clone();
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        mcp_sessions.close();
    };
    // Only a serving process takes a share of the deployment's rate limits (not `tenant create`).
    app.service.start_replica_heartbeat();
    let served = integrations::server::serve(listener, app.router, limits, shutdown).await;
    app.service.leave_replicas().await;
    served.map_err(|e| e.to_string())
}

async fn rotate(config: &Config, new_master_key: &str) -> Result<(), String> {
    let new_key = MasterKey::from_base64(new_master_key).map_err(|e| format!("--new-master-key: {e}"))?;
    load_keyring(config).map_err(|e| e.to_string())?;
    let store = open_store(config).await.map_err(|e| e.to_string())?;
    let (keyring, source) = keyring(config, &store).await.map_err(|e| e.to_string())?;
    match &source {
        // The old key moves to master.key.previous before any row changes, so running servers
        // (which reload the file on an unknown key id) and restarts can read every row throughout.
        KeySource::File(path) => replace_key_file(path, new_master_key).map_err(|e| e.to_string())?,
        // Servers read keys from their environment only at start: rotating to a key they were not
        // started with would leave them unable to read re-wrapped rows. Require the documented
        // order, where this command runs with the same settings as the restarted servers.
        KeySource::Environment if keyring.current_id() != new_key.id() => {
            return Err(
                "run servers and this command with INTEGRATIONS_MASTER_KEY=<new key> and the old key in \
                 INTEGRATIONS_PREVIOUS_MASTER_KEYS first (see README: master-key rotation)"
                    .into(),
            )
        }
        KeySource::Environment => {}
    }
    let report = integrations_service::rotate_master_key(&store, &keyring, &new_key)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "re-wrapped {} data keys under master key {}",
        report.rewrapped,
        new_key.id()
    );
    if report.skipped > 0 {
        return Err(format!(
            "{} data keys changed during rotation; run the command again",
            report.skipped
        ));
    }
    Ok(())
}

fn parse_traits(traits: &[String]) -> Result<Map<String, Value>, String> {
    traits
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--trait {pair:?}: expected KEY=VALUE"))?;
            let value = match value {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                v => v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(v.to_owned())),
            };
            Ok((key.to_owned(), value))
        })
        .collect()
}
