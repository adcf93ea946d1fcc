-- vtmirror metadata, version 2: Vitess online DDL.
--
-- An online DDL migration (strategy `vitess`) alters a shadow copy of the table (`_vt_vrp_…`)
-- and later swaps it in with one RENAME TABLE. The shadow's rows never reach the stream, so
-- the ALTER statements seen on a shadow are kept here, committed with the checkpoint, until
-- the cut-over tells which mirrored table they apply to (possibly after restarts).
-- Per shard: each shard runs its own migration and names its own shadow table.
CREATE TABLE _vtmirror_shadow_ddl (
    shard     TEXT    NOT NULL,
    shadow    TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    statement TEXT    NOT NULL,
    PRIMARY KEY (shard, shadow, seq)
) STRICT;
