use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD, Engine};
use http::HeaderValue;
use integrations_core::{HttpClient, JsonRequest, PluginConfig, PluginContext, PluginError, ToolError};
use serde_json::{json, Map, Value};
use url::Url;

use crate::adf;

/// Jira caps a page of `search/jql`; asking for more than this per page is pointless.
const SEARCH_PAGE_SIZE: u64 = 100;

/// The tenant's site as a base URL: scheme and authority only.
pub fn site_url(config: &PluginConfig) -> Result<Url, String> {
    let url = config.base_url("host", None)?;
    if url.path() != "/" {
        return Err("host must be the site root, e.g. https://your-site.atlassian.net".into());
    }
    Ok(url)
}

/// The config field an installer fixes when Jira refuses the credentials.
const CREDENTIAL_FIELD: &str = "api_token";

/// One client per call: the site, the Basic credentials of the installation, the host's HTTP client
/// and its page cap.
pub struct JiraClient {
    base: String,
    authorization: HeaderValue,
    http: Arc<dyn HttpClient>,
    max_pages: usize,
}

impl JiraClient {
    pub fn new(ctx: &PluginContext) -> Result<Self, ToolError> {
        let base = site_url(&ctx.config).map_err(ToolError::Misconfigured)?;
        let email = ctx
            .config
            .str("email")
            .ok_or_else(|| ToolError::Misconfigured("email is missing".into()))?;
        let token = ctx
            .config
            .secret("api_token")
            .ok_or_else(|| ToolError::Misconfigured("api_token is missing".into()))?;
        let credentials = STANDARD.encode(format!("{email}:{}", token.expose()));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| ToolError::Misconfigured("email contains characters not allowed in a header".into()))?;
        authorization.set_sensitive(true);
        Ok(Self {
            base: base.as_str().trim_end_matches('/').to_owned(),
            authorization,
            http: ctx.http.clone(),
            max_pages: ctx.max_pages(),
        })
    }

    /// `GET /rest/api/3/myself`: one cheap call proving Jira accepts the credentials.
    pub async fn check_credentials(&self) -> Result<(), PluginError> {
        self.send(JsonRequest::get(self.url("/rest/api/3/myself")?))
            .await
            .map(drop)
            .map_err(credential_refusal)
    }

    pub async fn create_issue(&self, args: &Value) -> Result<Value, ToolError> {
        let mut fields = Map::new();
        fields.insert("project".into(), json!({"key": str_arg(args, "project")?}));
        fields.insert("summary".into(), json!(str_arg(args, "summary")?));
        fields.insert(
            "issuetype".into(),
            json!({"name": args.get("issue_type").and_then(Value::as_str).unwrap_or("Task")}),
        );
        if let Some(description) = args.get("description").and_then(Value::as_str) {
            fields.insert("description".into(), adf::from_plain_text(description));
        }
        let request = JsonRequest::post(self.url("/rest/api/3/issue")?).json(&json!({"fields": fields}));
        self.send(request).await
    }

    pub async fn get_issue(&self, args: &Value) -> Result<Value, ToolError> {
        let key = str_arg(args, "issue_key")?;
        // The schema restricts keys to [A-Z0-9_-], so the key is safe as a path segment.
        let mut request = JsonRequest::get(self.url(&format!("/rest/api/3/issue/{key}"))?);
        if let Some(fields) = string_list(args, "fields") {
            request = request.query("fields", &fields.join(","));
        }
        self.send(request).await
    }

    pub async fn search_issues(&self, args: &Value) -> Result<Value, ToolError> {
        let jql = str_arg(args, "jql")?;
        // JSON Schema's "integer" admits 10.0; the schema bounds it to 1..=1000.
        let wanted = args.get("max_results").and_then(Value::as_f64).map_or(50, |n| n as u64);
        let fields = string_list(args, "fields").unwrap_or_else(|| vec!["summary".into(), "status".into()]);
        let mut issues: Vec<Value> = Vec::new();
        let mut next_page_token: Option<String> = None;
        let search = self.url("/rest/api/3/search/jql")?;
        // Jira may answer with fewer issues than asked and a token for more: follow it while issues
        // are wanted. A Jira that never sends its last page is cut off by the host's page cap (and
        // its response budget and deadline); what was gathered is returned with the token.
        for _ in 0..self.max_pages {
            let remaining = wanted - issues.len() as u64;
            let mut body = json!({"jql": jql, "maxResults": remaining.min(SEARCH_PAGE_SIZE), "fields": fields});
            if let Some(token) = &next_page_token {
                body["nextPageToken"] = json!(token);
            }
            let page = self.send(JsonRequest::post(search.clone()).json(&body)).await?;
            issues.extend(
                page.get("issues")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            let is_last = page.get("isLast").and_then(Value::as_bool) == Some(true);
            next_page_token = page
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|token| !token.is_empty() && !is_last)
                .map(str::to_owned);
            if issues.len() as u64 >= wanted || next_page_token.is_none() {
                break;
            }
        }
        issues.truncate(wanted as usize);
        let is_last = next_page_token.is_none();
        Ok(json!({"issues": issues, "is_last": is_last, "next_page_token": next_page_token}))
    }

    /// `{host}{path}`; the path is ours, so a URL that cannot be built is the host's fault.
    fn url(&self, path: &str) -> Result<Url, ToolError> {
        Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ToolError::Internal(format!("cannot build the URL of {path}: {e}")))
    }

    async fn send(&self, request: JsonRequest) -> Result<Value, ToolError> {
        let request = request.authorization(&self.authorization).build()?;
        let response = self.http.send(request).await?;
        let status = response.status();
        let parsed: Option<Value> = serde_json::from_slice(response.body()).ok();
        if status.is_success() {
            return parsed.ok_or_else(|| {
                upstream(
                    status.as_u16(),
                    "Jira answered with a body that is not JSON".into(),
                    Value::Null,
                )
            });
        }
        Err(jira_error(status.as_u16(), parsed))
    }
}

