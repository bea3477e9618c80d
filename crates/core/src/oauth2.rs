//! OAuth2 access tokens as a plugin asks the host for them. The host's token manager caches them,
//! fetches one at a time per credential, keeps rotated refresh tokens, and marks an installation
//! whose refresh token stopped working; a plugin only says which credential it needs.

use async_trait::async_trait;

use crate::{HttpError, Secret};

/// Which OAuth2 grant obtains the access token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TokenGrant {
    /// `grant_type=client_credentials`: an app-only token.
    ClientCredentials,
    /// `grant_type=refresh_token`: a delegated token. The refresh token is the installation's secret
    /// field `secret_field`; the host reads its current value itself, because the identity platform
    /// may rotate it on any refresh and the host stores the new one.
    RefreshToken {
        /// The config field holding the refresh token (`refresh_token`).
        secret_field: String,
    },
}

/// One credential at one token endpoint.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The token endpoint (`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`).
    pub token_url: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// Space-separated scopes (`https://graph.microsoft.com/.default`).
    pub scope: String,
    /// How the token is obtained.
    pub grant: TokenGrant,
}

/// Why no access token could be had.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused the request (`invalid_client`, `unauthorized_client`, …).
    #[error("token endpoint answered {status}: {code}: {description}")]
    Refused {
        /// HTTP status of the token endpoint's answer.
        status: u16,
        /// OAuth2 `error` code.
        code: String,
        /// OAuth2 `error_description`, the vendor's own words.
        description: String,
    },
    /// The refresh token no longer works (`invalid_grant`): someone must authorise again; the host
    /// has marked the installation accordingly.
    #[error("the installation must be authorised again: {0}")]
    ReauthorizationRequired(String),
    /// The token endpoint answered something that is not a token response.
    #[error("token endpoint answered {status} with an unusable body")]
    Malformed {
        /// HTTP status of the answer.
        status: u16,
    },
    /// The token endpoint could not be reached, or the destination was refused.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The host could not read or keep the credential (storage failure, refresh token not set).
    #[error("{0}")]
    Unavailable(String),
}

/// The host's token manager, as a plugin sees it for one call.
#[async_trait]
pub trait TokenProvider: Send + Sync {
    /// A valid access token for `request`, from the cache when one is still good.
    async fn access_token(&self, request: &TokenRequest) -> Result<Secret, TokenError>;

    /// Forgets `rejected` (the API answered 401 with it), so the next [`Self::access_token`] fetches
    /// a new one; a token already replaced by another call is left alone.
    fn invalidate(&self, request: &TokenRequest, rejected: &Secret);
}

/// For contexts without OAuth2 (tests of plugins that use none): every request fails.
#[derive(Debug, Default)]
pub struct NoTokenProvider;

#[async_trait]
impl TokenProvider for NoTokenProvider {
    async fn access_token(&self, _request: &TokenRequest) -> Result<Secret, TokenError> {
        Err(TokenError::Unavailable(
            "this host offers no OAuth2 token manager".into(),
        ))
    }

    fn invalidate(&self, _request: &TokenRequest, _rejected: &Secret) {}
}
