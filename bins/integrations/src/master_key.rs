//! Where the master key comes from: the environment, or for the embedded default a key file
//! generated into the data dir on first start.

use std::io::Write;
use std::path::{Path, PathBuf};

use integrations_secrets::{Keyring, MasterKey};

use crate::{Config, StartupError};

const KEY_FILE: &str = "master.key";

/// Where the current master key was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `INTEGRATIONS_MASTER_KEY`.
    Environment,
    /// A file in the data dir.
    File(PathBuf),
}

/// The keyring for `config`, generating the embedded key file when allowed.
pub fn load_keyring(config: &Config) -> Result<(Keyring, KeySource), StartupError> {
    let parse = |encoded: &str, what: &str| {
        MasterKey::from_base64(encoded).map_err(|e| StartupError::MasterKey(format!("{what}: {e}")))
    };
    let previous = config
        .previous_master_keys
        .iter()
        .map(|k| parse(k.expose(), "INTEGRATIONS_PREVIOUS_MASTER_KEYS"))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(key) = &config.master_key {
        return Ok((
            Keyring::new(parse(key.expose(), "INTEGRATIONS_MASTER_KEY")?, previous),
            KeySource::Environment,
        ));
    }
    let path = config.data_dir.join(KEY_FILE);
    if path.exists() {
        let encoded =
            std::fs::read_to_string(&path).map_err(|e| StartupError::MasterKey(format!("{}: {e}", path.display())))?;
        return Ok((
            Keyring::new(parse(&encoded, &path.display().to_string())?, previous),
            KeySource::File(path),
        ));
    }
    if !config.is_embedded() {
        return Err(StartupError::MasterKey(
            "INTEGRATIONS_MASTER_KEY must be set when DATABASE_URL is not SQLite".into(),
        ));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StartupError::MasterKey(e.to_string()))?;
    let (key, encoded) = MasterKey::generate().map_err(|e| StartupError::MasterKey(e.to_string()))?;
    write_private(&path, &encoded)?;
    tracing::warn!(
        path = %path.display(),
        "generated a master key in the data dir; production deployments must set INTEGRATIONS_MASTER_KEY"
    );
    Ok((Keyring::new(key, previous), KeySource::File(path)))
}

/// Replaces the key file after a rotation, atomically.
pub fn replace_key_file(path: &Path, encoded: &str) -> Result<(), StartupError> {
    let temporary = path.with_extension("key.new");
    write_private(&temporary, encoded)?;
    std::fs::rename(&temporary, path).map_err(|e| StartupError::MasterKey(e.to_string()))
}

fn write_private(path: &Path, contents: &str) -> Result<(), StartupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| StartupError::MasterKey(format!("{}: {e}", path.display())))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| StartupError::MasterKey(e.to_string()))?;
    file.sync_all().map_err(|e| StartupError::MasterKey(e.to_string()))
}
