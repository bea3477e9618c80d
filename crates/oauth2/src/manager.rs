//! The cache of access tokens, its single-flight fetches, and the per-call provider plugins see.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::{HttpClient, PluginConfig, Secret, TokenError, TokenGrant, TokenProvider, TokenRequest};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::endpoint::{self, Refusal};

/// A token is renewed this long before it expires, at most (a tenth of its lifetime for short ones),
/// so a call that starts with it does not reach the API with an expired token.
const MAX_RENEWAL_MARGIN: Duration = Duration::from_secs(300);

/// The longest a token is kept, whatever `expires_in` says (an endpoint may claim centuries).
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Above this many credentials, forgetting the unused ones is worth a scan on each new one.
const PRUNE_ABOVE: usize = 1024;

/// Why the host's vault failed (a storage or decryption error, already logged there).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VaultError(pub String);

/// A refresh token as the vault holds it, with the version it was read at (the stored ciphertext):
/// writes compare it, so a rotation never overwrites a token someone configured meanwhile.
pub struct StoredRefreshToken {
    /// The token.
    pub token: Secret,
    /// Opaque version of the stored value.
    pub version: Vec<u8>,
}

/// Where the host keeps refresh tokens, encrypted, as secret fields of the installation.
#[async_trait]
pub trait RefreshTokenVault: Send + Sync + 'static {
    /// The current refresh token of the installation's secret field `field`.
    async fn load(&self, tenant: &str, plugin: &str, field: &str) -> Result<Option<StoredRefreshToken>, VaultError>;

    /// Replaces the token read at `version` with `rotated`; `Ok(false)` when it changed meanwhile.
    async fn replace(
        &self,
        tenant: &str,
        plugin: &str,
        field: &str,
        version: &[u8],
        rotated: &Secret,
    ) -> Result<bool, VaultError>;

    /// Records that the installation must be authorised again, unless the token read at `version`
    /// has been replaced meanwhile (a new authorisation already arrived).
    async fn mark_reauthorization_required(
        &self,
        tenant: &str,
        plugin: &str,
        field: &str,
        version: &[u8],
        reason: &str,
    ) -> Result<(), VaultError>;
}

/// The host's token manager; one per process.
pub struct TokenManager {
    vault: Arc<dyn RefreshTokenVault>,
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
}

/// One credential of one installation: the tenant, the plugin, and a digest of everything that
/// makes the credential (endpoint, client, secret, scope, grant, and the configured refresh token),
/// so that a reconfigured credential never receives a token issued to the old one.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    tenant: String,
    plugin: String,
    credential: [u8; 32],
}

/// The outcome of a fetch, once it has one.
type FetchOutcome = Option<Result<Secret, TokenError>>;

#[derive(Default)]
struct Slot {
    cached: Mutex<Option<CachedToken>>,
    /// The fetch under way (or the last one, with its outcome): every call that needs a token
    /// while it runs joins it, whoever started it and whether or not that caller is still there,
    /// so a refresh token is never presented twice at once.
    fetching: Mutex<Option<watch::Receiver<FetchOutcome>>>,
}

#[derive(Clone)]
struct CachedToken {
    value: Secret,
    renew_at: Instant,
}

