package admitter

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/lua"
	"github.com/redis/go-redis/v9"
)

// TestAdmitScriptBatch runs the admit script directly with several users
// per call: each user's outcome is what it would be if the users had come
// one by one, in argument order.
func TestAdmitScriptBatch(t *testing.T) {
	g := mustOpenGate(t, configWith(func(c *Config) { c.BatchMax = 1 }))
	ctx := context.Background()
	script := redis.NewScript(lua.Admit)
	const (
		ok      = lua.AdmitOK
		already = lua.AdmitAlready
		soldOut = lua.AdmitSoldOut
		lost    = lua.AdmitLost
	)
	tests := []struct {
		name  string
		init  bool
		held  []int64 // admitted one by one first
		total int64
		users []int64
		want  []int64 // flat {code, rank} pairs
	}{
		{"ranks follow argument order", true, nil, 10, []int64{7, 3, 9}, []int64{ok, 1, ok, 2, ok, 3}},
		{"a user repeated in one call is admitted once", true, nil, 10, []int64{5, 5, 6}, []int64{ok, 1, already, 1, ok, 2}},
		{"users already held keep their ranks", true, []int64{4, 8}, 10, []int64{8, 1, 4}, []int64{already, 2, ok, 3, already, 1}},
		{"sold out mid-call", true, []int64{1}, 3, []int64{2, 3, 4, 2}, []int64{ok, 2, ok, 3, soldOut, 0, already, 2}},
		{"sold out before the call", true, []int64{1, 2}, 2, []int64{3, 1}, []int64{soldOut, 0, already, 1}},
		{"lost state refuses every user", false, nil, 10, []int64{1, 2}, []int64{lost, 0, lost, 0}},
	}
	var most, mostWant []int64
	for u := int64(1); u <= MaxBatch; u++ {
		most, mostWant = append(most, u), append(mostWant, ok, u)
	}
	tests = append(tests, struct {
		name  string
		init  bool
		held  []int64
		total int64
		users []int64
		want  []int64
	}{"the largest batch fits Lua's stack", true, nil, MaxBatch, most, mostWant})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := newCoupon(t, g)
			if !tc.init {
				g.client.Del(ctx, usersKey(id))
			}
			for _, u := range tc.held {
				if _, err := g.Admit(ctx, id, u, tc.total); err != nil {
					t.Fatalf("admit %d: %v", u, err)
				}
			}
			args := []any{tc.total}
			for _, u := range tc.users {
				args = append(args, u)
			}
			got, err := script.Run(ctx, g.client, []string{usersKey(id)}, args...).Int64Slice()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("reply %v, want %v", got, tc.want)
			}
			wantHeld := int64(len(tc.held))
			for i := 0; i < len(tc.want); i += 2 {
				if tc.want[i] == ok {
					wantHeld++
				}
			}
			if !tc.init {
				if n, _ := g.client.Exists(ctx, stateKeys(id)...).Result(); n != 0 {
					t.Errorf("a call on a lost state wrote %d keys", n)
				}
			} else if n, err := g.Admitted(ctx, id); n != wantHeld || err != nil {
				t.Errorf("%d users held (%v), want %d", n, err, wantHeld)
			} else if seq, _ := g.client.HGet(ctx, usersKey(id), seqField).Int64(); seq != wantHeld {
				t.Errorf("rank counter %d, want %d", seq, wantHeld)
			}
		})
	}
}

// TestBatchedManyCoupons has concurrent calls for several coupons (with
// different supplies) share batches: each coupon admits exactly its supply,
// ranked 1..supply.
func TestBatchedManyCoupons(t *testing.T) {
	g := mustOpenGate(t, configWith(func(c *Config) { c.BatchPipelines = 1 }))
	supply := map[int64]int64{}
	for c := range 4 {
		supply[newCoupon(t, g)] = int64(50 * (c + 1))
	}
	admitConcurrently(t, g, supply, 200)
}

