//! The generated lists that name every connector, where they live in the shared files, and how one
//! entry reads. `check` and `new-plugin` share these descriptions, so what one writes the other accepts.

use std::ops::Range;
use std::path::Path;

/// Where connector crates live, one directory each.
pub const PLUGINS_DIR: &str = "crates/plugins";
/// The workspace manifest.
pub const ROOT_MANIFEST: &str = "Cargo.toml";
/// The host's manifest: one feature and one optional dependency per connector.
pub const HOST_MANIFEST: &str = "bins/integrations/Cargo.toml";
/// The host's link file: one `use … as _;` line and one `SELECTED_PLUGINS` entry per connector.
pub const LINK_FILE: &str = "bins/integrations/src/plugins.rs";
/// The end-to-end tests' manifest: the host with every connector's feature.
pub const E2E_MANIFEST: &str = "tests/Cargo.toml";
/// The end-to-end tests' folder: one module per connector, among the tests of other concerns.
pub const E2E_DIR: &str = "tests/tests/e2e";
/// The end-to-end tests' root: one `mod` line per module of [`E2E_DIR`].
pub const E2E_MAIN: &str = "tests/tests/e2e/main.rs";

/// One generated list: a run of entries, one per connector, sorted by connector name.
pub struct GeneratedList {
    /// The file, relative to the workspace root.
    pub file: &'static str,
    /// What the list is, for messages.
    pub describe: &'static str,
    /// The lines the list's entries may occupy.
    pub locate: fn(&[&str]) -> Option<Range<usize>>,
    /// The connector an entry's first line names, if the line starts an entry.
    pub key: fn(&str) -> Option<String>,
    /// The lines of a connector's entry, exactly as generated.
    pub entry: fn(&str) -> Vec<String>,
    /// Whether the list also names things that are not connectors (the e2e modules of other
    /// concerns): then only a missing connector and the order are problems.
    pub shared: bool,
}

/// Every generated list, in the order `new-plugin` edits them.
pub const LISTS: &[GeneratedList] = &[
    GeneratedList {
        file: ROOT_MANIFEST,
        describe: "[workspace] members",
        locate: |lines| array_range(lines, table_range(lines, "workspace")?, "members"),
        key: member_key,
        entry: |name| vec![format!("    \"{PLUGINS_DIR}/{name}\",")],
        shared: false,
    },
    GeneratedList {
        file: ROOT_MANIFEST,
        describe: "[workspace] default-members",
        locate: |lines| array_range(lines, table_range(lines, "workspace")?, "default-members"),
        key: member_key,
        entry: |name| vec![format!("    \"{PLUGINS_DIR}/{name}\",")],
        shared: false,
    },
    GeneratedList {
        file: ROOT_MANIFEST,
        describe: "[workspace.dependencies]",
        locate: |lines| table_range(lines, "workspace.dependencies"),
        key: dependency_key,
        entry: |name| {
            vec![format!(
                "integrations-plugin-{name} = {{ path = \"{PLUGINS_DIR}/{name}\" }}"
            )]
        },
        shared: false,
    },
    GeneratedList {
        file: HOST_MANIFEST,
        describe: "[features]",
        locate: |lines| table_range(lines, "features"),
        key: |line| {
            line.contains("\"dep:integrations-plugin-")
                .then(|| line.split(" =").next().map(str::trim).map(str::to_owned))
                .flatten()
        },
        entry: |name| vec![format!("{name} = [\"dep:integrations-plugin-{name}\"]")],
        shared: false,
    },
    GeneratedList {
        file: HOST_MANIFEST,
        describe: "[dependencies]",
        locate: |lines| table_range(lines, "dependencies"),
        key: dependency_key,
        entry: |name| {
            vec![format!(
                "integrations-plugin-{name} = {{ workspace = true, optional = true }}"
            )]
        },
        shared: false,
    },
    GeneratedList {
        file: LINK_FILE,
        describe: "link lines",
        locate: |lines| Some(0..lines.iter().position(|l| l.starts_with("pub const SELECTED_PLUGINS"))?),
        key: cfg_key,
        entry: |name| {
            vec![
                format!("#[cfg(feature = \"{name}\")]"),
                format!("use integrations_plugin_{name} as _;"),
            ]
        },
        shared: false,
    },
    GeneratedList {
        file: LINK_FILE,
        describe: "SELECTED_PLUGINS",
        locate: |lines| {
            let start = lines.iter().position(|l| l.starts_with("pub const SELECTED_PLUGINS"))? + 1;
            let end = start + lines[start..].iter().position(|l| l.trim() == "];")?;
            Some(start..end)
        },
        key: cfg_key,
        entry: |name| vec![format!("    #[cfg(feature = \"{name}\")]"), format!("    \"{name}\",")],
        shared: false,
    },
    GeneratedList {
        file: E2E_MAIN,
        describe: "mod lines (the last run of them)",
        locate: |lines| {
            let end = lines.iter().rposition(|l| mod_key(l).is_some())? + 1;
            let start = lines[..end]
                .iter()
                .rposition(|l| mod_key(l).is_none())
                .map_or(0, |i| i + 1);
            Some(start..end)
        },
        key: mod_key,
        entry: |name| vec![format!("mod {name};")],
        shared: true,
    },
];

