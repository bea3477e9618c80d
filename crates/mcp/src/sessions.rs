//! Who may use an MCP request: the guard in front of the SDK authenticates every request as the
//! REST API does (401 problem before any MCP processing), hands the tenant to the handler in the
//! request's extensions, and binds each session to the tenant that opened it.
//!
//! A request naming a session that is not its tenant's is answered 404 `mcp-session-not-found`,
//! exactly like a session that never existed: another tenant learns nothing, not even that the
//! id is live. (The protocol tells a client to start a new session on 404.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use integrations_api::{ApiError, AppState, CurrentTenant};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::SessionManager;

/// The header the protocol carries the session id in.
const SESSION_HEADER: &str = "mcp-session-id";

/// Bindings kept before the first sweep of ended sessions.
const FIRST_SWEEP_AT: usize = 64;

/// The authenticated tenant of an MCP request, for the handler.
#[derive(Clone, Debug)]
pub(crate) struct Tenant(pub(crate) String);

/// Which tenant opened which session.
#[derive(Default)]
pub(crate) struct SessionOwners {
    inner: Mutex<Owners>,
}

#[derive(Default)]
struct Owners {
    by_session: HashMap<String, String>,
    sweep_at: usize,
}

impl SessionOwners {
    fn lock(&self) -> MutexGuard<'_, Owners> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `session` was opened by `tenant`; an id that is not text was opened by nobody.
    pub(crate) fn is_owner(&self, session: &HeaderValue, tenant: &str) -> bool {
        let Ok(session) = session.to_str() else {
            return false;
        };
        self.lock().by_session.get(session).is_some_and(|owner| owner == tenant)
    }

    /// Records the tenant of a new session. Returns the sessions to check for having ended when
    /// the map has doubled since the last sweep (so sweeping costs O(1) per session).
    pub(crate) fn bind(&self, session: &str, tenant: &str) -> Option<Vec<String>> {
        let mut owners = self.lock();
        owners.by_session.insert(session.to_owned(), tenant.to_owned());
        if owners.by_session.len() < owners.sweep_at.max(FIRST_SWEEP_AT) {
            return None;
        }
        owners.sweep_at = usize::MAX;
        Some(owners.by_session.keys().cloned().collect())
    }

    /// Forgets ended sessions, found among the candidates [`Self::bind`] returned.
    pub(crate) fn sweep(&self, ended: &[String]) {
        let mut owners = self.lock();
        for session in ended {
            owners.by_session.remove(session);
        }
        owners.sweep_at = owners.by_session.len() * 2;
    }

    /// Forgets a session its owner closed.
    pub(crate) fn forget(&self, session: &HeaderValue) {
        if let Ok(session) = session.to_str() {
            self.lock().by_session.remove(session);
        }
    }
}

/// What the guard needs.
#[derive(Clone)]
pub(crate) struct Guard {
    state: AppState,
    owners: Arc<SessionOwners>,
    sessions: Arc<LocalSessionManager>,
}

impl Guard {
    pub(crate) fn new(state: AppState, sessions: Arc<LocalSessionManager>) -> Self {
        Self {
            state,
            owners: Arc::default(),
            sessions,
        }
    }

    /// Sweeps the bindings of sessions the SDK has ended (idle timeout, shutdown).
    async fn sweep(self, candidates: Vec<String>) {
        let mut ended = Vec::new();
        for session in candidates {
            // A failed check keeps the binding; the next sweep asks again.
            if let Ok(false) = self.sessions.has_session(&session.as_str().into()).await {
                ended.push(session);
            }
        }
        self.owners.sweep(&ended);
    }
}

/// Authenticates, checks the session's owner, runs the SDK, and records the owner of a session
/// the SDK has just opened (before its id leaves the server).
pub(crate) async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let tenant = match CurrentTenant::from_request_parts(&mut parts, &guard.state).await {
        Ok(CurrentTenant(tenant)) => tenant,
        Err(rejection) => return rejection.into_response(),
    };
    let session = parts.headers.get(SESSION_HEADER).cloned();
    if let Some(session) = &session {
        if !guard.owners.is_owner(session, &tenant) {
            return ApiError::McpSessionNotFound.into_response();
        }
    }
    let method = parts.method.clone();
    parts.extensions.insert(Tenant(tenant.clone()));
    let response = next.run(Request::from_parts(parts, body)).await;
    match session {
        None => {
            let opened = response.headers().get(SESSION_HEADER).and_then(|id| id.to_str().ok());
            if let Some(candidates) = opened.and_then(|id| guard.owners.bind(id, &tenant)) {
                // Not in this request's future: a client that hangs up must not cancel the sweep.
                tokio::spawn(async move { guard.sweep(candidates).await });
            }
        }
        Some(session) if method == Method::DELETE && response.status().is_success() => guard.owners.forget(&session),
        Some(_) => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &'static str) -> HeaderValue {
        HeaderValue::from_static(value)
    }

    #[test]
    fn a_session_belongs_only_to_the_tenant_that_opened_it() {
        let owners = SessionOwners::default();
        assert_eq!(owners.bind("s1", "acme"), None);
        assert!(owners.is_owner(&id("s1"), "acme"));
        assert!(!owners.is_owner(&id("s1"), "globex"));
        assert!(!owners.is_owner(&id("s2"), "acme"));
        owners.forget(&id("s1"));
        assert!(!owners.is_owner(&id("s1"), "acme"));
    }

    #[test]
    fn an_id_that_is_not_text_belongs_to_nobody() {
        let owners = SessionOwners::default();
        let binary = HeaderValue::from_bytes(&[0xff]).unwrap();
        assert!(!owners.is_owner(&binary, "acme"));
    }

    #[test]
    fn sweeps_when_the_bindings_double_and_keeps_live_sessions() {
        let owners = SessionOwners::default();
        for n in 0..FIRST_SWEEP_AT - 1 {
            assert_eq!(owners.bind(&format!("s{n}"), "acme"), None);
        }
        let candidates = owners.bind("last", "acme").expect("a sweep is due");
        assert_eq!(candidates.len(), FIRST_SWEEP_AT);
        // Only one sweep at a time: a bind while it runs asks for none.
        assert_eq!(owners.bind("during", "acme"), None);
        let ended: Vec<String> = (0..FIRST_SWEEP_AT - 1).map(|n| format!("s{n}")).collect();
        owners.sweep(&ended);
        assert!(!owners.is_owner(&id("s0"), "acme"));
        assert!(owners.is_owner(&id("last"), "acme") && owners.is_owner(&id("during"), "acme"));
        // Two live bindings: the next sweep is due at four, but never before the first threshold.
        for n in 0..FIRST_SWEEP_AT - 3 {
            assert_eq!(owners.bind(&format!("t{n}"), "acme"), None);
        }
        assert!(owners.bind("again", "acme").is_some());
    }
}
