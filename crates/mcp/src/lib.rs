//! The Model Context Protocol endpoint: an agent connects to `/mcp` over Streamable HTTP with a
//! tenant API key and sees that tenant's tools, exactly as `GET /v1/tools` lists them, and calls
//! them through the same path as `POST /v1/tools/{name}`.
//!
//! The protocol is the official SDK's (`rmcp`); this crate adds only what the SDK cannot know:
//! who the caller is ([`sessions`] authenticates every request and binds each session to the
//! tenant that opened it) and what the tools are ([`handler`] asks the service on every request).

mod handler;
mod sessions;

use std::sync::Arc;

use axum::Router;
use integrations_api::{AppState, MAX_BODY_BYTES};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

/// Where the endpoint is mounted.
pub const MCP_PATH: &str = "/mcp";

/// The `Host` names an MCP request may carry when nothing is configured: loopback only, as the SDK
/// defaults to, against DNS rebinding of a server on a developer's machine.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How the endpoint is configured.
#[derive(Clone, Debug)]
pub struct McpConfig {
    /// `Host` header values accepted (`name` or `name:port`); a `*` entry accepts any host.
    pub allowed_hosts: Vec<String>,
    /// Sessions one tenant may hold open; opening one more closes its least recently used.
    pub max_sessions_per_tenant: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: LOOPBACK_HOSTS.iter().map(|host| (*host).to_owned()).collect(),
            max_sessions_per_tenant: 100,
        }
    }
}

/// The endpoint: its router and the means to end its sessions.
pub struct McpEndpoint {
    /// Serves [`MCP_PATH`]; merge it into the API router.
    pub router: Router,
    /// Ends the endpoint's sessions.
    pub sessions: McpSessions,
}

/// Ends every MCP session and its open event streams, so that a graceful shutdown need not wait
/// for agents that hold a stream open for hours.
#[derive(Clone, Debug)]
pub struct McpSessions(CancellationToken);

impl McpSessions {
    /// Ends them all; the endpoint accepts no new request afterwards.
    pub fn close(&self) {
        self.0.cancel();
    }
}

/// Builds the endpoint over the same state (service, tenant authentication) as the REST API.
pub fn endpoint(state: AppState, config: &McpConfig) -> McpEndpoint {
    let streams = CancellationToken::new();
    let sessions = Arc::new(LocalSessionManager::default());
    let protocol = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(streams.child_token());
    let protocol = if config.allowed_hosts.iter().any(|host| host == "*") {
        protocol.disable_allowed_hosts()
    } else {
        protocol.with_allowed_hosts(config.allowed_hosts.clone())
    };
    let service = state.service.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(handler::TenantTools::new(service.clone())),
        sessions.clone(),
        protocol,
    );
    let router = Router::new()
        .route_service(MCP_PATH, mcp)
        .layer(axum::middleware::from_fn_with_state(
            sessions::Guard::new(state, sessions, config.max_sessions_per_tenant),
            sessions::guard,
        ));
    McpEndpoint {
        router,
        sessions: McpSessions(streams),
    }
}
