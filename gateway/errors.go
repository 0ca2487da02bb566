package gateway

import (
	"errors"
	"strconv"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// statusOf maps an error code to its HTTP status.
func statusOf(code string) int {
	switch code {
	case coupon.EINVALID:
		return fiber.StatusBadRequest
	case coupon.EUNAUTHORIZED:
		return fiber.StatusUnauthorized
	case coupon.EFORBIDDEN, coupon.ENOTSTARTED, coupon.EENDED:
		return fiber.StatusForbidden
	case coupon.ENOTFOUND, coupon.ENOTISSUED, coupon.ENOROUTE:
		return fiber.StatusNotFound
	case coupon.EMETHOD:
		return fiber.StatusMethodNotAllowed
	case coupon.ETIMEOUT:
		return fiber.StatusRequestTimeout
	case coupon.EALREADY, coupon.ECONFLICT:
		return fiber.StatusConflict
	case coupon.ESOLDOUT:
		return fiber.StatusGone
	case coupon.ETOOLARGE:
		return fiber.StatusRequestEntityTooLarge
	case coupon.EUNSUPPORTED:
		return fiber.StatusUnsupportedMediaType
	case coupon.ERATELIMITED:
		return fiber.StatusTooManyRequests
	case coupon.EUNAVAILABLE:
		return fiber.StatusServiceUnavailable
	default:
		return fiber.StatusInternalServerError
	}
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// fromFiber turns fiber's own errors (no route, body too large, header
// too large, read timeout...) into domain errors.
func fromFiber(fe *fiber.Error) *coupon.Error {
	switch fe.Code {
	case fiber.StatusRequestEntityTooLarge:
		return coupon.Errorf(coupon.ETOOLARGE, "The request body is too large.")
	case fiber.StatusNotFound:
		return coupon.Errorf(coupon.ENOROUTE, "No such route: %s.", fe.Message)
	case fiber.StatusMethodNotAllowed:
		return coupon.Errorf(coupon.EMETHOD, "Method not allowed.")
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return coupon.Errorf(coupon.EINVALID, "The request headers are too large.")
	case fiber.StatusRequestTimeout:
		return coupon.Errorf(coupon.ETIMEOUT, "The request was not received in time.")
	case fiber.StatusServiceUnavailable:
		return coupon.Errorf(coupon.EUNAVAILABLE, "The server is busy; retry later.")
	}
	if fe.Code >= 400 && fe.Code < 500 {
		// fe.Message is fasthttp's parse error, which can quote the
		// request's bytes (its Authorization header too): not repeated.
		return coupon.Errorf(coupon.EINVALID, "The request is not valid HTTP/1.1.")
	}
	return coupon.Errorf(coupon.EINTERNAL, "Internal error.")
}

// writeError writes err as the JSON error answer and returns its status.
// Non-domain errors are logged (with the request ID) and shown as a generic
// internal error.
func (s *Server) writeError(c *fiber.Ctx, err error) int {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		err = fromFiber(fe)
	}
	code, msg := coupon.ErrorCode(err), coupon.ErrorMessage(err)
	status := statusOf(code)
	switch {
	case status >= 500 && code == coupon.EINTERNAL:
		s.requestLogger(c).Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
	case status >= 500:
		s.requestLogger(c).Warn("request unavailable", "method", c.Method(), "path", c.Path(), "err", err)
	}
	if (status == fiber.StatusServiceUnavailable || status == fiber.StatusTooManyRequests) &&
		len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
		c.Set(fiber.HeaderRetryAfter, s.retryAfter)
	}
	c.Status(status)
	if jerr := c.JSON(errorBody{Error: code, Message: msg}); jerr != nil {
		_ = c.SendString(`{"error":"internal","message":"Internal error."}`)
	}
	return status
}

func retryAfterSeconds(cfg Config) string {
	secs := int64(cfg.RetryAfter.Seconds() + 0.999)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

// joinCause returns e with cause behind it: ErrorCode and ErrorMessage see
// e, logs see both.
func joinCause(e *coupon.Error, cause error) error {
	return errors.Join(e, cause)
}
