//! `herald`: parse flags, load config, bind, say how to connect, serve until SIGTERM/ctrl-c.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use herald_server::config::{Config, LogFormat, Sources};
use herald_server::{Listeners, build_state, run};
use tokio::net::TcpListener;

/// A Pusher Channels compatible realtime server.
///
/// Point pusher-js, Laravel Echo and the Pusher server SDKs at it unchanged. Without a config
/// file it runs one development app (id app-id, key app-key, secret app-secret).
/// Configuration: defaults < TOML file (--config) < HERALD_* environment variables < flags.
#[derive(Parser, Debug)]
#[command(name = "herald", version, about, long_about)]
struct Cli {
    /// TOML configuration file (see README for every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// WebSocket /app/{key} and HTTP API listen address [default 0.0.0.0:6001].
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Separate HTTP API listen address (the API then leaves the public port).
    #[arg(long, value_name = "ADDR")]
    api_bind: Option<String>,
    /// /metrics, /health, /ready listen address [default 0.0.0.0:9601].
    #[arg(long, value_name = "ADDR")]
    metrics_bind: Option<String>,
    /// Redis backplane URL for a cluster (absent: single node, in memory):
    /// redis://[USER:PASSWORD@]HOST:PORT/DB, rediss://… for TLS (redis_tls_ca_file for a
    /// private CA), redis+sentinel://[USER:PASSWORD@]HOST:PORT,…/MASTER[/DB] for a Sentinel set,
    /// redis+cluster://[USER:PASSWORD@]HOST:PORT,… for a Redis Cluster (sharded pub/sub).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Write the process id to this file.
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
    /// Log every frame in and out (debugging; noisy).
    #[arg(long)]
    verbose: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Validate a configuration (FILE, or --config, with the HERALD_* environment and flags
    /// layered on top) and print the effective settings, secrets masked. Exits 1 naming the
    /// bad key.
    CheckConfig {
        /// TOML configuration file (default: --config, else none).
        file: Option<PathBuf>,
    },
    /// Manage apps through a running node's admin API (needs app_store = "redis" or "memory"
    /// and admin_token on the node).
    Apps(AppsArgs),
}

#[derive(clap::Args, Debug)]
struct AppsArgs {
    /// The node's admin listener (its metrics_bind).
    #[arg(
        long,
        value_name = "URL",
        env = "HERALD_ADMIN_URL",
        default_value = "http://127.0.0.1:9601",
        global = true
    )]
    admin_url: String,
    /// The node's admin_token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HERALD_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    action: AppsAction,
}

#[derive(clap::Subcommand, Debug)]
enum AppsAction {
    /// Every app (file apps too), without secrets.
    List,
    /// One app, without its secret.
    Get { id: String },
    /// A new app; prints it with its secret (id, key and secret are made up when not given).
    Create {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        key: Option<String>,
        /// Prefer letting Herald make one up: a secret on a command line lands in shell history.
        #[arg(long)]
        secret: Option<String>,
        /// An [[apps]] key: --set client_events=true --set max_connections=500 (values are JSON
        /// when they parse, else strings).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// [[apps]] keys as a JSON object (webhooks, for instance); --set wins.
        #[arg(long, value_name = "OBJECT")]
        json: Option<String>,
    },
    /// Changes the keys given; the others stay (KEY=null resets one to its default).
    Update {
        id: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, value_name = "OBJECT")]
        json: Option<String>,
    },
    /// Deletes the app: its connections close with 4001.
    Delete { id: String },
    /// A new secret; the old one keeps verifying for secret_grace_secs. Prints the new one.
    RotateSecret { id: String },
}

