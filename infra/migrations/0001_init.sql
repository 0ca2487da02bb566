-- Coupons and their issued rows. Works on MariaDB 10.5+ and MySQL 8.0.16+
-- (both enforce CHECK constraints).

CREATE TABLE IF NOT EXISTS coupons (
  id               BIGINT       NOT NULL AUTO_INCREMENT,
  name             VARCHAR(200) NOT NULL,
  total_quantity   BIGINT       NOT NULL,
  issued_quantity  BIGINT       NOT NULL DEFAULT 0,
  strategy         VARCHAR(16)  NOT NULL DEFAULT 'async',
  issue_starts_at  DATETIME(6)  NULL,
  issue_ends_at    DATETIME(6)  NULL,
  created_at       DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  -- Guarantee 1 in the database: no write can push issued past the total.
  CONSTRAINT coupons_issued_within_total CHECK (issued_quantity >= 0 AND issued_quantity <= total_quantity),
  CONSTRAINT coupons_total_positive CHECK (total_quantity >= 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per (coupon, user): the primary key is guarantee 2. issue_rank is
-- the admission rank ("rank" is reserved in MySQL 8).
CREATE TABLE IF NOT EXISTS coupon_issues (
  coupon_id         BIGINT      NOT NULL,
  user_id           BIGINT      NOT NULL,
  issue_rank        BIGINT      NOT NULL,
  admitted_at       DATETIME(6) NOT NULL,
  issued_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  source_partition  INT         NOT NULL DEFAULT -1,
  source_offset     BIGINT      NOT NULL DEFAULT -1,
  PRIMARY KEY (coupon_id, user_id),
  KEY coupon_issues_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
