//! `bench` and `check-features`: tasks that drive cargo builds.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, workspace};

/// Builds the release service and the bench runner, then runs the bench.
pub fn bench(args: &[String]) -> Result<(), String> {
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
        None => crate::workspace_root().join("target"),
    }
}

/// Builds and tests the host with no connector, then with each connector under crates/plugins alone.
pub fn check_features(root: &Path) -> Result<(), String> {
    let host_features_test = [
        "test",
        "-p",
        "integrations",
        "--no-default-features",
        "--test",
        "features",
    ];
    cargo(&["build", "-p", "integrations", "--no-default-features"], &[])?;
    cargo(&host_features_test, &[])?;
    for connector in workspace::connector_crates(root)? {
        let only = ["--features", connector.as_str()];
        cargo(
            &[&["build", "-p", "integrations", "--no-default-features"][..], &only].concat(),
            &[],
        )?;
        cargo(&[&host_features_test[..], &only].concat(), &[])?;
    }
    Ok(())
}
