//! The command line: `goblin serve` (the default), `goblin worker`, `goblin migrate ...`, and more.
//!
//! Exit codes: 0 success, 1 runtime failure (database unreachable, migration failed, ...), 2 invalid
//! configuration or usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use goblin_core::{Config, config::ConfigError, db};
use migration::{Migrator, MigratorTrait};

use crate::{startup::Application, telemetry};

#[derive(Debug, Parser)]
#[command(name = "goblin", version, about = "Goblin Assistant: a self-hosted AI operations console")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard and APIs (the default). Applies pending migrations first.
    Serve,
    /// Run only a task worker, without the dashboard or APIs: it takes queued tasks from the
    /// database (run it on any machine that reaches the same PostgreSQL, with the same registry
    /// file). Stop it with Ctrl-C or SIGTERM; tasks it is running are stopped and marked failed.
    Worker,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the effective configuration as JSON, with secrets masked, and exit.
    CheckConfig,
    /// Manage accounts.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Issue and revoke API tokens.
    Tokens {
        #[command(subcommand)]
        action: TokensAction,
    },
    /// Rotate signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        action: AdminCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Print a fresh one-time link (valid for an hour) that lets the first person become admin.
    SetupLink,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Create a service account (no passkey; it can only own API tokens).
    Create {
        /// The service account's name.
        #[arg(long = "service", value_name = "NAME")]
        service: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensAction {
    /// Issue a token and print it once.
    Create {
        /// The user (or service account) that owns the token.
        #[arg(long)]
        user: String,
        /// Comma-separated: chat, tasks:run, search, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime: e.g. 30d, 12h, 90m.
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: Option<String>,
        /// A spend limit in US dollars per --budget-period (e.g. 25 or 2.50); the gateway refuses
        /// the token's requests with 429 once it is spent.
        #[arg(long)]
        budget: Option<String>,
        /// day, week or month.
        #[arg(long, default_value = "month")]
        budget_period: String,
    },
    /// Revoke a token by id; it is refused from then on.
    Revoke { id: uuid::Uuid },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Promote the standby JWT signing key to current and make a new standby. Tokens signed with the
    /// previous key stay valid until they expire.
    RotateJwt,
    /// Re-seal every stored secret (provider keys, JWT signing keys) under the current encryption key
    /// (the first in GOBLIN_ENCRYPTION_KEYS), in one transaction; afterwards older keys can be dropped.
    RotateEncryption,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back the newest migration (or more).
    Down {
        /// How many migrations to roll back.
        #[arg(long, default_value_t = 1, conflicts_with = "all")]
        steps: u32,
        /// Roll back every migration.
        #[arg(long)]
        all: bool,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Drop every table and apply all migrations from scratch. Destroys all data.
    Fresh {
        /// Confirm that all data may be destroyed.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs one command and turns its outcome into an exit code; errors are printed as one line.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::from_process() {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            match serde_json::to_string_pretty(&config.to_masked_json()) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Command::Serve => {
            telemetry::init(&config.log);
            warn_unknown_env(&config);
            match serve(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "goblin stopped");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Worker => {
            telemetry::init(&config.log);
            warn_unknown_env(&config);
            match worker(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "goblin worker stopped");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Users { action } => admin_command(&config, AdminAction::Users(action)).await,
        Command::Tokens { action } => admin_command(&config, AdminAction::Tokens(action)).await,
        Command::Keys { action } => admin_command(&config, AdminAction::Keys(action)).await,
        Command::Admin { action: AdminCmd::SetupLink } => {
            admin_command(&config, AdminAction::SetupLink).await
        }
        Command::Migrate { action } => {
            telemetry::init(&config.log);
            match migrate(&config, action).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn warn_unknown_env(config: &Config) {
    for name in &config.unknown_env {
        tracing::warn!(name, "ignoring unknown environment variable");
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    println!("Goblin Assistant is serving at {}", app.public_url());
    if let Some(url) = app.setup_url() {
        println!(
            "No accounts yet. Within an hour, open this one-time link to create the first admin:\n  {url}"
        );
    }
    app.run_until_stopped().await
}

/// `goblin worker`: the gateway (for agent goblins), the registry and a task worker; no HTTP.
async fn worker(config: Config) -> anyhow::Result<()> {
    use std::sync::Arc;

    use anyhow::Context;
    let conn = db::connect(&config.database).await?;
    // Schema changes are applied by `goblin serve` or `goblin migrate up`, never by several workers
    // racing each other.
    let pending =
        Migrator::get_pending_migrations(&conn).await.context("Failed to read the schema version")?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database is {} migration(s) behind this program; run `goblin migrate up` (or start `goblin serve`) first",
            pending.len()
        );
    }
    // Errors and panics of this worker's task runs are traced into the shared exceptions table, with
    // their task's context, as `goblin serve` traces its own; its Raptor log is `raptor.file` here.
    let clock = goblin_core::clock::system();
    let raptor = goblin_core::raptor::Raptor::new(&config.raptor, conn.clone(), clock.clone())
        .with_context(|| format!("Failed to open the Raptor log {}", config.raptor.file.display()))?;
    let (keyring, _dev) =
        goblin_core::crypto::Keyring::from_config(&config).context("Failed to load the encryption key")?;
    let keyring = Arc::new(keyring);
    goblin_core::rotation::check_keys(&conn, &keyring)
        .await
        .context("Failed to check the encryption keys")?;
    let settings = Arc::new(goblin_core::settings::Settings::new(conn.clone(), clock.clone(), &config));
    settings.load().await.context("Failed to read the runtime settings")?;
    settings.spawn_refresher(config.settings_refresh);
    let redis = match &config.redis_url {
        Some(url) => {
            Some(Arc::new(goblin_core::redis_store::RedisHandle::new(url).context("Failed to set up Redis")?))
        }
        None => None,
    };
    let records = goblin_core::gateway::records::Records::start(
        conn.clone(),
        clock.clone(),
        goblin_core::gateway::records::WriterConfig::default(),
    );
    let gateway = goblin_core::gateway::Gateway::new(
        conn.clone(),
        keyring,
        clock.clone(),
        settings.clone(),
        records,
        redis,
    )
    .await
    .context("Failed to load the routing table")?;
    gateway.spawn_housekeeping();
    // Provider and route changes reach a worker by polling (it has no local admin pages).
    gateway.spawn_reloader(config.settings_refresh, tokio::sync::watch::channel(0u64).1);
    let tasks = crate::startup::task_service(&config, &conn, &clock, &settings, Some(gateway)).await;
    let id = config
        .tasks
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("{}-worker-{}", goblin_core::tasks::host_name(), std::process::id()));
    let handle = tasks.start_worker(id.clone()).await.context("Failed to start the task worker")?;
    println!("goblin worker {id} is taking tasks");
    crate::startup::shutdown_signal().await;
    handle.shutdown().await;
    // What the last runs raised is stored before the process ends.
    raptor.exceptions().flush(std::time::Duration::from_secs(5)).await;
    raptor.flush_log(std::time::Duration::from_secs(5)).await;
    Ok(())
}

async fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<ExitCode> {
    let conn = db::connect(&config.database).await?;
    match action {
        MigrateAction::Up => {
            db::migrate_up(&conn).await?;
            print_status(&conn).await?;
        }
        MigrateAction::Down { steps, all } => {
            let steps = if all { None } else { Some(steps) };
            Migrator::down(&conn, steps).await?;
            print_status(&conn).await?;
        }
        MigrateAction::Status => print_status(&conn).await?,
        MigrateAction::Fresh { yes } => {
            if !yes {
                eprintln!("error: `goblin migrate fresh` destroys all data; run it again with --yes");
                return Ok(ExitCode::from(2));
            }
            Migrator::fresh(&conn).await?;
            print_status(&conn).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn print_status(conn: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    let all = Migrator::get_migration_with_status_read_only(conn).await?;
    let applied = all.iter().filter(|m| m.status() == migration::MigrationStatus::Applied).count();
    for m in &all {
        println!("{:<8} {}", m.status().to_string().to_lowercase(), m.name());
    }
    println!("{applied} of {} migrations applied", all.len());
    Ok(())
}

enum AdminAction {
    SetupLink,
    Users(UsersAction),
    Tokens(TokensAction),
    Keys(KeysAction),
}

/// Commands that work on the data directly, as an operator on the server's machine.
async fn admin_command(config: &Config, action: AdminAction) -> ExitCode {
    telemetry::init(&goblin_core::config::LogConfig { filter: "warn".into(), ..config.log.clone() });
    match run_admin(config, action).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_admin(config: &Config, action: AdminAction) -> anyhow::Result<ExitCode> {
    use goblin_core::{clock, tokens, users};
    let conn = db::connect(&config.database).await?;
    db::migrate_up(&conn).await?;
    let clock = clock::system();
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        Ok(ExitCode::from(2))
    };
    match action {
        AdminAction::SetupLink => {
            let ceremonies =
                std::sync::Arc::new(goblin_core::ceremonies::CeremonyStore::memory(clock.clone()));
            let svc = goblin_core::passkeys::PasskeyService::new(
                &config.public_url,
                conn.clone(),
                ceremonies,
                clock,
            )?;
            if svc.has_users().await? {
                return usage("setup is already done: this server has accounts; admins invite people from the dashboard".into());
            }
            let token = svc.create_setup_token().await?;
            let mut url = config.public_url.join("setup")?;
            url.query_pairs_mut().append_pair("token", &token);
            println!("{url}");
            eprintln!("open it within an hour to create the first admin account");
        }
        AdminAction::Users(UsersAction::Create { service, role }) => {
            let role: users::Role = match role.parse() {
                Ok(r) => r,
                Err(e) => return usage(e),
            };
            match users::create_service_account(&conn, clock.as_ref(), &service, role).await {
                Ok(u) => println!("created service account {} ({}) with role {}", u.username, u.id, u.role),
                Err(users::UserError::Db(e)) => return Err(e.into()),
                Err(e) => return usage(e.to_string()),
            }
        }
        AdminAction::Tokens(action) => {
            let svc = token_service(config, conn.clone(), clock)?;
            match action {
                TokensAction::Create { user, scopes, ttl, name, budget, budget_period } => {
                    let ttl = match tokens::parse_ttl(&ttl) {
                        Ok(t) => t,
                        Err(e) => return usage(e.to_string()),
                    };
                    let budget = match goblin_core::gateway::budget::parse(
                        budget.as_deref().unwrap_or(""),
                        &budget_period,
                    ) {
                        Ok((micros, period)) => micros.map(|m| (m, period)),
                        Err(e) => return usage(e),
                    };
                    let Some(owner) = users::find_by_username(&conn, &user).await? else {
                        return usage(format!("no user named '{user}'"));
                    };
                    let name = name
                        .unwrap_or_else(|| format!("cli {}", chrono::Utc::now().format("%Y-%m-%d %H:%M")));
                    match svc.issue_with_budget(&owner, &name, &scopes, ttl, budget, None).await {
                        Ok(issued) => {
                            eprintln!(
                                "token {} for {} (scopes {}), expires {}; it is shown only this once:",
                                issued.id,
                                owner.username,
                                scopes.join(","),
                                issued.expires_at.to_rfc3339()
                            );
                            println!("{}", issued.token.expose());
                        }
                        Err(tokens::TokenServiceError::Db(e)) => return Err(e.into()),
                        Err(
                            e @ (tokens::TokenServiceError::Crypto(_) | tokens::TokenServiceError::Signing),
                        ) => {
                            return Err(e.into());
                        }
                        Err(e) => return usage(e.to_string()),
                    }
                }
                TokensAction::Revoke { id } => match svc.revoke(id, None).await {
                    Ok(()) => println!("revoked token {id}"),
                    Err(e @ tokens::TokenServiceError::NotFound(_)) => return usage(e.to_string()),
                    Err(e) => return Err(e.into()),
                },
            }
        }
        AdminAction::Keys(KeysAction::RotateJwt) => {
            let svc = token_service(config, conn.clone(), clock)?;
            let r = svc.rotate(None).await?;
            println!(
                "rotated JWT signing keys: current {} (was standby), new standby {}, retired {} (its tokens stay valid until they expire)",
                r.current, r.standby, r.retired
            );
        }
        AdminAction::Keys(KeysAction::RotateEncryption) => {
            let (keyring, dev) = goblin_core::crypto::Keyring::from_config(config)?;
            if dev {
                eprintln!(
                    "note: no GOBLIN_ENCRYPTION_KEYS set; using the development key in the data directory"
                );
            }
            match goblin_core::rotation::rotate(&conn, &keyring).await {
                Ok(r) => println!(
                    "re-sealed {} secrets under encryption key {}; {} were already under it. Keys other than {} are no longer needed by stored secrets.",
                    r.resealed, r.current_key, r.already_current, r.current_key
                ),
                Err(e @ goblin_core::rotation::RotationError::MissingKeys(_)) => return usage(e.to_string()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn token_service(
    config: &Config,
    conn: sea_orm::DatabaseConnection,
    clock: goblin_core::clock::SharedClock,
) -> anyhow::Result<goblin_core::tokens::TokenService> {
    let (keyring, _dev) = goblin_core::crypto::Keyring::from_config(config)?;
    // With Redis, a revocation here reaches the running servers' token caches at once.
    let redis = match &config.redis_url {
        Some(url) => Some(std::sync::Arc::new(goblin_core::redis_store::RedisHandle::new(url)?)),
        None => None,
    };
    Ok(goblin_core::tokens::TokenService::new(conn, std::sync::Arc::new(keyring), clock)
        .with_row_cache(config.auth.token_cache, redis))
}
