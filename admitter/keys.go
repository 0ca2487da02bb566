package admitter

import (
	"strconv"

	"github.com/coupondrop/coupon"
)

// Redis keys of one coupon's gate state; only this package spells them. All
// share the hash tag {<id>} (coupon.RedisKey), so they live in one Redis
// Cluster slot and one Lua script may touch them all.
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
func usersKey(couponID int64) string    { return coupon.RedisKey(couponID, "users") }
func seqKey(couponID int64) string      { return coupon.RedisKey(couponID, "seq") }
func pendingKey(couponID int64) string  { return coupon.RedisKey(couponID, "pending") }
func totalKey(couponID int64) string    { return coupon.RedisKey(couponID, "total") }
func revisionKey(couponID int64) string { return coupon.RedisKey(couponID, "rev") }

// stateKeys are every key of a coupon's gate state.
func stateKeys(couponID int64) []string {
	return []string{usersKey(couponID), seqKey(couponID), pendingKey(couponID), totalKey(couponID), revisionKey(couponID)}
}

// admitKeys are the KEYS of the admit script for a coupon.
func admitKeys(couponID int64) []string {
	return []string{usersKey(couponID), seqKey(couponID), totalKey(couponID)}
}

// Coupon changes between gateways: a pub/sub channel carrying
// "<couponId>:<version>" per change, and the counter of changes the
// version comes from (a gateway that missed a message sees it move).
const (
	ChangesChannel    = "coupon:changes"
	ChangesVersionKey = "coupon:changes:version"
)

// slot is the Redis Cluster hash slot of a coupon's gate keys: CRC16
// (XMODEM) of the hash tag, modulo 16384.
func slot(couponID int64) uint16 {
	var crc uint16
	for _, b := range []byte(strconv.FormatInt(couponID, 10)) {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
