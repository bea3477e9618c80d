//! `cargo xtask <task>`: project chores that need more than one cargo command.
//!
//! - `bench`: the hot-path benchmark in release mode (pass `--postgres` to run it on PostgreSQL).
//! - `check-features`: builds the host with no connector and with each connector alone.

use std::process::{Command, ExitCode};

const CONNECTORS: &[&str] = &["jira"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        Some("check-features") => check_features(),
        _ => {
            eprintln!("usage: cargo xtask <bench [--postgres] | check-features>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command.status().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed", args.join(" ")))
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut env = Vec::new();
    if args.iter().any(|a| a == "--postgres") {
        env.push(("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"));
    }
    cargo(&["bench", "-p", "integrations-e2e", "--bench", "hot_paths"], &env)
}

fn check_features() -> Result<(), String> {
    cargo(&["build", "-p", "integrations", "--no-default-features"], &[])?;
    cargo(
        &[
            "test",
            "-p",
            "integrations",
            "--no-default-features",
            "--test",
            "features",
        ],
        &[],
    )?;
    for connector in CONNECTORS {
        cargo(
            &[
                "build",
                "-p",
                "integrations",
                "--no-default-features",
                "--features",
                connector,
            ],
            &[],
        )?;
        cargo(
            &[
                "test",
                "-p",
                "integrations",
                "--no-default-features",
                "--features",
                connector,
                "--test",
                "features",
            ],
            &[],
        )?;
    }
    Ok(())
}
