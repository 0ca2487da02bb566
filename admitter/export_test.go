package admitter

// The key names, for this package's external tests and benchmarks that
// measure the keys themselves.
var (
	UsersKey = usersKey
	SeqKey   = seqKey
)
