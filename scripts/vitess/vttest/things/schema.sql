-- vtmirror test fixture: keyspace "things", 2 shards (-80, 80-), as in seed 001.
CREATE TABLE things (
  id BIGINT NOT NULL,
  name VARCHAR(255) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE (name)
) ENGINE=InnoDB;

CREATE TABLE things_name_lookup (
  name VARCHAR(255) NOT NULL,
  keyspace_id VARBINARY(10) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB;
