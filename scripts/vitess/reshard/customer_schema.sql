-- vtmirror test fixture: keyspace "customer" of the reshard cluster (seed 000).
-- Keys are given explicitly by the clients (no AUTO_INCREMENT), so the same
-- tables work before (shard 0) and after (-80, 80-) the reshard.
CREATE TABLE customer (
  customer_id BIGINT NOT NULL,
  email VARCHAR(128),
  PRIMARY KEY (customer_id)
) ENGINE=InnoDB;

CREATE TABLE corder (
  order_id BIGINT NOT NULL,
  customer_id BIGINT,
  sku VARBINARY(128),
  price BIGINT,
  PRIMARY KEY (order_id)
) ENGINE=InnoDB;
