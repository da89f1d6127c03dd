-- Accounts and their API keys. Every order already names its owner; from now on the owner is an account.
CREATE TABLE accounts (
    id                text        PRIMARY KEY,
    name              text        NOT NULL UNIQUE,
    -- NULL: the server's ORDERS_PER_MINUTE (100 unless configured).
    orders_per_minute integer     CHECK (orders_per_minute > 0),
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The built-in account of key-less calls when AUTH=optional; it owns every order placed before accounts existed.
INSERT INTO accounts (id, name) VALUES ('default', 'default');

CREATE TABLE api_keys (
    -- The public part of the key (oe_<id>_<secret>); only a hash of the secret is kept.
    id          text        PRIMARY KEY,
    account_id  text        NOT NULL REFERENCES accounts (id),
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_by_account ON api_keys (account_id);

ALTER TABLE orders ADD CONSTRAINT orders_owner FOREIGN KEY (owner_id) REFERENCES accounts (id);
