-- A coupon's revision counts its changes (PATCH /v1/coupons/{id}). The gate
-- keeps the revision its total came from, so a resize applied late never
-- overwrites a newer one. The CHECK issued_quantity <= total_quantity of
-- 0001 stays the database's guard when the total is lowered.
ALTER TABLE coupons ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
