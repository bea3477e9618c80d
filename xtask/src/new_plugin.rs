//! `new-plugin <name>`: generates crates/plugins/<name> and its end-to-end tests, and adds it, in
//! sorted position, to every list that names connectors (workspace members and dependencies, host
//! features, link file, the e2e tests' features and `mod` lines).

use std::path::Path;

use crate::check;
use crate::workspace::{
    connector_crates, entries, read, FoundList, E2E_DIR, E2E_MAIN, HOST_MANIFEST, INLINE_LISTS, LISTS, PLUGINS_DIR,
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

/// The connector's end-to-end tests through the running host, a module of [`E2E_DIR`].
const E2E_TEMPLATE: &str = include_str!("../templates/e2e.rs.tmpl");

/// Generates the connector and wires it in; refuses a bad, reserved or taken name, and a tree
/// whose lists already disagree (inserting into them would hide that).
pub fn new_plugin(root: &Path, name: &str) -> Result<(), String> {
    validate_name(name)?;
    if connector_crates(root)?.iter().any(|c| c == name) || root.join(PLUGINS_DIR).join(name).exists() {
        return Err(format!("{PLUGINS_DIR}/{name} already exists"));
    }
    let e2e_module = format!("{E2E_DIR}/{name}.rs");
    let e2e_mod_line = format!("mod {name};");
    if root.join(&e2e_module).exists() || read(root, E2E_MAIN)?.lines().any(|l| l.trim() == e2e_mod_line) {
        return Err(format!(
            "{e2e_module} already exists: pick a name no end-to-end test module has"
        ));
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
    std::fs::write(root.join(&e2e_module), render(E2E_TEMPLATE, name))
        .map_err(|e| format!("cannot write {e2e_module}: {e}"))?;
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
        "created {PLUGINS_DIR}/{name} (crate integrations-plugin-{name}) and {e2e_module}, and wired them into the \
         workspace, the host and the end-to-end tests"
    );
    println!(
        "next: cargo test -p integrations-plugin-{name}; cargo test -p integrations-e2e --test e2e {name}; then fill in \
         api.rs, schema.rs and webhook.rs"
    );
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
        set_text(&mut edits, list.file, lines.join("\n") + "\n");
    }
    for list in INLINE_LISTS {
        let text = match edits.iter().find(|(file, _)| *file == list.file) {
            Some((_, text)) => text.clone(),
            None => read(root, list.file)?,
        };
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let borrowed: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (index, mut names) = list.find(&borrowed)?;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
            names.sort();
        }
        lines[index] = list.line(&names);
        set_text(&mut edits, list.file, lines.join("\n") + "\n");
    }
    Ok(edits)
}

/// Records the new text of `file` among `edits`.
fn set_text(edits: &mut Vec<(&'static str, String)>, file: &'static str, text: String) {
    match edits.iter_mut().find(|(edited, _)| *edited == file) {
        Some((_, edited)) => *edited = text,
        None => edits.push((file, text)),
    }
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
    use crate::workspace::{E2E_MANIFEST, LINK_FILE, ROOT_MANIFEST};

    /// A throwaway copy of the shared files and the connector manifests of this workspace.
    fn scratch_workspace(label: &str) -> PathBuf {
        let source = crate::workspace_root();
        let root = std::env::temp_dir().join(format!("xtask-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let connectors = connector_crates(&source).unwrap();
        let e2e_modules = connectors.iter().map(|c| format!("{E2E_DIR}/{c}.rs"));
        let shared = [ROOT_MANIFEST, HOST_MANIFEST, LINK_FILE, E2E_MANIFEST, E2E_MAIN].map(String::from);
        for file in shared.into_iter().chain(e2e_modules) {
            let target = root.join(&file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(source.join(&file), target).unwrap();
        }
        for connector in connectors {
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
        assert!(root.join(E2E_DIR).join("kafka.rs").is_file());
        let features = format!(
            "integrations = {{ workspace = true, features = [{}] }}",
            quoted.join(", ")
        );
        assert!(read(&root, E2E_MANIFEST).unwrap().contains(&features), "{features}");
        let main = read(&root, E2E_MAIN).unwrap();
        let mods: Vec<&str> = main.lines().filter(|l| l.starts_with("mod ")).collect();
        let mut sorted_tail = mods[2..].to_vec();
        sorted_tail.sort();
        assert_eq!(mods[2..], sorted_tail, "{main}");
        for name in ["aaa", "kafka", "zzz"] {
            assert!(mods.contains(&format!("mod {name};").as_str()), "{main}");
        }
        assert!(new_plugin(&root, "kafka").is_err(), "a taken name is refused");
        assert!(
            new_plugin(&root, "webhooks").is_err(),
            "an e2e module's name is refused"
        );
        std::fs::remove_file(root.join(E2E_DIR).join("kafka.rs")).unwrap();
        assert!(
            check::problems(&root)
                .unwrap()
                .iter()
                .any(|p| p.contains("kafka.rs: missing")),
            "check names a missing e2e module"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
