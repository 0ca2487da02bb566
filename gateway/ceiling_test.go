package gateway

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCeilingAnswersLikeTheGateway: the bench's ceiling parses the issue
// route's path and body with the gateway's code and answers its shapes: 202
// with couponId, userId and a rank; 400 invalid_request naming the field;
// 415 for a body that is not JSON.
func TestCeilingAnswersLikeTheGateway(t *testing.T) {
	app := NewCeiling(DefaultConfig())
	tests := []struct {
		name, path, ctype, body string
		status                  int
		want                    string
	}{
		{"accepted", "/v1/coupons/7/issues", "application/json", `{"userId":42}`, 202, `{"couponId":7,"userId":42,"rank":1}`},
		{"bad user", "/v1/coupons/7/issues", "application/json", `{"userId":"x"}`, 400, `"error":"invalid_request"`},
		{"bad coupon", "/v1/coupons/07/issues", "application/json", `{"userId":1}`, 400, `couponId`},
		{"not JSON", "/v1/coupons/7/issues", "text/plain", `{"userId":1}`, 415, `"error":"unsupported_media_type"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			resp, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
				t.Errorf("%d %s; want %d containing %s", resp.StatusCode, b, tt.status, tt.want)
			}
		})
	}
}
