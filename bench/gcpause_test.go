package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReadGCPauses: only stop-the-world pauses count, by their span (the
// log stamps a pause's end), across several brokers' logs; a missing log is
// no pause.
func TestReadGCPauses(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "kafka-1.log")
	if err := os.WriteFile(one, []byte(`[2026-12-02T03:37:50.000+0000][info][gc] Using G1
[2026-12-02T03:37:55.506+0000][info][gc] GC(14) Pause Young (Concurrent Start) (G1 Humongous Allocation) 182M->165M(512M) 4.796ms
[2026-12-02T03:37:55.520+0000][info][gc] GC(15) Concurrent Mark Cycle 12.513ms
[2026-12-02T03:37:56.010+0000][info][gc] GC(16) Pause Remark 170M->170M(512M) 1.250ms
[2026-12-02T03:37:58.266+0000][info][gc] GC(17) Pause Young (Normal) (G1 Evacuation Pause) 177M->165M(512M) 30.000ms
[2026-12-02T03:38:25.462+0000][info][gc] GC(18) Pause Young (Normal) (G1 Evacuation Pause) 354M->177M(512M) 14.336ms
`), 0o644); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(dir, "kafka-2.log")
	if err := os.WriteFile(two, []byte("[2026-12-02T03:37:57.000+0000][info][gc] GC(3) Pause Full (G1 Compaction Pause) 100M->90M(512M) 80.5ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name     string
		from, to string
		want     GCPauses
	}{
		// 03:37:55.506 ends the first pause; GC(17) began at 03:37:58.236.
		{"window holds the first three pauses of both logs", "2026-12-02T03:37:55.505Z", "2026-12-02T03:37:58.240Z", GCPauses{Count: 4, TotalMs: 4.796 + 1.25 + 30 + 80.5, MaxMs: 80.5}},
		{"a pause still running at the start counts", "2026-12-02T03:37:58.250Z", "2026-12-02T03:38:00Z", GCPauses{Count: 1, TotalMs: 30, MaxMs: 30}},
		{"nothing between pauses", "2026-12-02T03:38:00Z", "2026-12-02T03:38:25Z", GCPauses{}},
	} {
		got, err := ReadGCPauses([]string{one, two, filepath.Join(dir, "absent.log")}, at(tc.from), at(tc.to))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Count != tc.want.Count || got.MaxMs != tc.want.MaxMs || got.TotalMs-tc.want.TotalMs > 1e-9 || tc.want.TotalMs-got.TotalMs > 1e-9 {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		g    GCPauses
		want string
	}{
		{GCPauses{}, "broker GC: no pause"},
		{GCPauses{Count: 1, TotalMs: 19.94, MaxMs: 19.94}, "broker GC: 1 pause of 19.9 ms"},
		{GCPauses{Count: 2, TotalMs: 20.4, MaxMs: 10.6}, "broker GC: 2 pauses, 20 ms in all, longest 10.6 ms"},
	} {
		if s := tc.g.String(); s != tc.want {
			t.Errorf("%+v reads %q, want %q", tc.g, s, tc.want)
		}
	}
}
