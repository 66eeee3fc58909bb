-- The S9 source schema (the columns `migrate` reads), empty, for tests that write their own rows.
CREATE TABLE msg_anag (
  first_id    integer PRIMARY KEY,
  kind        smallint NOT NULL,
  name        varchar(200),
  vat_number  varchar(20),
  fiscal_code varchar(16),
  address     varchar(300),
  city        varchar(100),
  province    char(2),
  zip         varchar(10),
  country     char(2),
  email       varchar(200),
  phone       varchar(50),
  notes       text,
  enabled     boolean NOT NULL,
  created_at  timestamp without time zone,
  updated_at  timestamp without time zone
);
CREATE TABLE msg (
  first_id       integer PRIMARY KEY,
  buyer_id       integer,
  producer_id    integer,
  sale_date      date NOT NULL,
  description    text,
  quantity       numeric(12,3) NOT NULL,
  unit_price     numeric(12,2) NOT NULL,
  vat_rate       numeric(5,2) NOT NULL,
  total_amount   numeric(14,2) NOT NULL,
  currency       char(3),
  status         varchar(20),
  payment_method varchar(30),
  enabled        boolean NOT NULL,
  created_at     timestamp without time zone,
  updated_at     timestamp without time zone
);