fn apps(args: AppsArgs) -> anyhow::Result<()> {
    use herald_server::cli_apps::{AppsCommand, fields};
    let token = args.token.ok_or_else(|| {
        anyhow::anyhow!("the admin token is needed: --token or HERALD_ADMIN_TOKEN")
    })?;
    let command = match args.action {
        AppsAction::List => AppsCommand::List,
        AppsAction::Get { id } => AppsCommand::Get(id),
        AppsAction::Create {
            id,
            key,
            secret,
            set,
            json,
        } => {
            let mut f = fields(json.as_deref(), &set).map_err(anyhow::Error::msg)?;
            for (k, v) in [("id", id), ("key", key), ("secret", secret)] {
                if let Some(v) = v {
                    f.insert(k.into(), serde_json::Value::String(v));
                }
            }
            AppsCommand::Create(f)
        }
        AppsAction::Update { id, set, json } => AppsCommand::Update(
            id,
            fields(json.as_deref(), &set).map_err(anyhow::Error::msg)?,
        ),
        AppsAction::Delete { id } => AppsCommand::Delete(id),
        AppsAction::RotateSecret { id } => AppsCommand::RotateSecret(id),
    };
    let out = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(herald_server::cli_apps::run(
            &args.admin_url,
            &token,
            command,
        ))
        .map_err(anyhow::Error::msg)?;
    println!("{out}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    match start(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the cause chain on one line, without a backtrace.
            eprintln!("herald: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(mut cli: Cli) -> anyhow::Result<()> {
    match cli.command.take() {
        Some(Command::Apps(args)) => return apps(args),
        Some(Command::CheckConfig { file }) => {
            return check_config(file.or(cli.config.clone()), &cli);
        }
        None => {}
    }
    let config = Config::load(Sources {
        file: cli.config.as_deref(),
        toml: None,
        env: std::env::vars().collect(),
        overrides: overrides(&cli),
    })
    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    init_logging(&config);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(config))
}

/// The flags that override configuration keys.
fn overrides(cli: &Cli) -> Vec<(&'static str, String)> {
    let mut overrides: Vec<(&'static str, String)> = Vec::new();
    for (key, value) in [
        ("bind", &cli.bind),
        ("api_bind", &cli.api_bind),
        ("metrics_bind", &cli.metrics_bind),
        ("redis_url", &cli.redis_url),
    ] {
        if let Some(v) = value {
            overrides.push((key, v.clone()));
        }
    }
    if let Some(p) = &cli.pid_file {
        overrides.push(("pid_file", p.display().to_string()));
    }
    if cli.verbose {
        overrides.push(("verbose", "true".into()));
    }
    overrides
}

fn check_config(file: Option<PathBuf>, cli: &Cli) -> anyhow::Result<()> {
    let text = Config::effective(Sources {
        file: file.as_deref(),
        toml: None,
        env: std::env::vars().collect(),
        overrides: overrides(cli),
    })
    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let from = file.map_or("defaults and the environment".to_owned(), |f| {
        f.display().to_string()
    });
    eprintln!("configuration OK ({from}); the effective settings, secrets masked:");
    print!("{text}");
    Ok(())
}

fn init_logging(config: &Config) {
    let default = if config.verbose {
        "info,herald::frames=info"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// A listener with our backlog (`TcpListener::bind` fixes it at 1024, which a connection storm
/// overflows) and, like `bind`, `SO_REUSEADDR` so a restart does not wait out TIME_WAIT.
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let backlog = config.listen_backlog;
    let public = listen(config.bind, backlog)
        .with_context(|| format!("bind: cannot listen on {}", config.bind))?;
    let api = match config.api_bind {
        Some(a) => {
            Some(listen(a, backlog).with_context(|| format!("api_bind: cannot listen on {a}"))?)
        }
        None => None,
    };
    let admin = listen(config.metrics_bind, backlog)
        .with_context(|| format!("metrics_bind: cannot listen on {}", config.metrics_bind))?;
    if let Some(path) = &config.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("pid_file: cannot write {}", path.display()))?;
    }
    for name in &config.ignored_env {
        tracing::warn!(
            "ignoring environment variable {name}: not a configuration key (see README)"
        );
    }
    if let Some(url) = &config.redis_url {
        check_redis(url, &config.redis_tls).await?;
    }
    let pid_file = config.pid_file.clone();
    let state = build_state(config)?;
    announce(&state.config, &public, api.as_ref(), &admin)?;
    run(state, Listeners { public, api, admin }, shutdown_signal()).await?;
    if let Some(path) = pid_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// One connection to Redis before serving: credentials or a certificate that can never work
/// stop the node with a message naming the key to fix; a Redis that is not up yet does not
/// (the node waits for it, not ready).
async fn check_redis(url: &str, tls: &herald_redis::RedisTls) -> anyhow::Result<()> {
    match herald_redis::probe(url, tls).await {
        Ok(()) => Ok(()),
        Err(herald_redis::ProbeError::Fatal(why)) => Err(anyhow::anyhow!(why)),
        Err(herald_redis::ProbeError::Unreachable(why)) => {
            tracing::warn!(
                redis = %herald_core::redact::mask_url(url),
                error = %why,
                "Redis does not answer yet; this node keeps trying and is not ready until it does"
            );
            Ok(())
        }
    }
}

fn announce(
    config: &Config,
    public: &TcpListener,
    api: Option<&TcpListener>,
    admin: &TcpListener,
) -> anyhow::Result<()> {
    let addr = public.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let (ws, http, tls) = match config.tls {
        Some(_) => ("wss", "https", true),
        None => ("ws", "http", false),
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "herald listening: WebSocket {ws}://{addr}/app/{{key}}"
    );
    match api {
        Some(a) => tracing::info!(
            "HTTP API on http://{}/apps/{{app_id}}/ (separate listener)",
            a.local_addr()?
        ),
        None => tracing::info!("HTTP API on {http}://{addr}/apps/{{app_id}}/"),
    }
    tracing::info!(
        "metrics and health on http://{}/metrics /health /ready",
        admin.local_addr()?
    );
    match &config.redis_url {
        None => tracing::info!("backplane: in-memory (single node)"),
        Some(url) => tracing::info!(
            "backplane: Redis at {} (prefix {}); not ready until Redis answers",
            herald_core::redact::mask_url(url),
            config.redis_prefix
        ),
    }
    if config.tls.is_none()
        && config.trusted_proxies.is_empty()
        && let Some(app) = config.apps.iter().find(|a| a.features.tls_only)
    {
        tracing::warn!(
            app = %app.id,
            "tls_only is set but this node has no tls_cert and no trusted_proxies: every connection to the app will be refused with 4000. Behind a TLS-terminating proxy, list it in trusted_proxies so its X-Forwarded-Proto counts"
        );
    }
    if config.dev_app {
        tracing::warn!(
            "NO APPS CONFIGURED: serving the development app id=app-id key=app-key secret=app-secret with client events on. Do not use it in production; configure [[apps]] or HERALD_APP_ID/KEY/SECRET."
        );
    }
    let port_key = if tls { "wssPort" } else { "wsPort" };
    for app in config.apps.iter() {
        tracing::info!(
            "connect with pusher-js: new Pusher(\"{}\", {{ wsHost: \"{host}\", {port_key}: {}, forceTLS: {tls}, enabledTransports: [\"{ws}\"], cluster: \"\" }})   (app id {})",
            app.key,
            addr.port(),
            app.id
        );
    }
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once, without finishing the
/// drain.
async fn shutdown_signal() {
    signal().await;
    tokio::spawn(async {
        signal().await;
        tracing::warn!("second signal: exiting without finishing the drain");
        std::process::exit(1);
    });
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
