package admitter

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// restoreChunk bounds the fields of one HSET inside the transaction.
const restoreChunk = 5000

// errSeqExists aborts RestoreState's transaction when the state is there.
var errSeqExists = errors.New("gate state exists")

// State is a coupon's gate state as RestoreState writes it.
type State struct {
	Users    map[int64]int64 // userId -> rank
	Seq      int64           // the rank counter (raised to the highest rank of Users)
	Total    int64           // the supply; 0 leaves it unset (the admit caller's total counts)
	Revision int64           // the coupon revision Total comes from
}

// RestoreState replaces a coupon's gate state with st: the users
// (userId -> rank), the rank counter (raised to the highest rank in users
// if lower) and the total, in one MULTI/EXEC that sets seq last: until EXEC
// the coupon's seq is missing and the admit script refuses the coupon, and
// after it the whole state is there at once. The pending hash is emptied. All keys share the
// coupon's hash tag, so this works on a Redis Cluster too.
//
// With onlyIfMissing, the write happens only while seq is missing (WATCHed):
// it returns false, writing nothing, when a live or concurrently restored
// state exists. It returns true when it wrote the state.
func RestoreState(ctx context.Context, client redis.UniversalClient, couponID int64, st State, onlyIfMissing bool) (bool, error) {
	users, seq := st.Users, st.Seq
	for _, r := range users {
		seq = max(seq, r)
	}
	usersKey, seqKey := UsersKey(couponID), SeqKey(couponID)
	write := func(p redis.Pipeliner) error {
		p.Del(ctx, StateKeys(couponID)...)
		if st.Total > 0 {
			p.Set(ctx, TotalKey(couponID), st.Total, 0)
			p.Set(ctx, RevisionKey(couponID), st.Revision, 0)
		}
		fields := make([]any, 0, 2*min(len(users), restoreChunk))
		for u, r := range users {
			fields = append(fields, strconv.FormatInt(u, 10), strconv.FormatInt(r, 10))
			if len(fields) == 2*restoreChunk {
				p.HSet(ctx, usersKey, fields...)
				fields = fields[:0]
			}
		}
		if len(fields) > 0 {
			p.HSet(ctx, usersKey, fields...)
		}
		p.Set(ctx, seqKey, seq, 0) // last: the state counts as present from here
		return nil
	}
	var err error
	if onlyIfMissing {
		err = client.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Exists(ctx, seqKey).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return errSeqExists
			}
			_, err = tx.TxPipelined(ctx, write)
			return err
		}, seqKey)
	} else {
		_, err = client.TxPipelined(ctx, write)
	}
	switch {
	case errors.Is(err, errSeqExists), errors.Is(err, redis.TxFailedErr):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("restore gate state of coupon %d: %w", couponID, err)
	}
	return true, nil
}
