//! The MCP server of one session: `tools/list` and `tools/call` answered by the service for the
//! tenant that sent the request, never from a copy taken when the session began.

use integrations_service::{TenantId, ToolName};
use std::sync::Arc;

use integrations_problems::Problem;
use integrations_service::{Service, ServiceError, ToolListing};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use crate::sessions::Tenant;

/// Told to every agent at `initialize`.
const INSTRUCTIONS: &str = "Tools of the integrations installed for your tenant. A failed call returns isError \
     with an RFC 9457 problem document (type, title, status, detail) as its text.";

/// One session's server; the tenant comes with each request (see [`crate::sessions`]).
pub(crate) struct TenantTools {
    service: Arc<Service>,
}

impl TenantTools {
    pub(crate) fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

impl ServerHandler for TenantTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("integrations", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _page: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tenant = tenant(&context)?;
        let tools = self.service.list_tools(tenant).await.map_err(protocol_error)?;
        let tools = tools.into_iter().map(mcp_tool).collect::<Result<Vec<_>, _>>()?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tenant = tenant(&context)?;
        // No arguments means `{}`, as an empty body does on the REST API.
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        // A name that cannot be a tool's is unknown, like any tool the tenant does not have.
        let Ok(tool) = ToolName::parse(&request.name) else {
            return Err(unknown_tool(&request.name));
        };
        match self.service.call_tool(tenant, &tool, arguments).await {
            // A tool this tenant does not have (never installed, disabled, another tenant's) is an
            // unknown tool, which the specification makes a protocol error (2025-06-18, "Error
            // Handling"); everything that went wrong in a call is a result the model can read.
            Err(ServiceError::ToolNotFound(name)) => Err(unknown_tool(&name)),
            outcome => Ok(tool_result(outcome).into()),
        }
    }
}

/// The tenant the guard authenticated this request as.
fn tenant(context: &RequestContext<RoleServer>) -> Result<&TenantId, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Tenant>())
        .map(|Tenant(id)| id)
        // Only reachable if the endpoint were mounted without its guard.
        .ok_or_else(|| ErrorData::internal_error("the request carries no authenticated tenant", None))
}

/// A catalog entry as an MCP tool: the same name, description and input schema.
fn mcp_tool(tool: ToolListing) -> Result<Tool, ErrorData> {
    let Value::Object(schema) = tool.input_schema else {
        tracing::error!(tool = tool.name, "tool input schema is not a JSON object");
        return Err(ErrorData::internal_error(
            "a tool's input schema is not a JSON object",
            None,
        ));
    };
    Ok(Tool::new(tool.name, tool.description, schema))
}

/// The outcome of a call as the agent sees it: the tool's JSON result, or the problem document
/// the REST API would answer, marked `isError` so the model can read it and correct itself.
/// Structured content accompanies the text when it is a JSON object, the only kind the protocol
/// versions before 2026-07-28 allow there.
pub(crate) fn tool_result(outcome: Result<Value, ServiceError>) -> CallToolResult {
    match outcome {
        Ok(Value::Object(result)) => CallToolResult::structured(Value::Object(result)),
        Ok(result) => CallToolResult::success(vec![ContentBlock::text(result.to_string())]),
        Err(error) => CallToolResult::structured_error(Problem::from(&error).document()),
    }
}

/// `Invalid params` (-32602) naming the tool, with the problem document the REST API answers.
fn unknown_tool(name: &str) -> ErrorData {
    let problem = Problem::from(&ServiceError::ToolNotFound(name.to_owned())).document();
    ErrorData::invalid_params(format!("unknown tool: {name}"), Some(problem))
}

/// A failure outside any tool call (listing): a protocol error carrying the problem document.
fn protocol_error(error: ServiceError) -> ErrorData {
    let problem = Problem::from(&error);
    ErrorData::internal_error(problem.detail().to_owned(), Some(problem.document()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_result_object_is_text_and_structured_content() {
        let result = tool_result(Ok(json!({"ts": "1.2"})));
        let wire = serde_json::to_value(&result).unwrap();
        assert_eq!(wire["isError"], json!(false));
        assert_eq!(wire["structuredContent"], json!({"ts": "1.2"}));
        assert_eq!(wire["content"], json!([{"type": "text", "text": "{\"ts\":\"1.2\"}"}]));
    }

    #[test]
    fn a_result_that_is_not_an_object_is_text_only() {
        let wire = serde_json::to_value(tool_result(Ok(json!([1, 2])))).unwrap();
        assert_eq!(wire["content"], json!([{"type": "text", "text": "[1,2]"}]));
        assert!(wire.get("structuredContent").is_none());
    }

    #[test]
    fn a_failure_is_an_error_result_with_the_rest_problem_document() {
        let error = || ServiceError::ToolNotFound("nope".into());
        let problem = Problem::from(&error());
        assert_eq!(problem.status(), 404);
        let problem = problem.document();
        let wire = serde_json::to_value(tool_result(Err(error()))).unwrap();
        assert_eq!(wire["isError"], json!(true));
        let text = wire["content"][0]["text"].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), problem);
        assert_eq!(
            problem["type"],
            json!("https://integrations.dev/problems/tool-not-found")
        );
    }

    #[test]
    fn an_unknown_tool_is_invalid_params_with_the_rest_problem_document() {
        let wire = serde_json::to_value(unknown_tool("nope")).unwrap();
        assert_eq!(wire["code"], json!(-32602));
        assert_eq!(wire["message"], json!("unknown tool: nope"));
        let problem = Problem::from(&ServiceError::ToolNotFound("nope".into()));
        assert_eq!(problem.status(), 404);
        assert_eq!(wire["data"], problem.document());
    }

    #[test]
    fn a_tool_whose_schema_is_not_an_object_is_refused() {
        let listing = |schema| ToolListing {
            name: "t".into(),
            description: "d".into(),
            plugin: "p",
            input_schema: schema,
        };
        assert!(mcp_tool(listing(json!(true))).is_err());
        let tool = mcp_tool(listing(json!({"type": "object"}))).unwrap();
        assert_eq!(
            serde_json::to_value(tool).unwrap(),
            json!({"name": "t", "description": "d", "inputSchema": {"type": "object"}})
        );
    }
}