/// A list written on one line (`default = ["a", "b"]`) that names every connector.
pub struct InlineList {
    /// The file, relative to the workspace root.
    pub file: &'static str,
    /// What the list is, for messages.
    pub describe: &'static str,
    /// The TOML table holding the line.
    pub table: &'static str,
    /// The line up to its first name.
    pub prefix: &'static str,
    /// The line after its last name.
    pub suffix: &'static str,
}

/// Every one-line list: the host's `default` features and the features the e2e tests build it with.
pub const INLINE_LISTS: &[InlineList] = &[
    InlineList {
        file: HOST_MANIFEST,
        describe: "default features",
        table: "features",
        prefix: "default = [",
        suffix: "]",
    },
    InlineList {
        file: E2E_MANIFEST,
        describe: "features of the integrations dev-dependency",
        table: "dev-dependencies",
        prefix: "integrations = { workspace = true, features = [",
        suffix: "] }",
    },
];

impl InlineList {
    /// The list's line index and the names it holds.
    pub fn find(&self, lines: &[&str]) -> Result<(usize, Vec<String>), String> {
        let table = table_range(lines, self.table).ok_or(format!("{}: no [{}] table", self.file, self.table))?;
        let index = table
            .clone()
            .find(|&i| lines[i].starts_with(self.prefix))
            .ok_or(format!(
                "{}: no one-line `{}...{}` in [{}]",
                self.file, self.prefix, self.suffix, self.table
            ))?;
        let names = lines[index][self.prefix.len()..]
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        Ok((index, names))
    }

    /// The line naming `names`.
    pub fn line(&self, names: &[String]) -> String {
        let quoted: Vec<String> = names.iter().map(|f| format!("\"{f}\"")).collect();
        format!("{}{}{}", self.prefix, quoted.join(", "), self.suffix)
    }
}

/// One list as found in its file.
pub struct FoundList {
    /// The lines the list may occupy.
    pub range: Range<usize>,
    /// (first line index, connector) of each entry, in file order.
    pub entries: Vec<(usize, String)>,
}

/// Finds one list's entries in the lines of its file.
pub fn entries(list: &GeneratedList, lines: &[&str]) -> Result<FoundList, String> {
    let range = (list.locate)(lines).ok_or_else(|| format!("{}: cannot find {}", list.file, list.describe))?;
    let entries = range
        .clone()
        .filter_map(|index| (list.key)(lines[index]).map(|name| (index, name)))
        .collect();
    Ok(FoundList { range, entries })
}

/// The connectors: directories under crates/plugins holding a Cargo.toml, sorted.
pub fn connector_crates(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join(PLUGINS_DIR);
    let listing = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for item in listing {
        let path = item.map_err(|e| format!("cannot list {}: {e}", dir.display()))?.path();
        if path.join("Cargo.toml").is_file() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Reads a file relative to the workspace root.
pub fn read(root: &Path, file: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(file)).map_err(|e| format!("cannot read {file}: {e}"))
}

/// The body of TOML table `[header]`: the lines after the header up to the next table.
fn table_range(lines: &[&str], header: &str) -> Option<Range<usize>> {
    let wanted = format!("[{header}]");
    let start = lines.iter().position(|l| l.trim() == wanted)? + 1;
    let end = lines[start..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |n| start + n);
    Some(start..end)
}

/// The element lines of the multi-line array `key = [` … `]` inside `within`.
fn array_range(lines: &[&str], within: Range<usize>, key: &str) -> Option<Range<usize>> {
    let opening = format!("{key} = [");
    let start = within.clone().find(|&i| lines[i].trim() == opening)? + 1;
    let end = (start..within.end).find(|&i| lines[i].trim() == "]")?;
    Some(start..end)
}

fn member_key(line: &str) -> Option<String> {
    let path = line.trim().strip_prefix('"')?.strip_suffix("\",")?;
    path.strip_prefix(PLUGINS_DIR)?.strip_prefix('/').map(str::to_owned)
}

fn dependency_key(line: &str) -> Option<String> {
    let rest = line.strip_prefix("integrations-plugin-")?;
    rest.split(" =").next().map(str::trim).map(str::to_owned)
}

fn cfg_key(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("#[cfg(feature = \"")?;
    rest.strip_suffix("\")]").map(str::to_owned)
}

fn mod_key(line: &str) -> Option<String> {
    let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
    let well_formed = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    well_formed.then(|| name.to_owned())
}
