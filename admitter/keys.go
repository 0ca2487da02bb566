package admitter

import "strconv"

// Redis keys of one coupon's gate state. All share the hash tag {<id>}, so
// they live in one Redis Cluster slot and one Lua script may touch them all.
//
//	coupon:{<id>}:users    hash userId -> rank: the admitted set
//	coupon:{<id>}:seq      string: the rank counter; its existence means the
//	                       gate state is initialised (a missing seq on a known
//	                       coupon means the state was lost: refuse, rebuild)
//	coupon:{<id>}:pending  hash userId -> rank: admissions whose publish
//	                       outcome is unknown, for reconciliation
//	coupon:{<id>}:total    string: the gate's supply, which the admit script
//	                       prefers to the caller's (missing on states made
//	                       before it existed: the caller's total counts)
//	coupon:{<id>}:rev      string: the coupon revision the total came from;
//	                       an older revision never overwrites a newer one
func keyPrefix(couponID int64) string {
	return "coupon:{" + strconv.FormatInt(couponID, 10) + "}:"
}

// UsersKey, SeqKey, PendingKey, TotalKey and RevisionKey name a coupon's gate keys.
func UsersKey(couponID int64) string    { return keyPrefix(couponID) + "users" }
func SeqKey(couponID int64) string      { return keyPrefix(couponID) + "seq" }
func PendingKey(couponID int64) string  { return keyPrefix(couponID) + "pending" }
func TotalKey(couponID int64) string    { return keyPrefix(couponID) + "total" }
func RevisionKey(couponID int64) string { return keyPrefix(couponID) + "rev" }

// StateKeys are every key of a coupon's gate state.
func StateKeys(couponID int64) []string {
	return []string{UsersKey(couponID), SeqKey(couponID), PendingKey(couponID), TotalKey(couponID), RevisionKey(couponID)}
}

// AdmitKeys are the KEYS of the admit script for a coupon.
func AdmitKeys(couponID int64) []string {
	return []string{UsersKey(couponID), SeqKey(couponID), TotalKey(couponID)}
}

// Coupon changes between gateways: a pub/sub channel carrying
// "<couponId>:<version>" per change, and the counter of changes the
// version comes from (a gateway that missed a message sees it move).
const (
	ChangesChannel    = "coupon:changes"
	ChangesVersionKey = "coupon:changes:version"
)
