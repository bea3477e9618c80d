//! `cargo xtask <task>`: project chores that need more than one cargo command.
//!
//! - `bench [--quick] [--postgres | --sqlite] [--tenants N]`: builds the release service and the
//!   `integrations-bench` runner, which drives the service with wrk against a baseline measured in
//!   the same run, prints a table and writes `target/bench/latest.json`.
//! - `check`: the connector crates, the host's features, its link file and the workspace members
//!   agree, and every generated list in them is sorted.
//! - `check-features`: builds the host with no connector and with each connector alone.
//! - `new-plugin <name>`: generates `crates/plugins/<name>` and wires it into the workspace and host.

mod bench;
mod check;
mod new_plugin;
mod workspace;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <bench [--quick] [--postgres | --sqlite] [--tenants N] | check | \
                     check-features | new-plugin <name>>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match (args.first().map(String::as_str), &args[1.min(args.len())..]) {
        (Some("bench"), rest) => bench::bench(rest),
        (Some("check"), []) => check::check(&root),
        (Some("check-features"), []) => bench::check_features(&root),
        (Some("new-plugin"), [name]) => new_plugin::new_plugin(&root, name),
        _ => {
            eprintln!("{USAGE}");
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

/// The workspace root: the parent of this crate's directory. Read at run time first, so a copy of
/// the repository run against a shared target directory edits itself, not the original.
fn workspace_root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.parent().map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Runs `cargo <args>` with extra environment variables; fails when cargo does.
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
