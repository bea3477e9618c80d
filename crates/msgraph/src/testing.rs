//! Test doubles for the Graph connectors' own tests (cargo feature `testing`): a token provider
//! that hands out fixed tokens and records what it was asked, and an [`HttpClient`] over reqwest
//! for wiremock servers on loopback. Never part of the host.

use std::sync::Mutex;

use integrations_core::{Secret, TokenError, TokenGrant, TokenProvider, TokenRequest};

/// Hands out `app-token-1` for client credentials and `user-token-1` for a refresh grant; after
/// each invalidation of a grant's token, the next number. Or refuses every request, as the
/// identity platform refuses a bad credential.
#[derive(Default)]
pub struct RecordingTokens {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    app_generation: u32,
    user_generation: u32,
    requests: Vec<TokenRequest>,
    invalidated: Vec<(TokenGrant, String)>,
    refusal: Option<(u16, String, String)>,
}

impl RecordingTokens {
    /// A provider that grants every request.
    pub fn new() -> Self {
        Self::default()
    }

    /// A provider that refuses every request with this OAuth2 `error` and `error_description`.
    pub fn refusing(status: u16, code: &str, description: &str) -> Self {
        let tokens = Self::default();
        tokens.lock().refusal = Some((status, code.to_owned(), description.to_owned()));
        tokens
    }

    /// Every token request made, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.lock().requests.clone()
    }

    /// Every invalidation: the grant and the rejected token.
    pub fn invalidated(&self) -> Vec<(TokenGrant, String)> {
        self.lock().invalidated.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl TokenProvider for RecordingTokens {
    async fn access_token(&self, request: &TokenRequest) -> Result<Secret, TokenError> {
        let mut state = self.lock();
        state.requests.push(request.clone());
        if let Some((status, code, description)) = state.refusal.clone() {
            return Err(TokenError::Refused {
                status,
                code,
                description,
            });
        }
        Ok(Secret::new(match request.grant {
            TokenGrant::ClientCredentials => format!("app-token-{}", state.app_generation + 1),
            TokenGrant::RefreshToken { .. } => format!("user-token-{}", state.user_generation + 1),
        }))
    }

    fn invalidate(&self, request: &TokenRequest, rejected: &Secret) {
        let mut state = self.lock();
        match request.grant {
            TokenGrant::ClientCredentials => state.app_generation += 1,
            TokenGrant::RefreshToken { .. } => state.user_generation += 1,
        }
        state
            .invalidated
            .push((request.grant.clone(), rejected.expose().to_owned()));
    }
}

pub use integrations_testing::ReqwestHttpClient;
