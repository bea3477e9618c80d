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
use integrations_problems::RequestError;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::SessionManager;

/// The header the protocol carries the session id in.
const SESSION_HEADER: &str = "mcp-session-id";

/// Bindings kept before the first sweep of ended sessions.
const FIRST_SWEEP_AT: usize = 64;

/// The authenticated tenant of an MCP request, for the handler.
#[derive(Clone, Debug)]
pub(crate) struct Tenant(pub(crate) integrations_service::TenantId);

/// Which tenant opened which session, and when each tenant last used each of its sessions.
pub(crate) struct SessionOwners {
    inner: Mutex<Owners>,
    max_per_tenant: usize,
}

#[derive(Default)]
struct Owners {
    by_session: HashMap<String, String>,
    /// Each tenant's sessions with the tick of their last use.
    by_tenant: HashMap<String, HashMap<String, u64>>,
    tick: u64,
    sweep_at: usize,
}

impl Owners {
    fn remove(&mut self, session: &str) {
        if let Some(tenant) = self.by_session.remove(session) {
            if let Some(sessions) = self.by_tenant.get_mut(&tenant) {
                sessions.remove(session);
                if sessions.is_empty() {
                    self.by_tenant.remove(&tenant);
                }
            }
        }
    }
}

/// What binding a new session asks of the guard.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AfterBind {
    /// The tenant's least recently used sessions, over its limit: to be closed.
    pub(crate) evicted: Vec<String>,
    /// Sessions to check for having ended, when the map has doubled since the last sweep.
    pub(crate) sweep: Option<Vec<String>>,
}

