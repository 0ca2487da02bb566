package mysql

import "testing"

func TestWithDriverDefaults(t *testing.T) {
	tests := []struct{ name, dsn, want string }{
		{"plain", "root@tcp(127.0.0.1:3306)/coupon",
			"root@tcp(127.0.0.1:3306)/coupon?parseTime=true&loc=UTC&interpolateParams=true"},
		{"other options kept", "root@tcp(127.0.0.1:3306)/coupon?timeout=2s",
			"root@tcp(127.0.0.1:3306)/coupon?timeout=2s&parseTime=true&loc=UTC&interpolateParams=true"},
		{"the DSN's own choices win", "root@tcp(h:1)/c?parseTime=true&loc=Local&interpolateParams=false",
			"root@tcp(h:1)/c?parseTime=true&loc=Local&interpolateParams=false"},
		// The driver refuses interpolation with this collation: prepared
		// statements stay.
		{"unsafe collation", "root@tcp(h:1)/c?collation=sjis_japanese_ci",
			"root@tcp(h:1)/c?collation=sjis_japanese_ci&parseTime=true&loc=UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withDriverDefaults(tt.dsn); got != tt.want {
				t.Errorf("withDriverDefaults(%q)\n got %q\nwant %q", tt.dsn, got, tt.want)
			}
		})
	}
}
