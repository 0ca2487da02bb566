// Package coupon holds the domain types, error codes and shared interfaces of
// a first-come-first-served coupon issuance system; its subpackages implement them.
package coupon

import (
	"context"
	"time"
)

// Limits on coupon fields and identifiers.
const (
	MaxNameLen       = 200
	MaxTotalQuantity = 100_000_000
)

// Strategy names how a coupon's issue requests are decided and persisted.
// A coupon is issued through exactly one strategy, fixed at creation.
type Strategy string

const (
	// StrategyAsync admits in Redis (Lua gate), publishes to Kafka and
	// answers 202; the sinker persists to MySQL. The default.
	StrategyAsync Strategy = "async"
	// StrategyDBLock is the seed's direct RDBMS baseline: SELECT ... FOR UPDATE.
	StrategyDBLock Strategy = "db-lock"
	// StrategyRedisLock is the seed's distributed-lock baseline.
	StrategyRedisLock Strategy = "redis-lock"
)

// Valid reports whether s is a known strategy.
func (s Strategy) Valid() bool {
	return s == StrategyAsync || s == StrategyDBLock || s == StrategyRedisLock
}

// Coupon is a drop: at most TotalQuantity users get it, first come first served.
type Coupon struct {
	ID             int64      `json:"id"`
	Name           string     `json:"name"`
	TotalQuantity  int64      `json:"totalQuantity"`
	IssuedQuantity int64      `json:"issuedQuantity"`
	Strategy       Strategy   `json:"strategy"`
	IssueStartsAt  *time.Time `json:"issueStartsAt"`
	IssueEndsAt    *time.Time `json:"issueEndsAt"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// Validate checks the fields a creator supplies.
func (c *Coupon) Validate() error {
	switch {
	case c.Name == "":
		return Errorf(EINVALID, "name is required.")
	case len([]rune(c.Name)) > MaxNameLen:
		return Errorf(EINVALID, "name must be at most %d characters.", MaxNameLen)
	case c.TotalQuantity < 1 || c.TotalQuantity > MaxTotalQuantity:
		return Errorf(EINVALID, "totalQuantity must be an integer from 1 to %d.", MaxTotalQuantity)
	case c.Strategy != "" && !c.Strategy.Valid():
		return Errorf(EINVALID, "strategy must be one of async, db-lock, redis-lock.")
	case c.IssueStartsAt != nil && c.IssueEndsAt != nil && c.IssueEndsAt.Before(*c.IssueStartsAt):
		return Errorf(EINVALID, "issueEndsAt must not be before issueStartsAt.")
	}
	return nil
}

// CheckWindow returns ENOTSTARTED or EENDED when now is outside the issue window.
func (c *Coupon) CheckWindow(now time.Time) error {
	if c.IssueStartsAt != nil && now.Before(*c.IssueStartsAt) {
		return Errorf(ENOTSTARTED, "Issuing of coupon %d starts at %s.", c.ID, c.IssueStartsAt.UTC().Format(time.RFC3339))
	}
	if c.IssueEndsAt != nil && !now.Before(*c.IssueEndsAt) {
		return Errorf(EENDED, "Issuing of coupon %d ended at %s.", c.ID, c.IssueEndsAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Issue is one persisted row of coupon_issues: user UserID holds coupon
// CouponID with rank Rank (1-based, increasing in admission order).
type Issue struct {
	CouponID   int64     `json:"couponId"`
	UserID     int64     `json:"userId"`
	Rank       int64     `json:"rank"`
	AdmittedAt time.Time `json:"admittedAt"`
	IssuedAt   time.Time `json:"issuedAt"`
	// Partition and Offset locate the topic record the row came from;
	// -1 for rows written by the synchronous baselines.
	Partition int32 `json:"-"`
	Offset    int64 `json:"-"`
}

// IssueStatus is what a user's issue of a coupon looks like now.
type IssueStatus string

const (
	StatusIssued  IssueStatus = "issued"  // the row is in MySQL
	StatusPending IssueStatus = "pending" // admitted, not yet written by the sinker
)

// Issuer decides one issue request under one strategy. Implementations are
// safe for concurrent use. Errors are *Error with EALREADY, ESOLDOUT,
// ENOTFOUND, ENOTSTARTED, EENDED or EUNAVAILABLE for the expected outcomes.
type Issuer interface {
	// Issue admits (async: returns once the admission is durable in Kafka,
	// Issue.IssuedAt zero) or issues (baselines: the row is committed).
	Issue(ctx context.Context, c *Coupon, userID int64, requestID string) (*Issue, error)
}
