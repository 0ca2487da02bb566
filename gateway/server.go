// Package gateway is the HTTP front of the coupon system (fiber): it checks
// requests, reads coupon metadata through a local cache and decides issue
// requests through each coupon's strategy (async: Redis gate + Kafka).
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
)

// Store is the MySQL side the gateway reads and writes (package mysql).
type Store interface {
	// PingContext checks the database answers (readiness).
	PingContext(ctx context.Context) error
	// CreateCoupon inserts c and fills its ID and CreatedAt.
	CreateCoupon(ctx context.Context, c *coupon.Coupon) error
	// DeleteUnissuedCoupon deletes a coupon nothing was issued from,
	// reporting whether it did.
	DeleteUnissuedCoupon(ctx context.Context, id int64) (bool, error)
	// FindCoupon returns the coupon or an ENOTFOUND error.
	FindCoupon(ctx context.Context, id int64) (*coupon.Coupon, error)
	// IssuedCount returns how many issued rows the coupon has.
	IssuedCount(ctx context.Context, couponID int64) (int64, error)
	// AdmissionSpan returns the earliest and latest admitted_at of the
	// coupon's issued rows (ok false when none); it reads all of them.
	AdmissionSpan(ctx context.Context, couponID int64) (first, last time.Time, ok bool, err error)
	// FindIssue returns the user's issued row or an ENOTISSUED error.
	FindIssue(ctx context.Context, couponID, userID int64) (*coupon.Issue, error)
	// FindIssues returns the issued rows among users (coupon ID -> user
	// IDs) in one query; users without a row are absent.
	FindIssues(ctx context.Context, users map[int64][]int64) ([]*coupon.Issue, error)
	// ListUserIssues returns the user's issued rows with their coupons'
	// names, newest coupon first (bounded).
	ListUserIssues(ctx context.Context, userID int64) ([]coupon.Holding, error)
	// ListCoupons returns up to limit coupons past cursor in order (IDs
	// above it ascending, below it descending; cursor 0 from the first);
	// with a state, a superset of those in it (see mysql.ListCoupons).
	ListCoupons(ctx context.Context, cursor int64, limit int, order coupon.Order, state coupon.State, now time.Time) ([]*coupon.Coupon, error)
	// AdmittingCoupons returns the async coupons that may hold admissions
	// not yet written, newest first (bounded).
	AdmittingCoupons(ctx context.Context, now time.Time) ([]*coupon.Coupon, error)
	// UpdateCoupon applies p under the coupon's row lock, raising its
	// revision, and runs hold before committing; an error from either rolls
	// back. ENOTFOUND, EINVALID, or ECONFLICT for a total below the issued rows.
	UpdateCoupon(ctx context.Context, id int64, p coupon.Patch, hold func(ctx context.Context, old, updated *coupon.Coupon) error) (old, updated *coupon.Coupon, err error)
}

// ChangeFeed carries coupon changes between gateways (package admitter,
// over Redis), so a PATCH on one takes effect on all of them.
type ChangeFeed interface {
	// Announce tells every watching gateway that the coupon changed.
	Announce(ctx context.Context, couponID int64) error
	// WatchChanges calls changed with each changed coupon's ID, or 0 when
	// changes may have been missed, until ctx ends; poll bounds how late a
	// missed change is noticed. It calls current each time it has checked
	// (at most every poll) that every change announced so far was passed to
	// changed; it stops calling it while it cannot check (Redis unreachable).
	WatchChanges(ctx context.Context, poll time.Duration, changed func(couponID int64), current func())
}

// Check is one readiness probe of a dependency; nil means reachable.
type Check func(ctx context.Context) error

// Deps are the gateway's collaborators. Store is required. Gate and
// Publisher enable the async strategy; Issuers adds the others (baselines).
type Deps struct {
	Store     Store
	Gate      coupon.Gate
	Publisher coupon.Publisher
	// Issuers decide issue requests per strategy. The async issuer is
	// built from Gate and Publisher unless given here.
	Issuers map[coupon.Strategy]coupon.Issuer
	// Checks are probed by /readyz besides the store, by name ("redis",
	// "kafka", ...).
	Checks map[string]Check
	// Registry receives the gateway's metrics and is served on /metrics;
	// a fresh one is made when nil. Register dependency metrics on it too.
	Registry *prometheus.Registry
	// UserAuth, when set, makes the issue endpoint take the user from a
	// bearer token (package auth): the body's userId may then be omitted
	// and must match the token's user when given.
	UserAuth UserVerifier
	// Limiter, when set, limits issue requests per user: 429 with
	// Retry-After (package ratelimit).
	Limiter RateLimiter
	// Lag, when set, gives the live view the sinkers' lag on a coupon's
	// partition (package kafka's Lag).
	Lag LagReader
	// Changes, when set, announces this gateway's coupon changes to the
	// others and drops the cached coupons they change.
	Changes ChangeFeed
}

