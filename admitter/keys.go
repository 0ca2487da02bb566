package admitter

import (
	"strconv"

	"github.com/coupondrop/coupon"
)

// Redis keys of one coupon's gate state; only this package spells them. All
// share the hash tag {<id>} (coupon.RedisKey), so they live in one Redis
// Cluster slot and one Lua script may touch them all.
//
//	coupon:{<id>}:users    hash, the gate itself: userId -> rank for the
//	                       admitted set, and two fields that are no user
//	                       ID (those are canonical decimals): seq, the rank
//	                       counter, whose presence means the state is
//	                       initialised (a known coupon without it lost its
//	                       state: refuse, rebuild), and total, the gate's
//	                       supply, which the admit script prefers to the
//	                       caller's (missing on states made before it
//	                       existed: the caller's total counts). One key, so
//	                       admitting to a coupon is one HMGET, one HLEN and
//	                       one HSET, whatever its number of users.
//	coupon:{<id>}:pending  hash userId -> rank: admissions whose publish
//	                       outcome is unknown, for reconciliation
//	coupon:{<id>}:rev      string: the coupon revision the total came from;
//	                       an older revision never overwrites a newer one
//	coupon:{<id>}:seq      strings: the rank counter and the supply in the
//	coupon:{<id>}:total    layout before the hash held them; a state found
//	                       in it is moved into the hash (lua/migrate.lua,
//	                       Gate.migrate) by the first call that meets it
func usersKey(couponID int64) string    { return coupon.RedisKey(couponID, "users") }
func pendingKey(couponID int64) string  { return coupon.RedisKey(couponID, "pending") }
func revisionKey(couponID int64) string { return coupon.RedisKey(couponID, "rev") }
func oldSeqKey(couponID int64) string   { return coupon.RedisKey(couponID, "seq") }
func oldTotalKey(couponID int64) string { return coupon.RedisKey(couponID, "total") }

// The gate hash's fields that are not users.
const (
	seqField   = "seq"
	totalField = "total"
)

// stateKeys are every key of a coupon's gate state, in either layout.
func stateKeys(couponID int64) []string {
	return []string{usersKey(couponID), pendingKey(couponID), revisionKey(couponID), oldSeqKey(couponID), oldTotalKey(couponID)}
}

// migrateKeys are the KEYS of the migrate script for a coupon.
func migrateKeys(couponID int64) []string {
	return []string{usersKey(couponID), oldSeqKey(couponID), oldTotalKey(couponID)}
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
