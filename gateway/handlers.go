package gateway

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// couponView is a coupon as the coupon routes show it.
type couponView struct {
	ID            int64           `json:"id"`
	Name          string          `json:"name"`
	Strategy      coupon.Strategy `json:"strategy"`
	State         coupon.State    `json:"state"`
	TotalQuantity int64           `json:"totalQuantity"`
	Admitted      int64           `json:"admitted"`
	Issued        int64           `json:"issued"`
	Remaining     int64           `json:"remaining"`
	IssueStartsAt *time.Time      `json:"issueStartsAt"`
	IssueEndsAt   *time.Time      `json:"issueEndsAt"`
	CreatedAt     time.Time       `json:"createdAt"`
	// Gate is the admission gate's state (async coupons only): ok,
	// rebuilding (its state was lost: counts come from MySQL, issue
	// requests answer 503 until couponctl rebuild-gate) or unavailable
	// (Redis did not answer: counts come from MySQL).
	Gate string `json:"gate,omitempty"`
}

// Gate states of a couponView.
const (
	gateOK          = "ok"
	gateRebuilding  = "rebuilding"
	gateUnavailable = "unavailable"
)

// newCouponView shows c with admitted users (for a baseline, the issued
// rows) and issued rows.
func newCouponView(c *coupon.Coupon, admitted, issued int64, gate string) couponView {
	return couponView{
		ID: c.ID, Name: c.Name, Strategy: c.Strategy, State: c.StateOf(admitted, time.Now()), TotalQuantity: c.TotalQuantity,
		Admitted: admitted, Issued: issued, Remaining: max(0, c.TotalQuantity-admitted),
		IssueStartsAt: c.IssueStartsAt, IssueEndsAt: c.IssueEndsAt, CreatedAt: c.CreatedAt, Gate: gate,
	}
}

// gateState turns the error of a gate read into the view's gate state; an
// unreadable gate leaves the MySQL figures (logged, not failed: reads keep
// working while the gate is lost or down).
func (s *Server) gateState(c *fiber.Ctx, couponID int64, err error) string {
	switch {
	case err == nil:
		return gateOK
	case errors.Is(err, coupon.ErrGateLost):
		return gateRebuilding
	}
	s.requestLogger(c).Warn("gate read failed; showing MySQL's counts", "couponId", couponID, "err", err)
	return gateUnavailable
}