// UserVerifier verifies an Authorization header value and returns the
// token's user ID; errors are *coupon.Error with EUNAUTHORIZED.
type UserVerifier interface {
	FromHeader(authorization string) (int64, error)
}

// RateLimiter answers whether one more request of key is allowed now and,
// when not, how long to wait.
type RateLimiter interface {
	Allow(key string, now time.Time) (ok bool, retryAfter time.Duration)
}

// Server is the gateway HTTP server.
type Server struct {
	cfg        Config
	app        *fiber.App
	store      Store
	gate       coupon.Gate
	auth       UserVerifier
	limiter    RateLimiter
	lag        LagReader
	live       *liveViews
	changes    ChangeFeed
	stopWatch  context.CancelFunc
	watchDone  chan struct{}
	issuers    map[coupon.Strategy]coupon.Issuer
	cache      *couponCache
	issues     *issueLookup
	metrics    *metrics
	registry   *prometheus.Registry
	ready      *readiness
	logger     *slog.Logger
	adminHash  [sha256.Size]byte
	retryAfter string
	draining   atomic.Bool
	ridPrefix  string
	ridSeq     atomic.Uint64
}

// Locals keys of request-scoped values.
const (
	localRequestID = "coupon.requestId"
	localCoupon    = "coupon.coupon" // *coupon.Coupon of an issue request
)

// headerRequestID is X-Request-ID in fasthttp's canonical form, so setting
// it skips normalizing the name.
var headerRequestID = []byte("X-Request-Id")

