-- vtmirror metadata, version 5: the change log (`sync --changes`).
--
-- Every change the writer makes to a mirrored table, in the SQLite transaction that makes
-- it, so the log can never disagree with the tables (`mirror::change_log`). Empty and
-- unused unless a sync of the file was started with --changes (`_vtmirror_status`
-- `changes` = 'on'; once on, every later sync keeps it on).

-- One entry per row change or marker. `seq` is gap-free and increases in commit order:
-- rows are appended with max(seq) + 1 by the one writer, and pruning always keeps the
-- newest entry.
CREATE TABLE _vtmirror_changes (
    seq    INTEGER PRIMARY KEY,
    -- The source transaction (`_vtmirror_change_tx`).
    tx     INTEGER NOT NULL,
    -- 1 insert, 2 update, 3 delete; markers: 10 truncate, 11 schema, 12 resync, 13 drop,
    -- 14 rename.
    op     INTEGER NOT NULL,
    -- The table and its columns at the time (`_vtmirror_change_columns`).
    cols   INTEGER NOT NULL,
    -- Row images, every column of `cols` in order (`mirror::change_log::image`).
    after  BLOB,
    before BLOB,
    -- Markers: what else they say (JSON: a rename's new name, a truncate's shard).
    detail TEXT
) STRICT;

-- The source transaction of entries: the checkpoint after it and its binlog time.
CREATE TABLE _vtmirror_change_tx (
    tx           INTEGER PRIMARY KEY,
    -- The VGtid after the transaction (protobuf bytes, as the checkpoint is stored).
    position     BLOB NOT NULL,
    -- Binlog time in seconds (0 for copy rows).
    event_time   INTEGER NOT NULL,
    -- When the mirror committed it (milliseconds since the epoch; retention by age).
    committed_at INTEGER NOT NULL
) STRICT;

-- A table's columns as entries name them: JSON [{"name", "storage", "pk"}] in column order.
CREATE TABLE _vtmirror_change_columns (
    id         INTEGER PRIMARY KEY,
    table_name TEXT NOT NULL,
    columns    TEXT NOT NULL,
    UNIQUE (table_name, columns)
) STRICT;
