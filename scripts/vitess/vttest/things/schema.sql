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

-- Every MySQL type with edge values (tests/e2e_types.rs). In the sharded keyspace: on this
-- vttestserver, replication from a stored position fails for the unsharded keyspace
-- ("failed to build table replication plan ... Query was empty").
CREATE TABLE alltypes (
  id BIGINT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT,
  miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  f FLOAT, d DOUBLE, dec1 DECIMAL(20,6), dec2 DECIMAL(65,30),
  dt DATE, tm TIME(3), dtm DATETIME(6), ts TIMESTAMP(2) NULL, yr YEAR,
  c CHAR(10), vc VARCHAR(100), tx TEXT, lt VARCHAR(50) CHARACTER SET latin1,
  bn BINARY(8), vb VARBINARY(50), bl BLOB, bt BIT(10),
  en ENUM('a','b','c d'), st SET('x','y','z'), js JSON, geo GEOMETRY
) ENGINE=InnoDB;
