//! `new-plugin <name>`: generates crates/plugins/<name> and adds it, in sorted position, to every
//! list that names connectors (workspace members and dependencies, host features, link file).

use std::path::Path;

use crate::check;
use crate::workspace::{
    connector_crates, default_features, default_features_line, entries, read, FoundList, HOST_MANIFEST, LISTS,
    PLUGINS_DIR,
};

/// Names a connector cannot take: workspace crates, cargo's own feature name, and words the
/// host uses for other things.
const RESERVED_NAMES: &[&str] = &[
    "api",
    "bench",
    "core",
    "default",
    "e2e",
    "flags",
    "http",
    "integrations",
    "plugin",
    "plugins",
    "secrets",
    "service",
    "store",
    "tests",
    "xtask",
];

/// The generated crate's files: path inside the crate, template.
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../templates/lib.rs.tmpl")),
    ("src/api.rs", include_str!("../templates/api.rs.tmpl")),
    ("src/schema.rs", include_str!("../templates/schema.rs.tmpl")),
    ("src/webhook.rs", include_str!("../templates/webhook.rs.tmpl")),
    ("tests/{{name}}.rs", include_str!("../templates/test.rs.tmpl")),
];

/// Generates the connector and wires it in; refuses a bad, reserved or taken name, and a tree
/// whose lists already disagree (inserting into them would hide that).
pub fn new_plugin(root: &Path, name: &str) -> Result<(), String> {
    validate_name(name)?;
    if connector_crates(root)?.iter().any(|c| c == name) || root.join(PLUGINS_DIR).join(name).exists() {
        return Err(format!("{PLUGINS_DIR}/{name} already exists"));
    }
    let before = check::problems(root)?;
    if !before.is_empty() {
        return Err(format!(
            "fix these first (`cargo xtask check`):\n  - {}",
            before.join("\n  - ")
        ));
    }
    let host = read(root, HOST_MANIFEST)?;
    if host.lines().any(|line| line.starts_with(&format!("{name} = "))) {
        return Err(format!("{HOST_MANIFEST} already has a feature named {name}"));
    }

    // Compute every edit before writing anything, so a failure leaves the tree as it was.
    let edits = shared_file_edits(root, name)?;
    let crate_dir = root.join(PLUGINS_DIR).join(name);
    for (path, template) in TEMPLATES {
        let file = crate_dir.join(render(path, name));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&file, render(template, name)).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    for (file, text) in &edits {
        std::fs::write(root.join(file), text).map_err(|e| format!("cannot write {file}: {e}"))?;
    }

    let after = check::problems(root)?;
    if !after.is_empty() {
        return Err(format!(
            "generated, but the lists still disagree:\n  - {}",
            after.join("\n  - ")
        ));
    }
    println!(
        "created {PLUGINS_DIR}/{name} (crate integrations-plugin-{name}) and wired it into the workspace and host"
    );
    println!("next: cargo test -p integrations-plugin-{name}; then fill in api.rs, schema.rs and webhook.rs");
    Ok(())
}

/// `[a-z][a-z0-9_]*`, at most 64 characters (the registry's limit), not reserved.
fn validate_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let well_formed = name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(format!(
            "invalid connector name {name:?}: use a lowercase letter then lowercase letters, digits or '_' (at most 64)"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("{name:?} is reserved: pick the vendor's name"));
    }
    Ok(())
}

