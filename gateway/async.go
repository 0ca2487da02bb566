package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/coupondrop/coupon"
)

// AsyncIssuer is the async strategy: admit in the gate, publish the
// admission to Kafka, answer once the broker acknowledged it. The sinker
// writes the row later.
type AsyncIssuer struct {
	gate coupon.Gate
	pub  coupon.Publisher
	// admitThen is the gate's AdmitThen (Admit, then its callback, for a
	// gate without one); pubThen is the publisher's PublishThen, nil when
	// it has only Publish (Issue publishes then).
	admitThen      func(ctx context.Context, couponID, userID, total int64, then func(int64, error))
	pubThen        coupon.PublisherThen
	gateTimeout    time.Duration
	publishTimeout time.Duration
	// The gate and publish bounds of Issue: shared per millisecond, not a
	// timer per request.
	gateBound, publishBound *sharedDeadlines
	metrics                 *metrics
	logger                  *slog.Logger
}

var _ coupon.Issuer = (*AsyncIssuer)(nil)

// NewAsyncIssuer returns the async issuer on gate and pub. Calls to the
// gate and the publisher are bounded by gateTimeout and publishTimeout and
// are not cancelled with the caller's context: a client that goes away must
// not turn a certain outcome into an unknown one. (The admission's and the
// publish's bounds end up to a millisecond late: requests share them.)
//
// When the gate is a coupon.GateThen and the publisher a
// coupon.PublisherThen, the goroutine that learns an admission queues its
// record for Kafka itself, and Issue waits once, for the publish's outcome
// (not once for the gate and once more for the broker).
func NewAsyncIssuer(gate coupon.Gate, pub coupon.Publisher, gateTimeout, publishTimeout time.Duration, logger *slog.Logger) *AsyncIssuer {
	a := &AsyncIssuer{gate: gate, pub: pub, gateTimeout: gateTimeout, publishTimeout: publishTimeout,
		gateBound: newSharedDeadlines(gateTimeout, deadlineGrain), publishBound: newSharedDeadlines(publishTimeout, deadlineGrain), logger: logger}
	if g, ok := gate.(coupon.GateThen); ok {
		a.admitThen = g.AdmitThen
	} else {
		a.admitThen = func(ctx context.Context, couponID, userID, total int64, then func(int64, error)) {
			then(gate.Admit(ctx, couponID, userID, total))
		}
	}
	a.pubThen, _ = pub.(coupon.PublisherThen)
	return a
}

// issueWait is one Issue's progress, written by the goroutines that learn
// the admission and the publish, read by Issue once done is done.
type issueWait struct {
	done           sync.WaitGroup // Done once the outcome is set
	rank           int64
	gateErr        error
	admission      coupon.Admission
	gateTook       time.Duration
	published      bool // the publish ran (pubErr is its outcome)
	pubErr         error
	publishStarted time.Time
}

// admitAndPublish admits userID and, once admitted, publishes the
// admission (from the goroutine that learnt it, with a PublisherThen) and
// returns when both are done, or the gate refused, or (without a
// PublisherThen) the publish is left to the caller.
func (a *AsyncIssuer) admitAndPublish(base context.Context, c *coupon.Coupon, userID int64, requestID string) *issueWait {
	w := &issueWait{}
	w.done.Add(1)
	start := time.Now()
	a.admitThen(a.gateBound.ctx(base), c.ID, userID, c.TotalQuantity, func(rank int64, err error) {
		now := time.Now()
		w.rank, w.gateErr, w.gateTook = rank, err, now.Sub(start)
		if err != nil || a.pubThen == nil {
			w.done.Done()
			return
		}
		w.admission = coupon.Admission{CouponID: c.ID, UserID: userID, Rank: rank, AdmittedAt: now.UTC(), RequestID: requestID}
		w.publishStarted, w.published = now, true
		a.pubThen.PublishThen(a.publishBound.ctx(base), w.admission, func(err error) {
			w.pubErr = err
			w.done.Done()
		})
	})
	w.done.Wait()
	return w
}

