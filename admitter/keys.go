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
func keyPrefix(couponID int64) string {
	return "coupon:{" + strconv.FormatInt(couponID, 10) + "}:"
}

// UsersKey, SeqKey and PendingKey name a coupon's gate keys.
func UsersKey(couponID int64) string   { return keyPrefix(couponID) + "users" }
func SeqKey(couponID int64) string     { return keyPrefix(couponID) + "seq" }
func PendingKey(couponID int64) string { return keyPrefix(couponID) + "pending" }
