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
	// Revision counts the coupon's changes (1 at creation); the gate keeps
	// the revision its total came from, so an older total never wins.
	Revision int64 `json:"-"`
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

// State is where a coupon's drop stands; see StateOf.
type State string

const (
	StateUpcoming State = "upcoming" // before the window, supply left
	StateOpen     State = "open"     // within the window, supply left
	StateEnded    State = "ended"    // the window closed with supply left
	StateSoldOut  State = "sold_out" // every unit is admitted (whatever the window)
)

// States lists every State, in lifecycle order.
var States = []State{StateUpcoming, StateOpen, StateEnded, StateSoldOut}

// Order is the order of a list of coupons, by ID: ascending (oldest
// first, the default) or descending (newest first).
type Order string

const (
	OrderAsc  Order = "asc"
	OrderDesc Order = "desc"
)

// StateOf returns c's state at now with admitted users holding a slot.
func (c *Coupon) StateOf(admitted int64, now time.Time) State {
	switch {
	case admitted >= c.TotalQuantity:
		return StateSoldOut
	case c.IssueStartsAt != nil && now.Before(*c.IssueStartsAt):
		return StateUpcoming
	case c.IssueEndsAt != nil && !now.Before(*c.IssueEndsAt):
		return StateEnded
	}
	return StateOpen
}

// Patch is a change of a coupon (PATCH /v1/coupons/{id}): nil fields and
// unset times stay as they are.
type Patch struct {
	Name          *string
	TotalQuantity *int64
	IssueStartsAt TimePatch
	IssueEndsAt   TimePatch
}

// TimePatch changes an optional time: Set with a nil Value clears it.
type TimePatch struct {
	Set   bool
	Value *time.Time
}

// Empty reports whether p changes nothing.
func (p Patch) Empty() bool {
	return p.Name == nil && p.TotalQuantity == nil && !p.IssueStartsAt.Set && !p.IssueEndsAt.Set
}

// Apply returns c with p applied, validated.
func (p Patch) Apply(c Coupon) (Coupon, error) {
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.TotalQuantity != nil {
		c.TotalQuantity = *p.TotalQuantity
	}
	if p.IssueStartsAt.Set {
		c.IssueStartsAt = p.IssueStartsAt.Value
	}
	if p.IssueEndsAt.Set {
		c.IssueEndsAt = p.IssueEndsAt.Value
	}
	return c, c.Validate()
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

// Holding is one coupon a user holds or was admitted to, as the user's
// coupon list shows it.
type Holding struct {
	CouponID   int64       `json:"couponId"`
	Name       string      `json:"name"`
	Status     IssueStatus `json:"status"`
	Rank       int64       `json:"rank"`
	AdmittedAt *time.Time  `json:"admittedAt"` // nil for a pending admission (the gate keeps no time)
	IssuedAt   *time.Time  `json:"issuedAt"`   // nil while pending
}

// Issuer decides one issue request under one strategy; its caller (the
// gateway's issue handler) treats every strategy alike. Implementations are
// safe for concurrent use. Errors are *Error with EALREADY, ESOLDOUT,
// ENOTFOUND, ENOTSTARTED, EENDED or EUNAVAILABLE for the expected outcomes.
type Issuer interface {
	// Issue admits (async: returns once the admission is durable in Kafka;
	// the Issue's Status is StatusPending) or issues (baselines: the row is
	// committed; StatusIssued). Issue bounds its own time (the baselines
	// by their timeout, async its gate and publish calls by theirs) and
	// honours ctx, except where cancelling a call would turn a certain
	// outcome into an unknown one (async).
	// With EALREADY it may return the Issue the user holds (its Rank, and
	// its Status: pending while no row is written) too; nil when it knows
	// of no such Issue beyond the error.
	Issue(ctx context.Context, c *Coupon, userID int64, requestID string) (*Issue, error)
}

// Status tells whether is is a committed row (IssuedAt set: StatusIssued)
// or an admission the sinker has not written yet (StatusPending).
func (is *Issue) Status() IssueStatus {
	if is.IssuedAt.IsZero() {
		return StatusPending
	}
	return StatusIssued
}
