-- vtmirror test fixture: unsharded keyspace "commerce" (vttestserver cluster).
CREATE TABLE customer (
  customer_id BIGINT NOT NULL AUTO_INCREMENT,
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

