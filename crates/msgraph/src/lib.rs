//! What the Microsoft Graph connectors (`teams`, `sharepoint`) share, written once: reading the
//! Graph and login base URLs and the app credentials from config, the OAuth2 token requests the
//! host's token manager serves, authorised Graph calls that retry once with a fresh token after a
//! 401, Graph's error body mapped to [`ToolError::Upstream`](integrations_core::ToolError), the
//! install-time credential check, and change-notification webhooks.
//!
//! Not a plugin: it registers nothing and is no cargo feature of the host. Plugins never talk to
//! the token endpoint themselves; they describe the credential and ask `ctx.tokens`.

mod client;
mod credentials;
mod path;
pub mod schema;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;
mod webhook;

pub use client::{graph_error, GraphClient};
pub use credentials::{check_credentials, refused_field};
pub use path::{id_segment, item_path};
pub use settings::{GraphSettings, DEFAULT_GRAPH_BASE_URL, DEFAULT_LOGIN_BASE_URL, GRAPH_APP_SCOPE};
pub use webhook::{
    normalize_change_notifications, validation_handshake, verify_change_notification, MAX_VALIDATION_TOKEN_BYTES,
};
