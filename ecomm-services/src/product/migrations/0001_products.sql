-- The catalogue: one row per product; money in integer cents.
CREATE TABLE products (
    id          BIGSERIAL PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency    TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock       BIGINT NOT NULL CHECK (stock >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
