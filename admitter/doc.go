// Package admitter is the Redis admission gate of the async strategy: Lua
// scripts decide atomically per coupon who is admitted and with which rank.
package admitter
