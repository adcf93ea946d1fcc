-- vtmirror metadata, version 4: rows of a sharded keyspace record their shard.
--
-- Every mirrored table has the column `_vtmirror_shard` (added to older mirrors' tables when
-- the writer next touches them): the shard whose stream wrote the row, NULL for a shard that
-- spans every key. When a shard's change meets a key another shard holds (a row moving
-- between shards by DELETE + INSERT, whose two commits reach the stream in either order), the
-- version the table held is kept here, under its shard, until that shard deletes it; a
-- shard's delete of a row the table shows removes it and brings back a kept version, if any.
CREATE TABLE _vtmirror_displaced (
    table_name TEXT NOT NULL,
    -- The primary key's values (JSON, `mirror::versions`).
    key        TEXT NOT NULL,
    -- The shard holding this version ('' spans every key).
    shard      TEXT NOT NULL,
    -- Column name -> value (JSON, `mirror::versions`).
    row        TEXT NOT NULL,
    -- Source time of the change that set it aside (seconds; 0 during a copy).
    since      INTEGER NOT NULL,
    PRIMARY KEY (table_name, key, shard)
) STRICT;
