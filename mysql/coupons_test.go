package mysql_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

func TestCouponQueries(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()
	start := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.FixedZone("KST", 9*3600))
	end := start.Add(time.Hour)

	c := &coupon.Coupon{Name: "Spring drop ✿", TotalQuantity: 3, IssueStartsAt: &start, IssueEndsAt: &end}
	if err := db.CreateCoupon(ctx, c); err != nil {
		t.Fatalf("create: %v", err)
	}
	if c.ID < 1 || c.CreatedAt.IsZero() || c.Strategy != coupon.StrategyAsync {
		t.Fatalf("created %+v: want an ID, a creation time and the async default", c)
	}
	got, err := db.FindCoupon(ctx, c.ID)
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if got.Name != c.Name || got.TotalQuantity != 3 || got.IssuedQuantity != 0 || got.Strategy != coupon.StrategyAsync ||
		!got.IssueStartsAt.Equal(start) || !got.IssueEndsAt.Equal(end) || !got.CreatedAt.Equal(c.CreatedAt) {
		t.Fatalf("found %+v; want %+v", got, c)
	}

	open := &coupon.Coupon{Name: "open", TotalQuantity: 1, Strategy: coupon.StrategyDBLock}
	if err := db.CreateCoupon(ctx, open); err != nil {
		t.Fatalf("create: %v", err)
	}
	if got, err := db.FindCoupon(ctx, open.ID); err != nil || got.IssueStartsAt != nil || got.IssueEndsAt != nil || got.Strategy != coupon.StrategyDBLock {
		t.Fatalf("found %+v, %v; want no window, db-lock", got, err)
	}
	if _, err := db.FindCoupon(ctx, 1<<62); coupon.ErrorCode(err) != coupon.ENOTFOUND {
		t.Fatalf("missing coupon: %v; want %s", err, coupon.ENOTFOUND)
	}

	user := testenv.RandomCouponID()
	if _, err := db.FindIssue(ctx, c.ID, user); coupon.ErrorCode(err) != coupon.ENOTISSUED {
		t.Fatalf("missing issue: %v; want %s", err, coupon.ENOTISSUED)
	}
	if n, err := db.IssuedCount(ctx, c.ID); err != nil || n != 0 {
		t.Fatalf("issued count %d, %v; want 0", n, err)
	}
	if _, err := db.InsertIssues(ctx, append(issues(c.ID, user, 1, 2), issues(open.ID, user, 7, 1)...)); err != nil {
		t.Fatalf("insert issues: %v", err)
	}
	if n, err := db.IssuedCount(ctx, c.ID); err != nil || n != 2 {
		t.Fatalf("issued count %d, %v; want 2", n, err)
	}
	is, err := db.FindIssue(ctx, c.ID, user+1)
	if err != nil || is.Rank != 2 || is.CouponID != c.ID || is.UserID != user+1 || is.IssuedAt.IsZero() || is.Partition != 3 {
		t.Fatalf("found issue %+v, %v", is, err)
	}
	list, err := db.ListUserIssues(ctx, user)
	if err != nil || len(list) != 2 || list[0].CouponID != open.ID || list[0].Rank != 7 || list[1].CouponID != c.ID || list[1].Rank != 1 ||
		list[0].Name != "open" || list[1].Name != c.Name || list[0].Status != coupon.StatusIssued || list[0].IssuedAt == nil || list[0].AdmittedAt == nil {
		t.Fatalf("user issues %+v, %v; want coupon %d (open) rank 7 then coupon %d rank 1, issued, with times", list, err, open.ID, c.ID)
	}
	if list, err := db.ListUserIssues(ctx, user+100); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("user without issues: %v, %v; want an empty, non-nil list", list, err)
	}

	// FindIssues: one query over both coupons returns the rows that exist
	// (c: user and user+1; open: user), not the users without one.
	found, err := db.FindIssues(ctx, map[int64][]int64{c.ID: {user + 1, user + 5, user}, open.ID: {user, user + 1}, 1 << 62: {user}})
	if err != nil {
		t.Fatalf("find issues: %v", err)
	}
	ranks := map[[2]int64]int64{}
	for _, is := range found {
		if is.IssuedAt.IsZero() || is.Partition != 3 {
			t.Fatalf("found issue %+v: want its times and partition", is)
		}
		ranks[[2]int64{is.CouponID, is.UserID}] = is.Rank
	}
	if want := map[[2]int64]int64{{c.ID, user}: 1, {c.ID, user + 1}: 2, {open.ID, user}: 7}; !maps.Equal(ranks, want) {
		t.Fatalf("find issues: %v; want %v", ranks, want)
	}
	if found, err := db.FindIssues(ctx, map[int64][]int64{c.ID: {}}); err != nil || len(found) != 0 {
		t.Fatalf("find issues of no users: %v, %v", found, err)
	}
}

