package gateway

import (
	"errors"
	"sync/atomic"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// NewCeiling returns the HTTP ceiling the benchmark compares the gateway
// with: a fiber app with the gateway's server settings whose issue route
// parses the path and the body exactly as the gateway's does and answers
// the same 202 body, with a rank from one in-process counter, and nothing
// else (no gate, no Kafka, no cache). Bad input gets the gateway's 400.
// It also serves /healthz and /readyz (always 200).
func NewCeiling(cfg Config) *fiber.App {
	var rank atomic.Int64
	app := fiber.New(fiber.Config{
		AppName:               "coupon-ceiling",
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		DisableStartupMessage: true,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			var fe *fiber.Error
			if errors.As(err, &fe) {
				err = fromFiber(fe)
			}
			code := coupon.ErrorCode(err)
			return c.Status(statusOf(code)).JSON(errorBody{Error: code, Message: coupon.ErrorMessage(err)})
		},
	})
	ok := func(c *fiber.Ctx) error { return c.SendString(`{"status":"ok"}`) }
	app.Get("/healthz", ok)
	app.Get("/readyz", ok)
	app.Post("/v1/coupons/:couponId/issues", func(c *fiber.Ctx) error {
		id, err := parsePathID(c.Params("couponId"), "couponId")
		if err != nil {
			return err
		}
		body, err := jsonBody(c)
		if err != nil {
			return err
		}
		userID, err := decodeIssueRequest(body)
		if err != nil {
			return err
		}
		return sendAccepted(c, id, userID, rank.Add(1))
	})
	return app
}
