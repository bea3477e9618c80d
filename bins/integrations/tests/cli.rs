//! The binary as an operator runs it, with no configuration but a data dir.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn integrations(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_integrations"));
    command
        .env_clear()
        .env("INTEGRATIONS_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn creates_tenants_lists_plugins_and_rotates_the_generated_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = stdout(&integrations(
        dir.path(),
        &["tenant", "create", "acme", "--trait", "plan=pro"],
        &[],
    ));
    assert!(key.trim().starts_with("itk_"), "{key}");
    let key_file = dir.path().join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let duplicate = integrations(dir.path(), &["tenant", "create", "acme"], &[]);
    assert!(!duplicate.status.success());

    let plugins = stdout(&integrations(dir.path(), &["plugins"], &[]));
    if cfg!(feature = "jira") {
        assert!(
            plugins.contains("jira_create_issue") && plugins.contains("jira_search_issues"),
            "{plugins}"
        );
    }

    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let new_key = stdout(&integrations(dir.path(), &["keys", "generate"], &[]))
        .trim()
        .to_owned();
    let rotated = stdout(&integrations(
        dir.path(),
        &["keys", "rotate", "--new-master-key", &new_key],
        &[],
    ));
    assert!(rotated.contains("re-wrapped 1 data keys"), "{rotated}");
    assert!(!rotated.contains(&new_key) && !rotated.contains(old_key.trim()));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), new_key);
    let kept = std::fs::read_to_string(dir.path().join("master.key.previous")).unwrap();
    assert_eq!(kept.trim(), old_key.trim(), "the replaced key stays available");
    // The store is readable under the new key: more tenants, and a second rotation has nothing to do.
    stdout(&integrations(dir.path(), &["tenant", "create", "beta"], &[]));
    let again = stdout(&integrations(
        dir.path(),
        &["keys", "rotate", "--new-master-key", &new_key],
        &[],
    ));
    assert!(again.contains("re-wrapped 0 data keys"), "{again}");
    let wrong = integrations(dir.path(), &["keys", "rotate", "--new-master-key", "not-base64!"], &[]);
    assert!(!wrong.status.success());
}

#[test]
fn refuses_to_replace_a_lost_key_file_when_data_keys_exist() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&integrations(dir.path(), &["tenant", "create", "acme"], &[]));
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let output = integrations(dir.path(), &["tenant", "create", "beta"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("master.key is missing"));
    assert!(!dir.path().join("master.key").exists());
}

#[test]
fn environment_key_rotation_requires_servers_on_the_new_key_first() {
    let dir = tempfile::tempdir().unwrap();
    let generate = || {
        stdout(&integrations(dir.path(), &["keys", "generate"], &[]))
            .trim()
            .to_owned()
    };
    let (old, new) = (generate(), generate());
    stdout(&integrations(
        dir.path(),
        &["tenant", "create", "acme"],
        &[("INTEGRATIONS_MASTER_KEY", &old)],
    ));
    let early = integrations(
        dir.path(),
        &["keys", "rotate", "--new-master-key", &new],
        &[("INTEGRATIONS_MASTER_KEY", &old)],
    );
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("INTEGRATIONS_PREVIOUS_MASTER_KEYS"));
    let during = [
        ("INTEGRATIONS_MASTER_KEY", new.as_str()),
        ("INTEGRATIONS_PREVIOUS_MASTER_KEYS", old.as_str()),
    ];
    let rotated = stdout(&integrations(
        dir.path(),
        &["keys", "rotate", "--new-master-key", &new],
        &during,
    ));
    assert!(rotated.contains("re-wrapped 1 data keys"), "{rotated}");
    // Afterwards nothing is left under the old key: the new key alone suffices.
    let after = integrations(
        dir.path(),
        &["keys", "rotate", "--new-master-key", &new],
        &[("INTEGRATIONS_MASTER_KEY", &new)],
    );
    assert!(stdout(&after).contains("re-wrapped 0 data keys"));
    assert!(
        !dir.path().join("master.key").exists(),
        "environment mode writes no key file"
    );
}

#[test]
fn refuses_postgres_without_a_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = integrations(
        dir.path(),
        &["tenant", "create", "acme"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("INTEGRATIONS_MASTER_KEY"));
}

#[test]
fn reads_settings_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("integrations.env");
    std::fs::write(&file, "# comment\nINTEGRATIONS_BIND = not-an-address\n").unwrap();
    let output = integrations(
        dir.path(),
        &["migrate"],
        &[("INTEGRATIONS_CONFIG_FILE", file.to_str().unwrap())],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("INTEGRATIONS_BIND"));
    // The environment wins over the file.
    let output = integrations(
        dir.path(),
        &["migrate"],
        &[
            ("INTEGRATIONS_CONFIG_FILE", file.to_str().unwrap()),
            ("INTEGRATIONS_BIND", "127.0.0.1:0"),
        ],
    );
    assert_eq!(stdout(&output).trim(), "migrations applied");
}

#[test]
fn serves_with_no_configuration_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_integrations"))
        .env_clear()
        .env("INTEGRATIONS_BIND", &bind)
        .current_dir(dir.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        if let Ok(mut stream) = TcpStream::connect(&bind) {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            break response;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(dir.path().join("data/integrations.db").exists());
    assert!(dir.path().join("data/master.key").exists());
}
