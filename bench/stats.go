package bench

import (
	"math"
	"net/http"
	"slices"
	"time"
)

// Latency holds percentiles of a set of latencies, in milliseconds.
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Percentiles computes Latency from ds (nearest-rank percentiles over a
// sorted copy: exact, which is fine for the sample sizes here).
func Percentiles(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Latency{N: len(s), P50: rank(50), P95: rank(95), P99: rank(99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

// Stats summarises one phase from the client's side.
type Stats struct {
	Sent        int64         `json:"sent"`
	Accepted    int64         `json:"accepted"`    // 2xx: 201 (baselines) or 202 (async)
	Already     int64         `json:"already"`     // 409
	SoldOut     int64         `json:"soldOut"`     // 410
	Unavailable int64         `json:"unavailable"` // 503
	Errors      int64         `json:"errors"`      // anything but 2xx, 409 and 410: 503, other 4xx/5xx, transport errors
	ByStatus    map[int]int64 `json:"byStatus"`    // 0 = transport error or timeout
	// Elapsed is until the last answer; AcceptWindow until the last 2xx
	// answer (when the supply ran out, for a sold-out coupon).
	Elapsed      time.Duration `json:"elapsedNs"`
	AcceptWindow time.Duration `json:"acceptWindowNs"`
	// AcceptedPerSec is Accepted over AcceptWindow: the issuing rate while
	// supply lasted. AnsweredPerSec is every answer over Elapsed.
	AcceptedPerSec float64 `json:"acceptedPerSec"`
	AnsweredPerSec float64 `json:"answeredPerSec"`
	OfferedPerSec  float64 `json:"offeredPerSec,omitempty"` // open model's arrival rate
	Latency        Latency `json:"latency"`                 // every answer
	AcceptedLat    Latency `json:"acceptedLatency"`         // 2xx answers only
	// Timeline buckets the requests by scheduled second: how the phase went.
	Timeline []Second `json:"timeline"`
	// AcceptedUsers counts 2xx answers per (coupon, user): the input of the
	// "no user accepted twice" check.
	AcceptedUsers map[Key]int `json:"-"`
}

// Second is one second of a phase, by scheduled send time.
type Second struct {
	At       int     `json:"at"` // seconds since the phase start
	Sent     int     `json:"sent"`
	Accepted int     `json:"accepted"`
	Errors   int     `json:"errors"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
}

// timeline buckets samples by the second they were scheduled in.
func timeline(samples []Sample) []Second {
	var lat [][]time.Duration
	var out []Second
	for _, s := range samples {
		i := int(s.Scheduled / time.Second)
		for len(out) <= i {
			out = append(out, Second{At: len(out)})
			lat = append(lat, nil)
		}
		out[i].Sent++
		lat[i] = append(lat[i], s.Latency)
		switch {
		case s.Accepted():
			out[i].Accepted++
		case s.Status != http.StatusConflict && s.Status != http.StatusGone:
			out[i].Errors++
		}
	}
	for i := range out {
		l := Percentiles(lat[i])
		out[i].P50, out[i].P99 = l.P50, l.P99
	}
	return out
}

// Key is one (coupon, user) pair.
type Key struct{ CouponID, UserID int64 }

// Summarize computes the Stats of a phase.
func Summarize(r *Result) Stats {
	st := Stats{Sent: int64(len(r.Samples)), ByStatus: map[int]int64{}, Elapsed: r.Elapsed, AcceptedUsers: map[Key]int{}, OfferedPerSec: r.Load.Rate}
	all := make([]time.Duration, 0, len(r.Samples))
	var acc []time.Duration
	for _, s := range r.Samples {
		st.ByStatus[s.Status]++
		all = append(all, s.Latency)
		switch {
		case s.Accepted():
			st.Accepted++
			acc = append(acc, s.Latency)
			st.AcceptWindow = max(st.AcceptWindow, s.Done())
			st.AcceptedUsers[Key{s.CouponID, s.UserID}]++
		case s.Status == http.StatusConflict:
			st.Already++
		case s.Status == http.StatusGone:
			st.SoldOut++
		default:
			st.Errors++
			if s.Status == http.StatusServiceUnavailable {
				st.Unavailable++
			}
		}
	}
	st.Latency, st.AcceptedLat = Percentiles(all), Percentiles(acc)
	st.Timeline = timeline(r.Samples)
	st.AcceptedPerSec = perSec(st.Accepted, st.AcceptWindow)
	st.AnsweredPerSec = perSec(st.Sent, st.Elapsed)
	return st
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
