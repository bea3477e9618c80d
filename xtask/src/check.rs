//! `check`: every list naming connectors agrees with the crates under crates/plugins, and is sorted.

use std::path::Path;

use crate::workspace::{connector_crates, entries, read, E2E_DIR, INLINE_LISTS, LISTS, PLUGINS_DIR};

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
        compare(&place, &names, &connectors, list.shared, &mut problems);
    }
    for list in INLINE_LISTS {
        let text = read(root, list.file)?;
        let lines: Vec<&str> = text.lines().collect();
        let (_, names) = list.find(&lines)?;
        let place = format!("{} {}", list.file, list.describe);
        compare(&place, &names, &connectors, false, &mut problems);
    }
    for connector in &connectors {
        let module = format!("{E2E_DIR}/{connector}.rs");
        if !root.join(&module).is_file() {
            problems.push(format!("{module}: missing (the connector's end-to-end tests)"));
        }
    }
    Ok(problems)
}

/// Adds a problem for each connector missing from `names`, each name that is no connector (unless
/// the list is `shared` with other things), and for `names` out of order or repeated.
fn compare(place: &str, names: &[String], connectors: &[String], shared: bool, problems: &mut Vec<String>) {
    for connector in connectors.iter().filter(|c| !names.contains(c)) {
        problems.push(format!("{place}: missing {connector}"));
    }
    for name in names.iter().filter(|n| !shared && !connectors.contains(n)) {
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
        compare("list", &strings(&["slack", "jira"]), &connectors, false, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems.clear();
        compare("list", &strings(&["jira", "teams"]), &connectors, false, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        problems.clear();
        compare("list", &connectors, &connectors, false, &mut problems);
        assert!(problems.is_empty());
    }

    #[test]
    fn a_shared_list_may_name_other_things_but_must_name_every_connector_in_order() {
        let connectors = strings(&["jira", "slack"]);
        let mut problems = Vec::new();
        compare(
            "mods",
            &strings(&["events", "jira", "slack", "webhooks"]),
            &connectors,
            true,
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        compare(
            "mods",
            &strings(&["events", "jira", "webhooks"]),
            &connectors,
            true,
            &mut problems,
        );
        assert_eq!(problems, ["mods: missing slack"]);
        problems.clear();
        compare(
            "mods",
            &strings(&["jira", "events", "slack"]),
            &connectors,
            true,
            &mut problems,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn inline_lines_round_trip() {
        let names = strings(&["jira", "slack"]);
        for list in workspace::INLINE_LISTS {
            let line = list.line(&names);
            let lines = [format!("[{}]", list.table), line.clone()];
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            assert_eq!(list.find(&lines).unwrap(), (1, names.clone()), "{line}");
        }
        assert_eq!(
            workspace::INLINE_LISTS[0].line(&names),
            r#"default = ["jira", "slack"]"#
        );
        assert_eq!(
            workspace::INLINE_LISTS[1].line(&names),
            r#"integrations = { workspace = true, features = ["jira", "slack"] }"#
        );
    }

    #[test]
    fn finds_the_last_run_of_mod_lines() {
        let text = "//! doc\n\nmod contract;\nmod harness;\n\nmod events;\nmod jira;\n";
        let lines: Vec<&str> = text.lines().collect();
        let list = workspace::LISTS.iter().find(|l| l.shared).unwrap();
        let found = entries(list, &lines).unwrap();
        assert_eq!(found.range, 5..7);
        let names: Vec<&str> = found.entries.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["events", "jira"]);
    }
}
