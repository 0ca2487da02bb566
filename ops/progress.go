package ops

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	couponkafka "github.com/coupondrop/coupon/kafka"
)

// progress draws a one-line bar on w (stderr) while long work runs:
//
//	replay [==========>         ]  52%  520000/1000000 records  104k/s  eta 4s
type progress struct {
	w     io.Writer
	tty   bool // redraw in place; otherwise only the final line
	label string
	total int64
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startProgress starts redrawing every 200 ms; nil w draws nothing.
func startProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now(), stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.tty = isTTY(w)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if p.tty {
					p.draw(false)
				}
			case <-p.stop:
				p.draw(true)
				return
			}
		}
	}()
	return p
}

func (p *progress) add(n int64) { p.done.Add(n) }

// finish draws the final state and ends the line.
func (p *progress) finish() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
}

func (p *progress) draw(final bool) {
	const width = 30
	done := p.done.Load()
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	n := int(frac * width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	eta := "-"
	if rate > 0 && done < p.total {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	word, end := "eta", "\r"
	if final {
		word, end = "took", "\n"
		eta = time.Duration(el * float64(time.Second)).Round(time.Millisecond).String()
	}
	start, clear := "\r", "\033[K"
	if !p.tty {
		start, clear = "", ""
	}
	fmt.Fprintf(p.w, "%s%s [%s] %3.0f%%  %d/%d records  %s/s  %s %s%s%s",
		start, p.label, bar, frac*100, done, p.total, human(rate), word, eta, clear, end)
}

// human formats a rate like 104k or 1.2M.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// isTTY says whether w is a terminal (progress is then redrawn in place).
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// waitNote shows a wait that may last over a second on w (nil: nothing):
// on a terminal the line is redrawn every second, elsewhere it is printed
// when the wait starts, every 5 s and when it ends.
type waitNote struct {
	w       io.Writer
	tty     bool
	start   time.Time
	last    time.Time
	printed bool
}

func newWaitNote(w io.Writer) *waitNote {
	return &waitNote{w: w, tty: isTTY(w), start: time.Now()}
}

// show prints line unless the wait is younger than a second or the last
// line is recent.
func (n *waitNote) show(line string) {
	if n.w == nil || time.Since(n.start) < time.Second && !n.printed {
		return
	}
	every := 5 * time.Second
	if n.tty {
		every = time.Second
	}
	if n.printed && time.Since(n.last) < every {
		return
	}
	n.last, n.printed = time.Now(), true
	if n.tty {
		fmt.Fprintf(n.w, "\r%s\033[K", line)
		return
	}
	fmt.Fprintln(n.w, line)
}

// done ends a shown wait with line.
func (n *waitNote) done(line string) {
	if n.w == nil || !n.printed {
		return
	}
	if n.tty {
		fmt.Fprintf(n.w, "\r%s\033[K\n", line)
		return
	}
	fmt.Fprintln(n.w, line)
}

// pause waits d (or until ctx ends) showing a countdown on w:
//
//	reconcile: grace for late publishes: 12s left
func pause(ctx context.Context, w io.Writer, what string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	note := newWaitNote(w)
	note.start = note.start.Add(-time.Second) // a pause of d > 1 s shows at once
	deadline := time.Now().Add(d)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		left := time.Until(deadline)
		if left <= 0 {
			if d > time.Second {
				note.done(fmt.Sprintf("%s: waited %s", what, d))
			}
			return nil
		}
		if d > time.Second {
			note.show(fmt.Sprintf("%s: %s left", what, left.Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-time.After(left):
		}
	}
}

// waitCaughtUp is t.WaitCaughtUp showing on w how far behind group is
// while the wait lasts over a second.
func waitCaughtUp(ctx context.Context, t *couponkafka.Topic, group string, first, end []int64, w io.Writer) error {
	note := newWaitNote(w)
	return t.WaitCaughtUp(ctx, group, first, end, func(left int64) {
		took := time.Since(note.start).Round(time.Second)
		if left == 0 {
			note.done(fmt.Sprintf("group %s caught up with the topic's end after %s", group, took))
			return
		}
		note.show(fmt.Sprintf("waiting for group %s to catch up: %d records behind (%s)", group, left, took))
	})
}
