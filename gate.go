package coupon

import (
	"context"
	"strconv"
)

// RedisKey names a key of coupon couponID's Redis state, "coupon:{<id>}:<name>":
// the hash tag {<id>} puts every key of a coupon (the gate's, the redis-lock
// baseline's lock) in one Redis Cluster slot, so one Lua script may touch them all.
// Only the package that owns a key spells its name.
func RedisKey(couponID int64, name string) string {
	return "coupon:{" + strconv.FormatInt(couponID, 10) + "}:" + name
}

// Gate is the admission gate of the async strategy (Redis + Lua in package
// admitter). It decides, atomically per coupon, who is in: no user twice,
// never more than the total, ranks from a per-coupon counter that never
// repeats. Safe for concurrent use. Errors are *Error with EALREADY, ESOLDOUT
// or EUNAVAILABLE (Redis down, or the coupon's gate state was lost and must
// be rebuilt; with ErrGateUnknown in its chain the outcome is unknown);
// anything else is wrapped I/O failure.
type Gate interface {
	// Init creates the coupon's gate state (empty set, rank counter 0,
	// the total). Idempotent: an existing state is left untouched.
	Init(ctx context.Context, couponID, total int64) error
	// Admit adds userID to the coupon's admitted set and returns its rank;
	// with EALREADY it returns the rank the user already holds. The total
	// the gate holds (Init, Resize) wins over the one given.
	Admit(ctx context.Context, couponID, userID, total int64) (rank int64, err error)
	// Resize sets the coupon's total for revision, refusing atomically
	// (ECONFLICT) a total below the users admitted; an older revision than
	// the one set changes nothing. It returns the users admitted.
	Resize(ctx context.Context, couponID, total, revision int64) (admitted int64, err error)
	// Release removes userID's admission if it still has this rank, returning
	// the slot, and reports whether it did (false: the admission was gone or
	// re-taken with another rank, which is not an error). Only for admissions
	// whose record certainly never reached Kafka. With ErrGateUnacked in
	// err's chain the release ran (released true) but is not durable: a
	// failover of the gate's store may bring the admission back.
	Release(ctx context.Context, couponID, userID, rank int64) (released bool, err error)
	// MarkPending records an admission whose publish outcome is unknown, for
	// reconciliation. The slot stays taken. With ErrGateUnacked in the
	// error's chain the mark was written but is not durable.
	MarkPending(ctx context.Context, couponID, userID, rank int64) error
	// Rank returns userID's rank if admitted (ok false when not).
	Rank(ctx context.Context, couponID, userID int64) (rank int64, ok bool, err error)
	// Admitted returns how many users hold a slot.
	Admitted(ctx context.Context, couponID int64) (int64, error)
	// AdmittedMany returns Admitted of several coupons at once; a coupon
	// whose state is lost is missing from the map.
	AdmittedMany(ctx context.Context, couponIDs []int64) (map[int64]int64, error)
	// RanksOf returns userID's rank in each of the coupons it is admitted
	// to (absent: not admitted, or the state is lost).
	RanksOf(ctx context.Context, userID int64, couponIDs []int64) (map[int64]int64, error)
}

// ErrGateLost is in the chain of the EUNAVAILABLE error a gate returns for
// a coupon whose state was lost (until couponctl rebuild-gate restores it);
// test with errors.Is. Reads can fall back to MySQL then.
var ErrGateLost = &Error{Code: EUNAVAILABLE, Message: "The coupon's admission gate is being rebuilt; retry later."}

// ErrGateUnknown is in the chain of an Admit error whose outcome is unknown:
// the call reached Redis and may have admitted the user (the connection
// broke or timed out before the reply, or the replicas did not acknowledge
// a release). Reconciliation settles such a slot; the caller must not say
// "retry". Any other EUNAVAILABLE of Admit admitted nobody.
var ErrGateUnknown = &Error{Code: EUNAVAILABLE, Message: "The outcome of the admission is unknown; check its status before retrying."}

// ErrGateUnacked is in the chain of the error of a gate write (Release,
// MarkPending) that ran on the Redis primary but was not acknowledged by as
// many replicas as the gate waits for (admitter.Config.WaitReplicas) in
// time: it stands on the primary, and a failover to a replica without it
// undoes it. Reconciliation settles what that leaves (an admission without
// a record, a missing pending mark).
var ErrGateUnacked = &Error{Code: EUNAVAILABLE, Message: "The admission gate's replicas did not acknowledge the change in time."}

// Publisher writes admissions to the admitted-request topic. Publish returns
// only after the broker acknowledged the record (all in-sync replicas).
// Safe for concurrent use. On failure the error wraps ErrPublishFailed when
// the record certainly did not reach the broker, or ErrPublishUnknown when it
// may have.
type Publisher interface {
	Publish(ctx context.Context, a Admission) error
}

// GateThen is a Gate that can admit without blocking its caller, so that
// the goroutine that learns an admission can hand it straight on (the async
// issuer publishes it from there) instead of waking the caller to do it.
type GateThen interface {
	// AdmitThen is Admit that does not wait: then receives Admit's
	// results (with the same contract), exactly once, on the goroutine that
	// learnt them (possibly the caller's, before AdmitThen returns). then
	// must not block for long: other admissions wait behind it. ctx bounds
	// the call as it bounds Admit's until it is sent.
	AdmitThen(ctx context.Context, couponID, userID, total int64, then func(rank int64, err error))
}

// PublisherThen is a Publisher that can publish without blocking its
// caller.
type PublisherThen interface {
	// PublishThen is Publish that does not wait: then receives Publish's
	// error (the same contract: nil only once all in-sync replicas
	// acknowledged the record, else ErrPublishFailed or ErrPublishUnknown
	// in its chain), exactly once, on the goroutine that learnt the
	// outcome (possibly the caller's, before PublishThen returns). then
	// must not block for long. ctx's end bounds the publish as it bounds
	// Publish's: a record whose ctx has ended before it is sent is not
	// sent, and the produce request carrying it ends by ctx's deadline.
	PublishThen(ctx context.Context, a Admission, then func(error))
}

// Publish failure kinds; test with errors.Is.
var (
	ErrPublishFailed  = &Error{Code: EUNAVAILABLE, Message: "The request could not be queued; please retry."}
	ErrPublishUnknown = &Error{Code: EUNAVAILABLE, Message: "The outcome of the request is unknown; check its status before retrying."}
)
