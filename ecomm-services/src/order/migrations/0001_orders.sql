-- Orders, their lines, and the idempotency keys that created them. Money in integer cents.
CREATE TABLE orders (
    id          UUID PRIMARY KEY,
    customer    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('placed', 'cancelled')),
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_customer ON orders (customer, created_at DESC, id);

CREATE TABLE order_items (
    order_id         UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line             INTEGER NOT NULL,
    product_id       BIGINT NOT NULL CHECK (product_id > 0),
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line)
);

-- One row per Idempotency-Key: the SHA-256 of the canonical request and the exact response
-- sent, written in the same transaction as the order.
CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    request_sha256  BYTEA NOT NULL,
    response_status SMALLINT NOT NULL,
    response_body   TEXT NOT NULL,
    order_id        UUID NOT NULL REFERENCES orders (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
