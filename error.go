package coupon

import (
	"errors"
	"fmt"
)

// Error codes: stable strings users and clients switch on. Each maps to one
// HTTP status in the gateway; the message beside it is for humans.
const (
	EINVALID      = "invalid_request"        // 400: malformed input, names the field
	EUNAUTHORIZED = "unauthorized"           // 401: missing or bad credentials
	EFORBIDDEN    = "forbidden"              // 403: valid credentials of another user than the request's
	ENOTSTARTED   = "issue_not_started"      // 403: before the coupon's window
	EENDED        = "issue_ended"            // 403: after the coupon's window
	ENOTFOUND     = "coupon_not_found"       // 404: no such coupon
	ENOTISSUED    = "not_issued"             // 404: the user holds no issue of the coupon
	ENOROUTE      = "not_found"              // 404: no such route
	EMETHOD       = "method_not_allowed"     // 405: a method the route (or HTTP) does not know
	EALREADY      = "already_issued"         // 409: the user already holds (or is admitted to) the coupon
	ECONFLICT     = "conflict"               // 409: the request contradicts the coupon (e.g. another strategy)
	ESOLDOUT      = "sold_out"               // 410: no supply left
	ETIMEOUT      = "request_timeout"        // 408: a request begun but not received whole within the read timeout
	ETOOLARGE     = "payload_too_large"      // 413: body over the limit
	EUNSUPPORTED  = "unsupported_media_type" // 415: a body not sent as plain application/json (Content-Type, Content-Encoding)
	ERATELIMITED  = "rate_limited"           // 429: slow down, see Retry-After
	EINTERNAL     = "internal"               // 500: a bug or an unexpected failure
	EUNAVAILABLE  = "unavailable"            // 503: a dependency is down or the outcome is unknown; retry later
)

// Error is the domain error: a stable Code and a human Message. Wrap it with
// fmt.Errorf("...: %w", err) freely; ErrorCode and ErrorMessage unwrap.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("coupon error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil
// and EINTERNAL for any other error. It does not allocate (errors.AsType,
// not errors.As: it runs on every issue request).
func ErrorCode(err error) string {
	if err == nil {
		return ""
	} else if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, ""
// for nil and a generic text for any other error (whose details stay in logs).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	} else if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "Internal error."
}
