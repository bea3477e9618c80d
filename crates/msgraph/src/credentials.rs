//! The credential check at install and configure: the base URLs may be called, and the identity
//! platform grants the app a client-credentials token. A refusal is the installer's mistake and
//! names the config field the identity platform's `AADSTS` code points at.

use integrations_core::{PluginContext, PluginError, TokenError};

use crate::GraphSettings;

/// Checks `login_base_url` and `graph_base_url` against the host's outbound policy, then asks the
/// host's token manager for one client-credentials token with the config being installed.
pub async fn check_credentials(ctx: &PluginContext) -> Result<(), PluginError> {
    let login = GraphSettings::login_base_url(&ctx.config).map(String::from);
    ctx.check_destination_of("login_base_url", login).await?;
    let graph = GraphSettings::graph_base_url(&ctx.config).map(String::from);
    ctx.check_destination_of("graph_base_url", graph).await?;
    let settings = GraphSettings::from_config(&ctx.config)?;
    match ctx.tokens.access_token(&settings.app_token_request()).await {
        Ok(_) => Ok(()),
        Err(TokenError::Refused { code, description, .. }) => Err(PluginError::InvalidConfig {
            field: refused_field(&description).to_owned(),
            message: format!("{code}: {}", description.trim()),
        }),
        Err(other) => Err(PluginError::Tool(other.into())),
    }
}

/// The config field a token-endpoint refusal blames, from the `AADSTS` code in its
/// `error_description`: the tenant (`AADSTS90002` not found, `AADSTS900023` not a valid tenant),
/// the application (`AADSTS700016` not found in the directory), else the secret
/// (`AADSTS7000215` invalid, `AADSTS7000222` expired, a plain `invalid_client`, anything unknown).
pub fn refused_field(description: &str) -> &'static str {
    match aadsts_code(description) {
        Some("90002" | "900023") => "tenant_id",
        Some("700016") => "client_id",
        _ => "client_secret",
    }
}

/// The digits after the first `AADSTS` in the description.
fn aadsts_code(description: &str) -> Option<&str> {
    let (_, rest) = description.split_once("AADSTS")?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_name_the_field_they_blame() {
        let cases = [
            ("AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1", "client_secret"),
            ("AADSTS7000222: The provided client secret keys are expired.", "client_secret"),
            ("AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.", "client_id"),
            ("AADSTS90002: Tenant 'nope' not found.", "tenant_id"),
            ("AADSTS900023: Specified tenant identifier 'bad!' is neither a valid DNS name, nor a valid external domain.", "tenant_id"),
            ("AADSTS9000231: something newer", "client_secret"),
            ("no code at all", "client_secret"),
            ("AADSTS", "client_secret"),
        ];
        for (description, field) in cases {
            assert_eq!(refused_field(description), field, "{description}");
        }
    }
}
