//! Every statement the store runs is prepared against its backend's migrated schema, and no
//! statement is written outside a `sql` module (where `statements!` lists it for these tests).

use sqlx::{Connection, Executor};

use super::*;

#[tokio::test]
async fn every_sqlite_statement_prepares_against_the_migrated_schema() {
    let (dir, _store) = sqlite_store().await;
    let connection = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    let statements = crate::statements::sqlite();
    assert!(statements.len() > 50, "{} statements", statements.len());
    let mut failed = Vec::new();
    for (name, sql) in &statements {
        match connection.prepare(sql) {
            Ok(statement) => {
                // sqlx binds `$n` and `?n` by their number: a parameter of any other form would
                // take its value by position.
                for index in 1..=statement.parameter_count() {
                    let numbered = statement.parameter_name(index).is_some_and(|param| {
                        param[1..].parse::<usize>().is_ok() && (param.starts_with('$') || param.starts_with('?'))
                    });
                    if !numbered {
                        failed.push(format!("{name}: parameter {index} is not numbered"));
                    }
                }
            }
            Err(error) => failed.push(format!("{name}: {error}\n  {sql}")),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[tokio::test]
async fn every_postgres_statement_prepares_against_the_migrated_schema() {
    on_postgres!("store_statements", prepare_postgres_statements);
}

async fn prepare_postgres_statements(store: &Store) {
    let statements = crate::statements::postgres();
    assert!(statements.len() > 50, "{} statements", statements.len());
    // Through the native driver: `Any` refuses to describe a statement with array parameters
    // (the webhook writer's), though PostgreSQL prepares it.
    let url = store.postgres_url.as_deref().unwrap();
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let mut failed = Vec::new();
    for (name, sql) in &statements {
        if let Err(error) = (&mut connection).prepare(sql.as_str()).await {
            failed.push(format!("{name}: {error}\n  {sql}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A query run with a text of its own (a literal, or one built where it runs) would escape the
/// tests above: every statement is a constant of a `sql` module, declared with `statements!`.
#[test]
fn no_statement_is_written_outside_a_sql_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != root.join("tests") {
                    dirs.push(path);
                }
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for offence in statements_in_place(&source) {
                offences.push(format!("{}: {offence}", path.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "statements outside a sql module:\n{}",
        offences.join("\n")
    );
}

/// Calls that take a statement's text, given a literal or a reference to text built in place.
fn statements_in_place(source: &str) -> Vec<String> {
    const TAKE_TEXT: [&str; 9] = [
        "query",
        "query_scalar",
        "query_as",
        "prepare",
        "prepare_cached",
        "execute",
        "execute_batch",
        "query_row",
        "cached",
    ];
    let mut found = Vec::new();
    for (number, line) in source.lines().enumerate() {
        for call in TAKE_TEXT {
            for (at, _) in line.match_indices(call) {
                let before = line[..at].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let mut rest = &line[at + call.len()..];
                if let Some(turbofish) = rest.strip_prefix("::<") {
                    rest = turbofish.split_once('>').map_or("", |(_, after)| after);
                }
                let Some(argument) = rest.strip_prefix('(') else {
                    continue;
                };
                let argument = argument.trim_start();
                let argument = if argument.is_empty() {
                    source.lines().nth(number + 1).unwrap_or_default().trim_start()
                } else {
                    argument
                };
                let text_built_in_place = argument.starts_with("&format!")
                    || (argument.starts_with('&') && !call.starts_with("execute") && call != "query_row");
                if argument.starts_with('"') || argument.starts_with("format!") || text_built_in_place {
                    found.push(format!("line {}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_scan_finds_statement_texts_written_in_place() {
    let source = "sqlx::query(\"SELECT 1\")\nsqlx::query_scalar::<_, i64>(\"SELECT 2\")\n\
                  sqlx::query(&format!(\"SELECT {x}\"))\nconnection.prepare_cached(\n    \"SELECT 3\")\n\
                  sqlx::query(sql::FINE).execute(&mut *tx)\nsqlx::query(&text)\n";
    let found = statements_in_place(source);
    assert_eq!(found.len(), 5, "{found:#?}");
}