impl TokenManager {
    /// A manager keeping refresh tokens in `vault`.
    pub fn new(vault: Arc<dyn RefreshTokenVault>) -> Arc<Self> {
        Arc::new(Self {
            vault,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// What one call of `plugin` for `tenant` sees: tokens fetched over that call's outbound client
    /// (the tenant's SSRF rules and the call's response budget apply to the token endpoint too).
    pub fn provider(
        self: &Arc<Self>,
        tenant: &str,
        plugin: &str,
        config: Arc<PluginConfig>,
        http: Arc<dyn HttpClient>,
    ) -> Arc<dyn TokenProvider> {
        Arc::new(CallTokens {
            manager: self.clone(),
            tenant: tenant.to_owned(),
            plugin: plugin.to_owned(),
            config,
            http,
        })
    }

    fn slot(&self, key: &SlotKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= PRUNE_ABOVE {
            let now = Instant::now();
            // Only slots nobody holds and whose token is gone or stale can go.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.valid_token(now).is_some());
        }
        slots.entry(key.clone()).or_default().clone()
    }

    #[cfg(test)]
    fn slot_count(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or_default()
    }
}

impl Slot {
    fn valid_token(&self, now: Instant) -> Option<Secret> {
        let cached = self.cached.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cached.as_ref().filter(|t| now < t.renew_at).map(|t| t.value.clone())
    }
}

struct CallTokens {
    manager: Arc<TokenManager>,
    tenant: String,
    plugin: String,
    config: Arc<PluginConfig>,
    http: Arc<dyn HttpClient>,
}

impl CallTokens {
    fn key(&self, request: &TokenRequest) -> SlotKey {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut part = |bytes: &[u8]| {
            // Length-prefixed, so that no two different credentials hash the same input.
            digest.update(&(bytes.len() as u64).to_be_bytes());
            digest.update(bytes);
        };
        part(request.token_url.as_bytes());
        part(request.client_id.as_bytes());
        part(request.client_secret.expose().as_bytes());
        part(request.scope.as_bytes());
        match &request.grant {
            TokenGrant::ClientCredentials => part(b"client_credentials"),
            TokenGrant::RefreshToken { secret_field } => {
                part(b"refresh_token");
                part(secret_field.as_bytes());
                let configured = self.config.secret(secret_field).map(Secret::expose).unwrap_or_default();
                part(configured.as_bytes());
            }
        }
        let mut credential = [0u8; 32];
        credential.copy_from_slice(digest.finish().as_ref());
        SlotKey {
            tenant: self.tenant.clone(),
            plugin: self.plugin.clone(),
            credential,
        }
    }

    /// Starts a fetch on a task of its own, which runs to its end (a rotated refresh token must be
    /// stored even if every call waiting for it is cancelled) and caches what it got.
    fn start_fetch(&self, slot: Arc<Slot>, request: &TokenRequest) -> watch::Receiver<FetchOutcome> {
        let (finished, outcome) = watch::channel(None);
        let exchange = fetch(
            self.manager.vault.clone(),
            self.http.clone(),
            self.tenant.clone(),
            self.plugin.clone(),
            request.clone(),
        );
        tokio::spawn(async move {
            let result = match exchange.await {
                Ok(token) => {
                    let value = token.value.clone();
                    *slot.cached.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(token);
                    Ok(value)
                }
                Err(error) => Err(error),
            };
            finished.send_replace(Some(result));
        });
        outcome
    }
}

/// A fetch whose task ended without an outcome (it panicked, or the runtime is shutting down). The
/// cause is in the log; nothing of it reaches the tenant.
fn fetch_lost() -> TokenError {
    tracing::error!("a token fetch ended without an outcome");
    TokenError::Unavailable("the token request did not complete".into())
}

#[async_trait]
impl TokenProvider for CallTokens {
    async fn access_token(&self, request: &TokenRequest) -> Result<Secret, TokenError> {
        let slot = self.manager.slot(&self.key(request));
        if let Some(token) = slot.valid_token(Instant::now()) {
            return Ok(token);
        }
        let mut outcome = {
            let mut fetching = slot.fetching.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Checked again under the lock: a fetch may have cached a token since.
            if let Some(token) = slot.valid_token(Instant::now()) {
                return Ok(token);
            }
            match fetching.as_ref().filter(|running| running.borrow().is_none()) {
                // A fetch under way answers this call too, its failure included: a burst of calls
                // against a refused credential costs the vendor one request, not one each.
                Some(running) => running.clone(),
                None => {
                    let started = self.start_fetch(slot.clone(), request);
                    *fetching = Some(started.clone());
                    started
                }
            }
        };
        let finished = match outcome.wait_for(Option::is_some).await {
            Ok(finished) => finished.clone(),
            Err(_) => None,
        };
        finished.unwrap_or_else(|| Err(fetch_lost()))
    }

    fn invalidate(&self, request: &TokenRequest, rejected: &Secret) {
        let slot = self.manager.slot(&self.key(request));
        let mut cached = slot.cached.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cached.as_ref().is_some_and(|t| &t.value == rejected) {
            *cached = None;
        }
    }
}

/// One exchange with the token endpoint, and what it means for the stored refresh token.
async fn fetch(
    vault: Arc<dyn RefreshTokenVault>,
    http: Arc<dyn HttpClient>,
    tenant: String,
    plugin: String,
    request: TokenRequest,
) -> Result<CachedToken, TokenError> {
    let started = Instant::now();
    let stored = match &request.grant {
        TokenGrant::ClientCredentials => None,
        TokenGrant::RefreshToken { secret_field } => {
            let stored = vault
                .load(&tenant, &plugin, secret_field)
                .await
                .map_err(|e| TokenError::Unavailable(format!("could not read {secret_field}: {}", e.0)))?
                .ok_or_else(|| TokenError::Unavailable(format!("{secret_field} is not set")))?;
            Some((secret_field.as_str(), stored))
        }
    };
    let issued = endpoint::exchange(http.as_ref(), &request, stored.as_ref().map(|(_, s)| &s.token)).await;
    let issued = match (issued, &stored) {
        (Ok(issued), _) => issued,
        (Err(Refusal::InvalidGrant(reason)), Some((field, stored))) => {
            tracing::warn!(%tenant, %plugin, field, "refresh token refused; the installation needs re-authorisation");
            if let Err(error) = vault
                .mark_reauthorization_required(&tenant, &plugin, field, &stored.version, &reason)
                .await
            {
                tracing::error!(%tenant, %plugin, error = %error.0, "could not mark the installation for re-authorisation");
            }
            return Err(TokenError::ReauthorizationRequired(reason));
        }
        (Err(Refusal::InvalidGrant(description)), None) => {
            return Err(TokenError::Refused {
                status: 400,
                code: "invalid_grant".into(),
                description,
            })
        }
        (Err(Refusal::Other(error)), _) => return Err(error),
    };
    if let (Some(rotated), Some((field, stored))) = (&issued.refresh_token, &stored) {
        if rotated != &stored.token {
            // Stored before the access token is handed out: if we crash after this point the
            // new refresh token is already safe; if storing fails, the token is not used.
            let replaced = vault
                .replace(&tenant, &plugin, field, &stored.version, rotated)
                .await
                .map_err(|e| TokenError::Unavailable(format!("could not store the rotated {field}: {}", e.0)))?;
            if !replaced {
                return Err(TokenError::Unavailable(format!(
                    "{field} was reconfigured while it was being refreshed; try again"
                )));
            }
            tracing::info!(%tenant, %plugin, field, "stored a rotated refresh token");
        }
    }
    let lifetime = issued.lifetime.min(MAX_LIFETIME);
    let margin = (lifetime / 10).min(MAX_RENEWAL_MARGIN);
    Ok(CachedToken {
        value: issued.access_token,
        renew_at: started + lifetime.saturating_sub(margin),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoVault;

    #[async_trait]
    impl RefreshTokenVault for NoVault {
        async fn load(&self, _: &str, _: &str, _: &str) -> Result<Option<StoredRefreshToken>, VaultError> {
            Ok(None)
        }
        async fn replace(&self, _: &str, _: &str, _: &str, _: &[u8], _: &Secret) -> Result<bool, VaultError> {
            Ok(false)
        }
        async fn mark_reauthorization_required(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &[u8],
            _: &str,
        ) -> Result<(), VaultError> {
            Ok(())
        }
    }

    struct NoHttp;

    #[async_trait]
    impl HttpClient for NoHttp {
        async fn send(
            &self,
            _: integrations_core::HttpRequest,
        ) -> Result<integrations_core::HttpResponse, integrations_core::HttpError> {
            Err(integrations_core::HttpError::Refused("no network in this test".into()))
        }
        async fn check_destination(&self, _: &str) -> Result<(), integrations_core::HttpError> {
            Ok(())
        }
    }

    #[test]
    fn credentials_without_a_live_token_are_forgotten_once_there_are_many() {
        let manager = TokenManager::new(Arc::new(NoVault));
        let tokens = manager.provider("t", "p", Arc::new(PluginConfig::default()), Arc::new(NoHttp));
        for client in 0..(PRUNE_ABOVE + 10) {
            let request = TokenRequest {
                token_url: "https://login.example/t/oauth2/v2.0/token".into(),
                client_id: format!("client-{client}"),
                client_secret: Secret::new("s"),
                scope: "s".into(),
                grant: TokenGrant::ClientCredentials,
            };
            tokens.invalidate(&request, &Secret::new("x"));
        }
        assert!(
            manager.slot_count() <= PRUNE_ABOVE,
            "{} slots kept",
            manager.slot_count()
        );
    }
}