/// Credentials Jira refuses (401/403) are the installer's mistake: named as `api_token`, with
/// Jira's own message or ours when it gave none. Any other failure stays an upstream problem.
fn credential_refusal(error: ToolError) -> PluginError {
    match error {
        ToolError::Upstream { status, details, .. } if status == 401 || status == 403 => PluginError::InvalidConfig {
            field: CREDENTIAL_FIELD.into(),
            message: vendor_message(&details).unwrap_or_else(|| refused_message(status)),
        },
        other => other.into(),
    }
}

fn jira_error(status: u16, body: Option<Value>) -> ToolError {
    let body = body.unwrap_or(Value::Null);
    let error_messages = body.get("errorMessages").cloned().unwrap_or_else(|| json!([]));
    let errors = body.get("errors").cloned().unwrap_or_else(|| json!({}));
    let details = json!({"errorMessages": error_messages, "errors": errors});
    let message = vendor_message(&details).unwrap_or_else(|| format!("Jira answered HTTP {status}"));
    upstream(status, message, details)
}

/// Jira's own words from an error body `{"errorMessages":[…],"errors":{field: msg}}`, joined;
/// `None` when it said nothing (an empty or HTML body, as a 401 often is).
fn vendor_message(body: &Value) -> Option<String> {
    let mut parts: Vec<String> = body
        .get("errorMessages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    if let Some(map) = body.get("errors").and_then(Value::as_object) {
        parts.extend(
            map.iter()
                .map(|(field, message)| format!("{field}: {}", message.as_str().unwrap_or_default())),
        );
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Ours, for a refusal Jira gave no words for.
fn refused_message(status: u16) -> String {
    match status {
        401 => "Jira did not accept this email and API token (HTTP 401)".to_owned(),
        _ => format!("Jira refused access with this email and API token (HTTP {status})"),
    }
}

fn upstream(status: u16, message: String, details: Value) -> ToolError {
    ToolError::Upstream {
        status,
        message,
        details,
    }
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("{name} is required")))
}

fn string_list(args: &Value, name: &str) -> Option<Vec<String>> {
    args.get(name)?
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, body: Option<Value>) -> (String, String) {
        match credential_refusal(jira_error(status, body)) {
            PluginError::InvalidConfig { field, message } => (field, message),
            other => panic!("not a config refusal: {other}"),
        }
    }

    #[test]
    fn refused_credentials_name_api_token_with_jiras_words() {
        let body = json!({"errorMessages": ["Client must be authenticated"], "errors": {"token": "expired"}});
        assert_eq!(
            refusal(401, Some(body)),
            (
                "api_token".to_owned(),
                "Client must be authenticated; token: expired".to_owned()
            )
        );
    }

    #[test]
    fn a_refusal_without_words_gets_a_clear_message_of_ours() {
        let (field, message) = refusal(401, None);
        assert_eq!(field, "api_token");
        assert_eq!(message, "Jira did not accept this email and API token (HTTP 401)");
        let (_, message) = refusal(403, Some(json!({"errorMessages": [], "errors": {}})));
        assert!(message.contains("HTTP 403"), "{message}");
    }

    #[test]
    fn other_failures_stay_upstream_problems() {
        let error = credential_refusal(jira_error(503, Some(json!({"errorMessages": ["down"]}))));
        assert!(
            matches!(error, PluginError::Tool(ToolError::Upstream { status: 503, .. })),
            "{error:?}"
        );
    }
}
