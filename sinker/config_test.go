package sinker_test

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/sinker"
)

func TestConfigValidate(t *testing.T) {
	good := sinker.DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("the default config: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*sinker.Config)
		want   string
	}{
		{"no brokers", func(c *sinker.Config) { c.Brokers = nil }, "COUPON_KAFKA_BROKERS"},
		{"dead letters into the topic", func(c *sinker.Config) { c.DLQTopic = c.Topic }, "COUPON_DLQ_TOPIC"},
		{"no group", func(c *sinker.Config) { c.GroupID = "" }, "COUPON_GROUP_ID"},
		{"batch too large", func(c *sinker.Config) { c.BatchSize = 1_000_000 }, "COUPON_BATCH_SIZE"},
		{"negative wait", func(c *sinker.Config) { c.BatchWait = -time.Second }, "COUPON_BATCH_WAIT"},
		{"fetch min over max", func(c *sinker.Config) { c.MinBytes = c.MaxBytes + 1 }, "COUPON_FETCH_MIN_BYTES"},
		{"fetch wait too short", func(c *sinker.Config) { c.MaxWait = time.Millisecond }, "COUPON_FETCH_MAX_WAIT"},
		{"fewer connections than workers", func(c *sinker.Config) { c.Workers, c.MySQL.MaxConns = 4, 2 }, "COUPON_MYSQL_CONNS"},
		{"bad DSN", func(c *sinker.Config) { c.MySQL.DSN = "tcp(" }, "COUPON_MYSQL_DSN"},
		{"clientFoundRows", func(c *sinker.Config) { c.MySQL.DSN += "?clientFoundRows=true" }, "clientFoundRows"},
		{"short session", func(c *sinker.Config) { c.SessionTimeout = time.Millisecond }, "COUPON_SESSION_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestConfigBind: with nothing set, the flags give DefaultConfig; the
// environment and then flags override it, and the brokers arrive as a list
// of every address (blanks dropped, so a blank list is refused).
func TestConfigBind(t *testing.T) {
	parse := func(t *testing.T, args ...string) sinker.Config {
		t.Helper()
		cfg := sinker.DefaultConfig()
		fs := cli.New("sinker")
		cfg.Bind(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "COUPON_") {
			t.Setenv(k, "") // restored at cleanup
			os.Unsetenv(k)
		}
	}
	if got, want := parse(t), sinker.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("bound with nothing set:\n %+v\nwant DefaultConfig:\n %+v", got, want)
	}
	t.Setenv("COUPON_KAFKA_BROKERS", "127.0.0.1:1, 127.0.0.1:2,,127.0.0.1:3")
	t.Setenv("COUPON_SINK_WORKERS", "3")
	cfg := parse(t, "--workers", "4")
	if want := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}; !reflect.DeepEqual(cfg.Brokers, want) {
		t.Fatalf("brokers %q, want %q", cfg.Brokers, want)
	}
	if cfg.Workers != 4 {
		t.Fatalf("workers %d, want the flag's 4 over the environment's 3", cfg.Workers)
	}
	t.Setenv("COUPON_KAFKA_BROKERS", " , ")
	if err := parse(t).Validate(); err == nil || !strings.Contains(err.Error(), "COUPON_KAFKA_BROKERS") {
		t.Fatalf("blank broker list: Validate() = %v, want an error naming COUPON_KAFKA_BROKERS", err)
	}
}
