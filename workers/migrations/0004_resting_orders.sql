-- Resting orders (limit, sniper): their limit, expiry and trigger, and the index the trigger engine scans.
ALTER TABLE orders
    ADD COLUMN limit_price   numeric CHECK (limit_price > 0),
    ADD COLUMN expires_at    timestamptz,
    -- The direction the order waits on, by mint (a sniper's token_out may not be listed yet), and the price
    -- (token_out per token_in, whole tokens) the pools must offer: limit_price, or 0 for an uncapped sniper.
    ADD COLUMN trigger_in    text,
    ADD COLUMN trigger_out   text,
    ADD COLUMN trigger_price numeric;

-- One price move reads only the orders it makes reachable: a range scan per direction, over open orders only.
CREATE INDEX orders_open_trigger ON orders (trigger_in, trigger_out, trigger_price) WHERE status = 'open';
-- The reconciler's safety net for a lost expiry message.
CREATE INDEX orders_open_expiry ON orders (expires_at) WHERE status = 'open' AND expires_at IS NOT NULL;

-- cancelled and expired are final too: the reconciler's index leaves them out.
DROP INDEX orders_active;
CREATE INDEX orders_active ON orders (updated_at) WHERE status NOT IN ('confirmed', 'failed', 'cancelled', 'expired');

-- Tokens listed after genesis (`orderengine market launch`): every process learns them from here.
CREATE TABLE tokens (
    mint       text        PRIMARY KEY,
    symbol     text        NOT NULL UNIQUE,
    decimals   integer     NOT NULL CHECK (decimals BETWEEN 0 AND 12),
    listed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
