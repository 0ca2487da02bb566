package admitter

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

// oldLayoutCoupon writes a coupon's gate state as the gate kept it before
// the hash held seq and total: users 1 and 2 (ranks 1 and 2) in the hash,
// the counter 5 (ranks 3..5 were released) and, when total > 0, the total
// in string keys of their own; user 1 is pending.
func oldLayoutCoupon(tb testing.TB, g *Gate, total int64) int64 {
	tb.Helper()
	ctx := context.Background()
	id := testenv.RandomCouponID()
	tb.Cleanup(func() { dropCoupon(g.client, id) })
	p := g.client.TxPipeline()
	p.HSet(ctx, usersKey(id), "1", 1, "2", 2)
	p.HSet(ctx, pendingKey(id), "1", 1)
	p.Set(ctx, oldSeqKey(id), 5, 0)
	if total > 0 {
		p.Set(ctx, oldTotalKey(id), total, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		tb.Fatal(err)
	}
	return id
}

// assertMigrated checks that the state is in the hash with the counter
// (and total) of the old keys, and that the old keys are gone: a gateway of
// the previous version, whose script reads the seq key, refuses the coupon
// as lost instead of admitting from a counter nobody advances.
func assertMigrated(tb testing.TB, g *Gate, id, wantSeq, wantTotal int64) {
	tb.Helper()
	ctx := context.Background()
	if n, _ := g.client.Exists(ctx, oldSeqKey(id), oldTotalKey(id)).Result(); n != 0 {
		tb.Errorf("coupon %d: %d keys of the old layout left", id, n)
	}
	st, ok, err := g.State(ctx, id)
	if err != nil || !ok || st.Seq != wantSeq || st.Total != wantTotal {
		tb.Errorf("coupon %d: state %+v, %v, %v; want seq %d, total %d", id, st, ok, err, wantSeq, wantTotal)
	}
	if want := map[int64]int64{1: 1}; !maps.Equal(st.Pending, want) {
		tb.Errorf("coupon %d: pending %v, want %v", id, st.Pending, want)
	}
}

// TestMigrateOldLayout: every operation that meets a state in the old
// layout moves it into the hash first (once, atomically) and then answers
// as it would have: the counter continues, the stored total keeps winning,
// the admitted users keep their ranks.
func TestMigrateOldLayout(t *testing.T) {
	ctx := context.Background()
	for _, v := range variants {
		t.Run(v.name+"/admit", func(t *testing.T) {
			g := mustOpenGate(t, v.cfg)
			id := oldLayoutCoupon(t, g, 3)
			mustAdmit(t, g, id, 7, 100, 6) // the counter continues; total 3 wins over 100
			if _, err := g.Admit(ctx, id, 8, 100); coupon.ErrorCode(err) != coupon.ESOLDOUT {
				t.Fatalf("admit past the stored total: %v; want sold_out", err)
			}
			if rank, err := g.Admit(ctx, id, 2, 100); coupon.ErrorCode(err) != coupon.EALREADY || rank != 2 {
				t.Fatalf("admit of a user admitted before: %d, %v; want already with rank 2", rank, err)
			}
			assertMigrated(t, g, id, 6, 3)
		})
	}
	t.Run("batch spanning both layouts", func(t *testing.T) {
		g := mustOpenGate(t, DefaultConfig())
		old, lost, fresh := oldLayoutCoupon(t, g, 0), newCoupon(t, g), newCoupon(t, g)
		loseCounter(t, g, lost)
		batch := []*admitReq{
			{couponID: old, userID: 10, total: 10}, {couponID: fresh, userID: 10, total: 10},
			{couponID: lost, userID: 10, total: 10}, {couponID: old, userID: 1, total: 10}, {couponID: old, userID: 11, total: 10},
		}
		g.admitCalls(ctx, g.split(groupByCoupon(batch)))
		want := []admitResult{{0, 6}, {0, 1}, {3, 0}, {1, 1}, {0, 7}}
		for i, r := range batch {
			if r.err != nil || (admitResult{r.code, r.rank}) != want[i] {
				t.Errorf("request %d (coupon %d user %d): code %d rank %d err %v; want %+v", i, r.couponID, r.userID, r.code, r.rank, r.err, want[i])
			}
		}
		assertMigrated(t, g, old, 7, 0) // no total key: the callers' totals count
		if n, err := g.client.HLen(ctx, usersKey(lost)).Result(); err != nil || n != 0 {
			t.Errorf("the lost coupon's users: %d fields (%v); want none written", n, err)
		}
	})
	readers := []struct {
		name string
		call func(g *Gate, id int64) error
	}{
		{"admitted", func(g *Gate, id int64) error {
			if n, err := g.Admitted(ctx, id); err != nil || n != 2 {
				return errors.Join(err, errors.New("want 2 admitted"))
			}
			return nil
		}},
		{"admitted many", func(g *Gate, id int64) error {
			if m, err := g.AdmittedMany(ctx, []int64{id}); err != nil || m[id] != 2 {
				return errors.Join(err, errors.New("want 2 admitted"))
			}
			return nil
		}},
		{"rank of a user not admitted", func(g *Gate, id int64) error {
			if _, ok, err := g.Rank(ctx, id, 9); err != nil || ok {
				return errors.Join(err, errors.New("want not admitted"))
			}
			return nil
		}},
		{"has state", func(g *Gate, id int64) error {
			if ok, err := g.HasState(ctx, id); err != nil || !ok {
				return errors.Join(err, errors.New("want present"))
			}
			return nil
		}},
		{"resize", func(g *Gate, id int64) error {
			if n, err := g.Resize(ctx, id, 4, 1); err != nil || n != 2 {
				return errors.Join(err, errors.New("want resized with 2 admitted"))
			}
			return nil
		}},
	}
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			g := mustOpenGate(t, DefaultConfig())
			id := oldLayoutCoupon(t, g, 3)
			if err := r.call(g, id); err != nil {
				t.Fatal(err)
			}
			total := int64(3)
			if r.name == "resize" {
				total = 4
			}
			assertMigrated(t, g, id, 5, total)
		})
	}
	t.Run("init and restore leave it alone", func(t *testing.T) {
		g := mustOpenGate(t, DefaultConfig())
		id := oldLayoutCoupon(t, g, 3)
		if err := g.Init(ctx, id, 50); err != nil {
			t.Fatal(err)
		}
		if ok, err := g.Restore(ctx, id, State{Seq: 1}, true); err != nil || ok {
			t.Fatalf("restore only if missing over an old-layout state: %v, %v; want not written", ok, err)
		}
		mustAdmit(t, g, id, 7, 100, 6)
		assertMigrated(t, g, id, 6, 3)
	})
	t.Run("a lost state stays lost", func(t *testing.T) {
		g := mustOpenGate(t, DefaultConfig())
		id := oldLayoutCoupon(t, g, 3)
		g.client.Del(ctx, oldSeqKey(id))
		if _, err := g.Admit(ctx, id, 7, 100); !errors.Is(err, coupon.ErrGateLost) {
			t.Fatalf("admit: %v; want the lost state", err)
		}
		if _, ok, err := g.State(ctx, id); err != nil || ok {
			t.Fatalf("state: %v, %v; want lost", ok, err)
		}
		if n, _ := g.client.HLen(ctx, usersKey(id)).Result(); n != 2 {
			t.Fatalf("the lost state's hash has %d fields, want its 2 users untouched", n)
		}
	})
}

