-- The seed of the genesis market, so that a start with another MARKET_SEED can say that it is not applied.
CREATE TABLE market (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    seed       bigint,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- A market made before this table existed: its seed is not known.
INSERT INTO market (seed) SELECT NULL WHERE EXISTS (SELECT 1 FROM pools);
