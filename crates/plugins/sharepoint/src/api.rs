use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD, Engine};
use http::header::{CONTENT_TYPE, LOCATION};
use http::Method;
use integrations_core::{HttpClient, HttpResponse, JsonRequest, PluginConfig, PluginContext, PluginError, ToolError};
use integrations_msgraph::{graph_error, id_segment, item_path, GraphClient, GraphSettings};
use serde_json::{json, Value};
use url::Url;

/// Largest file `sharepoint_download_file` reads unless the installation says otherwise (10 MiB).
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 10 * 1024 * 1024;
/// The installation's `max_download_bytes` (10 MiB when unset).
pub fn configured_max_download_bytes(config: &PluginConfig) -> Result<u64, String> {
    match config.value("max_download_bytes") {
        None => Ok(DEFAULT_MAX_DOWNLOAD_BYTES),
        // JSON Schema's "integer" admits 10.0; the schema bounds it to 1..=100 MiB.
        Some(value) => value
            .as_f64()
            .filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= MAX_DOWNLOAD_BYTES_LIMIT as f64)
            .map(|n| n as u64)
            .ok_or_else(|| "must be a whole number of bytes, 1 to 100 MiB".to_owned()),
    }
}

/// What a download call may read in all: the file, plus room for Graph's redirect answer.
pub fn download_budget(config: &PluginConfig) -> usize {
    let file = configured_max_download_bytes(config).unwrap_or(DEFAULT_MAX_DOWNLOAD_BYTES);
    usize::try_from(file).unwrap_or(usize::MAX).saturating_add(1024 * 1024)
}

/// The most an installation may raise `max_download_bytes` to (100 MiB); the host's per-call
/// response budget may bound a download sooner.
pub const MAX_DOWNLOAD_BYTES_LIMIT: u64 = 100 * 1024 * 1024;
/// Graph's default (and our largest `$top`) page size for a folder's children.
const LIST_PAGE_SIZE: u64 = 200;

/// One client per call: the site's drive, the app-only Graph client, the host's HTTP client for
/// the pre-authenticated download URL, and the host's page cap.
pub struct SharePointClient {
    settings: GraphSettings,
    site: String,
    max_download_bytes: usize,
    graph: GraphClient,
    http: Arc<dyn HttpClient>,
    max_pages: usize,
}

impl SharePointClient {
    /// Reads the Graph settings, `site_id` and `max_download_bytes`.
    pub fn new(ctx: &PluginContext) -> Result<Self, PluginError> {
        let settings = GraphSettings::from_config(&ctx.config)?;
        let invalid = |field: &str, message: String| PluginError::InvalidConfig {
            field: field.to_owned(),
            message,
        };
        let site = ctx
            .config
            .str("site_id")
            .ok_or_else(|| invalid("site_id", "site_id is required".into()))?;
        let site = id_segment(site).map_err(|m| invalid("site_id", m))?;
        let max_download_bytes =
            configured_max_download_bytes(&ctx.config).map_err(|m| invalid("max_download_bytes", m))?;
        Ok(Self {
            graph: GraphClient::new(ctx, settings.app_token_request()),
            settings,
            site,
            max_download_bytes: usize::try_from(max_download_bytes).unwrap_or(usize::MAX),
            http: ctx.http.clone(),
            max_pages: ctx.max_pages(),
        })
    }

    /// `sharepoint_upload_file`: `PUT …/drive/root:/{path}:/content` with the raw bytes.
    pub async fn upload_file(&self, args: &Value) -> Result<Value, ToolError> {
        let path = path_arg(args, "path")?;
        let content = str_arg(args, "content")?;
        let bytes = match args.get("encoding").and_then(Value::as_str).unwrap_or("text") {
            "base64" => STANDARD
                .decode(content.trim())
                .map_err(|e| ToolError::InvalidArguments(format!("content is not valid base64: {e}")))?,
            _ => content.as_bytes().to_vec(),
        };
        let url = self.drive_url(&format!("root:/{path}:/content"))?;
        let request = JsonRequest::new(Method::PUT, url).bytes("application/octet-stream", bytes);
        Ok(item_summary(&self.graph.json(&request).await?))
    }

