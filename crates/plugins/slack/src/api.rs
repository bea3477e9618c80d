use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use integrations_core::{HttpClient, HttpResponse, JsonRequest, PluginConfig, PluginContext, PluginError, ToolError};
use serde_json::{json, Value};
use url::Url;

/// Where the Web API lives unless the installation says otherwise.
pub const DEFAULT_API_BASE_URL: &str = "https://slack.com/api";

/// The content type of a JSON body: without the charset Slack answers with a `missing_charset`
/// warning.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Slack recommends asking `conversations.list` for no more than 200 channels a page.
const CHANNELS_PAGE_SIZE: u64 = 200;

/// The installation's Web API base URL (`api_base_url`, else Slack's own).
pub fn api_base_url(config: &PluginConfig) -> Result<Url, String> {
    config.base_url("api_base_url", Some(DEFAULT_API_BASE_URL))
}

/// One client per call: the Web API base, the bot token, the host's HTTP client and its page cap.
pub struct SlackClient {
    base: String,
    authorization: HeaderValue,
    http: Arc<dyn HttpClient>,
    max_pages: usize,
}

impl SlackClient {
    pub fn new(ctx: &PluginContext) -> Result<Self, ToolError> {
        let base = api_base_url(&ctx.config).map_err(ToolError::Misconfigured)?;
        let token = ctx
            .config
            .secret("bot_token")
            .ok_or_else(|| ToolError::Misconfigured("bot_token is missing".into()))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| ToolError::Misconfigured("bot_token contains characters not allowed in a header".into()))?;
        authorization.set_sensitive(true);
        Ok(Self {
            base: base.as_str().trim_end_matches('/').to_owned(),
            authorization,
            http: ctx.http.clone(),
            max_pages: ctx.max_pages(),
        })
    }

    /// `auth.test`: a token Slack refuses is the installer's mistake, named as `bot_token`.
    pub async fn check_credentials(&self) -> Result<(), PluginError> {
        match self.call(JsonRequest::post(self.method_url("auth.test")?)).await {
            Ok(_) => Ok(()),
            Err(ToolError::Upstream { status, message, .. }) if (200..300).contains(&status) => {
                Err(PluginError::InvalidConfig {
                    field: "bot_token".into(),
                    message,
                })
            }
            Err(other) => Err(other.into()),
        }
    }

    pub async fn send_message(&self, args: &Value) -> Result<Value, ToolError> {
        let body = json!({"channel": str_arg(args, "channel")?, "text": str_arg(args, "text")?});
        let request = JsonRequest::post(self.method_url("chat.postMessage")?).json_as(JSON_UTF8, &body);
        self.call(request).await
    }

    pub async fn list_channels(&self, args: &Value) -> Result<Value, ToolError> {
        // JSON Schema's "integer" admits 10.0; the schema bounds it to 1..=1000.
        let wanted = args.get("limit").and_then(Value::as_f64).map_or(100, |n| n as u64);
        let types = args.get("types").and_then(Value::as_str);
        let exclude_archived = args.get("exclude_archived").and_then(Value::as_bool);
        let mut channels: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        // Slack may return fewer channels than asked, none even, with a cursor for more: follow it
        // while channels are wanted. A cursor handed out forever is cut off by the host's page cap
        // (and its response budget and deadline); what was gathered is returned with the cursor.
        for _ in 0..self.max_pages {
            let remaining = wanted - channels.len() as u64;
            let mut request = JsonRequest::get(self.method_url("conversations.list")?);
            if let Some(types) = types {
                request = request.query("types", types);
            }
            request = request.query("limit", &remaining.min(CHANNELS_PAGE_SIZE).to_string());
            if let Some(exclude) = exclude_archived {
                request = request.query("exclude_archived", if exclude { "true" } else { "false" });
            }
            if let Some(cursor) = &cursor {
                request = request.query("cursor", cursor);
            }
            let page = self.call(request).await?;
            channels.extend(
                page.get("channels")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(channel_summary),
            );
            cursor = page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            if channels.len() as u64 >= wanted || cursor.is_none() {
                break;
            }
        }
        channels.truncate(wanted as usize);
        Ok(json!({"channels": channels, "next_cursor": cursor}))
    }

    fn method_url(&self, method: &str) -> Result<Url, ToolError> {
        Url::parse(&format!("{}/{method}", self.base))
            .map_err(|e| ToolError::Internal(format!("cannot build the URL of {method}: {e}")))
    }

    async fn call(&self, request: JsonRequest) -> Result<Value, ToolError> {
        let request = request.authorization(&self.authorization).build()?;
        let response = self.http.send(request).await?;
        let parsed: Option<Value> = serde_json::from_slice(response.body()).ok();
        match parsed {
            Some(body) if response.status().is_success() && body.get("ok") == Some(&Value::Bool(true)) => Ok(body),
            parsed => Err(slack_error(&response, parsed)),
        }
    }
}

/// Maps every failed Web API answer: `ok:false` (Slack's usual way, HTTP 200), a rate limit (429
/// with `Retry-After`), or any other status or non-JSON body.
fn slack_error(response: &HttpResponse, body: Option<Value>) -> ToolError {
    let status = response.status();
    let code = body
        .as_ref()
        .and_then(|b| b.get("error"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut details = json!({"error": code});
    if status == StatusCode::TOO_MANY_REQUESTS {
        details["retry_after"] = json!(integrations_core::retry_after_secs(response));
    }
    let message = match (&code, &body) {
        (Some(code), _) => code.clone(),
        (None, _) if status == StatusCode::TOO_MANY_REQUESTS => "rate limited".to_owned(),
        (None, None) if status.is_success() => "Slack answered with a body that is not JSON".to_owned(),
        (None, _) => format!("Slack answered HTTP {} without an error code", status.as_u16()),
    };
    ToolError::Upstream {
        status: status.as_u16(),
        message,
        details,
    }
}

/// The fields of a channel the tool promises; Slack sends dozens more.
fn channel_summary(channel: &Value) -> Value {
    let field = |name: &str| channel.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "id": field("id"),
        "name": field("name"),
        "is_private": field("is_private"),
        "is_archived": field("is_archived"),
    })
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("{name} is required")))
}
