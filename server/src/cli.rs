//! The command line: `goblin serve` (the default), `goblin migrate ...`, `goblin check-config`.
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
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the effective configuration as JSON, with secrets masked, and exit.
    CheckConfig,
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
    app.run_until_stopped().await
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
