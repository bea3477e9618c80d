use integrations_core::ToolSpec;
use serde_json::{json, Value};

use crate::api::{DEFAULT_MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_BYTES_LIMIT};

/// The shared Graph app fields, plus the site and the download cap.
pub fn config_schema() -> Value {
    integrations_msgraph::schema::config_schema(
        json!({
            "site_id": {
                "type": "string",
                "minLength": 1,
                "description": "Id of the site whose default document library the tools use ({hostname},{site-collection-id},{web-id})"
            },
            "max_download_bytes": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_DOWNLOAD_BYTES_LIMIT,
                "default": DEFAULT_MAX_DOWNLOAD_BYTES,
                "description": "Largest file sharepoint_download_file reads; larger ones are refused"
            }
        }),
        &["site_id"],
    )
}

/// The tools and their input schemas.
pub fn tools() -> Vec<ToolSpec> {
    let path = json!({
        "type": "string",
        "minLength": 1,
        "description": "Path from the library's root, e.g. Reports/2024/plan.docx (no '..', '.', empty segments or backslashes)"
    });
    vec![
        ToolSpec {
            name: "sharepoint_upload_file".into(),
            description: "Upload a small file (replacing one at the same path) to the site's document library. Returns the new item (id, name, size, …).".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["path", "content"],
                "properties": {
                    "path": path,
                    "content": {"type": "string", "description": "The file's content, as text or base64"},
                    "encoding": {"type": "string", "enum": ["text", "base64"], "default": "text", "description": "How content is written: UTF-8 text, or base64 of the bytes"}
                }
            }),
        },
        ToolSpec {
            name: "sharepoint_download_file".into(),
            description: "Download a file from the site's document library: its content as text when it is UTF-8, else base64, with its size and content type.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["path"],
                "properties": {"path": path}
            }),
        },
        ToolSpec {
            name: "sharepoint_list_files".into(),
            description: "List the files and folders in a folder of the site's document library (the root when folder is empty), following @odata.nextLink while fewer than limit items have come (pages may be short) until the last page or the host's page cap. Returns items, and next_link when Graph has more.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "folder": {"type": "string", "description": "Folder path from the library's root; empty or absent for the root"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200}
                }
            }),
        },
    ]
}
