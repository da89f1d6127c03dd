-- How far an order may move the price by itself (its route's price impact); checked when routed and settled.
ALTER TABLE orders ADD COLUMN max_price_impact_bps integer NOT NULL DEFAULT 1000
    CHECK (max_price_impact_bps BETWEEN 0 AND 10000);
