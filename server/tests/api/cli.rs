//! The `goblin` binary: bad configuration stops it with one line and exit code 2; migrate commands.

use std::process::{Command, Output};

use crate::helpers::goblin_bin;

/// Runs `goblin` with only the given environment (plus PATH), in `dir`.
pub fn goblin(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(goblin_bin());
    cmd.args(args).current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("goblin runs")
}

fn assert_config_error(out: &Output, key: &str, problem: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code for {key}; stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(key) && stderr.contains(problem), "{stderr:?} names {key} and {problem}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_configuration_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&[(&str, &str)], &str, &str)] = &[
        (&[("DATABASE_URL", "::not a url::")], "database.url", "not a valid URL"),
        (
            &[("DATABASE_URL", "mysql://root@127.0.0.1/goblin")],
            "database.url",
            "unknown database backend 'mysql'",
        ),
        (&[("GOBLIN_DB_MAX_CONNECTIONS", "sixty")], "database.max_connections", "is not a whole number"),
        (&[("GOBLIN_LISTEN", "everywhere")], "listen", "is not an address:port"),
        (&[("GOBLIN_PUBLIC_URL", "ftp://x")], "public_url", "http:// or https://"),
    ];
    for (env, key, problem) in cases {
        // Both the serving path and check-config refuse before doing anything.
        assert_config_error(&goblin(d, &["serve"], env), key, problem);
        assert_config_error(&goblin(d, &["check-config"], env), key, problem);
    }
    // Nothing was created on the way out.
    assert!(!d.join("data").exists());
}

#[test]
fn unknown_key_in_goblin_toml_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("goblin.toml"), "listen = \"127.0.0.1:0\"\nlisten_port = 80\n").unwrap();
    assert_config_error(&goblin(dir.path(), &["serve"], &[]), "listen_port", "unknown key");

    std::fs::write(dir.path().join("goblin.toml"), "[database]\nmax_connections = \"many\"\n").unwrap();
    assert_config_error(&goblin(dir.path(), &[], &[]), "database.max_connections", "expected a whole number");

    let missing = dir.path().join("nope.toml");
    let out = goblin(dir.path(), &["check-config"], &[("GOBLIN_CONFIG", missing.to_str().unwrap())]);
    assert_config_error(&out, "GOBLIN_CONFIG", "cannot read");
}

#[test]
fn check_config_prints_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("goblin.toml"), "[database]\nmax_connections = 7\n").unwrap();
    let out = goblin(
        dir.path(),
        &["check-config"],
        &[
            ("DATABASE_URL", "postgres://goblin:topsecret@db.example:5432/goblin"),
            ("REDIS_URL", "redis://:redispw@127.0.0.1:6379"),
            ("FRONTEND_URL", "https://ops.example.com"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("topsecret") && !stdout.contains("redispw"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["database"]["url"], "postgres://goblin:****@db.example:5432/goblin");
    assert_eq!(v["database"]["backend"], "postgres");
    assert_eq!(v["database"]["pool"]["max_connections"], 7);
    assert_eq!(
        v["database"]["pool"]["min_connections"], 7,
        "the default minimum yields to a smaller maximum"
    );
    assert_eq!(v["database"]["pool"]["statement_timeout"], 30);
    assert_eq!(v["public_url"], "https://ops.example.com/");
    assert_eq!(v["file"], "goblin.toml");
}

#[test]
fn migrate_commands_on_the_default_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = goblin(d, &["migrate", "up"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(d.join("data/goblin.db").exists(), "default database lives under ./data");
    let n = crate::helpers::migrations().1;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{n} of {n} migrations applied")));

    let out = goblin(d, &["migrate", "down", "--steps", "2"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} of {n} migrations applied", n - 2)));

    let out = goblin(d, &["migrate", "down", "--all"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("0 of {n} migrations applied")));

    let out = goblin(d, &["migrate", "status"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pending  m20261129_000001_create_users"), "{stdout}");

    let out = goblin(d, &["migrate", "fresh"], &[]);
    assert_eq!(out.status.code(), Some(2), "fresh asks for --yes");
    let out = goblin(d, &["migrate", "fresh", "--yes"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{n} of {n} migrations applied")));
}

#[test]
fn production_without_an_encryption_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = goblin(dir.path(), &["serve"], &[("GOBLIN_ENV", "production")]);
    assert_config_error(&out, "encryption_key", "required when env = production");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn admin_setup_link_prints_a_fresh_link_until_someone_has_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("GOBLIN_PUBLIC_URL", "https://ops.example.com")];
    let out = goblin(d, &["admin", "setup-link"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = String::from_utf8(out.stdout).unwrap();
    assert!(first.starts_with("https://ops.example.com/setup?token="), "{first}");
    let second = String::from_utf8(goblin(d, &["admin", "setup-link"], &env).stdout).unwrap();
    assert_ne!(first, second, "each call makes a new link");

    let out = goblin(d, &["users", "create", "--service", "bot", "--role", "viewer"], &env);
    assert!(out.status.success());
    let out = goblin(d, &["admin", "setup-link"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("setup is already done"));
}
