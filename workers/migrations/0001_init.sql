-- Orders, their event histories, the mock market's pools and the mock chain's ledger.
CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    owner_id        text        NOT NULL,
    idempotency_key text,
    fingerprint     text        NOT NULL,
    order_type      text        NOT NULL,
    token_in        text        NOT NULL,
    token_out       text        NOT NULL,
    amount_in       bigint      NOT NULL CHECK (amount_in > 0),
    slippage_bps    integer     NOT NULL CHECK (slippage_bps BETWEEN 0 AND 10000),
    status          text        NOT NULL,
    attempt         integer     NOT NULL DEFAULT 1,
    last_seq        integer     NOT NULL DEFAULT 1,
    dex             text,
    route           jsonb,
    tx_signature    text,
    executed_price  text,
    amount_out      bigint,
    error           jsonb,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- When the reconciler last re-drove this order; keeps many reconcilers from piling on one order.
    nudged_at       timestamptz
);
CREATE UNIQUE INDEX orders_idempotency ON orders (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_by_owner ON orders (owner_id, created_at DESC, id DESC);
CREATE INDEX orders_by_owner_status ON orders (owner_id, status, created_at DESC, id DESC);
CREATE INDEX orders_active ON orders (updated_at) WHERE status NOT IN ('confirmed', 'failed');

CREATE TABLE order_events (
    order_id   uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seq        integer     NOT NULL,
    status     text        NOT NULL,
    attempt    integer     NOT NULL,
    payload    jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (order_id, seq)
);

CREATE TABLE pools (
    id         text        PRIMARY KEY,
    dex        text        NOT NULL,
    state      jsonb       NOT NULL,
    version    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The mock chain's mempool: a transaction's fate is fixed when it is submitted.
CREATE TABLE chain_transactions (
    signature    text        PRIMARY KEY,
    order_id     uuid        NOT NULL,
    attempt      integer     NOT NULL,
    submitted_at timestamptz NOT NULL,
    lands_at     timestamptz,
    expires_at   timestamptz NOT NULL,
    UNIQUE (order_id, attempt)
);

-- The mock chain's ledger: at most one landed swap per order, whatever crashes.
CREATE TABLE settlements (
    order_id   uuid        PRIMARY KEY,
    signature  text        NOT NULL UNIQUE,
    amount_in  bigint      NOT NULL,
    amount_out bigint      NOT NULL,
    legs       jsonb       NOT NULL,
    settled_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
