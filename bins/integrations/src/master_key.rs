//! Where the master key comes from: the environment, or for the embedded default a key file
//! generated into the data dir on first start. In file mode, keys replaced by a rotation are kept
//! in `master.key.previous`, so nothing they wrapped can become unreadable.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use integrations_secrets::{Keyring, MasterKey};
use integrations_store::Store;

use crate::{Config, StartupError};

const KEY_FILE: &str = "master.key";
const PREVIOUS_KEYS_FILE: &str = "master.key.previous";

/// Where the current master key was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `INTEGRATIONS_MASTER_KEY`.
    Environment,
    /// A file in the data dir.
    File(PathBuf),
}

fn key_error(message: impl std::fmt::Display) -> StartupError {
    StartupError::MasterKey(message.to_string())
}

fn parse(encoded: &str, what: &str) -> Result<MasterKey, StartupError> {
    MasterKey::from_base64(encoded).map_err(|e| key_error(format!("{what}: {e}")))
}

fn environment_previous_keys(config: &Config) -> Result<Vec<MasterKey>, StartupError> {
    config
        .previous_master_keys
        .iter()
        .map(|k| parse(k.expose(), "INTEGRATIONS_PREVIOUS_MASTER_KEYS"))
        .collect()
}

/// The keyring from the environment or the existing key file. `Ok(None)` means the embedded
/// default has no key yet; a non-SQLite database without a key is refused before it is touched.
pub fn load_keyring(config: &Config) -> Result<Option<(Keyring, KeySource)>, StartupError> {
    let mut previous = environment_previous_keys(config)?;
    if let Some(key) = &config.master_key {
        return Ok(Some((
            Keyring::new(parse(key.expose(), "INTEGRATIONS_MASTER_KEY")?, previous),
            KeySource::Environment,
        )));
    }
    if !config.is_embedded() {
        return Err(key_error(
            "INTEGRATIONS_MASTER_KEY must be set when DATABASE_URL is not SQLite",
        ));
    }
    let path = config.data_dir.join(KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let encoded = std::fs::read_to_string(&path).map_err(|e| key_error(format!("{}: {e}", path.display())))?;
    let current = parse(&encoded, &path.display().to_string())?;
    let previous_path = config.data_dir.join(PREVIOUS_KEYS_FILE);
    match std::fs::read_to_string(&previous_path) {
        Ok(lines) => {
            for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
                previous.push(parse(line, &previous_path.display().to_string())?);
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(key_error(format!("{}: {error}", previous_path.display()))),
    }
    Ok(Some((Keyring::new(current, previous), KeySource::File(path))))
}

/// The keyring, generating the embedded key file on first start. Refuses to generate one when the
/// database already holds data keys: they were wrapped by a key that has gone missing.
pub async fn keyring(config: &Config, store: &Store) -> Result<(Keyring, KeySource), StartupError> {
    if let Some(loaded) = load_keyring(config)? {
        return Ok(loaded);
    }
    let path = config.data_dir.join(KEY_FILE);
    if store.count_data_keys().await? > 0 {
        return Err(key_error(format!(
            "{} is missing but the database holds tenant data keys; restore the key file or set INTEGRATIONS_MASTER_KEY",
            path.display()
        )));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(key_error)?;
    let (key, encoded) = MasterKey::generate().map_err(key_error)?;
    match write_private(&path, &encoded, Write::CreateNew) {
        Ok(()) => {}
        // Another process generated it first: use that one, never overwrite it.
        Err(_) if path.exists() => {
            return load_keyring(config)?.ok_or_else(|| key_error(format!("{} vanished", path.display())))
        }
        Err(error) => return Err(error),
    }
    tracing::warn!(
        path = %path.display(),
        "generated a master key in the data dir; production deployments must set INTEGRATIONS_MASTER_KEY"
    );
    let previous = environment_previous_keys(config)?;
    Ok((Keyring::new(key, previous), KeySource::File(path)))
}

/// Makes `new_key` the key file's current key, keeping the replaced key among the previous ones.
/// The previous key is recorded first, so a crash in between loses nothing.
pub fn replace_key_file(path: &Path, new_key: &str) -> Result<(), StartupError> {
    let old = std::fs::read_to_string(path).map_err(|e| key_error(format!("{}: {e}", path.display())))?;
    if old.trim() == new_key.trim() {
        return Ok(());
    }
    let previous = path.with_file_name(PREVIOUS_KEYS_FILE);
    write_private(&previous, &format!("{}\n", old.trim()), Write::Append)?;
    let temporary = path.with_extension("key.new");
    write_private(&temporary, new_key.trim(), Write::Replace)?;
    std::fs::rename(&temporary, path).map_err(key_error)?;
    // The rename is durable only once the directory entry is on disk.
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(key_error)
}

enum Write {
    CreateNew,
    Append,
    Replace,
}

fn write_private(path: &Path, contents: &str, how: Write) -> Result<(), StartupError> {
    let mut options = std::fs::OpenOptions::new();
    match how {
        Write::CreateNew => options.write(true).create_new(true),
        Write::Append => options.create(true).append(true),
        Write::Replace => options.create(true).write(true).truncate(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| key_error(format!("{}: {e}", path.display())))?;
    file.write_all(contents.as_bytes()).map_err(key_error)?;
    file.sync_all().map_err(key_error)
}
