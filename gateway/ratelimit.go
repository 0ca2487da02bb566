package gateway

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// limitKey is the rate-limit key of an issue request: its user (the
// token's when user auth is on), or with Config.RateLimitByIP the client's
// IP, the TCP peer's address (behind a load balancer, limit per user).
func (s *Server) limitKey(c *fiber.Ctx, userID int64) string {
	if s.cfg.RateLimitByIP {
		return "ip:" + c.IP()
	}
	return "user:" + strconv.FormatInt(userID, 10)
}

// limitSubject names what the rate limit counts, for the 429 message.
func (s *Server) limitSubject() string {
	if s.cfg.RateLimitByIP {
		return "client address"
	}
	return "user"
}
