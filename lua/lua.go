// Package lua embeds the Redis Lua scripts of the admission gate; the .lua
// files beside this one are the source of truth, loaded once per client.
package lua

import _ "embed"

// Admit admits one or more users to one or more coupons, each coupon's in
// order. KEYS: per coupon, its gate hash (userId -> rank, plus the fields
// seq, the rank counter, and total, the gate's supply, which wins over
// ARGV's). ARGV: for one coupon, total, then the userIds; for several, per
// coupon: total, the number of its userIds, then those. Returns a flat
// array with one {code, rank} pair per userId, in argument order: see the
// AdmitXxx codes.
//
//go:embed admit.lua
var Admit string

// Release undoes an admission only while it still has the given rank. KEYS:
// users hash, pending hash. ARGV: userId, rank. Returns 1 if released, 0 if not.
//
//go:embed release.lua
var Release string

// Resize sets a coupon's supply in the gate unless more users are admitted
// or a later revision is set. KEYS: gate hash, revision. ARGV: total,
// revision. Returns {code, admitted}: see the ResizeXxx codes.
//
//go:embed resize.lua
var Resize string

// Init creates a coupon's gate state (seq 0 and the total in its hash)
// unless one exists in either layout. KEYS: gate hash, the old seq key.
// ARGV: total. Returns 1 if created, 0 if a state existed.
//
//go:embed init.lua
var Init string

// Migrate moves a coupon's gate state from the layout before the hash held
// seq and total (two string keys) into the hash and deletes the old keys.
// KEYS: gate hash, the old seq key, the old total key. Returns 1 if the
// hash holds seq now, 0 if there is no state.
//
//go:embed migrate.lua
var Migrate string

// Unlock releases a redis-lock baseline lock only while it holds the given
// token. KEYS: lock key. ARGV: token. Returns 1 if released, 0 if not.
//
//go:embed unlock.lua
var Unlock string

// Result codes of the Admit script (first element of each reply pair).
const (
	AdmitOK      = 0 // admitted; second element is the new rank
	AdmitAlready = 1 // already admitted; second element is the existing rank
	AdmitSoldOut = 2 // the admitted set holds total users
	AdmitLost    = 3 // the seq field is missing: the state was lost (or is in the old layout: migrate, call again)
)

// Result codes of the Resize script (first element of its reply).
const (
	ResizeOK       = 0 // the total is set
	ResizeConflict = 1 // more users are admitted than the new total: nothing changed
	ResizeStale    = 2 // a later revision is set: nothing changed
	ResizeLost     = 3 // the seq field is missing: as AdmitLost
)
