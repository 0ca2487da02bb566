package gateway

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// couponView is a coupon as GET /v1/coupons/{id} and POST /v1/coupons show it.
type couponView struct {
	ID            int64           `json:"id"`
	Name          string          `json:"name"`
	Strategy      coupon.Strategy `json:"strategy"`
	TotalQuantity int64           `json:"totalQuantity"`
	Admitted      int64           `json:"admitted"`
	Issued        int64           `json:"issued"`
	Remaining     int64           `json:"remaining"`
	IssueStartsAt *time.Time      `json:"issueStartsAt"`
	IssueEndsAt   *time.Time      `json:"issueEndsAt"`
	CreatedAt     time.Time       `json:"createdAt"`
}

func newCouponView(c *coupon.Coupon, admitted, issued int64) couponView {
	return couponView{
		ID: c.ID, Name: c.Name, Strategy: c.Strategy, TotalQuantity: c.TotalQuantity,
		Admitted: admitted, Issued: issued, Remaining: max(0, c.TotalQuantity-admitted),
		IssueStartsAt: c.IssueStartsAt, IssueEndsAt: c.IssueEndsAt, CreatedAt: c.CreatedAt,
	}
}

// storeCtx bounds one store or gate call of a request. fasthttp's request
// context is cancelled at server shutdown, so requests in flight use their
// own: shutdown lets them finish.
func (s *Server) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	if s.draining.Load() {
		return coupon.Errorf(coupon.EUNAVAILABLE, "The gateway is shutting down.")
	}
	ok, result := s.ready.Check()
	s.metrics.readiness(result)
	if !ok {
		c.Set(fiber.HeaderRetryAfter, s.retryAfter)
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
			"error": coupon.EUNAVAILABLE, "message": "Not ready: " + failures(result) + ".", "checks": result,
		})
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": result})
}

// createCoupon: POST /v1/coupons (admin).
func (s *Server) createCoupon(c *fiber.Ctx) error {
	if err := s.authorizeAdmin(c); err != nil {
		return err
	}
	body, err := jsonBody(c)
	if err != nil {
		return err
	}
	cp, err := decodeCreateRequest(body, time.Now())
	if err != nil {
		return err
	}
	if _, ok := s.issuers[cp.Strategy]; !ok {
		return coupon.Errorf(coupon.EINVALID, "strategy %s is not enabled on this gateway (enabled: %s).", cp.Strategy, s.enabledStrategies())
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	if err := s.store.CreateCoupon(ctx, cp); err != nil {
		return err
	}
	if cp.Strategy == coupon.StrategyAsync {
		if err := s.gate.Init(ctx, cp.ID); err != nil {
			// Undo the creation, so no coupon is left half-made.
			log := s.requestLogger(c).With("couponId", cp.ID, "err", err)
			if deleted, derr := s.store.DeleteUnissuedCoupon(ctx, cp.ID); derr == nil && deleted {
				log.Warn("coupon creation undone: its gate state could not be initialised")
				return joinCause(coupon.Errorf(coupon.EUNAVAILABLE,
					"The coupon was not created: its admission gate is unavailable; please retry."), err)
			} else if derr != nil {
				log = log.With("deleteErr", derr)
			}
			log.Error("coupon created but its gate state was not initialised, and the creation could not be undone")
			return joinCause(coupon.Errorf(coupon.EUNAVAILABLE,
				"Coupon %d was created but its admission gate could not be initialised; its issue requests answer 503 until an operator runs couponctl rebuild-gate --coupon %d.", cp.ID, cp.ID), err)
		}
	}
	s.cache.put(cp)
	s.requestLogger(c).Info("coupon created", "couponId", cp.ID, "strategy", cp.Strategy, "total", cp.TotalQuantity)
	return c.Status(fiber.StatusCreated).JSON(newCouponView(cp, 0, 0))
}

func (s *Server) enabledStrategies() string {
	out := ""
	for _, st := range []coupon.Strategy{coupon.StrategyAsync, coupon.StrategyDBLock, coupon.StrategyRedisLock} {
		if _, ok := s.issuers[st]; ok {
			if out != "" {
				out += ", "
			}
			out += string(st)
		}
	}
	if out == "" {
		return "none"
	}
	return out
}

// getCoupon: GET /v1/coupons/{couponId}.
func (s *Server) getCoupon(c *fiber.Ctx) error {
	id, err := parsePathID(c.Params("couponId"), "couponId")
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	cp, err := s.cache.Get(ctx, id)
	if err != nil {
		return err
	}
	issued, err := s.store.IssuedCount(ctx, id)
	if err != nil {
		return unavailable(err, "The issued count of coupon %d could not be read; retry later.", id)
	}
	admitted := issued
	if cp.Strategy == coupon.StrategyAsync && s.gate != nil {
		if admitted, err = s.gate.Admitted(ctx, id); err != nil {
			return unavailable(err, "The admitted count of coupon %d could not be read; retry later.", id)
		}
	}
	return c.JSON(newCouponView(cp, admitted, issued))
}

// issue: POST /v1/coupons/{couponId}/issues. Cheap checks first (path,
// query, body), then the cached coupon (404, 409 strategy, 403 window),
// and only then the strategy's issuer.
func (s *Server) issue(c *fiber.Ctx) error {
	id, err := parsePathID(c.Params("couponId"), "couponId")
	if err != nil {
		return err
	}
	var want coupon.Strategy
	if q := c.Query("strategy"); q != "" {
		if want = coupon.Strategy(q); !want.Valid() {
			return coupon.Errorf(coupon.EINVALID, "strategy must be one of async, db-lock, redis-lock (got %q).", echo(q))
		}
	}
	userID, err := s.issueUser(c)
	if err != nil {
		return err
	}
	if s.limiter != nil {
		if ok, wait := s.limiter.Allow(s.limitKey(c, userID), time.Now()); !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(int64(max(1, math.Ceil(wait.Seconds()))), 10))
			return coupon.Errorf(coupon.ERATELIMITED, "Too many issue requests from this %s; retry in %s.", s.limitSubject(), wait.Round(time.Millisecond))
		}
	}
	// fasthttp's request context ends at server shutdown: requests in
	// flight use their own, so shutdown lets them finish. The async issuer
	// bounds its gate and publish calls itself.
	ctx := context.Background()
	cp, err := s.cache.Get(ctx, id)
	if err != nil {
		return err
	}
	if cp.Strategy != coupon.StrategyAsync {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.IssueTimeout)
		defer cancel()
	}
	c.Locals(localStrategy, string(cp.Strategy))
	if want != "" && want != cp.Strategy {
		return coupon.Errorf(coupon.ECONFLICT, "Coupon %d is issued through strategy %s, not %s.", id, cp.Strategy, want)
	}
	if err := cp.CheckWindow(time.Now()); err != nil {
		return err
	}
	issuer, ok := s.issuers[cp.Strategy]
	if !ok {
		return coupon.Errorf(coupon.EUNAVAILABLE, "Strategy %s of coupon %d is not enabled on this gateway.", cp.Strategy, id)
	}
	is, err := issuer.Issue(ctx, cp, userID, requestID(c))
	if err != nil {
		return err
	}
	if cp.Strategy == coupon.StrategyAsync {
		// Hand-built: this is the hot path.
		b := make([]byte, 0, 80)
		b = append(b, `{"couponId":`...)
		b = strconv.AppendInt(b, is.CouponID, 10)
		b = append(b, `,"userId":`...)
		b = strconv.AppendInt(b, is.UserID, 10)
		b = append(b, `,"rank":`...)
		b = strconv.AppendInt(b, is.Rank, 10)
		b = append(b, '}')
		c.Status(fiber.StatusAccepted)
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(b)
	}
	return c.Status(fiber.StatusCreated).JSON(is)
}

