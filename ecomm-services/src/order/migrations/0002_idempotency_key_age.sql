-- Idempotency keys expire (ecomm order --idempotency-key-ttl-secs); the sweeper finds old ones
-- by age.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