// New builds the server; it does not listen until Run or Serve.
func New(cfg Config, deps Deps, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	if deps.Store == nil {
		return nil, errors.New("gateway: a store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	cache, err := newCouponCache(deps.Store, cfg, deps.Changes != nil)
	if err != nil {
		return nil, err
	}
	issuers := map[coupon.Strategy]coupon.Issuer{}
	for st, is := range deps.Issuers {
		if !st.Valid() || is == nil {
			cache.Close()
			return nil, fmt.Errorf("gateway: bad issuer for strategy %q", st)
		}
		issuers[st] = is
	}
	if _, ok := issuers[coupon.StrategyAsync]; !ok && deps.Gate != nil && deps.Publisher != nil {
		ai := NewAsyncIssuer(deps.Gate, deps.Publisher, cfg.GateTimeout, cfg.PublishTimeout, logger)
		ai.metrics = m
		issuers[coupon.StrategyAsync] = ai
	}
	checks := map[string]Check{"mysql": deps.Store.PingContext}
	for name, ch := range deps.Checks {
		checks[name] = ch
	}
	s := &Server{
		cfg:        cfg,
		store:      deps.Store,
		gate:       deps.Gate,
		auth:       deps.UserAuth,
		limiter:    deps.Limiter,
		lag:        deps.Lag,
		changes:    deps.Changes,
		issuers:    issuers,
		cache:      cache,
		issues:     newIssueLookup(deps.Store, cfg),
		metrics:    m,
		registry:   reg,
		ready:      newReadiness(checks, cfg.ReadyCacheTTL, cfg.ReadyTimeout),
		logger:     logger,
		adminHash:  sha256.Sum256([]byte(cfg.AdminToken)),
		retryAfter: retryAfterSeconds(cfg),
		ridPrefix:  randomHex(4) + "-",
	}
	s.live = newLiveViews(s, cfg.LiveRefresh)
	s.app = fiber.New(fiber.Config{
		AppName:               "coupon-gateway",
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		DisableStartupMessage: true,
		// Errors are written by the request middleware; this one only
		// sees what fasthttp rejects before routing (body too large,
		// headers too large, read timeouts).
		ErrorHandler: s.reject,
	})
	s.answerJSONBeforeRouting()
	s.routes()
	if s.changes != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopWatch, s.watchDone = cancel, make(chan struct{})
		go func() {
			defer close(s.watchDone)
			s.changes.WatchChanges(ctx, cfg.ChangesPoll, s.cache.invalidate, s.cache.confirm)
		}()
	}
	return s, nil
}

// reject writes the JSON answer of a request refused before routing.
func (s *Server) reject(c *fiber.Ctx, err error) error {
	rid := s.newRequestID()
	setRequestID(c, rid)
	status := s.writeError(c, err)
	s.metrics.request("rejected", "", status, time.Now())
	return nil
}

// answerJSONBeforeRouting wraps the fasthttp server under fiber so that the
// requests it would answer itself get the JSON contract too: a method
// fiber does not know (fiber writes a plain-text 400) is a JSON 405, and a
// connection that sends nothing before the read timeout is closed without
// an answer (nothing was asked; Serve's readListener tells).
func (s *Server) answerJSONBeforeRouting() {
	fsrv := s.app.Server()
	route, parseError := fsrv.Handler, fsrv.ErrorHandler
	fsrv.Handler = func(fctx *fasthttp.RequestCtx) {
		if !knownMethod(fctx.Method()) {
			c := s.app.AcquireCtx(fctx)
			defer s.app.ReleaseCtx(c)
			_ = s.reject(c, coupon.Errorf(coupon.EMETHOD, "Method %q is not an HTTP method this API serves.", echo(string(fctx.Method()))))
			return
		}
		route(fctx)
	}
	fsrv.ErrorHandler = func(fctx *fasthttp.RequestCtx, err error) {
		if nothingRead(fctx, err) {
			_ = fctx.Conn().Close()
			return
		}
		parseError(fctx, err)
	}
}

// knownMethod reports whether fiber routes method (its default methods).
func knownMethod(method []byte) bool {
	switch string(method) {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete,
		fiber.MethodConnect, fiber.MethodOptions, fiber.MethodTrace, fiber.MethodPatch:
		return true
	}
	return false
}

// nothingRead reports whether err is the read timeout of a connection on
// which no byte arrived (fasthttp closes idle keep-alive connections
// silently itself, but answers a new one 408).
func nothingRead(fctx *fasthttp.RequestCtx, err error) bool {
	var ne net.Error
	rc, ok := fctx.Conn().(*readConn)
	return ok && !rc.read && errors.As(err, &ne) && ne.Timeout()
}

// readListener accepts connections that know whether a byte arrived.
type readListener struct{ net.Listener }

func (l readListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readConn{Conn: c}, nil
}

// readConn records whether any byte was read from it. Only the goroutine
// serving the connection reads it and its flag.
type readConn struct {
	net.Conn
	read bool
}

func (c *readConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.read = true
	}
	return n, err
}

func (s *Server) routes() {
	s.app.Use(s.middleware)
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})))
	s.app.Get("/openapi.json", s.openAPI)
	s.app.Get("/v1/coupons", s.listCoupons)
	s.app.Post("/v1/coupons", s.createCoupon)
	s.app.Get("/v1/coupons/:couponId", s.getCoupon)
	s.app.Patch("/v1/coupons/:couponId", s.patchCoupon)
	s.app.Post("/v1/coupons/:couponId/issues", s.issue)
	s.app.Get("/v1/coupons/:couponId/issues/:userId", s.issueStatus)
	s.app.Get("/v1/coupons/:couponId/live", s.liveCoupon)
	s.app.Get("/v1/users/:userId/coupons", s.userCoupons)
	s.app.Get("/drops", s.dropIndexPage)
	s.app.Get("/drops/assets/:file", s.dropAsset)
	s.app.Get("/drops/:couponId", s.dropPage)
}

