-- Business systems registered with `convene systems add` (beside the configuration file's
-- `[[systems]]`): the entry as JSON, never with a secret (header and forward-auth secrets
-- are configuration-file only). Read at start, like the configuration.
CREATE TABLE bridge_systems (
    name       TEXT PRIMARY KEY,
    entry      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
