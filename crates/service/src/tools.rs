use integrations_core::{TenantId, ToolName};
use serde::Serialize;
use serde_json::Value;

use std::sync::Arc;

use integrations_core::RegisteredPlugin;

use crate::state::TenantState;
use crate::{validation, Service, ServiceError};

/// A tool as the catalog lists it.
#[derive(Clone, Debug, Serialize)]
pub struct ToolListing {
    /// Tool name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The plugin offering it.
    pub plugin: &'static str,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
}

impl Service {
    /// The tools this tenant may call: installed, enabled, and allowed by flags.
    pub async fn list_tools(&self, tenant_id: &TenantId) -> Result<Vec<ToolListing>, ServiceError> {
        let gate = self.existing_gate(tenant_id).await?;
        let mut tools = Vec::new();
        for installation in &gate.installations {
            let Some(registered) = self.registry.get(&installation.plugin) else {
                continue;
            };
            let plugin = registered.plugin.manifest().name;
            if gate.usable(self, plugin).is_none() {
                continue;
            }
            tools.extend(registered.tools.iter().map(|tool| ToolListing {
                name: tool.name.clone(),
                description: tool.description.clone(),
                plugin,
                input_schema: tool.input_schema.clone(),
            }));
        }
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tools)
    }

    /// What every call of `tool` must pass, synchronous or queued: the tool exists and the tenant
    /// may use it (else it is not found), and the arguments satisfy its schema.
    pub(crate) async fn checked_call(
        &self,
        tenant_id: &TenantId,
        tool: &str,
        arguments: &Value,
    ) -> Result<(&RegisteredPlugin, Arc<TenantState>), ServiceError> {
        let not_found = || ServiceError::ToolNotFound(tool.to_owned());
        let (registered, _) = self.registry.find_tool(tool).ok_or_else(not_found)?;
        let gate = self.existing_gate(tenant_id).await?;
        gate.usable(self, registered.plugin.manifest().name)
            .ok_or_else(not_found)?;
        let validator = self.tool_validators.get(tool).ok_or_else(not_found)?;
        let errors = validation::violations(validator, arguments);
        if !errors.is_empty() {
            return Err(ServiceError::InvalidArguments(errors));
        }
        Ok((registered, gate))
    }

    /// Validates the arguments and runs the tool with the tenant's decrypted config (the REST API
    /// and MCP), unless the tenant already has as many calls running as it may. A tool the
    /// tenant may not use is reported exactly like one that does not exist.
    pub async fn call_tool(
        &self,
        tenant_id: &TenantId,
        tool: &ToolName,
        arguments: Value,
    ) -> Result<Value, ServiceError> {
        let limits = self.effective_limits(tenant_id).await?;
        let _running = self.start_tool_call(tenant_id, &limits)?;
        self.run_tool(tenant_id, tool, arguments).await
    }

    /// Runs a queued tool call: background jobs are bounded per tenant by the job queue instead.
    pub async fn call_tool_in_background(
        &self,
        tenant_id: &TenantId,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ServiceError> {
        self.run_tool(tenant_id, tool, arguments).await
    }

    async fn run_tool(&self, tenant_id: &TenantId, tool: &str, arguments: Value) -> Result<Value, ServiceError> {
        let (registered, gate) = self.checked_call(tenant_id, tool, &arguments).await?;
        let plugin = registered.plugin.manifest().name;
        let limits = self.tool_limits;
        let config = self.plugin_config(&gate, plugin).await?;
        let upstream = self.breakers.of(tenant_id, plugin);
        // Every upstream host the plugin calls refuses: answer before the plugin builds a
        // request, which is most of what a refused call would otherwise cost.
        if let Some(retry_after) = upstream.refusal(&config, std::time::Instant::now()) {
            tracing::info!(
                tenant = %tenant_id,
                tool,
                "tool call refused: the upstream's breakers are open"
            );
            return Err(ServiceError::UpstreamCircuitOpen { retry_after });
        }
        // A plugin may need more for one call (a configured download size), up to the ceiling.
        let budget = registered
            .plugin
            .response_budget(tool, &config)
            .map_or(limits.response_budget_bytes, |wanted| {
                wanted
                    .min(limits.max_response_budget_bytes)
                    .max(limits.response_budget_bytes)
            });
        let (ctx, client) = self.call_context(&gate, plugin, upstream.clone(), config.clone(), budget)?;
        let call = registered.plugin.call_tool(&ctx, tool, arguments);
        let Ok(result) = tokio::time::timeout(limits.deadline, call).await else {
            tracing::info!(tenant = %tenant_id, %tool, "tool call exceeded its deadline");
            return Err(ServiceError::ToolDeadlineExceeded(limits.deadline));
        };
        upstream.learned(&config);
        match &result {
            Ok(_) => tracing::info!(tenant = %tenant_id, %tool, "tool call succeeded"),
            Err(error) => tracing::info!(tenant = %tenant_id, %tool, %error, "tool call failed"),
        }
        result.map_err(|error| match ServiceError::from(error) {
            ServiceError::ReauthorizationRequired { reason, .. } => ServiceError::ReauthorizationRequired {
                plugin: plugin.to_owned(),
                reason,
            },
            // The vendor asked us to come back later and retries could not wait that long.
            ServiceError::Upstream {
                status,
                message,
                details,
                retry_after: None,
            } if status == 429 || status == 503 => ServiceError::Upstream {
                status,
                message,
                details,
                retry_after: client.last_retry_after(),
            },
            other => other,
        })
    }
}
