package gateway

import (
	"context"
	"strconv"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// Page sizes of GET /v1/coupons.
const (
	defaultListLimit = 20
	maxListLimit     = 100
	// listRounds bounds the MySQL pages one answer reads while a state
	// filter drops coupons; the answer may then hold fewer than limit
	// coupons and a nextCursor.
	listRounds = 10
)

// listCoupons: GET /v1/coupons?limit=&cursor=&order=&state= (admin). Pages
// are in ID order, ascending (the default) or descending with order=desc;
// nextCursor (null on the last page) continues past the last coupon read in
// the same order, so a page may hold fewer than limit coupons when a state
// filter skips some.
func (s *Server) listCoupons(c *fiber.Ctx) error {
	if err := s.authorizeAdmin(c); err != nil {
		return err
	}
	q, err := parseListQuery(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	views := []couponView{}
	var next *string
	for round := 0; round < listRounds && len(views) < q.limit; round++ {
		want := q.limit - len(views)
		page, err := s.store.ListCoupons(ctx, q.cursor, want, q.order, q.state, time.Now())
		if err != nil {
			return unavailable(err, "The coupons could not be listed; retry later.")
		}
		for _, v := range s.views(ctx, c, page) {
			if q.state == "" || v.State == q.state {
				views = append(views, v)
			}
		}
		next = nil
		if len(page) < want {
			break
		}
		q.cursor = page[len(page)-1].ID
		cur := strconv.FormatInt(q.cursor, 10)
		next = &cur
	}
	return c.JSON(fiber.Map{"coupons": views, "nextCursor": next})
}

// views shows a page of coupons, the async ones' admitted counts read from
// the gate in one round trip (issued from MySQL's counter).
func (s *Server) views(ctx context.Context, c *fiber.Ctx, page []*coupon.Coupon) []couponView {
	var ids []int64
	for _, cp := range page {
		if cp.Strategy == coupon.StrategyAsync {
			ids = append(ids, cp.ID)
		}
	}
	var admitted map[int64]int64
	gate := gateOK
	if len(ids) > 0 && s.gate != nil {
		var err error
		if admitted, err = s.gate.AdmittedMany(ctx, ids); err != nil {
			gate = s.gateState(c, 0, err)
		}
	}
	out := make([]couponView, len(page))
	for i, cp := range page {
		if cp.Strategy != coupon.StrategyAsync || s.gate == nil {
			out[i] = newCouponView(cp, cp.IssuedQuantity, cp.IssuedQuantity, "")
			continue
		}
		n, ok := admitted[cp.ID]
		g := gate
		if !ok {
			n = cp.IssuedQuantity
			if g == gateOK {
				g = gateRebuilding
			}
		}
		out[i] = newCouponView(cp, n, cp.IssuedQuantity, g)
	}
	return out
}

// listQuery is what GET /v1/coupons asks for; cursor 0 is the first page.
type listQuery struct {
	limit  int
	cursor int64
	order  coupon.Order
	state  coupon.State
}

// parseListQuery reads limit (1..100, default 20), cursor, order (asc, the
// default, or desc) and state.
func parseListQuery(c *fiber.Ctx) (q listQuery, err error) {
	q.limit, q.order = defaultListLimit, coupon.OrderAsc
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return q, coupon.Errorf(coupon.EINVALID, "limit must be an integer from 1 to %d (got %q).", maxListLimit, echo(v))
		}
		q.limit = n
	}
	if v := c.Query("cursor"); v != "" {
		if q.cursor, err = parsePathID(v, "cursor"); err != nil {
			return q, coupon.Errorf(coupon.EINVALID, "cursor must be the nextCursor of a previous page (got %q).", echo(v))
		}
	}
	if v := c.Query("order"); v != "" {
		q.order = coupon.Order(v)
		if q.order != coupon.OrderAsc && q.order != coupon.OrderDesc {
			return q, coupon.Errorf(coupon.EINVALID, "order must be asc (oldest first) or desc (newest first) (got %q).", echo(v))
		}
	}
	if v := c.Query("state"); v != "" {
		q.state = coupon.State(v)
		known := false
		for _, st := range coupon.States {
			known = known || st == q.state
		}
		if !known {
			return q, coupon.Errorf(coupon.EINVALID, "state must be one of upcoming, open, ended, sold_out (got %q).", echo(v))
		}
	}
	return q, nil
}

// patchCoupon: PATCH /v1/coupons/{couponId} (admin). The change is written
// under the coupon's row lock with its revision raised; the gate's total
// follows in the order that keeps it at or below MySQL's at every moment
// (so the sinker never meets an admission past the database's guard):
// a lower total is set in the gate (refused atomically below the admitted
// users) before MySQL commits, a higher one after. Every gateway drops the
// coupon from its cache (Deps.Changes).
func (s *Server) patchCoupon(c *fiber.Ctx) error {
	if err := s.authorizeAdmin(c); err != nil {
		return err
	}
	id, err := parsePathID(c.Params("couponId"), "couponId")
	if err != nil {
		return err
	}
	body, err := jsonBody(c)
	if err != nil {
		return err
	}
	p, err := decodePatchRequest(body)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	old, cp, err := s.store.UpdateCoupon(ctx, id, p, func(ctx context.Context, old, upd *coupon.Coupon) error {
		if !s.gated(old) || upd.TotalQuantity >= old.TotalQuantity {
			return nil
		}
		if _, err := s.gate.Resize(ctx, id, upd.TotalQuantity, upd.Revision); err != nil {
			return unavailable(err, "totalQuantity could not be lowered: the admission gate did not answer; nothing changed, retry later.")
		}
		return nil
	})
	if err != nil {
		return unavailable(err, "Coupon %d could not be changed; retry later.", id)
	}
	log := s.requestLogger(c).With("couponId", id, "revision", cp.Revision)
	s.cache.put(cp)
	s.announce(c, id)
	if s.gated(old) && cp.TotalQuantity > old.TotalQuantity {
		if _, err := s.gate.Resize(ctx, id, cp.TotalQuantity, cp.Revision); err != nil {
			log.Error("coupon changed, but the gate did not take the higher total", "total", cp.TotalQuantity, "err", err)
			return joinCause(coupon.Errorf(coupon.EUNAVAILABLE,
				"The change of coupon %d is saved, but the admission gate did not take totalQuantity %d yet (it still admits up to %d): repeat the PATCH.",
				id, cp.TotalQuantity, old.TotalQuantity), err)
		}
	}
	log.Info("coupon changed", "name", cp.Name, "total", cp.TotalQuantity, "startsAt", cp.IssueStartsAt, "endsAt", cp.IssueEndsAt)
	v, err := s.viewOf(ctx, c, cp)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// gated reports whether c's supply is kept by the gate.
func (s *Server) gated(c *coupon.Coupon) bool {
	return c.Strategy == coupon.StrategyAsync && s.gate != nil
}

// announce tells the other gateways that coupon id changed; without Redis
// they see it when their cache entry expires (CacheMaxAge; CacheTTL on a
// gateway whose feed cannot confirm either).
func (s *Server) announce(c *fiber.Ctx, id int64) {
	if s.changes == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.GateTimeout)
	defer cancel()
	if err := s.changes.Announce(ctx, id); err != nil {
		s.requestLogger(c).Warn("coupon change not announced; other gateways see it when their cache expires", "couponId", id, "maxAge", s.cfg.CacheMaxAge, "err", err)
	}
}
