//! The installation's Graph settings: where Graph and the identity platform live, and the app
//! credential the host's token manager exchanges for access tokens.

use integrations_core::{PluginConfig, PluginError, Secret, TokenGrant, TokenRequest, ToolError};
use url::Url;

use crate::path::id_segment;

/// Where Microsoft Graph lives unless the installation says otherwise.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.microsoft.com";
/// Where the Microsoft identity platform (the token endpoint) lives unless the installation says otherwise.
pub const DEFAULT_LOGIN_BASE_URL: &str = "https://login.microsoftonline.com";
/// The client-credentials scope: every application permission the app has been granted on Graph.
pub const GRAPH_APP_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The installation's Graph base URL, app credential and token endpoint, read once per call.
#[derive(Clone, Debug)]
pub struct GraphSettings {
    graph_base: Url,
    token_url: String,
    client_id: String,
    client_secret: Secret,
}

impl GraphSettings {
    /// `graph_base_url`, else Graph's own.
    pub fn graph_base_url(config: &PluginConfig) -> Result<Url, String> {
        base_url(config, "graph_base_url", DEFAULT_GRAPH_BASE_URL)
    }

    /// `login_base_url`, else the identity platform's own.
    pub fn login_base_url(config: &PluginConfig) -> Result<Url, String> {
        base_url(config, "login_base_url", DEFAULT_LOGIN_BASE_URL)
    }

    /// Reads `graph_base_url`, `login_base_url`, `tenant_id`, `client_id` and `client_secret`; a
    /// missing or unusable one is named.
    pub fn from_config(config: &PluginConfig) -> Result<Self, PluginError> {
        let invalid = |field: &str, message: String| PluginError::InvalidConfig {
            field: field.to_owned(),
            message,
        };
        let graph_base = Self::graph_base_url(config).map_err(|m| invalid("graph_base_url", m))?;
        let login_base = Self::login_base_url(config).map_err(|m| invalid("login_base_url", m))?;
        let required = |field: &str| {
            config
                .str(field)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| invalid(field, format!("{field} is required")))
        };
        let tenant = id_segment(required("tenant_id")?).map_err(|e| invalid("tenant_id", e))?;
        let client_id = required("client_id")?.to_owned();
        let client_secret = config
            .secret("client_secret")
            .cloned()
            .ok_or_else(|| invalid("client_secret", "client_secret is required".into()))?;
        Ok(Self {
            token_url: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                login_base.as_str().trim_end_matches('/')
            ),
            graph_base,
            client_id,
            client_secret,
        })
    }

    /// The Graph base URL requests go to; `@odata.nextLink` is followed only on its origin.
    pub fn graph_base(&self) -> &Url {
        &self.graph_base
    }

    /// The app-only credential: `grant_type=client_credentials` with scope `.default`.
    pub fn app_token_request(&self) -> TokenRequest {
        self.token_request(GRAPH_APP_SCOPE, TokenGrant::ClientCredentials)
    }

    /// A delegated credential: the refresh token in secret field `secret_field`, for `scope`.
    pub fn delegated_token_request(&self, secret_field: &str, scope: &str) -> TokenRequest {
        self.token_request(
            scope,
            TokenGrant::RefreshToken {
                secret_field: secret_field.to_owned(),
            },
        )
    }

    /// `{graph_base_url}/{path}`, where `path` is already made of encoded segments (see
    /// [`id_segment`] and [`item_path`](crate::item_path)), e.g. `v1.0/teams/{id}/channels`.
    pub fn graph_url(&self, path: &str) -> Result<Url, ToolError> {
        let raw = format!("{}/{path}", self.graph_base.as_str().trim_end_matches('/'));
        Url::parse(&raw).map_err(|e| ToolError::Internal(format!("cannot build a Graph URL: {e}")))
    }

    fn token_request(&self, scope: &str, grant: TokenGrant) -> TokenRequest {
        TokenRequest {
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            scope: scope.to_owned(),
            grant,
        }
    }
}

/// A tenant-supplied base URL, checked as every connector checks one.
fn base_url(config: &PluginConfig, field: &str, default: &str) -> Result<Url, String> {
    config.base_url(field, Some(default))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Map, Value};

    use super::*;

    fn config(values: Value) -> PluginConfig {
        let Value::Object(values) = values else { unreachable!() };
        let mut secrets = BTreeMap::new();
        secrets.insert("client_secret".to_owned(), Secret::new("s3cret"));
        PluginConfig::new(values, secrets)
    }

    #[test]
    fn token_url_and_requests_follow_the_identity_platform() {
        let settings = GraphSettings::from_config(&config(
            json!({"tenant_id": "contoso.onmicrosoft.com", "client_id": "app"}),
        ))
        .unwrap();
        let app = settings.app_token_request();
        assert_eq!(
            app.token_url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(app.scope, "https://graph.microsoft.com/.default");
        assert_eq!(app.grant, TokenGrant::ClientCredentials);
        assert_eq!(app.client_secret.expose(), "s3cret");
        let delegated = settings.delegated_token_request("refresh_token", "scope-a offline_access");
        assert_eq!(
            delegated.grant,
            TokenGrant::RefreshToken {
                secret_field: "refresh_token".into()
            }
        );
        assert_eq!(delegated.token_url, app.token_url);
        assert_eq!(
            settings.graph_url("v1.0/teams").unwrap().as_str(),
            "https://graph.microsoft.com/v1.0/teams"
        );
    }

    #[test]
    fn base_urls_may_be_overridden_and_are_checked() {
        let settings = GraphSettings::from_config(&config(json!({
            "tenant_id": "t", "client_id": "c",
            "graph_base_url": "http://127.0.0.1:9/", "login_base_url": "http://127.0.0.1:8"
        })))
        .unwrap();
        assert_eq!(
            settings.app_token_request().token_url,
            "http://127.0.0.1:8/t/oauth2/v2.0/token"
        );
        assert_eq!(
            settings.graph_url("v1.0/x").unwrap().as_str(),
            "http://127.0.0.1:9/v1.0/x"
        );
        for (field, bad) in [
            ("graph_base_url", "ftp://graph"),
            ("login_base_url", "https://login?x=1"),
            ("graph_base_url", "not a url"),
        ] {
            let error = GraphSettings::from_config(&config(json!({"tenant_id": "t", "client_id": "c", field: bad})))
                .unwrap_err();
            assert!(matches!(error, PluginError::InvalidConfig { field: f, .. } if f == field));
        }
    }

    #[test]
    fn missing_or_unusable_fields_are_named() {
        let cases = [
            (json!({"client_id": "c"}), "tenant_id"),
            (json!({"tenant_id": "..", "client_id": "c"}), "tenant_id"),
            (json!({"tenant_id": "t"}), "client_id"),
        ];
        for (values, field) in cases {
            let error = GraphSettings::from_config(&config(values)).unwrap_err();
            assert!(
                matches!(&error, PluginError::InvalidConfig { field: f, .. } if f == field),
                "{error:?}"
            );
        }
        let no_secret = PluginConfig::new(
            Map::from_iter([("tenant_id".into(), json!("t")), ("client_id".into(), json!("c"))]),
            BTreeMap::new(),
        );
        assert!(matches!(
            GraphSettings::from_config(&no_secret),
            Err(PluginError::InvalidConfig { field, .. }) if field == "client_secret"
        ));
    }
}
