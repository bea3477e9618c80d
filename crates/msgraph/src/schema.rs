//! The config properties every Graph connector has, so each connector's schema adds only its own.

use serde_json::{json, Map, Value};

use crate::{DEFAULT_GRAPH_BASE_URL, DEFAULT_LOGIN_BASE_URL};

/// The fields [`app_properties`] requires.
pub const REQUIRED: [&str; 3] = ["tenant_id", "client_id", "client_secret"];

/// `tenant_id`, `client_id`, `client_secret`, `client_state`, `graph_base_url`, `login_base_url`.
/// The secret goes to the login host and the tokens it buys to the Graph host, so it is bound to both.
pub fn app_properties() -> Map<String, Value> {
    let properties = json!({
        "tenant_id": {
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9.-]*$",
            "maxLength": 256,
            "description": "Directory (tenant) id, a GUID, or the tenant's domain (contoso.onmicrosoft.com)"
        },
        "client_id": {
            "type": "string",
            "pattern": "^[\\x21-\\x7E]+$",
            "maxLength": 256,
            "description": "Application (client) id of the app registration"
        },
        "client_secret": {
            "type": "string",
            "minLength": 1,
            "writeOnly": true,
            "x-bound-to": ["login_base_url", "graph_base_url"],
            "description": "Client secret (its value, not its id) of the app registration"
        },
        "client_state": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "writeOnly": true,
            "description": "The clientState given when creating Graph subscriptions; required to accept change notifications"
        },
        "graph_base_url": {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://",
            "default": DEFAULT_GRAPH_BASE_URL,
            "description": "Base URL of Microsoft Graph"
        },
        "login_base_url": {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://",
            "default": DEFAULT_LOGIN_BASE_URL,
            "description": "Base URL of the Microsoft identity platform (the token endpoint is {login_base_url}/{tenant_id}/oauth2/v2.0/token)"
        }
    });
    match properties {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A connector's config schema: the shared properties plus `own`, requiring [`REQUIRED`] and `required`.
pub fn config_schema(own: Value, required: &[&str]) -> Value {
    let mut properties = app_properties();
    if let Value::Object(own) = own {
        properties.extend(own);
    }
    let required: Vec<&str> = REQUIRED.iter().chain(required).copied().collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties
    })
}
