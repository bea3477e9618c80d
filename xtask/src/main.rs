//! `cargo xtask <task>`: project chores that need more than one cargo command.
//!
//! - `bench [--quick] [--postgres | --sqlite] [--tenants N]`: builds the release service and the
//!   `integrations-bench` runner, which drives the service with wrk against a baseline measured in
//!   the same run, prints a table and writes `target/bench/latest.json`.
//! - `check-features`: builds the host with no connector and with each connector alone.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const CONNECTORS: &[&str] = &["jira", "slack"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        Some("check-features") => check_features(),
        _ => {
            eprintln!("usage: cargo xtask <bench [--quick] [--postgres | --sqlite] [--tenants N] | check-features>");
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
    // Two builds, not one: building both packages together would unify their dependencies'
    // features, and the service measured must be the binary a user builds.
    cargo(&["build", "--release", "-p", "integrations"], &[])?;
    cargo(&["build", "--release", "-p", "integrations-bench"], &[])?;
    let runner = target_dir().join("release").join("integrations-bench");
    let status = Command::new(&runner)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", runner.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err("the bench broke (timings alone never fail it)".into())
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target/` at the workspace root.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(|| PathBuf::from("target"), |root| root.join("target")),
    }
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
