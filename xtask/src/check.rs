//! `check`: every list naming connectors agrees with the crates under crates/plugins, and is sorted.

use std::path::Path;

use crate::workspace::{connector_crates, default_features, entries, read, HOST_MANIFEST, LISTS, PLUGINS_DIR};

/// Fails with every disagreement found, each on its own line.
pub fn check(root: &Path) -> Result<(), String> {
    let problems = problems(root)?;
    if problems.is_empty() {
        let connectors = connector_crates(root)?;
        println!("xtask check: connectors agree everywhere: {}", connectors.join(", "));
        return Ok(());
    }
    Err(format!(
        "the connector lists disagree with {PLUGINS_DIR}/*:\n  - {}\n(`cargo xtask new-plugin <name>` writes these lines; \
         removing a connector means removing its line from each list)",
        problems.join("\n  - ")
    ))
}

/// What disagrees, as readable sentences; empty when everything agrees.
pub fn problems(root: &Path) -> Result<Vec<String>, String> {
    let connectors = connector_crates(root)?;
    let mut problems = Vec::new();
    for connector in &connectors {
        let manifest = format!("{PLUGINS_DIR}/{connector}/Cargo.toml");
        let expected = format!("name = \"integrations-plugin-{connector}\"");
        if !read(root, &manifest)?.lines().any(|line| line.trim() == expected) {
            problems.push(format!(
                "{manifest}: the package must be named integrations-plugin-{connector}"
            ));
        }
    }
    for list in LISTS {
        let text = read(root, list.file)?;
        let lines: Vec<&str> = text.lines().collect();
        let found = entries(list, &lines)?.entries;
        let place = format!("{} {}", list.file, list.describe);
        for (index, name) in &found {
            let expected = (list.entry)(name);
            let actual = lines.get(*index..*index + expected.len()).unwrap_or_default();
            if actual != expected {
                problems.push(format!(
                    "{place}: line {} should read `{}`",
                    index + 1,
                    expected.join("` then `")
                ));
            }
        }
        let names: Vec<String> = found.into_iter().map(|(_, name)| name).collect();
        compare(&place, &names, &connectors, &mut problems);
    }
    let host = read(root, HOST_MANIFEST)?;
    let host_lines: Vec<&str> = host.lines().collect();
    let (_, defaults) = default_features(&host_lines)?;
    compare(
        &format!("{HOST_MANIFEST} default features"),
        &defaults,
        &connectors,
        &mut problems,
    );
    Ok(problems)
}

/// Adds a problem for each connector missing from `names`, each name that is no connector, and
/// for `names` out of order or repeated.
fn compare(place: &str, names: &[String], connectors: &[String], problems: &mut Vec<String>) {
    for connector in connectors.iter().filter(|c| !names.contains(c)) {
        problems.push(format!("{place}: missing {connector}"));
    }
    for name in names.iter().filter(|n| !connectors.contains(n)) {
        problems.push(format!(
            "{place}: names {name}, which is not a crate under {PLUGINS_DIR}"
        ));
    }
    if !names.windows(2).all(|pair| pair[0] < pair[1]) {
        problems.push(format!(
            "{place}: not sorted (or repeated): {}; expected sorted: {}",
            names.join(", "),
            sorted(names).join(", ")
        ));
    }
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn reports_missing_extra_and_unsorted_names() {
        let connectors = strings(&["jira", "slack"]);
        let mut problems = Vec::new();
        compare("list", &strings(&["slack", "jira"]), &connectors, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems.clear();
        compare("list", &strings(&["jira", "teams"]), &connectors, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        problems.clear();
        compare("list", &connectors, &connectors, &mut problems);
        assert!(problems.is_empty());
    }

    #[test]
    fn default_line_round_trips() {
        let line = workspace::default_features_line(&strings(&["jira", "slack"]));
        assert_eq!(line, r#"default = ["jira", "slack"]"#);
        assert_eq!(
            default_features(&["[features]", &line]).unwrap().1,
            strings(&["jira", "slack"])
        );
    }
}