// issueUser returns the user of an issue request: the body's userId, or,
// with user auth on, the token's user (the body's userId, when given, must
// be the same).
func (s *Server) issueUser(c *fiber.Ctx) (int64, error) {
	body, err := jsonBody(c)
	if err != nil {
		return 0, err
	}
	if s.auth == nil {
		return decodeIssueRequest(body)
	}
	sub, err := s.auth.FromHeader(c.Get(fiber.HeaderAuthorization))
	if err != nil {
		return 0, err
	}
	return decodeIssueRequestAs(body, sub)
}

// issueStatus: GET /v1/coupons/{couponId}/issues/{userId}.
func (s *Server) issueStatus(c *fiber.Ctx) error {
	id, err := parsePathID(c.Params("couponId"), "couponId")
	if err != nil {
		return err
	}
	userID, err := parsePathID(c.Params("userId"), "userId")
	if err != nil {
		return err
	}
	if err := s.authorizeUserRead(c, userID); err != nil {
		return err
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	cp, err := s.cache.Get(ctx, id)
	if err != nil {
		return err
	}
	is, err := s.store.FindIssue(ctx, id, userID)
	switch {
	case err == nil:
		return c.JSON(fiber.Map{"status": coupon.StatusIssued, "rank": is.Rank})
	case coupon.ErrorCode(err) != coupon.ENOTISSUED:
		return unavailable(err, "The issue of coupon %d to user %d could not be read; retry later.", id, userID)
	}
	if cp.Strategy == coupon.StrategyAsync && s.gate != nil {
		rank, ok, err := s.gate.Rank(ctx, id, userID)
		if err != nil {
			return unavailable(err, "The admission of user %d to coupon %d could not be read; retry later.", userID, id)
		}
		if ok {
			return c.JSON(fiber.Map{"status": coupon.StatusPending, "rank": rank})
		}
	}
	return err
}

// issueItem is one entry of GET /v1/users/{userId}/coupons.
type issueItem struct {
	CouponID int64     `json:"couponId"`
	Rank     int64     `json:"rank"`
	IssuedAt time.Time `json:"issuedAt"`
}

// userCoupons: GET /v1/users/{userId}/coupons.
func (s *Server) userCoupons(c *fiber.Ctx) error {
	userID, err := parsePathID(c.Params("userId"), "userId")
	if err != nil {
		return err
	}
	if err := s.authorizeUserRead(c, userID); err != nil {
		return err
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	issues, err := s.store.ListUserIssues(ctx, userID)
	if err != nil {
		return unavailable(err, "The coupons of user %d could not be read; retry later.", userID)
	}
	items := make([]issueItem, len(issues))
	for i, is := range issues {
		items[i] = issueItem{CouponID: is.CouponID, Rank: is.Rank, IssuedAt: is.IssuedAt}
	}
	return c.JSON(fiber.Map{"coupons": items})
}

// unavailable keeps a domain error as is and turns an I/O failure into a
// 503 with the given message (the cause is logged).
func unavailable(err error, format string, args ...any) error {
	var ce *coupon.Error
	if errors.As(err, &ce) {
		return err
	}
	return joinCause(coupon.Errorf(coupon.EUNAVAILABLE, format, args...), err)
}
