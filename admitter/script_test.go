package admitter

import (
	"context"
	"slices"
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
	g := mustOpenGate(t, Config{BatchMax: 1})
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
				g.client.Del(ctx, SeqKey(id))
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
			got, err := script.Run(ctx, g.client, admitKeys(id), args...).Int64Slice()
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
			if n, _ := g.client.HLen(ctx, UsersKey(id)).Result(); n != wantHeld {
				t.Errorf("%d users held, want %d", n, wantHeld)
			}
			if !tc.init {
				if n, _ := g.client.Exists(ctx, UsersKey(id), SeqKey(id)).Result(); n != 0 {
					t.Errorf("a call on a lost state wrote %d keys", n)
				}
			}
		})
	}
}

// TestBatchedManyCoupons has concurrent calls for several coupons (with
// different supplies) share batches: each coupon admits exactly its supply,
// ranked 1..supply.
func TestBatchedManyCoupons(t *testing.T) {
	const coupons, users = 4, 200
	g := mustOpenGate(t, Config{BatchPipelines: 1})
	ids := make([]int64, coupons)
	for i := range ids {
		ids[i] = newCoupon(t, g)
	}
	supply := func(c int) int64 { return int64(50 * (c + 1)) }
	var mu sync.Mutex
	ranks := make([]map[int64]bool, coupons)
	for i := range ranks {
		ranks[i] = map[int64]bool{}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range coupons * users {
		wg.Go(func() {
			c, u := i%coupons, int64(i/coupons)+1
			<-start
			rank, err := g.Admit(context.Background(), ids[c], u, supply(c))
			if coupon.ErrorCode(err) == coupon.ESOLDOUT {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil || ranks[c][rank] {
				t.Errorf("coupon %d user %d: rank %d, %v", c, u, rank, err)
			}
			ranks[c][rank] = true
		})
	}
	close(start)
	wg.Wait()
	for c := range coupons {
		if int64(len(ranks[c])) != supply(c) {
			t.Errorf("coupon %d admitted %d, want %d", c, len(ranks[c]), supply(c))
		}
		for r := int64(1); r <= supply(c); r++ {
			if !ranks[c][r] {
				t.Errorf("coupon %d: rank %d missing", c, r)
			}
		}
	}
}
