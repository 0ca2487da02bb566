package kafka

import (
	"github.com/coupondrop/coupon"
	kafkago "github.com/segmentio/kafka-go"
)

// balancer places the admitted-request records: Murmur2 of the key
// coupon.EventKey(couponID), like Java clients. The publisher writes with
// it and PartitionOf answers with it, so readers find a coupon's records
// where the publisher put them.
var balancer kafkago.Balancer = &kafkago.Murmur2Balancer{}

// PartitionOf returns the partition of a coupon's records among partitions.
func PartitionOf(couponID int64, partitions int) int {
	ps := make([]int, partitions)
	for p := range ps {
		ps[p] = p
	}
	return balancer.Balance(kafkago.Message{Key: coupon.EventKey(couponID)}, ps...)
}
