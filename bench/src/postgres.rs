//! A throwaway PostgreSQL database for the P2 run: `bench_<random>`, dropped afterwards.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

use crate::BenchError;

/// The server's maintenance database; `BENCH_POSTGRES_URL` overrides it.
const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The URL of the maintenance database the bench creates and drops databases through.
pub fn server_url() -> String {
    std::env::var("BENCH_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// Whether something listens on PostgreSQL's address (only loopback URLs are considered).
pub fn reachable() -> bool {
    let url = server_url();
    let Some(host_port) = url.split('@').nth(1).and_then(|rest| rest.split('/').next()) else {
        return false;
    };
    let address: Option<SocketAddr> = host_port.parse().ok();
    address.is_some_and(|a| a.ip().is_loopback() && TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// A database created for this run.
pub struct Database {
    name: String,
    url: String,
}

impl Database {
    /// Creates `bench_<random>` on the server.
    pub async fn create() -> Result<Self, BenchError> {
        let name = format!("bench_{}", crate::random_hex(6));
        let mut connection = PgConnection::connect(&server_url()).await?;
        connection.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        connection.close().await?;
        let server = server_url();
        let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Ok(Self { name, url })
    }

    /// `DATABASE_URL` of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, disconnecting whatever is still connected.
    pub async fn drop_database(self) -> Result<(), BenchError> {
        let mut connection = PgConnection::connect(&server_url()).await?;
        connection
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await?;
        connection.close().await?;
        Ok(())
    }
}