// admitConcurrently has users 1..users call Admit on every coupon at once
// and checks that each coupon admitted exactly its supply, ranked
// 1..supply, every other answer being sold out.
func admitConcurrently(t *testing.T, g *Gate, supply map[int64]int64, users int64) {
	t.Helper()
	var mu sync.Mutex
	ranks := map[int64]map[int64]bool{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for id, total := range supply {
		ranks[id] = map[int64]bool{}
		for u := int64(1); u <= users; u++ {
			wg.Go(func() {
				<-start
				rank, err := g.Admit(context.Background(), id, u, total)
				if coupon.ErrorCode(err) == coupon.ESOLDOUT {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil || ranks[id][rank] {
					t.Errorf("coupon %d user %d: rank %d, %v", id, u, rank, err)
				}
				ranks[id][rank] = true
			})
		}
	}
	close(start)
	wg.Wait()
	for id, total := range supply {
		for r := int64(1); r <= total; r++ {
			if !ranks[id][r] {
				t.Errorf("coupon %d: rank %d missing", id, r)
			}
		}
		if n, err := g.Admitted(context.Background(), id); err != nil || n != total || int64(len(ranks[id])) != total {
			t.Errorf("coupon %d: Admitted %d (%v), %d ranks answered; want %d", id, n, err, len(ranks[id]), total)
		}
	}
}

// TestAdmitScriptSeveralCoupons calls the admit script once for three
// coupons (per coupon: total, count, users): each coupon's users get what
// a call of their own would give.
func TestAdmitScriptSeveralCoupons(t *testing.T) {
	g := mustOpenGate(t, configWith(func(c *Config) { c.BatchMax = 1 }))
	ctx := context.Background()
	if g.cluster {
		// One call's keys must share a slot there (CROSSSLOT); the gate's
		// calls per slot are TestBatchSpanningCoupons' and TestGateOnRedisCluster's.
		t.Skip("a script call over coupons of different slots is for a standalone Redis")
	}
	a, b, c := newCoupon(t, g), newCoupon(t, g), newCoupon(t, g)
	g.client.Del(ctx, usersKey(c))
	keys := []string{usersKey(a), usersKey(b), usersKey(c)}
	args := []any{2, 3, 10, 11, 12, 5, 2, 20, 20, 10, 1, 30}
	got, err := redis.NewScript(lua.Admit).Run(ctx, g.client, keys, args...).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{lua.AdmitOK, 1, lua.AdmitOK, 2, lua.AdmitSoldOut, 0, lua.AdmitOK, 1, lua.AdmitAlready, 1, lua.AdmitLost, 0}
	if !slices.Equal(got, want) {
		t.Fatalf("reply %v, want %v", got, want)
	}
}

// TestScriptsWriteExactDecimalsNearTheLimit starts the rank counter just
// below 1e14 (where Lua's own number formatting, tostring, turns to
// exponent form: "1e+14") and just below 2^53 (the last integers a Lua
// number holds exactly): the ranks and the counter the scripts write back
// (admit, one user and several; migrate) are canonical decimals, read back
// exactly by Rank and State, and the release script, which compares the
// stored rank as a string, releases them.
func TestScriptsWriteExactDecimalsNearTheLimit(t *testing.T) {
	g := mustOpenGate(t, configWith(func(c *Config) { c.BatchMax = 1 }))
	ctx := context.Background()
	for _, start := range []int64{99_999_999_999_998, 1<<53 - 4} {
		t.Run(strconv.FormatInt(start, 10), func(t *testing.T) {
			id := newCoupon(t, g)
			if err := g.client.HSet(ctx, usersKey(id), seqField, start).Err(); err != nil {
				t.Fatal(err)
			}
			if rank, err := g.Admit(ctx, id, 1, 100); err != nil || rank != start+1 {
				t.Fatalf("admit one user: rank %d, %v; want %d", rank, err, start+1)
			}
			got, err := redis.NewScript(lua.Admit).Run(ctx, g.client, []string{usersKey(id)}, 100, 2, 3).Int64Slice()
			if want := []int64{lua.AdmitOK, start + 2, lua.AdmitOK, start + 3}; err != nil || !slices.Equal(got, want) {
				t.Fatalf("admit two users: %v, %v; want %v", got, err, want)
			}
			stored, err := g.client.HMGet(ctx, usersKey(id), "1", "2", "3", seqField).Result()
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []int64{start + 1, start + 2, start + 3, start + 3} {
				if s := strconv.FormatInt(want, 10); stored[i] != s {
					t.Errorf("field %d of the hash is %q, want %q", i, stored[i], s)
				}
			}
			if rank, ok, err := g.Rank(ctx, id, 3); err != nil || !ok || rank != start+3 {
				t.Errorf("rank of user 3: %d, %v, %v; want %d", rank, ok, err, start+3)
			}
			if released, err := g.Release(ctx, id, 3, start+3); err != nil || !released {
				t.Errorf("release of user 3 at rank %d: %v, %v; want released", start+3, released, err)
			}

			// The layout before the hash held seq: migrate writes the counter.
			old := newCoupon(t, g)
			g.client.HDel(ctx, usersKey(old), seqField)
			g.client.HSet(ctx, usersKey(old), "7", start)
			g.client.Set(ctx, oldSeqKey(old), start, 0)
			if ok, err := g.migrateState(ctx, old); err != nil || !ok {
				t.Fatalf("migrate: %v, %v", ok, err)
			}
			if seq, err := g.client.HGet(ctx, usersKey(old), seqField).Result(); err != nil || seq != strconv.FormatInt(start, 10) {
				t.Errorf("migrated counter %q, %v; want %d", seq, err, start)
			}
			if st, _, err := g.State(ctx, old); err != nil || st.Seq != start || st.Users[7] != start {
				t.Errorf("migrated state %+v, %v; want seq and user 7's rank %d", st, err, start)
			}
		})
	}
}
