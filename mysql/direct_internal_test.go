package mysql

import (
	"errors"
	"fmt"
	"testing"

	"github.com/coupondrop/coupon"
	driver "github.com/go-sql-driver/mysql"
)

func TestClassifyDirect(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCode  string
		retryable bool
	}{
		{"domain error passes", coupon.Errorf(coupon.ESOLDOUT, "x"), coupon.ESOLDOUT, false},
		{"deadlock retries", fmt.Errorf("commit: %w", &driver.MySQLError{Number: 1213}), coupon.EINTERNAL, true},
		{"lock wait timeout retries", &driver.MySQLError{Number: 1205}, coupon.EINTERNAL, true},
		{"fenced retries", fmt.Errorf("x: %w", errFenced), coupon.EINTERNAL, true},
		{"duplicate key is already issued", &driver.MySQLError{Number: 1062}, coupon.EALREADY, false},
		{"MariaDB CHECK is sold out", &driver.MySQLError{Number: 4025}, coupon.ESOLDOUT, false},
		{"MySQL CHECK is sold out", &driver.MySQLError{Number: 3819}, coupon.ESOLDOUT, false},
		{"other errors are internal", errors.New("boom"), coupon.EINTERNAL, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := classifyDirect(tt.err, 1, 2)
			if retry := errors.Is(out, ErrContended); coupon.ErrorCode(out) != tt.wantCode || retry != tt.retryable {
				t.Fatalf("classifyDirect(%v) = %v (%s), contended %v; want %s, %v", tt.err, out, coupon.ErrorCode(out), retry, tt.wantCode, tt.retryable)
			}
		})
	}
}