impl SessionOwners {
    pub(crate) fn new(max_per_tenant: usize) -> Self {
        Self {
            inner: Mutex::default(),
            max_per_tenant: max_per_tenant.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Owners> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `session` was opened by `tenant` (an id that is not text was opened by nobody);
    /// when it was, it counts as used now.
    pub(crate) fn is_owner(&self, session: &HeaderValue, tenant: &str) -> bool {
        let Ok(session) = session.to_str() else {
            return false;
        };
        let mut owners = self.lock();
        if owners.by_session.get(session).is_none_or(|owner| owner != tenant) {
            return false;
        }
        owners.tick += 1;
        let tick = owners.tick;
        if let Some(used) = owners
            .by_tenant
            .get_mut(tenant)
            .and_then(|sessions| sessions.get_mut(session))
        {
            *used = tick;
        }
        true
    }

    /// Records the tenant of a new session; past the tenant's limit its least recently used
    /// sessions are forgotten and returned, to be closed. Sweeping ended sessions costs O(1) per
    /// session; finding the least recently used, O(limit).
    pub(crate) fn bind(&self, session: &str, tenant: &str) -> AfterBind {
        let mut owners = self.lock();
        owners.tick += 1;
        let tick = owners.tick;
        owners.by_session.insert(session.to_owned(), tenant.to_owned());
        let sessions = owners.by_tenant.entry(tenant.to_owned()).or_default();
        sessions.insert(session.to_owned(), tick);
        let mut evicted = Vec::new();
        while sessions.len() > self.max_per_tenant {
            let Some(oldest) = sessions
                .iter()
                .filter(|(id, _)| id.as_str() != session)
                .min_by_key(|(_, used)| **used)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            sessions.remove(&oldest);
            evicted.push(oldest);
        }
        for id in &evicted {
            owners.by_session.remove(id);
        }
        let sweep = if owners.by_session.len() < owners.sweep_at.max(FIRST_SWEEP_AT) {
            None
        } else {
            owners.sweep_at = usize::MAX;
            Some(owners.by_session.keys().cloned().collect())
        };
        AfterBind { evicted, sweep }
    }

    /// Forgets ended sessions, found among the candidates [`Self::bind`] returned.
    pub(crate) fn sweep(&self, ended: &[String]) {
        let mut owners = self.lock();
        for session in ended {
            owners.remove(session);
        }
        owners.sweep_at = owners.by_session.len() * 2;
    }

    /// Forgets a session its owner closed.
    pub(crate) fn forget(&self, session: &HeaderValue) {
        if let Ok(session) = session.to_str() {
            self.lock().remove(session);
        }
    }

    /// Sessions bound to `tenant`.
    #[cfg(test)]
    fn count(&self, tenant: &str) -> usize {
        self.lock().by_tenant.get(tenant).map_or(0, HashMap::len)
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
    pub(crate) fn new(state: AppState, sessions: Arc<LocalSessionManager>, max_per_tenant: usize) -> Self {
        Self {
            state,
            owners: Arc::new(SessionOwners::new(max_per_tenant)),
            sessions,
        }
    }

    /// Closes sessions evicted for their tenant's newer ones: their workers, channels and
    /// streams go with them.
    async fn close(self, evicted: Vec<String>) {
        for session in evicted {
            if let Err(error) = self.sessions.close_session(&session.as_str().into()).await {
                tracing::debug!(%error, "closing an evicted MCP session failed");
            }
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
            return ApiError::from(RequestError::McpSessionNotFound).into_response();
        }
    }
    let method = parts.method.clone();
    parts.extensions.insert(Tenant(tenant.clone()));
    let response = next.run(Request::from_parts(parts, body)).await;
    match session {
        None => {
            let opened = response.headers().get(SESSION_HEADER).and_then(|id| id.to_str().ok());
            if let Some(after) = opened.map(|id| guard.owners.bind(id, &tenant)) {
                // Not in this request's future: a client that hangs up must not cancel them.
                if !after.evicted.is_empty() {
                    tokio::spawn(guard.clone().close(after.evicted));
                }
                if let Some(candidates) = after.sweep {
                    tokio::spawn(async move { guard.sweep(candidates).await });
                }
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

    fn owners() -> SessionOwners {
        SessionOwners::new(usize::MAX)
    }

    #[test]
    fn a_session_belongs_only_to_the_tenant_that_opened_it() {
        let owners = owners();
        assert_eq!(owners.bind("s1", "acme"), AfterBind::default());
        assert!(owners.is_owner(&id("s1"), "acme"));
        assert!(!owners.is_owner(&id("s1"), "globex"));
        assert!(!owners.is_owner(&id("s2"), "acme"));
        owners.forget(&id("s1"));
        assert!(!owners.is_owner(&id("s1"), "acme"));
    }

    #[test]
    fn an_id_that_is_not_text_belongs_to_nobody() {
        let owners = owners();
        let binary = HeaderValue::from_bytes(&[0xff]).unwrap();
        assert!(!owners.is_owner(&binary, "acme"));
    }

    #[test]
    fn sweeps_when_the_bindings_double_and_keeps_live_sessions() {
        let owners = owners();
        for n in 0..FIRST_SWEEP_AT - 1 {
            assert_eq!(owners.bind(&format!("s{n}"), "acme").sweep, None);
        }
        let candidates = owners.bind("last", "acme").sweep.expect("a sweep is due");
        assert_eq!(candidates.len(), FIRST_SWEEP_AT);
        // Only one sweep at a time: a bind while it runs asks for none.
        assert_eq!(owners.bind("during", "acme").sweep, None);
        let ended: Vec<String> = (0..FIRST_SWEEP_AT - 1).map(|n| format!("s{n}")).collect();
        owners.sweep(&ended);
        assert!(!owners.is_owner(&id("s0"), "acme"));
        assert!(owners.is_owner(&id("last"), "acme") && owners.is_owner(&id("during"), "acme"));
        // Two live bindings: the next sweep is due at four, but never before the first threshold.
        for n in 0..FIRST_SWEEP_AT - 3 {
            assert_eq!(owners.bind(&format!("t{n}"), "acme").sweep, None);
        }
        assert!(owners.bind("again", "acme").sweep.is_some());
    }

    #[test]
    fn past_its_limit_a_tenant_loses_its_least_recently_used_session() {
        let owners = SessionOwners::new(3);
        for session in ["s1", "s2", "s3"] {
            assert!(owners.bind(session, "acme").evicted.is_empty());
        }
        // s1 used again: s2 is now the least recently used.
        assert!(owners.is_owner(&id("s1"), "acme"));
        assert!(
            owners.bind("g1", "globex").evicted.is_empty(),
            "other tenants count apart"
        );
        assert_eq!(owners.bind("s4", "acme").evicted, vec!["s2".to_owned()]);
        assert!(!owners.is_owner(&id("s2"), "acme"));
        assert!(owners.is_owner(&id("s1"), "acme") && owners.is_owner(&id("s4"), "acme"));
        assert_eq!(owners.count("acme"), 3);
        owners.forget(&id("s1"));
        assert_eq!(owners.count("acme"), 2);
        assert!(owners.bind("s5", "acme").evicted.is_empty());
    }
}
