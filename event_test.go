package coupon_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
)

// TestMarshalAdmissionMatchesEncodingJSON: the hand-built encoder writes
// what encoding/json writes for the struct, and UnmarshalAdmission reads
// it back unchanged (round trip), for edge values and random ones.
func TestMarshalAdmissionMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 24, 22, 30, 1, 123456789, time.UTC)
	cases := []struct {
		name string
		a    coupon.Admission
	}{
		{"typical", coupon.Admission{CouponID: 42, UserID: 7, Rank: 1, AdmittedAt: at, RequestID: "a1b2c3d4-1z"}},
		{"no request id", coupon.Admission{CouponID: 1, UserID: 1, Rank: 1, AdmittedAt: at}},
		{"max ids", coupon.Admission{CouponID: math.MaxInt64, UserID: math.MaxInt64, Rank: math.MaxInt64, AdmittedAt: at, RequestID: "x"}},
		{"whole second", coupon.Admission{CouponID: 3, UserID: 4, Rank: 5, AdmittedAt: at.Truncate(time.Second)}},
		{"other zone", coupon.Admission{CouponID: 3, UserID: 4, Rank: 5, AdmittedAt: at.In(time.FixedZone("KST", 9*3600))}},
		{"request id needing escapes", coupon.Admission{CouponID: 3, UserID: 4, Rank: 5, AdmittedAt: at, RequestID: `q"b\s<a>&é` + "\x01"}},
		{"version is forced", coupon.Admission{Version: 99, CouponID: 3, UserID: 4, Rank: 5, AdmittedAt: at}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		rid := make([]byte, rng.IntN(40))
		for i := range rid {
			rid[i] = byte(0x21 + rng.IntN(0x7e-0x21+1)) // what the gateway accepts as X-Request-ID
		}
		cases = append(cases, struct {
			name string
			a    coupon.Admission
		}{"random", coupon.Admission{
			CouponID: rng.Int64N(math.MaxInt64) + 1, UserID: rng.Int64N(math.MaxInt64) + 1, Rank: rng.Int64N(1e9) + 1,
			AdmittedAt: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC(), RequestID: string(rid),
		}})
	}
	for _, tc := range cases {
		got, err := coupon.MarshalAdmission(tc.a)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := tc.a
		want.Version = coupon.EventVersion
		std, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, std) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, std)
		}
		back, err := coupon.UnmarshalAdmission(got)
		if err != nil {
			t.Fatalf("%s: unmarshal %s: %v", tc.name, got, err)
		}
		if !back.AdmittedAt.Equal(want.AdmittedAt) {
			t.Errorf("%s: admittedAt %v, want %v", tc.name, back.AdmittedAt, want.AdmittedAt)
		}
		back.AdmittedAt, want.AdmittedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(back, want) {
			t.Errorf("%s: round trip %+v, want %+v", tc.name, back, want)
		}
	}
}

func TestMarshalAdmissionRefusesYearOutOfRange(t *testing.T) {
	a := coupon.Admission{CouponID: 1, UserID: 1, Rank: 1, AdmittedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if b, err := coupon.MarshalAdmission(a); err == nil {
		t.Fatalf("encoded %s, want an error", b)
	}
}

func BenchmarkMarshalAdmission(b *testing.B) {
	a := coupon.Admission{CouponID: 42, UserID: 123456789, Rank: 4321, AdmittedAt: time.Now().UTC(), RequestID: "3f2a9c1e-2kx9"}
	b.Run("appends", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = coupon.MarshalAdmission(a)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(a)
		}
	})
}

// FuzzUnmarshalAdmission: whatever the bytes, UnmarshalAdmission (its
// parser of MarshalAdmission's shape, or encoding/json) decodes what
// encoding/json decodes, and refuses a record exactly when encoding/json or
// the validation does.
func FuzzUnmarshalAdmission(f *testing.F) {
	at := time.Date(2026, 11, 24, 22, 30, 1, 123456789, time.UTC)
	for _, a := range []coupon.Admission{
		{CouponID: 42, UserID: 7, Rank: 1, AdmittedAt: at, RequestID: "a1b2c3d4-1z"},
		{CouponID: 1, UserID: 1, Rank: 1, AdmittedAt: at.In(time.FixedZone("KST", 9*3600))},
		{CouponID: math.MaxInt64, UserID: 3, Rank: 2, AdmittedAt: at.Truncate(time.Second), RequestID: `q"b\s<a>&é`},
	} {
		b, err := coupon.MarshalAdmission(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"v":1,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":01,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":-0,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":1e3,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":9223372036854775808,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24 22:30:01Z"}`,
		`{"v":1,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z","requestId":""}`,
		`{"v":1,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z","requestId":"a","requestId":"b"}`,
		`{"v":1,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"} `,
		`{"v":1,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}}`,
		`{"v":1,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z","extra":1}`,
		`{"v":2,"couponId":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":1,"userId":2,"rank":0,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":1,"userId":2,"rank":3}`,
		`{"V":1,"couponid":1,"userId":2,"rank":3,"admittedAt":"2026-11-24T22:30:01Z"}`,
		`{"v":1,"couponId":"x"`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := coupon.UnmarshalAdmission(b)
		var want coupon.Admission
		jerr := json.Unmarshal(b, &want)
		if jerr != nil {
			if err == nil {
				t.Fatalf("%q: decoded %+v; encoding/json refuses it: %v", b, got, jerr)
			}
			return
		}
		valid := want.Version == coupon.EventVersion && want.CouponID > 0 && want.UserID > 0 && want.Rank > 0 && !want.AdmittedAt.IsZero()
		if (err == nil) != valid {
			t.Fatalf("%q: error %v; encoding/json decoded %+v (valid: %v)", b, err, want, valid)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %+v; encoding/json %+v", b, got, want)
		}
	})
}

func BenchmarkUnmarshalAdmission(b *testing.B) {
	rec, err := coupon.MarshalAdmission(coupon.Admission{CouponID: 42, UserID: 123456789, Rank: 4321, AdmittedAt: time.Now().UTC(), RequestID: "3f2a9c1e-2kx9"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := coupon.UnmarshalAdmission(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var a coupon.Admission
			if err := json.Unmarshal(rec, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestIssueStatus: an Issue with a row time is issued, one without is a
// pending admission (the gateway answers 201 and 202 by it).
func TestIssueStatus(t *testing.T) {
	if got := (&coupon.Issue{Rank: 1}).Status(); got != coupon.StatusPending {
		t.Errorf("admission without IssuedAt: %s, want %s", got, coupon.StatusPending)
	}
	if got := (&coupon.Issue{Rank: 1, IssuedAt: time.Now()}).Status(); got != coupon.StatusIssued {
		t.Errorf("row with IssuedAt: %s, want %s", got, coupon.StatusIssued)
	}
}
