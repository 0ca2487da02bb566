package gateway

import (
	"embed"
	"path"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// The drop pages: plain HTML, CSS and JS embedded in the binary (no build
// step). They render every value through textContent; the policy below
// forbids inline script and any other origin besides.
//
//go:embed web
var webFiles embed.FS

const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var assetTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".html": fiber.MIMETextHTMLCharsetUTF8,
}

// sendWeb answers with one embedded file.
func sendWeb(c *fiber.Ctx, name string) error {
	typ, ok := assetTypes[path.Ext(name)]
	b, err := webFiles.ReadFile("web/" + name)
	if !ok || err != nil {
		return coupon.Errorf(coupon.ENOTFOUND, "There is no page asset %q.", echo(name))
	}
	c.Set(fiber.HeaderContentType, typ)
	c.Set(fiber.HeaderContentSecurityPolicy, pagePolicy)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(b)
}

// dropIndexPage: GET /drops.
func (s *Server) dropIndexPage(c *fiber.Ctx) error { return sendWeb(c, "index.html") }

// dropPage: GET /drops/{couponId}; the page reads its coupon's live view.
func (s *Server) dropPage(c *fiber.Ctx) error {
	if _, err := parsePathID(c.Params("couponId"), "couponId"); err != nil {
		return err
	}
	return sendWeb(c, "drop.html")
}

// dropAsset: GET /drops/assets/{file}.
func (s *Server) dropAsset(c *fiber.Ctx) error {
	name := c.Params("file")
	if name == "" || name == "index.html" || name == "drop.html" || path.Base(name) != name {
		return coupon.Errorf(coupon.ENOTFOUND, "There is no page asset %q.", echo(name))
	}
	return sendWeb(c, name)
}
