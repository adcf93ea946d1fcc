-- vtmirror metadata, version 3: copies of single tables after the mirror's first copy.
--
-- A table added to the selection, or copied again on request or after a source DDL the
-- stream cannot follow, is copied into a hidden table (`shadow`, named
-- `_vtmirror_copy_<table>`) while every other table keeps replicating. Readers keep seeing
-- the old table (or none) until the copy has finished on every shard; then one commit
-- replaces the table by its copy and deletes this row. Per shard, the copy's progress is
-- kept in `_vtmirror_copy_state` under the shadow's name.
CREATE TABLE _vtmirror_table_copy (
    table_name   TEXT PRIMARY KEY,
    shadow       TEXT NOT NULL UNIQUE,
    reason       TEXT NOT NULL,
    requested_at TEXT NOT NULL
) STRICT;
