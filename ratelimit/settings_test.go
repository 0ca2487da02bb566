package ratelimit

import (
	"strings"
	"testing"

	"github.com/coupondrop/coupon/internal/cli"
)

func TestSettingsConfig(t *testing.T) {
	tests := []struct {
		name    string
		s       Settings
		on      bool
		want    Config
		wantErr string
	}{
		{"empty is off", Settings{}, false, Config{}, ""},
		{"zero is off", Settings{Rate: "0"}, false, Config{}, ""},
		{"zero per minute is off", Settings{Rate: "0/m"}, false, Config{}, ""},
		{"per second", Settings{Rate: "5/s"}, true, Config{Rate: 5, Burst: 5}, ""},
		{"bare number", Settings{Rate: "2.5", Burst: 10}, true, Config{Rate: 2.5, Burst: 10}, ""},
		{"per minute", Settings{Rate: "30/m"}, true, Config{Rate: 0.5, Burst: 1}, ""},
		{"per hour", Settings{Rate: " 3600 / h "}, true, Config{Rate: 1, Burst: 1}, ""},
		{"bad unit", Settings{Rate: "5/d"}, false, Config{}, "unit after /"},
		{"not a number", Settings{Rate: "fast"}, false, Config{}, "non-negative number"},
		{"negative", Settings{Rate: "-1/s"}, false, Config{}, "non-negative number"},
		{"nan", Settings{Rate: "NaN"}, false, Config{}, "non-negative number"},
		{"negative burst", Settings{Rate: "1/s", Burst: -1}, true, Config{Rate: 1, Burst: -1}, "burst must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, on, err := tt.s.Config()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Config() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || on != tt.on || got != tt.want {
				t.Fatalf("Config() = %+v, %v, %v; want %+v, %v, nil", got, on, err, tt.want, tt.on)
			}
			l, err := tt.s.New()
			if err != nil || (l != nil) != tt.on {
				t.Fatalf("New() = %v, %v; want a limiter: %v", l, err, tt.on)
			}
		})
	}
}

func TestSettingsBind(t *testing.T) {
	t.Setenv("COUPON_RATE_LIMIT", "10/s")
	t.Setenv("COUPON_RATE_LIMIT_BY_IP", "true")
	var s Settings
	fs := cli.New("test")
	s.Bind(fs)
	if err := fs.Parse([]string{"--rate-limit-burst", "20"}); err != nil {
		t.Fatal(err)
	}
	if want := (Settings{Rate: "10/s", Burst: 20, ByIP: true}); s != want {
		t.Fatalf("bound %+v, want %+v", s, want)
	}
}