    /// `sharepoint_download_file`: `GET …/drive/root:/{path}:/content`. Graph answers 302 to a
    /// pre-authenticated URL, which is fetched once more through the host's client (its outbound
    /// policy applies) without `Authorization`, reading at most `max_download_bytes`.
    pub async fn download_file(&self, args: &Value) -> Result<Value, ToolError> {
        let path = path_arg(args, "path")?;
        let request = JsonRequest::get(self.drive_url(&format!("root:/{path}:/content"))?);
        let response = self.graph.send(&request, Some(self.max_download_bytes)).await?;
        let file = if response.status().is_redirection() {
            let location = redirect_target(request.url(), &response)?;
            let download = http::Request::get(location.as_str())
                .body(Vec::new())
                .map_err(|e| ToolError::Upstream {
                    status: response.status().as_u16(),
                    message: format!("Graph redirected to an unusable URL: {e}"),
                    details: Value::Null,
                })?;
            let file = self.http.send_limited(download, self.max_download_bytes).await?;
            if !file.status().is_success() {
                // A second redirect is not followed either: the download URL is the last hop.
                return Err(graph_error(&file));
            }
            file
        } else if response.status().is_success() {
            response
        } else {
            return Err(graph_error(&response));
        };
        Ok(file_content(str_arg(args, "path")?, &file))
    }

    /// `sharepoint_list_files`: a folder's children (`…/root/children` or `…/root:/{path}:/children`),
    /// following `@odata.nextLink` on Graph's origin until `limit` items, the last page or the host's
    /// page cap. The link is followed as Graph gives it (Graph asks that it be used whole), so only
    /// the first request's `$top` says how many items are wanted.
    pub async fn list_files(&self, args: &Value) -> Result<Value, ToolError> {
        // JSON Schema's "integer" admits 10.0; the schema bounds it to 1..=1000.
        let wanted = args
            .get("limit")
            .and_then(Value::as_f64)
            .map_or(LIST_PAGE_SIZE, |n| n as u64)
            .max(1);
        let folder = args
            .get("folder")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty() && *f != "/");
        let mut url = match folder {
            None => self.drive_url("root/children")?,
            Some(folder) => {
                let folder = item_path(folder).map_err(ToolError::InvalidArguments)?;
                self.drive_url(&format!("root:/{folder}:/children"))?
            }
        };
        url.set_query(Some(&format!("$top={}", wanted.min(LIST_PAGE_SIZE))));
        let mut items: Vec<Value> = Vec::new();
        let mut next: Option<Url> = Some(url);
        // Graph may page shorter than `$top` with a nextLink still given: follow it while items are
        // wanted. A link handed out forever is cut off by the host's page cap (and its response
        // budget and deadline); what was gathered is returned with the link not taken.
        for _ in 0..self.max_pages {
            let Some(url) = next.take() else { break };
            let page = self.graph.json(&JsonRequest::get(url)).await?;
            let values = page.get("value").and_then(Value::as_array).into_iter().flatten();
            items.extend(values.map(item_summary));
            next = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .and_then(|raw| Url::parse(raw).ok())
                // The token goes only where the installation sends it.
                .filter(|url| url.origin() == self.settings.graph_base().origin());
            if items.len() as u64 >= wanted {
                break;
            }
        }
        items.truncate(wanted as usize);
        Ok(json!({"items": items, "next_link": next.map(String::from)}))
    }

    /// `{graph_base_url}/v1.0/sites/{site}/drive/{rest}`, `rest` already encoded.
    fn drive_url(&self, rest: &str) -> Result<Url, ToolError> {
        self.settings
            .graph_url(&format!("v1.0/sites/{}/drive/{rest}", self.site))
    }
}

/// Where Graph's redirect points, resolved against the request URL.
fn redirect_target(from: &Url, response: &HttpResponse) -> Result<Url, ToolError> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|location| from.join(location).ok())
        .ok_or_else(|| ToolError::Upstream {
            status: response.status().as_u16(),
            message: "Graph redirected without a usable Location".into(),
            details: Value::Null,
        })
}

/// The downloaded file: text when its bytes are UTF-8, else base64.
fn file_content(path: &str, file: &HttpResponse) -> Value {
    let content_type = file
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream");
    let (encoding, content) = match std::str::from_utf8(file.body()) {
        Ok(text) => ("text", text.to_owned()),
        Err(_) => ("base64", STANDARD.encode(file.body())),
    };
    json!({
        "path": path,
        "size": file.body().len(),
        "content_type": content_type,
        "encoding": encoding,
        "content": content,
    })
}

/// The fields of a driveItem the tools promise; Graph sends many more, among them
/// `@microsoft.graph.downloadUrl`, a pre-authenticated link not worth handing on.
fn item_summary(item: &Value) -> Value {
    let field = |pointer: &str| item.pointer(pointer).cloned().unwrap_or(Value::Null);
    json!({
        "id": field("/id"),
        "name": field("/name"),
        "size": field("/size"),
        "is_folder": item.get("folder").is_some(),
        "mime_type": field("/file/mimeType"),
        "last_modified": field("/lastModifiedDateTime"),
        "web_url": field("/webUrl"),
    })
}

/// A user's path argument, encoded segment by segment.
fn path_arg(args: &Value, name: &str) -> Result<String, ToolError> {
    item_path(str_arg(args, name)?).map_err(ToolError::InvalidArguments)
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("{name} is required")))
}
