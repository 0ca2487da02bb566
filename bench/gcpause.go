package bench

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"
)

// GCPauses are the stop-the-world pauses the broker's JVM logged within a
// phase: while one lasts the broker answers nothing, so every produce in
// flight waits it out, the open-model tail's usual cause.
type GCPauses struct {
	Count   int     `json:"count"`
	TotalMs float64 `json:"totalMs"`
	MaxMs   float64 `json:"maxMs"`
}

func (g GCPauses) String() string {
	if g.Count == 0 {
		return "broker GC: no pause"
	}
	if g.Count == 1 {
		return fmt.Sprintf("broker GC: 1 pause of %.1f ms", g.MaxMs)
	}
	return fmt.Sprintf("broker GC: %d pauses, %.0f ms in all, longest %.1f ms", g.Count, g.TotalMs, g.MaxMs)
}

// gcPauseRE matches a pause line of the JVM's unified GC log with the
// utctime decorator (stack.GCLogName), which stamps the pause's end:
//
//	[2026-12-02T03:37:55.506+0000][info][gc] GC(14) Pause Young (Normal) (G1 Evacuation Pause) 182M->165M(512M) 4.796ms
//
// Concurrent phases log a length too but stop nothing: only "Pause" counts.
var gcPauseRE = regexp.MustCompile(`^\[([0-9T:.+-]+)\].*\]\s*GC\(\d+\) Pause .* ([0-9.]+)ms\s*$`)

const gcTimeLayout = "2006-01-02T15:04:05.000-0700"

// ReadGCPauses sums the pauses logged in files that overlap [from, to].
// A file that does not exist counts as no pause.
func ReadGCPauses(files []string, from, to time.Time) (GCPauses, error) {
	var g GCPauses
	for _, path := range files {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return g, fmt.Errorf("broker GC log: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			m := gcPauseRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			end, err := time.Parse(gcTimeLayout, m[1])
			if err != nil {
				continue
			}
			ms, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				continue
			}
			start := end.Add(-time.Duration(ms * float64(time.Millisecond)))
			if end.Before(from) || start.After(to) {
				continue
			}
			g.Count++
			g.TotalMs += ms
			g.MaxMs = max(g.MaxMs, ms)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return g, fmt.Errorf("broker GC log %s: %w", path, err)
		}
	}
	return g, nil
}
