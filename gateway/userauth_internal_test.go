package gateway

import (
	"strings"
	"testing"

	"github.com/coupondrop/coupon"
)

func TestDecodeIssueRequestAs(t *testing.T) {
	tests := []struct {
		name, body string
		want       int64
		code, msg  string
	}{
		{"empty body", "", 7, "", ""},
		{"blank body", " \n", 7, "", ""},
		{"empty object", "{}", 7, "", ""},
		{"null userId", `{"userId": null}`, 7, "", ""},
		{"same user", `{"userId": 7}`, 7, "", ""},
		{"other user", `{"userId": 8}`, 0, coupon.EFORBIDDEN, "differs from the token's user 7"},
		{"string userId", `{"userId": "7"}`, 0, coupon.EINVALID, "userId must be a JSON number"},
		{"zero userId", `{"userId": 0}`, 0, coupon.EINVALID, "userId must be an integer from 1"},
		{"not an object", `[7]`, 0, coupon.EINVALID, "JSON object"},
		{"bad JSON", `{"userId": 7`, 0, coupon.EINVALID, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeIssueRequestAs([]byte(tt.body), 7)
			if tt.code == "" {
				if err != nil || got != tt.want {
					t.Fatalf("= %d, %v; want %d, nil", got, err, tt.want)
				}
				return
			}
			if coupon.ErrorCode(err) != tt.code || !strings.Contains(coupon.ErrorMessage(err), tt.msg) {
				t.Fatalf("error %v; want %s containing %q", err, tt.code, tt.msg)
			}
		})
	}
}

// FuzzDecodeIssueRequestAs: no input panics; a success is always the
// token's user; a refusal is 400 or 403 with a message.
func FuzzDecodeIssueRequestAs(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"userId": 7}`, `{"userId": 8}`, `{"userId": null}`, `null`, `{"userId": "7"}`, `{"userId": 7e0}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := decodeIssueRequestAs(body, 7)
		if err == nil {
			if id != 7 {
				t.Fatalf("body %q: user %d accepted for a token of user 7", body, id)
			}
			return
		}
		if code := coupon.ErrorCode(err); code != coupon.EINVALID && code != coupon.EFORBIDDEN || coupon.ErrorMessage(err) == "" {
			t.Fatalf("body %q: %v", body, err)
		}
	})
}
