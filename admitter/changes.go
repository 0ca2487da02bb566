package admitter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Announce tells every gateway watching (WatchChanges) that coupon id
// changed: it raises the change counter, then publishes "<id>:<version>" on
// the changes channel.
func (g *Gate) Announce(ctx context.Context, couponID int64) error {
	v, err := g.client.Incr(ctx, ChangesVersionKey).Result()
	if err != nil {
		return g.wrap(err, "announce a change of coupon %d", couponID)
	}
	msg := strconv.FormatInt(couponID, 10) + ":" + strconv.FormatInt(v, 10)
	if err := g.client.Publish(ctx, ChangesChannel, msg).Err(); err != nil {
		return g.wrap(err, "announce a change of coupon %d", couponID)
	}
	return nil
}

// WatchChanges calls changed(id) for every coupon change announced, and
// changed(0) ("anything may have changed") when it may have missed one:
// whenever the subscription is (re)established, and when the change
// counter, read every poll, moved past the announcements received (a
// message lost on a broken connection). After each successful read of the
// counter (every poll, and on each subscription) it calls current (when not
// nil): every change announced before that read has been passed to changed.
// It returns when ctx ends. changed and current run on one goroutine, never
// concurrently with themselves or each other.
func (g *Gate) WatchChanges(ctx context.Context, poll time.Duration, changed func(couponID int64), current func()) {
	sub := g.client.Subscribe(ctx, ChangesChannel)
	defer sub.Close()
	msgs := make(chan any, 64)
	go func() {
		defer close(msgs)
		for {
			m, err := sub.Receive(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// go-redis reconnects and subscribes again on the next
				// Receive; a Subscription message tells it did.
				g.logger.Debug("coupon changes: receive", "err", err)
				select {
				case <-time.After(poll):
				case <-ctx.Done():
					return
				}
				continue
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	var seen int64 // the highest version accounted for
	counter := func() (int64, bool) {
		pctx, cancel := context.WithTimeout(ctx, poll)
		defer cancel()
		v, err := g.client.Get(pctx, ChangesVersionKey).Int64()
		if errors.Is(err, redis.Nil) {
			return 0, true
		}
		return v, err == nil
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					v, ok := counter()
					if ok {
						seen = v
					}
					changed(0)
					if ok && current != nil {
						current()
					}
				}
			case *redis.Message:
				id, v, err := parseChange(m.Payload)
				if err != nil {
					g.logger.Warn("coupon changes: bad message", "payload", m.Payload, "err", err)
					changed(0)
					continue
				}
				if v > seen+1 { // one or more announcements were missed
					changed(0)
				}
				seen = max(seen, v)
				changed(id)
			}
		case <-tick.C:
			v, ok := counter()
			if !ok {
				continue
			}
			if v > seen {
				seen = v
				changed(0)
			}
			if current != nil {
				current()
			}
		}
	}
}

func parseChange(payload string) (couponID, version int64, err error) {
	a, b, ok := strings.Cut(payload, ":")
	if ok {
		if couponID, err = strconv.ParseInt(a, 10, 64); err == nil {
			version, err = strconv.ParseInt(b, 10, 64)
		}
	}
	if !ok || err != nil || couponID < 1 {
		return 0, 0, fmt.Errorf("want <couponId>:<version>, got %q", payload)
	}
	return couponID, version, nil
}
