package gateway

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// OpenAPI is the OpenAPI 3.1 document of the gateway's HTTP API, served at
// GET /openapi.json. TestOpenAPI keeps it true: every route of the router
// documented, every documented answer produced by a test, real answers
// valid against its schemas.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(OpenAPI)
}
