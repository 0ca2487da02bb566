package gateway

import (
	"bytes"
	"math"

	"github.com/coupondrop/coupon"
)

// decodeIssueRequestAs decodes the body of an issue request authenticated
// as user sub: userId may be left out (empty body, {} or null) and must
// otherwise be sub. A different user is 403 forbidden: the token is valid
// but does not authorize acting for another user.
func decodeIssueRequestAs(body []byte, sub int64) (int64, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return sub, nil
	}
	var req issueRequest
	if err := decodeObject(body, &req, `{} or {"userId": <the token's sub>}`); err != nil {
		return 0, err
	}
	if absent(req.UserID) {
		return sub, nil
	}
	userID, err := jsonInt(req.UserID, "userId", 1, math.MaxInt64)
	if err != nil {
		return 0, err
	}
	if userID != sub {
		return 0, coupon.Errorf(coupon.EFORBIDDEN, "userId %d differs from the token's user %d.", userID, sub)
	}
	return userID, nil
}
