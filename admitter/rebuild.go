package admitter

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/coupondrop/coupon"
	"github.com/redis/go-redis/v9"
)

// restoreChunk bounds the fields of one HSET inside the transaction.
const restoreChunk = 5000

// errSeqExists aborts Restore's transaction when the state is there.
var errSeqExists = errors.New("gate state exists")

// State is a coupon's gate state, as State reads it and Restore writes it.
type State struct {
	Users    map[int64]int64 // userId -> rank: the admitted set
	Pending  map[int64]int64 // userId -> rank: unknown publish outcomes (Restore empties it)
	Seq      int64           // the rank counter (Restore raises it to the highest rank of Users and to their number)
	Total    int64           // the supply; 0: unset (the admit caller's total counts); Restore leaves it unset then
	Revision int64           // the coupon revision Total comes from
}

// State reads the coupon's whole gate state in one MULTI/EXEC (after
// migrating a state in the old layout). ok is false when the rank counter
// is missing: the state was lost (or never initialised); the admit script
// refuses the coupon then.
func (g *Gate) State(ctx context.Context, couponID int64) (st State, ok bool, err error) {
	err = g.readState(ctx, couponID, func() (bool, error) {
		var present bool
		st, present, err = g.readAll(ctx, couponID)
		return present, err
	})
	if errors.Is(err, coupon.ErrGateLost) {
		return st, false, nil
	}
	return st, err == nil, err
}

// readAll reads the coupon's state as it is in the hash layout.
func (g *Gate) readAll(ctx context.Context, couponID int64) (st State, present bool, err error) {
	var users, pending *redis.MapStringStringCmd
	var rev *redis.StringCmd
	_, err = g.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		users = p.HGetAll(ctx, usersKey(couponID))
		pending = p.HGetAll(ctx, pendingKey(couponID))
		rev = p.Get(ctx, revisionKey(couponID))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return st, false, g.wrap(err, "read gate state of coupon %d", couponID)
	}
	hash := users.Val()
	seq, present := hash[seqField]
	total := hash[totalField]
	delete(hash, seqField)
	delete(hash, totalField)
	if st.Users, err = intHash(hash); err == nil {
		st.Pending, err = intHash(pending.Val())
	}
	if err != nil {
		return st, false, fmt.Errorf("read gate state of coupon %d: %w", couponID, err)
	}
	st.Total, _ = strconv.ParseInt(total, 10, 64)
	st.Revision, _ = rev.Int64()
	if !present {
		return st, false, nil
	}
	if st.Seq, err = strconv.ParseInt(seq, 10, 64); err != nil {
		return st, false, fmt.Errorf("read gate state of coupon %d: rank counter: %w", couponID, err)
	}
	return st, true, nil
}

func intHash(m map[string]string) (map[int64]int64, error) {
	out := make(map[int64]int64, len(m))
	for k, v := range m {
		u, err1 := strconv.ParseInt(k, 10, 64)
		r, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad entry %q=%q", k, v)
		}
		out[u] = r
	}
	return out, nil
}

// HasState reports whether the coupon's gate state is present (its rank
// counter exists), without reading it; a state in the old layout is
// migrated first.
func (g *Gate) HasState(ctx context.Context, couponID int64) (bool, error) {
	return g.migrateState(ctx, couponID)
}

// ClearPending removes the pending marks of userIDs (their publish outcome
// is settled); the admissions stay.
func (g *Gate) ClearPending(ctx context.Context, couponID int64, userIDs ...int64) error {
	if len(userIDs) == 0 {
		return nil
	}
	fields := make([]string, len(userIDs))
	for i, u := range userIDs {
		fields[i] = strconv.FormatInt(u, 10)
	}
	if err := g.client.HDel(ctx, pendingKey(couponID), fields...).Err(); err != nil {
		return g.wrap(err, "clear pending marks of coupon %d", couponID)
	}
	return nil
}

// Drop deletes the whole gate state of each coupon (a finished bench
// coupon; in tests, a lost state): until Init or Restore the gate refuses
// the coupon as lost.
func (g *Gate) Drop(ctx context.Context, couponIDs ...int64) error {
	for _, id := range couponIDs {
		if err := g.client.Del(ctx, stateKeys(id)...).Err(); err != nil {
			return g.wrap(err, "drop gate state of coupon %d", id)
		}
	}
	return nil
}

// Restore replaces a coupon's gate state with st: the users
// (userId -> rank), the rank counter (raised to the highest rank in users,
// and to their number, if lower) and the total, in one MULTI/EXEC that sets seq last: until EXEC
// the coupon's seq is missing and the admit script refuses the coupon, and
// after it the whole state is there at once. The pending hash is emptied,
// and the keys of the old layout are deleted. All keys share the coupon's
// hash tag, so this works on a Redis Cluster too.
//
// With onlyIfMissing, the write happens only while seq is missing in both
// layouts (WATCHed): it returns false, writing nothing, when a live or
// concurrently restored state exists. It returns true when it wrote the
// state.
func (g *Gate) Restore(ctx context.Context, couponID int64, st State, onlyIfMissing bool) (bool, error) {
	// The counter is at least every rank restored, so no rank is handed out
	// twice, and at least the number of users: the admit script counts on
	// it (lua/admit.lua) to skip counting them while the supply is far.
	users, seq := st.Users, max(st.Seq, int64(len(st.Users)))
	for _, r := range users {
		seq = max(seq, r)
	}
	uKey, oldKey := usersKey(couponID), oldSeqKey(couponID)
	write := func(p redis.Pipeliner) error {
		p.Del(ctx, stateKeys(couponID)...)
		if st.Total > 0 {
			p.HSet(ctx, uKey, totalField, st.Total)
			p.Set(ctx, revisionKey(couponID), st.Revision, 0)
		}
		fields := make([]any, 0, 2*min(len(users), restoreChunk))
		for u, r := range users {
			fields = append(fields, strconv.FormatInt(u, 10), strconv.FormatInt(r, 10))
			if len(fields) == 2*restoreChunk {
				p.HSet(ctx, uKey, fields...)
				fields = fields[:0]
			}
		}
		if len(fields) > 0 {
			p.HSet(ctx, uKey, fields...)
		}
		p.HSet(ctx, uKey, seqField, seq) // last: the state counts as present from here
		return nil
	}
	var err error
	if onlyIfMissing {
		err = g.client.Watch(ctx, func(tx *redis.Tx) error {
			var inHash *redis.BoolCmd
			var old *redis.IntCmd
			if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
				inHash, old = p.HExists(ctx, uKey, seqField), p.Exists(ctx, oldKey)
				return nil
			}); err != nil {
				return err
			}
			if inHash.Val() || old.Val() > 0 {
				return errSeqExists
			}
			_, err := tx.TxPipelined(ctx, write)
			return err
		}, uKey, oldKey)
	} else {
		_, err = g.client.TxPipelined(ctx, write)
	}
	switch {
	case errors.Is(err, errSeqExists), errors.Is(err, redis.TxFailedErr):
		return false, nil
	case err != nil:
		return false, g.wrap(err, "restore gate state of coupon %d", couponID)
	}
	return true, nil
}

// AdmitCommand is the admit script's call for one user of the coupon as a
// command line, EVALSHA <sha> 1 <key> <total>, to which the caller appends
// the user ID (redis-benchmark's __rand_int__ measures the script alone).
func (g *Gate) AdmitCommand(couponID, total int64) []string {
	return []string{"EVALSHA", g.admit.Hash(), "1", usersKey(couponID), strconv.FormatInt(total, 10)}
}