// Registry returns the registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// App returns the fiber app (for in-process tests with app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Run listens on the configured address and serves until ctx is cancelled,
// then shuts down gracefully (see Serve).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then stops accepting, answers
// /readyz 503, lets requests in flight finish within the shutdown timeout
// and returns. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.logger.Info("gateway listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(readListener{ln}) }()
	select {
	case err := <-errc:
		_ = ln.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.logger.Info("gateway shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.app.ShutdownWithContext(sctx)
	_ = ln.Close() // in case Serve had not started when shutdown ran
	select {
	case <-errc:
	case <-sctx.Done():
	}
	if err != nil {
		return fmt.Errorf("shutdown: requests still in flight after %s: %w", s.cfg.ShutdownTimeout, err)
	}
	s.logger.Info("gateway stopped")
	return nil
}

// Close releases the server's own resources (not its dependencies).
func (s *Server) Close() error {
	if s.stopWatch != nil {
		s.stopWatch()
		<-s.watchDone
	}
	s.cache.Close()
	s.issues.Close()
	return nil
}

// middleware wraps every routed request: request ID, in-flight gauge,
// panic recovery, JSON errors, metrics, debug access log.
func (s *Server) middleware(c *fiber.Ctx) error {
	start := time.Now()
	s.metrics.inflightAdd(1)
	defer s.metrics.inflightAdd(-1)

	rid := c.Get(fiber.HeaderXRequestID)
	if validRequestID(rid) {
		rid = utils.CopyString(rid)
	} else {
		rid = s.newRequestID()
	}
	setRequestID(c, rid)

	if err := s.next(c); err != nil {
		s.writeError(c, err)
	}
	status := c.Response().StatusCode()
	route := c.Route().Path
	if route == "/" { // the middleware's own route: nothing matched
		route = "unmatched"
	}
	strategy := ""
	if cp, ok := c.Locals(localCoupon).(*coupon.Coupon); ok {
		strategy = string(cp.Strategy)
	}
	s.metrics.request(route, strategy, status, start)
	if s.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.requestLogger(c).Debug("request", "method", c.Method(), "path", c.Path(), "status", status,
			"duration", time.Since(start))
	}
	return nil
}

// next runs the handler chain, turning a panic into an internal error.
func (s *Server) next(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.requestLogger(c).Error("panic in handler", "panic", r, "stack", string(debug.Stack()))
			c.Response().ResetBody()
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Next()
}

// requestLogger returns the logger with the request's ID.
func (s *Server) requestLogger(c *fiber.Ctx) *slog.Logger {
	if rid, ok := c.Locals(localRequestID).(string); ok {
		return s.logger.With("requestId", rid)
	}
	return s.logger
}

func requestID(c *fiber.Ctx) string {
	rid, _ := c.Locals(localRequestID).(string)
	return rid
}

// setRequestID makes rid (a valid request ID: visible ASCII) the
// request's ID and sets it on the response.
func setRequestID(c *fiber.Ctx, rid string) {
	c.Locals(localRequestID, rid)
	// SetCanonical copies the value (and still strips line breaks).
	c.Response().Header.SetCanonical(headerRequestID, utils.UnsafeBytes(rid))
}

// newRequestID returns a process-unique ID: a random prefix and a counter.
func (s *Server) newRequestID() string {
	var buf [32]byte
	return string(strconv.AppendUint(append(buf[:0], s.ridPrefix...), s.ridSeq.Add(1), 36))
}

// validRequestID accepts a client's X-Request-ID of 1..128 visible ASCII characters.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// authorizeAdmin checks the admin bearer token.
func (s *Server) authorizeAdmin(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return coupon.Errorf(coupon.EUNAUTHORIZED, "This endpoint needs the admin token: send Authorization: Bearer <token>.")
	}
	token, ok := bearerToken(h)
	if !ok {
		return coupon.Errorf(coupon.EUNAUTHORIZED, "The Authorization header must be Bearer <token>.")
	}
	if !s.isAdminToken(token) {
		return coupon.Errorf(coupon.EUNAUTHORIZED, "The admin token is wrong.")
	}
	return nil
}

// isAdminToken compares token with the admin token in constant time
// (hashes make the comparison independent of the token's length too).
func (s *Server) isAdminToken(token string) bool {
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1
}

// bearerToken returns the token of an Authorization: Bearer header.
func bearerToken(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) < len(prefix) || !utils.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

// authorizeUserRead lets a request read user userID's issues: anyone while
// user auth is off; with it on, the user's own token or the admin token.
func (s *Server) authorizeUserRead(c *fiber.Ctx, userID int64) error {
	if s.auth == nil {
		return nil
	}
	h := c.Get(fiber.HeaderAuthorization)
	if token, ok := bearerToken(h); ok && s.isAdminToken(token) {
		return nil
	}
	sub, err := s.auth.FromHeader(h)
	if err != nil {
		return err
	}
	if sub != userID {
		return coupon.Errorf(coupon.EFORBIDDEN, "The token is user %d's: it may not read the issues of user %d.", sub, userID)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
