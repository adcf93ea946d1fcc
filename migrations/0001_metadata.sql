-- vtmirror metadata, version 1. Every metadata table starts with _vtmirror_; every other
-- table in the file is a mirrored source table. All tables are STRICT.

-- What this mirror is a copy of. A sync with another keyspace or filter refuses the file.
CREATE TABLE _vtmirror_identity (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- The checkpoint: the VGtid exactly as vtgate sent it (protobuf bytes, table_p_ks included),
-- written in the same SQLite transaction as the rows it covers. Exactly one row.
CREATE TABLE _vtmirror_checkpoint (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    vgtid          BLOB    NOT NULL,
    vgtid_json     TEXT    NOT NULL,
    copy_completed INTEGER NOT NULL DEFAULT 0,
    transactions   INTEGER NOT NULL DEFAULT 0,
    event_time     INTEGER NOT NULL DEFAULT 0,
    committed_at   TEXT    NOT NULL
) STRICT;

-- Copy progress per shard and table: started (a row exists), rows copied, finished.
CREATE TABLE _vtmirror_copy_state (
    shard       TEXT    NOT NULL,
    table_name  TEXT    NOT NULL,
    rows_copied INTEGER NOT NULL DEFAULT 0,
    completed   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (shard, table_name)
) STRICT;

-- Source column types per shard and table, from the latest FIELD event of that shard.
CREATE TABLE _vtmirror_fields (
    shard            TEXT    NOT NULL,
    table_name       TEXT    NOT NULL,
    ordinal          INTEGER NOT NULL,
    name             TEXT    NOT NULL,
    vitess_type      INTEGER NOT NULL,
    column_type      TEXT    NOT NULL,
    collation        INTEGER NOT NULL,
    flags            INTEGER NOT NULL,
    is_pk            INTEGER NOT NULL,
    enum_set_strings INTEGER NOT NULL,
    field            BLOB    NOT NULL,
    PRIMARY KEY (shard, table_name, ordinal)
) STRICT;

-- Sync state for `status`: state, last_error, heartbeat_time, started_at ...
CREATE TABLE _vtmirror_status (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
