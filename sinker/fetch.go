package sinker

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// workerBuffer gathers the next batch of one worker: the records of the
// partitions it owns.
type workerBuffer struct {
	msgs    []kafka.Message
	started time.Time // when its first record arrived
}

// fetchLoop reads records and hands them to the workers as batches: worker
// w gets the records of the partitions p with p % len(work) == w, in fetch
// order (so each partition's in order, and one partition's batches settle
// in order on one worker). A batch is handed over when it holds BatchSize
// records, or BatchWait after its first record if its worker is free
// (otherwise it keeps growing).
//
// A batch spans its worker's partitions rather than one partition: with a
// hot coupon that changes nothing (its partition is one worker's), and with
// traffic spread over many coupons and partitions it keeps transactions as
// large as a hot coupon's instead of dividing them by the partitions, whose
// fixed cost per transaction (lock, counter update, commit and its log
// flush) then made MariaDB's cost per row several times a hot coupon's.
//
// Fetch errors are outages to ride out (kafkaWatch reports them): it
// returns an error only when the reader is closed, or ctx's error on ctx's
// end; records still buffered are then dropped (never committed, so
// redelivered): only batches already handed over are finished at shutdown.
func (s *Sinker) fetchLoop(ctx context.Context, work []chan *batch) error {
	bufs := map[int]*workerBuffer{} // by worker
	// emit hands a full batch over, waiting for its worker.
	emit := func(w int, b *workerBuffer) error {
		delete(bufs, w)
		select {
		case work[w] <- s.decode(b.msgs):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// offer hands a batch whose wait is over to its worker if the worker
	// is free; a busy worker means a backlog, so the batch keeps growing
	// (towards BatchSize) and is offered again a BatchWait later.
	offer := func(w int, b *workerBuffer) {
		select {
		case work[w] <- s.decode(b.msgs):
			delete(bufs, w)
		default:
			b.started = time.Now()
		}
	}
	// The fetch context carries the earliest buffer deadline; it is
	// replaced only when that deadline changes.
	var (
		fctx                        = ctx
		stop     context.CancelFunc = func() {}
		deadline time.Time
	)
	defer func() { stop() }()
	for {
		var earliest time.Time
		for _, b := range bufs {
			if t := b.started.Add(s.cfg.BatchWait); earliest.IsZero() || t.Before(earliest) {
				earliest = t
			}
		}
		if !earliest.Equal(deadline) {
			stop()
			deadline = earliest
			fctx, stop = ctx, func() {}
			if !earliest.IsZero() {
				c, cf := context.WithDeadline(ctx, earliest)
				fctx, stop = c, cf
			}
		}
		m, err := s.reader.FetchMessage(fctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return err // the reader is closed
			}
			if fctx.Err() == nil {
				// The reader keeps retrying on its own (broker loss, leader
				// or coordinator moves) and hands the errors out meanwhile:
				// the watch reports the outage, the loop goes on.
				s.metrics.readerErrors.WithLabelValues("fetch").Inc()
				s.watch.trouble(err, true)
				if !pause(ctx, fetchErrorPause) {
					return ctx.Err()
				}
				continue
			}
			// A wait is over: offer every buffer whose wait is over.
			now := time.Now()
			for w, b := range bufs {
				if !now.Before(b.started.Add(s.cfg.BatchWait)) {
					offer(w, b)
				}
			}
			continue
		}
		w := m.Partition % len(work)
		b := bufs[w]
		if b == nil {
			b = &workerBuffer{msgs: make([]kafka.Message, 0, min(s.cfg.BatchSize, 1024)), started: time.Now()}
			bufs[w] = b
		}
		b.msgs = append(b.msgs, m)
		if len(b.msgs) >= s.cfg.BatchSize {
			if err := emit(w, b); err != nil {
				return err
			}
		}
	}
}

// fetchErrorPause spaces the fetches after an error: the reader retries by
// itself with its own backoff, so a fetch error is handed out at once
// again only if another is queued.
const fetchErrorPause = 100 * time.Millisecond

// pause waits d unless ctx ends first; it reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
