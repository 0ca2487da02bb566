package ratelimit

import "unsafe"

// unsafeString aliases b, as fiber's zero-copy strings do.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
