package gateway

import (
	"context"
	"fmt"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/batch"
)

// issueLookup reads the issued rows of concurrent already_issued answers in
// batches: one MySQL query per batch, whatever its coupons, under one
// StoreTimeout deadline, instead of a query and a timer per answer.
type issueLookup struct {
	store Store
	cfg   Config
	q     *batch.Batcher[*issueFind]
}

// issueFind is one lookup: its key, then its outcome (the row, nil for no
// row, or the batch's error).
type issueFind struct {
	couponID, userID int64
	is               *coupon.Issue
	err              error
}

// lookupMax bounds the users of one lookup query; lookupSlots is how many
// queries run at once.
const lookupMax, lookupSlots = 256, 2

func newIssueLookup(store Store, cfg Config) *issueLookup {
	l := &issueLookup{store: store, cfg: cfg}
	l.q = batch.New(batch.Config[*issueFind]{Max: lookupMax, Slots: lookupSlots, Run: l.run})
	return l
}

// find returns the user's issued row of the coupon, or an ENOTISSUED error,
// as Store.FindIssue does; ctx bounds the wait.
func (l *issueLookup) find(ctx context.Context, couponID, userID int64) (*coupon.Issue, error) {
	f := &issueFind{couponID: couponID, userID: userID}
	if err := l.q.Do(ctx, f); err != nil {
		return nil, fmt.Errorf("find issue of coupon %d to user %d: %w", couponID, userID, err)
	}
	if f.err != nil {
		return nil, f.err
	}
	if f.is == nil {
		return nil, coupon.Errorf(coupon.ENOTISSUED, "User %d holds no issue of coupon %d.", userID, couponID)
	}
	return f.is, nil
}

func (l *issueLookup) run(finds []*issueFind) {
	users := make(map[int64][]int64)
	for _, f := range finds {
		users[f.couponID] = append(users[f.couponID], f.userID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.StoreTimeout)
	defer cancel()
	rows, err := l.store.FindIssues(ctx, users)
	type key struct{ c, u int64 }
	found := make(map[key]*coupon.Issue, len(rows))
	for _, is := range rows {
		found[key{is.CouponID, is.UserID}] = is
	}
	for _, f := range finds {
		f.is, f.err = found[key{f.couponID, f.userID}], err
	}
}

func (l *issueLookup) Close() { l.q.Close() }
