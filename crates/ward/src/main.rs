//! The `ward` binary: `ward serve` runs the server, `ward admin …` does operator tasks.
//!
//! This is the only crate that touches the process: arguments, environment, signals, logging
//! setup, exit codes. Everything else it wires together from the library crates.

mod admin;
mod meet;
mod rtc;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ward_config::{Config, LogFormat};
use ward_service::{ServerKey, Services, Settings};
use ward_store::Store;
use ward_store_sqlite::{SqliteOptions, SqliteStore};

/// mimalloc instead of glibc's malloc: argon2id allocates and frees 19 MiB per password hash,
/// and glibc's per-thread arenas keep such blocks fragmented (measured: RSS grew by about
/// 2.5 MB per registration, past 1 GB after 450). mimalloc returns them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for blocking work (database, hashing); see the runtime setup in `main`.
const BLOCKING_THREADS_MAX: usize = 16;

#[derive(Parser)]
#[command(name = "ward", version, about = "Private team chat and video for medical practices")]
struct Cli {
    /// Configuration file (default: ./ward.toml if it exists). Every key can also be set with
    /// a WARD_<KEY> environment variable.
    #[arg(long, global = true, env = "WARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Operator tasks; they work while the server runs.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ward: {e}");
            return ExitCode::from(2);
        }
    };
    let is_serve = matches!(cli.command, Command::Serve);
    init_logging(&loaded.config, if is_serve { None } else { Some("warn") });
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    // Blocking threads run SQLite and password hashing; a bound keeps memory predictable
    // (each thread gets its own allocator arena).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ward: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve::run(loaded, cli.config).await,
            Command::Admin(cmd) => admin::run(cmd, &loaded.config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ward: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config, level_override: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter =
        std::env::var("WARD_LOG").ok().and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| {
            let level = level_override.unwrap_or(&config.log_level);
            EnvFilter::new(format!(
                "warn,ward={level},ward_api={level},ward_service={level},ward_store_sqlite={level}"
            ))
        });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Creates the data directory (owner-only) and opens the store in it.
async fn open_services(config: &Config) -> Result<(Arc<dyn Store>, Arc<Services>), String> {
    create_data_dir(&config.data_dir)?;
    let options = SqliteOptions {
        read_connections: config.sqlite_read_connections as usize,
        ..SqliteOptions::default()
    };
    let path = config.database_path();
    let store = SqliteStore::open(&path, options)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", path.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);
    let key = Arc::new(load_or_create_key(&config.data_dir.join("signing.key"))?);
    let services = Services::new(store.clone(), Settings::from_config(config), key)
        .await
        .map_err(|e| format!("cannot start the services: {e}"))?;
    Ok((store, Arc::new(services)))
}

/// The server's ed25519 signing key: `ed25519 <version> <base64 PKCS#8>` in one owner-only
/// file, created on first start. Losing it only matters once federation exists, but it is
/// still part of a backup of the data directory.
fn load_or_create_key(path: &std::path::Path) -> Result<ServerKey, String> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let bad = |why: &str| format!("the signing key {} is unusable: {why}", path.display());
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut parts = text.split_whitespace();
            let (Some("ed25519"), Some(version), Some(b64)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected `ed25519 <version> <key>`"));
            };
            let der = STANDARD.decode(b64).map_err(|e| bad(&e.to_string()))?;
            ServerKey::from_pkcs8(&der, version).map_err(|e| bad(&e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let version =
                format!("a_{}", ward_service::generate_password().chars().take(4).collect::<String>());
            let key = ServerKey::generate(&version).map_err(|e| bad(&e.to_string()))?;
            let text = format!("ed25519 {version} {}\n", STANDARD.encode(key.pkcs8()));
            write_private_file(path, text.as_bytes())
                .map_err(|e| format!("cannot write the signing key {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), %version, "created the server signing key");
            Ok(key)
        }
        Err(e) => Err(format!("cannot read the signing key {}: {e}", path.display())),
    }
}

/// Writes a secret file readable by its owner only: whole, synced, then renamed into place, so
/// a crash never leaves half a key behind (which would invalidate what was signed with it).
pub(crate) fn write_private_file(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn create_data_dir(dir: &std::path::Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))
}
