-- Tenants, their API keys and data keys, plugin installations, encrypted secrets, webhook events.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    traits      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    digest      BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE tenant_data_keys (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    master_key_id TEXT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE installations (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
    config      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, plugin)
);

CREATE TABLE secrets (
    tenant_id   TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    field       TEXT NOT NULL,
    ciphertext  BLOB NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, plugin, field),
    FOREIGN KEY (tenant_id, plugin) REFERENCES installations(tenant_id, plugin) ON DELETE CASCADE
);

CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin       TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    event_type   TEXT,
    payload      BLOB NOT NULL,
    received_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, plugin, delivery_id)
);
