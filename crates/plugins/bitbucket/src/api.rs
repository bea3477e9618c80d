use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD, Engine};
use http::{HeaderValue, StatusCode};
use integrations_core::{HttpClient, HttpResponse, JsonRequest, PluginConfig, PluginContext, PluginError, ToolError};
use serde_json::{json, Value};
use url::Url;

/// Where the REST 2.0 API lives unless the installation says otherwise.
pub const DEFAULT_API_BASE_URL: &str = "https://api.bitbucket.org/2.0";

/// Bitbucket's largest `pagelen` for pull requests.
const PULL_REQUESTS_PAGE_SIZE: u64 = 50;

/// The installation's API base URL (`api_base_url`, else Bitbucket's own).
pub fn api_base_url(config: &PluginConfig) -> Result<Url, String> {
    config.base_url("api_base_url", Some(DEFAULT_API_BASE_URL))
}

/// The one credential form an installation uses, and the config field that names it.
struct Credentials {
    authorization: HeaderValue,
    field: &'static str,
}

/// `access_token` (Bearer) or `email` + `api_token` (Basic): exactly one of the two forms.
fn credentials(config: &PluginConfig) -> Result<Credentials, PluginError> {
    let invalid = |field: &str, message: &str| PluginError::InvalidConfig {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let access_token = config.secret("access_token");
    let api_token = config.secret("api_token");
    let email = config.str("email");
    let (value, field) = match (access_token, email, api_token) {
        (Some(token), None, None) => (format!("Bearer {}", token.expose()), "access_token"),
        (None, Some(email), Some(token)) => (
            format!("Basic {}", STANDARD.encode(format!("{email}:{}", token.expose()))),
            "api_token",
        ),
        (Some(_), _, _) => {
            return Err(invalid(
                "access_token",
                "give either access_token or email and api_token, not both",
            ))
        }
        (None, None, Some(_)) => return Err(invalid("email", "api_token needs the email of its Atlassian account")),
        (None, Some(_), None) => return Err(invalid("api_token", "email needs an api_token")),
        (None, None, None) => {
            return Err(invalid(
                "access_token",
                "give an access_token, or an email and api_token",
            ))
        }
    };
    let mut authorization =
        HeaderValue::from_str(&value).map_err(|_| invalid(field, "contains characters not allowed in a header"))?;
    authorization.set_sensitive(true);
    Ok(Credentials { authorization, field })
}

/// One client per call: the base URL and credentials of the installation, the host's HTTP client
/// and its page cap.
pub struct BitbucketClient {
    base: Url,
    workspace: String,
    credentials: Credentials,
    http: Arc<dyn HttpClient>,
    max_pages: usize,
}

impl BitbucketClient {
    /// Reads the base URL, `workspace` and the credential form from the installation's config.
    pub fn new(ctx: &PluginContext) -> Result<Self, PluginError> {
        let base = api_base_url(&ctx.config).map_err(|message| PluginError::InvalidConfig {
            field: "api_base_url".into(),
            message,
        })?;
        let workspace = ctx
            .config
            .str("workspace")
            .filter(|w| !w.is_empty())
            .ok_or_else(|| PluginError::InvalidConfig {
                field: "workspace".into(),
                message: "workspace is required".into(),
            })?
            .to_owned();
        Ok(Self {
            base,
            workspace,
            credentials: credentials(&ctx.config)?,
            http: ctx.http.clone(),
            max_pages: ctx.max_pages(),
        })
    }

    /// `GET /repositories/{workspace}?pagelen=1`: credentials Bitbucket refuses are the installer's
    /// mistake, named as the credential field with Bitbucket's own message.
    pub async fn check_credentials(&self) -> Result<(), PluginError> {
        match self.call(JsonRequest::get(self.url(&[])?).query("pagelen", "1")).await {
            Ok(_) => Ok(()),
            Err(ToolError::Upstream { status, message, .. }) if status == 401 || status == 403 => {
                Err(PluginError::InvalidConfig {
                    field: self.credentials.field.into(),
                    message,
                })
            }
            Err(other) => Err(other.into()),
        }
    }

    /// `bitbucket_get_repository`: the repository as Bitbucket describes it.
    pub async fn get_repository(&self, args: &Value) -> Result<Value, ToolError> {
        self.call(JsonRequest::get(self.url(&[str_arg(args, "repo_slug")?])?))
            .await
    }

    /// `bitbucket_list_pull_requests`: follows `next` until `limit` pull requests, the last page or
    /// the host's page cap. `next` is followed as Bitbucket gives it: its page numbers count in the
    /// first request's `pagelen`, so a later page cannot ask for fewer.
    pub async fn list_pull_requests(&self, args: &Value) -> Result<Value, ToolError> {
        // JSON Schema's "integer" admits 10.0; the schema bounds it to 1..=500.
        let wanted = args
            .get("limit")
            .and_then(Value::as_f64)
            .map_or(50, |n| n as u64)
            .max(1);
        let mut first = JsonRequest::get(self.url(&[str_arg(args, "repo_slug")?, "pullrequests"])?);
        if let Some(state) = args.get("state").and_then(Value::as_str) {
            first = first.query("state", state);
        }
        first = first.query("pagelen", &wanted.min(PULL_REQUESTS_PAGE_SIZE).to_string());
        let mut pull_requests: Vec<Value> = Vec::new();
        let mut next: Option<Url> = Some(first.url().clone());
        // A page may be short with `next` still given: follow it while pull requests are wanted.
        // A `next` handed out forever is cut off by the host's page cap (and its response budget
        // and deadline); what was gathered is returned with the `next` not taken.
        for _ in 0..self.max_pages {
            let Some(url) = next.take() else { break };
            let page = self.call(JsonRequest::get(url)).await?;
            pull_requests.extend(
                page.get("values")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            next = page
                .get("next")
                .and_then(Value::as_str)
                .and_then(|raw| Url::parse(raw).ok())
                // The credentials go only where the installation sends them.
                .filter(|url| url.origin() == self.base.origin());
            if pull_requests.len() as u64 >= wanted {
                break;
            }
        }
        pull_requests.truncate(wanted as usize);
        Ok(json!({"values": pull_requests, "next": next.map(String::from)}))
    }

    /// `bitbucket_create_pr_comment`: the new comment as Bitbucket returns it.
    pub async fn create_pr_comment(&self, args: &Value) -> Result<Value, ToolError> {
        let id = args
            .get("pull_request_id")
            .and_then(Value::as_f64)
            .filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= u64::MAX as f64)
            .map(|n| (n as u64).to_string())
            .ok_or_else(|| ToolError::InvalidArguments("pull_request_id must be a positive integer".into()))?;
        let url = self.url(&[str_arg(args, "repo_slug")?, "pullrequests", &id, "comments"])?;
        let body = json!({"content": {"raw": str_arg(args, "text")?}});
        self.call(JsonRequest::post(url).json(&body)).await
    }

    /// `{api_base_url}/repositories/{workspace}/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, ToolError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ToolError::Internal("api_base_url cannot be a base (refused at install)".into()))?
            .pop_if_empty()
            .push("repositories")
            .push(&self.workspace)
            .extend(segments);
        Ok(url)
    }

    async fn call(&self, request: JsonRequest) -> Result<Value, ToolError> {
        let request = request.authorization(&self.credentials.authorization).build()?;
        let response = self.http.send(request).await?;
        let parsed: Option<Value> = serde_json::from_slice(response.body()).ok();
        match parsed {
            Some(body) if response.status().is_success() => Ok(body),
            parsed => Err(bitbucket_error(&response, parsed)),
        }
    }
}

/// Maps every failed answer once: Bitbucket's `{"type":"error","error":{"message":…}}` body, a
/// rate limit (429 with `Retry-After`), or any other status or non-JSON body.
fn bitbucket_error(response: &HttpResponse, body: Option<Value>) -> ToolError {
    let status = response.status();
    let vendor_message = body
        .as_ref()
        .and_then(|b| b.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut details = json!({"body": body});
    if status == StatusCode::TOO_MANY_REQUESTS {
        details["retry_after"] = json!(integrations_core::retry_after_secs(response));
    }
    let message = match vendor_message {
        Some(message) => message,
        None if status == StatusCode::TOO_MANY_REQUESTS => "rate limited".to_owned(),
        None if status.is_success() => "Bitbucket answered with a body that is not JSON".to_owned(),
        None => format!("Bitbucket answered HTTP {}", status.as_u16()),
    };
    ToolError::Upstream {
        status: status.as_u16(),
        message,
        details,
    }
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("{name} is required")))
}
