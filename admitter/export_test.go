package admitter

// The key names, for this package's external tests and benchmarks that
// measure the keys themselves.
var (
	UsersKey = usersKey
	SeqField = seqField
)

// OneCallPerCoupon makes g's batches send one script call per coupon, as
// the gate did before calls carried several coupons (benchmarks compare).
func OneCallPerCoupon(g *Gate) { g.perCoupon = true }
