package mysql

// SetPlaceholders switches the bulk insert to ? placeholders (true) or the
// VALUES literal and returns a func restoring the previous mode.
func SetPlaceholders(on bool) func() {
	old := usePlaceholders
	usePlaceholders = on
	return func() { usePlaceholders = old }
}
