//! The host's OAuth2 token manager (Microsoft identity platform style token endpoints).
//!
//! Plugins ask for a token through [`integrations_core::TokenProvider`]; the manager
//! - caches access tokens per (tenant, plugin, credential) until shortly before `expires_in`;
//! - fetches at most one token at a time per credential, however many calls wait for it;
//! - stores a rotated refresh token (through the host's [`RefreshTokenVault`], encrypted) before the
//!   access token that came with it is used, and runs each fetch to its end even when the call that
//!   started it goes away, so neither a crash nor a cancelled call loses a rotation;
//! - marks the installation as needing re-authorisation when a refresh fails with `invalid_grant`.

mod endpoint;
mod manager;

pub use manager::{RefreshTokenVault, StoredRefreshToken, TokenManager, VaultError};