// Issue admits userID to c and publishes the admission. The returned Issue
// has a zero IssuedAt: the row is not written yet.
//
// Failures: the gate's *Error (already_issued, with the Issue carrying the
// rank held; sold_out, unavailable) as is; a publish that certainly failed
// releases the slot and answers unavailable "retry"; a publish whose
// outcome is unknown keeps the slot, marks it pending for reconciliation and
// answers unavailable "check the status first", as does a failed publish
// whose release failed or is not durable (coupon.ErrGateUnacked).
func (a *AsyncIssuer) Issue(ctx context.Context, c *coupon.Coupon, userID int64, requestID string) (*coupon.Issue, error) {
	base := ctx // the values of the bounds' contexts, without ctx's end
	if ctx.Done() != nil {
		base = context.WithoutCancel(ctx)
	}

	w := a.admitAndPublish(base, c, userID, requestID)
	a.metrics.observeRedis(w.gateTook)
	rank, err := w.rank, w.gateErr
	if coupon.ErrorCode(err) == coupon.EALREADY {
		return &coupon.Issue{CouponID: c.ID, UserID: userID, Rank: rank, Partition: -1, Offset: -1}, err
	} else if errors.Is(err, coupon.ErrGateUnknown) {
		a.metrics.gateError()
		// The script may have run: the reconciliation of the gate against
		// the topic settles a slot taken this way.
		return nil, joinCause(gateUnknown(c.ID, userID), err)
	} else if err != nil {
		var ce *coupon.Error
		if errors.As(err, &ce) {
			if ce.Code == coupon.EUNAVAILABLE {
				a.metrics.gateError()
			}
			return nil, err
		}
		a.metrics.gateError()
		return nil, joinCause(gateUnknown(c.ID, userID), err) // as above: the script may have run
	}

	if !w.published { // a publisher without PublishThen
		w.publishStarted = time.Now()
		w.admission = coupon.Admission{CouponID: c.ID, UserID: userID, Rank: rank, AdmittedAt: w.publishStarted.UTC(), RequestID: requestID}
		w.pubErr = a.pub.Publish(a.publishBound.ctx(base), w.admission)
	}
	a.metrics.observePublish(time.Since(w.publishStarted))
	if err = w.pubErr; err == nil {
		return &coupon.Issue{CouponID: c.ID, UserID: userID, Rank: rank, AdmittedAt: w.admission.AdmittedAt, Partition: -1, Offset: -1}, nil
	}

	log := a.logger.With("requestId", requestID, "couponId", c.ID, "userId", userID, "rank", rank)
	if errors.Is(err, coupon.ErrPublishFailed) {
		a.metrics.publishError("failed")
		rctx, cancel := context.WithTimeout(base, a.gateTimeout)
		defer cancel()
		_, rerr := a.gate.Release(rctx, c.ID, userID, rank)
		if rerr == nil {
			log.Warn("publish failed; admission released", "err", err)
			return nil, joinCause(coupon.Errorf(coupon.EUNAVAILABLE,
				"The request could not be queued; please retry."), err)
		}
		// The release failed, or ran on the Redis primary without the
		// replicas' acknowledgement (coupon.ErrGateUnacked): the slot may
		// be (or come back, after a failover) taken with no record behind
		// it, and a retry would be answered already_issued for a row that
		// never comes. So it is an unknown outcome, as below: marked
		// pending, and reconciliation releases the slot if it is still
		// taken (an admission neither in the topic nor in MySQL) or clears
		// the stale mark if the release stood.
		merr := a.gate.MarkPending(rctx, c.ID, userID, rank)
		level := slog.LevelError
		if errors.Is(rerr, coupon.ErrGateUnacked) && (merr == nil || errors.Is(merr, coupon.ErrGateUnacked)) {
			level = slog.LevelWarn // both written on the primary
		}
		log.Log(rctx, level, "publish failed and the release is not certain; answered unknown, marked pending",
			"err", err, "releaseErr", rerr, "markErr", merr)
		return nil, joinCause(publishUnknown(c.ID, userID), err)
	}

	// Unknown outcome (or an error the publisher did not classify): the
	// record may be in the topic, so the slot must stay taken.
	a.metrics.publishError("unknown")
	mctx, cancel := context.WithTimeout(base, a.gateTimeout)
	defer cancel()
	switch merr := a.gate.MarkPending(mctx, c.ID, userID, rank); {
	case merr == nil:
		log.Warn("publish outcome unknown; admission marked pending", "err", err)
	case errors.Is(merr, coupon.ErrGateUnacked):
		// Reconciliation finds the admission without its mark too.
		log.Warn("publish outcome unknown; admission marked pending on the Redis primary only", "err", err, "markErr", merr)
	default:
		log.Error("publish outcome unknown and marking it pending failed", "err", err, "markErr", merr)
	}
	return nil, joinCause(publishUnknown(c.ID, userID), err)
}

// publishUnknown answers an admission whose record may or may not be in the
// topic, or whose slot may stay taken without one: reconciliation settles it.
func publishUnknown(couponID, userID int64) *coupon.Error {
	return coupon.Errorf(coupon.EUNAVAILABLE,
		"The outcome of the request is unknown; check GET /v1/coupons/%d/issues/%d before retrying.", couponID, userID)
}

// gateUnknown answers an admission whose outcome is unknown: the gate call
// reached Redis and no reply came.
func gateUnknown(couponID, userID int64) *coupon.Error {
	return coupon.Errorf(coupon.EUNAVAILABLE,
		"The admission gate did not answer; check GET /v1/coupons/%d/issues/%d before retrying.", couponID, userID)
}