/// The new text of each shared file, with the connector's entry inserted in every list.
fn shared_file_edits(root: &Path, name: &str) -> Result<Vec<(&'static str, String)>, String> {
    let mut edits: Vec<(&'static str, String)> = Vec::new();
    for list in LISTS {
        let text = match edits.iter().find(|(file, _)| *file == list.file) {
            Some((_, text)) => text.clone(),
            None => read(root, list.file)?,
        };
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let borrowed: Vec<&str> = lines.iter().map(String::as_str).collect();
        let FoundList { range, entries: found } = entries(list, &borrowed)?;
        let entry = (list.entry)(name);
        let at = match found.iter().find(|(_, existing)| existing.as_str() > name) {
            Some((index, _)) => *index,
            None => match found.last() {
                Some((index, _)) => index + entry.len(),
                None => range.end,
            },
        };
        lines.splice(at..at, entry);
        if list.file == HOST_MANIFEST {
            add_default_feature(&mut lines, name)?;
        }
        let updated = lines.join("\n") + "\n";
        match edits.iter_mut().find(|(file, _)| *file == list.file) {
            Some((_, text)) => *text = updated,
            None => edits.push((list.file, updated)),
        }
    }
    Ok(edits)
}

/// Adds `name` to the host's `default` feature, keeping it sorted (idempotent).
fn add_default_feature(lines: &mut [String], name: &str) -> Result<(), String> {
    let borrowed: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (index, mut features) = default_features(&borrowed)?;
    if !features.iter().any(|f| f == name) {
        features.push(name.to_owned());
        features.sort();
    }
    lines[index] = default_features_line(&features);
    Ok(())
}

/// Fills a template: `{{name}}` is the connector name, `{{Name}}` its CamelCase form.
fn render(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{Name}}", &camel_case(name))
}

/// `my_vendor` → `MyVendor`.
fn camel_case(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_lowercase_identifiers_that_are_not_reserved() {
        assert!(validate_name("demo").is_ok());
        assert!(validate_name("my_vendor2").is_ok());
        for bad in ["", "Demo", "2fa", "_x", "a-b", "core", "default", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn camel_cases_names() {
        assert_eq!(camel_case("demo"), "Demo");
        assert_eq!(camel_case("my_vendor2"), "MyVendor2");
    }
}

#[cfg(test)]
mod wiring_tests {
    use std::path::PathBuf;

    use super::*;
    use crate::workspace::{LINK_FILE, ROOT_MANIFEST};

    /// A throwaway copy of the shared files and the connector manifests of this workspace.
    fn scratch_workspace(label: &str) -> PathBuf {
        let source = crate::workspace_root();
        let root = std::env::temp_dir().join(format!("xtask-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for file in [ROOT_MANIFEST, HOST_MANIFEST, LINK_FILE] {
            let target = root.join(file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(source.join(file), target).unwrap();
        }
        for connector in connector_crates(&source).unwrap() {
            let manifest = format!("{PLUGINS_DIR}/{connector}/Cargo.toml");
            std::fs::create_dir_all(root.join(PLUGINS_DIR).join(&connector)).unwrap();
            std::fs::copy(source.join(&manifest), root.join(&manifest)).unwrap();
        }
        root
    }

    #[test]
    fn wires_new_connectors_first_middle_and_last_in_sorted_order() {
        let root = scratch_workspace("wiring");
        // Whatever connectors the tree has, plus one sorting first, one in between, one last.
        let mut expected: Vec<String> = connector_crates(&root).unwrap();
        for name in ["zzz", "aaa", "kafka"] {
            new_plugin(&root, name).unwrap();
            expected.push(name.to_owned());
        }
        expected.sort();
        assert_eq!(check::problems(&root).unwrap(), Vec::<String>::new());
        let link_file = read(&root, LINK_FILE).unwrap();
        let positions: Vec<usize> = expected
            .iter()
            .map(|name| {
                link_file
                    .find(&format!("use integrations_plugin_{name} as _;"))
                    .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{link_file}");
        let quoted: Vec<String> = expected.iter().map(|name| format!("\"{name}\"")).collect();
        let default = format!("default = [{}]", quoted.join(", "));
        assert!(read(&root, HOST_MANIFEST).unwrap().contains(&default), "{default}");
        assert!(root.join(PLUGINS_DIR).join("kafka/tests/kafka.rs").is_file());
        assert!(new_plugin(&root, "kafka").is_err(), "a taken name is refused");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