// TestCounterCoversUsers: the admit script counts the users held only when
// the counter plus a call's users pass the total, which is exact only if
// the counter is at least the number of users held. A restore and the
// migration of a state that broke that (three users sharing rank 1 with
// counter 1, which no admission makes) raise the counter, so the supply
// still holds.
func TestCounterCoversUsers(t *testing.T) {
	ctx := context.Background()
	g := mustOpenGate(t, DefaultConfig())
	restored := newCoupon(t, g)
	if ok, err := g.Restore(ctx, restored, State{Users: map[int64]int64{1: 1, 2: 1, 3: 1}, Seq: 1, Total: 4}, false); err != nil || !ok {
		t.Fatalf("restore: %v, %v", ok, err)
	}
	migrated := oldLayoutCoupon(t, g, 4)
	g.client.HSet(ctx, usersKey(migrated), "3", 1)
	g.client.Set(ctx, oldSeqKey(migrated), 1, 0)
	for _, id := range []int64{restored, migrated} {
		mustAdmit(t, g, id, 4, 4, 4)
		if _, err := g.Admit(ctx, id, 5, 4); coupon.ErrorCode(err) != coupon.ESOLDOUT {
			t.Errorf("coupon %d: a fifth user of 4: %v; want sold_out", id, err)
		}
	}
}