// viewOf shows cp with its admitted count read from the gate (async) and
// issued rows counted in MySQL.
func (s *Server) viewOf(ctx context.Context, c *fiber.Ctx, cp *coupon.Coupon) (couponView, error) {
	issued, err := s.store.IssuedCount(ctx, cp.ID)
	if err != nil {
		return couponView{}, unavailable(err, "The issued count of coupon %d could not be read; retry later.", cp.ID)
	}
	if cp.Strategy != coupon.StrategyAsync || s.gate == nil {
		return newCouponView(cp, issued, issued, ""), nil
	}
	admitted, err := s.gate.Admitted(ctx, cp.ID)
	gate := s.gateState(c, cp.ID, err)
	if err != nil {
		admitted = issued
	}
	return newCouponView(cp, admitted, issued, gate), nil
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
		if err := s.gate.Init(ctx, cp.ID, cp.TotalQuantity); err != nil {
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
	s.announce(c, cp.ID) // another gateway may have cached "no such coupon"
	s.requestLogger(c).Info("coupon created", "couponId", cp.ID, "strategy", cp.Strategy, "total", cp.TotalQuantity)
	gate := ""
	if cp.Strategy == coupon.StrategyAsync {
		gate = gateOK
	}
	return c.Status(fiber.StatusCreated).JSON(newCouponView(cp, 0, 0, gate))
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

// pathCoupon returns the coupon named by the {couponId} path parameter,
// read through the cache within ctx.
func (s *Server) pathCoupon(ctx context.Context, c *fiber.Ctx) (*coupon.Coupon, error) {
	id, err := parsePathID(c.Params("couponId"), "couponId")
	if err != nil {
		return nil, err
	}
	return s.cache.Get(ctx, id)
}

// getCoupon: GET /v1/coupons/{couponId}.
func (s *Server) getCoupon(c *fiber.Ctx) error {
	ctx, cancel := s.storeCtx()
	defer cancel()
	cp, err := s.pathCoupon(ctx, c)
	if err != nil {
		return err
	}
	v, err := s.viewOf(ctx, c, cp)
	if err != nil {
		return err
	}
	return c.JSON(v)
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
	// flight use their own, so shutdown lets them finish.
	cp, err := s.cache.Get(context.Background(), id)
	if err != nil {
		return err
	}
	c.Locals(localCoupon, cp) // the request's metrics name its strategy
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
	// Every issuer bounds its own time (see coupon.Issuer).
	is, err := issuer.Issue(context.Background(), cp, userID, requestID(c))
	if coupon.ErrorCode(err) == coupon.EALREADY {
		return s.alreadyIssued(c, cp, userID, is, err)
	} else if err != nil {
		return err
	}
	if is.Status() == coupon.StatusPending { // accepted, the row not written yet
		return sendAccepted(c, is.CouponID, is.UserID, is.Rank)
	}
	return c.Status(fiber.StatusCreated).JSON(is)
}

// sendAccepted writes the async 202 answer, hand-built: this is the hot path
// (SetBody copies it, so it is built on the stack).
func sendAccepted(c *fiber.Ctx, couponID, userID, rank int64) error {
	var buf [96]byte
	b := append(buf[:0], `{"couponId":`...)
	b = strconv.AppendInt(b, couponID, 10)
	b = append(b, `,"userId":`...)
	b = strconv.AppendInt(b, userID, 10)
	b = append(b, `,"rank":`...)
	b = strconv.AppendInt(b, rank, 10)
	b = append(b, '}')
	resp := c.Response()
	resp.SetStatusCode(fiber.StatusAccepted)
	resp.Header.SetContentType(fiber.MIMEApplicationJSON)
	resp.SetBody(b)
	return nil
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

// alreadyIssued answers 409 already_issued with the rank the user holds and
// whether its row is written (issued) or not yet (pending), so a client
// retrying after a timeout learns its outcome in one call. held is what
// the issuer returned with EALREADY (a pending Issue: the rank it holds).
// The row is read in a batch with the other answers' (issueLookup): on a
// drop many users retry at once.
func (s *Server) alreadyIssued(c *fiber.Ctx, cp *coupon.Coupon, userID int64, held *coupon.Issue, cause error) error {
	ctx, cancel := s.storeCtx()
	defer cancel()
	status, rank := coupon.StatusIssued, int64(0)
	is, err := s.issues.find(ctx, cp.ID, userID)
	switch {
	case err == nil:
		rank = is.Rank
	case held != nil && held.Status() == coupon.StatusPending:
		// No row yet (or MySQL did not answer): the rank the issuer
		// holds (the gate's) stands.
		status, rank = coupon.StatusPending, held.Rank
	default:
		return joinCause(coupon.Errorf(coupon.EUNAVAILABLE,
			"User %d already holds coupon %d, but the issue could not be read; check GET /v1/coupons/%d/issues/%d.", userID, cp.ID, cp.ID, userID), err)
	}
	return c.Status(fiber.StatusConflict).JSON(alreadyBody{
		Error: coupon.EALREADY, Message: coupon.ErrorMessage(cause), Rank: rank, Status: status,
	})
}

// alreadyBody is the 409 already_issued answer.
type alreadyBody struct {
	Error   string             `json:"error"`
	Message string             `json:"message"`
	Rank    int64              `json:"rank"`
	Status  coupon.IssueStatus `json:"status"`
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
		rank, ok, gerr := s.gate.Rank(ctx, id, userID)
		switch {
		case errors.Is(gerr, coupon.ErrGateLost):
			return coupon.Errorf(coupon.ENOTISSUED, "User %d holds no issued row of coupon %d in MySQL; the coupon's admission gate is being rebuilt, so an admission not written yet cannot be seen: check again later.", userID, id)
		case gerr != nil:
			return unavailable(gerr, "The admission of user %d to coupon %d could not be read; retry later.", userID, id)
		case ok:
			return c.JSON(fiber.Map{"status": coupon.StatusPending, "rank": rank})
		}
	}
	return err
}

// userCoupons: GET /v1/users/{userId}/coupons. The issued rows from MySQL,
// then the admissions not written yet (pending) found in the gate of the
// async coupons still being issued, newest coupon first. gate says whether
// the gate could be read (unavailable: the pending ones are missing).
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
	held, err := s.store.ListUserIssues(ctx, userID)
	if err != nil {
		return unavailable(err, "The coupons of user %d could not be read; retry later.", userID)
	}
	gate := gateOK
	if s.gate != nil {
		pending, err := s.pendingOf(ctx, userID, held)
		if err != nil {
			s.requestLogger(c).Warn("pending admissions could not be read", "userId", userID, "err", err)
			gate = gateUnavailable
		}
		held = append(held, pending...)
		slices.SortStableFunc(held, func(a, b coupon.Holding) int { return cmp.Compare(b.CouponID, a.CouponID) })
	}
	return c.JSON(fiber.Map{"coupons": held, "gate": gate})
}

// pendingOf returns userID's admissions that are not among its issued rows.
func (s *Server) pendingOf(ctx context.Context, userID int64, issued []coupon.Holding) ([]coupon.Holding, error) {
	coupons, err := s.store.AdmittingCoupons(ctx, time.Now())
	if err != nil || len(coupons) == 0 {
		return nil, err
	}
	ids := make([]int64, len(coupons))
	for i, cp := range coupons {
		ids[i] = cp.ID
	}
	ranks, err := s.gate.RanksOf(ctx, userID, ids)
	if err != nil {
		return nil, err
	}
	have := make(map[int64]bool, len(issued))
	for _, h := range issued {
		have[h.CouponID] = true
	}
	var out []coupon.Holding
	for _, cp := range coupons {
		if rank, ok := ranks[cp.ID]; ok && !have[cp.ID] {
			out = append(out, coupon.Holding{CouponID: cp.ID, Name: cp.Name, Status: coupon.StatusPending, Rank: rank})
		}
	}
	return out, nil
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
