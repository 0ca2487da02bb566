package bench

import (
	"strings"
	"testing"

	"github.com/coupondrop/coupon/internal/cli"
)

func parseOptions(t *testing.T, args ...string) (Options, error) {
	t.Helper()
	fs := cli.New("bench")
	o := DefaultOptions()
	o.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.Validate()
}

func TestOptionsPhases(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string // phase names in order
		wantErr string
	}{
		{name: "defaults run every strategy", want: []string{"db-lock", "redis-lock", "async", "async-open"}},
		{name: "a subset keeps the order", args: []string{"--strategies", "async-open,db-lock"}, want: []string{"db-lock", "async-open"}},
		{name: "unknown phase", args: []string{"--strategies", "db-lock,queue"}, wantErr: `unknown phase "queue"`},
		{name: "zero supply", args: []string{"--baseline-supply", "0"}, wantErr: "--baseline-supply must be at least 1"},
		{name: "duplicates bounded", args: []string{"--dup-percent", "95"}, wantErr: "--dup-percent must be 0..90"},
		{name: "url needs a token", args: []string{"--url", "http://127.0.0.1:1"}, wantErr: "--url needs --admin-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("COUPON_ADMIN_TOKEN", "")
			o, err := parseOptions(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range o.Phases() {
				got = append(got, p.Name)
				if p.Supply >= int64(p.Load.Requests) && p.InTable {
					t.Errorf("phase %s: supply %d is not below demand %d", p.Name, p.Supply, p.Load.Requests)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("phases %v, want %v", got, tt.want)
			}
		})
	}
}