func TestUpdateCoupon(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()
	c := &coupon.Coupon{Name: "update", TotalQuantity: 5}
	if err := db.CreateCoupon(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Revision != 1 {
		t.Fatalf("revision at creation %d; want 1", c.Revision)
	}
	user := testenv.RandomCouponID()
	if _, err := db.InsertIssues(ctx, issues(c.ID, user, 1, 3)); err != nil {
		t.Fatal(err)
	}
	name, total := "renamed", int64(8)
	end := time.Now().UTC().Truncate(time.Microsecond)
	var held *coupon.Coupon
	old, upd, err := db.UpdateCoupon(ctx, c.ID, coupon.Patch{Name: &name, TotalQuantity: &total, IssueEndsAt: coupon.TimePatch{Set: true, Value: &end}},
		func(_ context.Context, _, u *coupon.Coupon) error { held = u; return nil })
	if err != nil || old.TotalQuantity != 5 || upd.TotalQuantity != 8 || upd.Name != name || upd.Revision != 2 || held != upd || !upd.IssueEndsAt.Equal(end) {
		t.Fatalf("update: %+v -> %+v, %v", old, upd, err)
	}
	if got, _ := db.FindCoupon(ctx, c.ID); got.Name != name || got.TotalQuantity != 8 || got.Revision != 2 || !got.IssueEndsAt.Equal(end) || got.IssuedQuantity != 3 {
		t.Fatalf("stored %+v", got)
	}

	// Below the issued rows: refused, nothing changed.
	low := int64(2)
	if _, _, err := db.UpdateCoupon(ctx, c.ID, coupon.Patch{TotalQuantity: &low}, nil); coupon.ErrorCode(err) != coupon.ECONFLICT {
		t.Fatalf("total below issued: %v; want conflict", err)
	}
	// An error from hold rolls back.
	three := int64(3)
	boom := coupon.Errorf(coupon.ECONFLICT, "the gate refused")
	if _, _, err := db.UpdateCoupon(ctx, c.ID, coupon.Patch{TotalQuantity: &three}, func(context.Context, *coupon.Coupon, *coupon.Coupon) error { return boom }); err != boom {
		t.Fatalf("hold error: %v", err)
	}
	// Clearing the end; an end before the start is refused.
	start := time.Now().Add(time.Hour)
	if _, _, err := db.UpdateCoupon(ctx, c.ID, coupon.Patch{IssueStartsAt: coupon.TimePatch{Set: true, Value: &start}}, nil); coupon.ErrorCode(err) != coupon.EINVALID {
		t.Fatalf("end before start: %v; want invalid", err)
	}
	if _, upd, err := db.UpdateCoupon(ctx, c.ID, coupon.Patch{IssueEndsAt: coupon.TimePatch{Set: true}}, nil); err != nil || upd.IssueEndsAt != nil || upd.Revision != 3 {
		t.Fatalf("clear the end: %+v, %v", upd, err)
	}
	if got, _ := db.FindCoupon(ctx, c.ID); got.TotalQuantity != 8 || got.IssueEndsAt != nil {
		t.Fatalf("after refused and cleared updates: %+v", got)
	}
	// The database guard itself: no write may set a total below issued.
	if _, err := db.SQL().ExecContext(ctx, `UPDATE coupons SET total_quantity = 2 WHERE id = ?`, c.ID); err == nil {
		t.Fatal("the CHECK constraint let total_quantity drop below issued_quantity")
	}
	if _, _, err := db.UpdateCoupon(ctx, 1<<62, coupon.Patch{Name: &name}, nil); coupon.ErrorCode(err) != coupon.ENOTFOUND {
		t.Fatalf("missing coupon: %v", err)
	}
}

func TestListCoupons(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	hour := time.Hour
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	mk := func(name string, total int64, st coupon.Strategy, starts, ends *time.Time) *coupon.Coupon {
		c := &coupon.Coupon{Name: name, TotalQuantity: total, Strategy: st, IssueStartsAt: starts, IssueEndsAt: ends}
		if err := db.CreateCoupon(ctx, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	upcoming := mk("upcoming", 5, coupon.StrategyDBLock, at(hour), nil)
	open := mk("open", 5, coupon.StrategyDBLock, at(-hour), at(hour))
	ended := mk("ended", 5, coupon.StrategyDBLock, nil, at(-hour))
	soldOut := mk("sold out", 1, coupon.StrategyDBLock, nil, nil)
	asyncOpen := mk("async", 5, coupon.StrategyAsync, nil, nil)
	if _, err := db.InsertIssues(ctx, issues(soldOut.ID, testenv.RandomCouponID(), 1, 1)); err != nil {
		t.Fatal(err)
	}
	after := upcoming.ID - 1
	ours := []int64{upcoming.ID, open.ID, ended.ID, soldOut.ID, asyncOpen.ID}
	ids := func(cs []*coupon.Coupon) []int64 { // ours only: other tests create coupons meanwhile
		var out []int64
		for _, c := range cs {
			if slices.Contains(ours, c.ID) {
				out = append(out, c.ID)
			}
		}
		return out
	}
	// Newest first, the cursor past the newest of ours (coupons other
	// tests create meanwhile come after it).
	before := asyncOpen.ID + 1
	for _, tt := range []struct {
		state coupon.State
		want  []int64
	}{
		{"", []int64{upcoming.ID, open.ID, ended.ID, soldOut.ID, asyncOpen.ID}},
		{coupon.StateUpcoming, []int64{upcoming.ID}},
		{coupon.StateOpen, []int64{open.ID, asyncOpen.ID}},
		{coupon.StateEnded, []int64{ended.ID}},
		{coupon.StateSoldOut, []int64{soldOut.ID, asyncOpen.ID}}, // an async coupon may be sold out in the gate
	} {
		t.Run(string(tt.state)+"/asc", func(t *testing.T) {
			got, err := db.ListCoupons(ctx, after, 100, coupon.OrderAsc, tt.state, now)
			if err != nil || !slices.Equal(ids(got), tt.want) {
				t.Fatalf("got %v, %v; want %v", ids(got), err, tt.want)
			}
		})
		t.Run(string(tt.state)+"/desc", func(t *testing.T) {
			got, err := db.ListCoupons(ctx, before, 100, coupon.OrderDesc, tt.state, now)
			want := slices.Clone(tt.want)
			slices.Reverse(want)
			if err != nil || !slices.Equal(ids(got), want) {
				t.Fatalf("got %v, %v; want %v", ids(got), err, want)
			}
		})
	}
	// Pages: limit and the cursor walk every coupon once, in ID order both
	// ways, each page strictly past the cursor.
	walk := func(order coupon.Order, cursor int64) []int64 {
		t.Helper()
		var walked []int64
		for len(walked) < len(ours) {
			page, err := db.ListCoupons(ctx, cursor, 2, order, "", now)
			if err != nil || len(page) == 0 || len(page) > 2 {
				t.Fatalf("%s page past %d: %v, %v", order, cursor, page, err)
			}
			for _, c := range page {
				if order == coupon.OrderAsc && c.ID <= cursor || order == coupon.OrderDesc && c.ID >= cursor {
					t.Fatalf("%s page past %d holds coupon %d", order, cursor, c.ID)
				}
				cursor = c.ID
			}
			walked = append(walked, ids(page)...)
		}
		return walked
	}
	if walked := walk(coupon.OrderAsc, after); !slices.Equal(walked, ours) {
		t.Fatalf("ascending pages walked %v; want %v", walked, ours)
	}
	newest := slices.Clone(ours)
	slices.Reverse(newest)
	if walked := walk(coupon.OrderDesc, before); !slices.Equal(walked, newest) {
		t.Fatalf("descending pages walked %v; want %v", walked, newest)
	}
	// No cursor: ascending starts at the oldest coupon, descending at the
	// newest (ours or one created since).
	if first, err := db.ListCoupons(ctx, 0, 1, coupon.OrderAsc, "", now); err != nil || len(first) != 1 || first[0].ID > upcoming.ID {
		t.Fatalf("first ascending page %d coupons, %v; want one at most %d", len(first), err, upcoming.ID)
	}
	if first, err := db.ListCoupons(ctx, 0, 1, coupon.OrderDesc, "", now); err != nil || len(first) != 1 || first[0].ID < asyncOpen.ID {
		t.Fatalf("first descending page %d coupons, %v; want one at least %d", len(first), err, asyncOpen.ID)
	}
	if _, err := db.ListCoupons(ctx, 0, 1, "sideways", "", now); err == nil {
		t.Fatal("an unknown order listed coupons")
	}
	// The async coupons still issuing, newest first.
	adm, err := db.AdmittingCoupons(ctx, now)
	if err != nil || len(adm) == 0 || adm[0].ID < asyncOpen.ID || !slices.Contains(ids(adm), asyncOpen.ID) {
		t.Fatalf("admitting coupons %v, %v; want %d among the newest", ids(adm), err, asyncOpen.ID)
	}
}

// TestQueriesAreOneRoundTrip: the store's queries with arguments reach the
// server as text with the arguments interpolated (one round trip, one
// COM_QUERY), not as a server-side prepare, execute and close.
func TestQueriesAreOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := mustOpenOneConn(t)
	prepared := func() int64 { return sessionStatus(t, db, "Com_stmt_prepare") }
	c := &coupon.Coupon{Name: "one round trip ✿", TotalQuantity: 5}
	if err := db.CreateCoupon(ctx, c); err != nil {
		t.Fatal(err)
	}
	before := prepared()
	if _, err := db.FindIssue(ctx, c.ID, 7); coupon.ErrorCode(err) != coupon.ENOTISSUED {
		t.Fatalf("find issue: %v; want %s", err, coupon.ENOTISSUED)
	}
	if _, err := db.FindIssues(ctx, map[int64][]int64{c.ID: {7, 8}}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.FindCoupon(ctx, c.ID); err != nil || got.Name != c.Name {
		t.Fatalf("find coupon: %+v, %v", got, err)
	}
	if n := prepared() - before; n != 0 {
		t.Fatalf("%d statements prepared on the server; want 0 (interpolateParams)", n)
	}
}
