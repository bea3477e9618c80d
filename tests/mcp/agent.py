"""An agent on the official MCP Python SDK, against the integrations service's /mcp endpoint.

Run by the Rust e2e test `mcp::the_official_python_sdk_lists_and_calls_tools`, which starts the
server, creates the tenants, installs their plugins and mocks Slack, then passes:

  MCP_URL                   the endpoint, http://127.0.0.1:<port>/mcp
  MCP_KEY                   a tenant API key (Slack installed; chat.postMessage mocked for C123)
  MCP_OTHER_KEY             another tenant's key (Jira installed)
  MCP_EXPECTED_TOOLS        JSON list of {name, description, inputSchema}: GET /v1/tools for MCP_KEY
  MCP_OTHER_EXPECTED_TOOLS  the same for MCP_OTHER_KEY

Prints "agent: ok" and exits 0 when every check holds; any failure raises (exit status 1).
"""

import asyncio
import json
import os
import signal

import httpx2
from mcp import ClientSession
from mcp.shared.exceptions import MCPError
from mcp.client.streamable_http import streamable_http_client

# Never outlive the test that started us, whatever hangs.
signal.alarm(90)


async def connect_and(key, work):
    """Opens an MCP session as the given tenant, runs work(session), and closes the session."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        async with streamable_http_client(os.environ["MCP_URL"], http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.server_info.name == "integrations", init
                assert init.capabilities.tools is not None, init
                return await work(session)


async def listed(session):
    tools = (await session.list_tools()).tools
    return [
        {"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}
        for tool in tools
    ]


async def as_slack_agent(session):
    tools = await listed(session)
    assert tools == json.loads(os.environ["MCP_EXPECTED_TOOLS"]), tools
    assert "slack_send_message" in [tool["name"] for tool in tools], tools

    sent = await session.call_tool("slack_send_message", {"channel": "C123", "text": "Deploy finished"})
    assert not sent.is_error, sent
    result = json.loads(sent.content[0].text)
    assert result["ts"] == "1503435956.000247", result
    assert sent.structured_content == result, sent

    # A call the tool's schema refuses: an error result the model can read, not an exception.
    refused = await session.call_tool("slack_send_message", {"channel": 42})
    assert refused.is_error, refused
    problem = json.loads(refused.content[0].text)
    assert problem["type"] == "https://integrations.dev/problems/invalid-arguments", problem
    assert problem["status"] == 422, problem


async def as_jira_agent(session):
    tools = await listed(session)
    assert tools == json.loads(os.environ["MCP_OTHER_EXPECTED_TOOLS"]), tools
    names = [tool["name"] for tool in tools]
    assert names and all(name.startswith("jira_") for name in names), names

    # Another tenant's tool is an unknown tool here: a protocol error (Invalid params), not a result.
    try:
        result = await session.call_tool("slack_send_message", {"channel": "C123", "text": "x"})
    except MCPError as error:
        assert error.error.code == -32602, error.error
        assert error.error.data["type"] == "https://integrations.dev/problems/tool-not-found", error.error
    else:
        raise AssertionError(f"another tenant's tool was called: {result}")


async def main():
    await connect_and(os.environ["MCP_KEY"], as_slack_agent)
    await connect_and(os.environ["MCP_OTHER_KEY"], as_jira_agent)
    print("agent: ok")


if __name__ == "__main__":
    asyncio.run(main())
