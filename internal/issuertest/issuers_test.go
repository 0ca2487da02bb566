package issuertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/baseline"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/issuertest"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/internal/testsink"
	"github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	kafkago "github.com/segmentio/kafka-go"
)

// The tests bound the dependencies generously: bursts of thousands of
// calls on a loaded 2-core machine must not be mistaken for unknown
// outcomes.
const gateTimeout, publishTimeout = 10 * time.Second, 15 * time.Second

// TestAsync: the gate (batched and unbatched) and the publisher, the sinker
// writing the rows. Batched, the gate's batch hands each admission to the
// publisher itself (AdmitThen, PublishThen), and the broken issuer's
// publisher is a real one with no broker behind its address; unbatched, the
// broken one refuses in Publish (the path of a publisher without
// PublishThen).
func TestAsync(t *testing.T) {
	for _, v := range []struct {
		name   string
		cfg    admitter.Config
		broken func(t *testing.T) coupon.Publisher
	}{
		{"batched", admitter.DefaultConfig(), noBroker},
		{"unbatched", unbatched(), func(*testing.T) coupon.Publisher { return refusingPublisher{} }},
	} {
		t.Run(v.name, func(t *testing.T) {
			issuertest.Run(t, func(t *testing.T) issuertest.Subject { return asyncSubject(t, v.cfg, v.broken(t)) })
		})
	}
}

// noBroker is a real publisher whose broker address takes no connections:
// every publish certainly fails (after its retries).
func noBroker(t *testing.T) coupon.Publisher {
	cfg := kafka.DefaultConfig()
	cfg.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	pub, err := kafka.New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func unbatched() admitter.Config {
	cfg := admitter.DefaultConfig()
	cfg.BatchMax = 1
	return cfg
}

func asyncSubject(t *testing.T, cfg admitter.Config, broken coupon.Publisher) issuertest.Subject {
	const partitions = 6
	store := testenv.MustOpenStore(t)
	gate, err := admitter.NewFromClient(testenv.MustOpenRedis(t), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gate.Close() })
	topicName, dlq := testenv.MustCreateTopic(t, partitions), testenv.MustCreateTopic(t, 1)
	brokers := testenv.KafkaBrokers
	pcfg := kafka.DefaultConfig()
	pcfg.Brokers, pcfg.Topic = brokers, topicName
	pub, err := kafka.New(pcfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	group := testsink.StartGroup(t, testenv.MySQLDSN, topicName, dlq)
	topic := kafka.NewTopic(brokers, topicName)
	return issuertest.Subject{
		Issuer: gateway.NewAsyncIssuer(gate, pub, gateTimeout, publishTimeout, testenv.Logger(t)),
		Broken: gateway.NewAsyncIssuer(gate, broken, gateTimeout, publishTimeout, testenv.Logger(t)),
		Store:  store,
		NewCoupon: func(t *testing.T, total int64) *coupon.Coupon {
			c := mustCreateCoupon(t, store, coupon.StrategyAsync, total)
			if err := gate.Init(context.Background(), c.ID, total); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = gate.Drop(context.Background(), c.ID) })
			return c
		},
		Settle: func(t *testing.T) { testsink.WaitCaughtUp(t, topic, group) },
		Status: coupon.StatusPending,
		Check: func(t *testing.T, c *coupon.Coupon, accepted map[int64]*coupon.Issue) {
			if n, err := gate.Admitted(context.Background(), c.ID); err != nil || n != int64(len(accepted)) {
				t.Errorf("gate admitted %d, %v; want %d", n, err, len(accepted))
			}
			checkTopic(t, topic, partitions, c.ID, accepted)
		},
		Supply: 1000, Users: 5000,
	}
}

// refusingPublisher is a broker that certainly refuses every record.
type refusingPublisher struct{}

func (refusingPublisher) Publish(context.Context, coupon.Admission) error {
	return fmt.Errorf("test broker refuses: %w", coupon.ErrPublishFailed)
}

// checkTopic: the topic holds exactly one record per accepted user, with
// its rank, all in the coupon's partition (kafka.PartitionOf) under its key.
func checkTopic(t *testing.T, topic *kafka.Topic, partitions int, couponID int64, accepted map[int64]*coupon.Issue) {
	t.Helper()
	ctx := context.Background()
	first, end, err := topic.Offsets(ctx, partitions)
	if err != nil {
		t.Fatal(err)
	}
	want := kafka.PartitionOf(couponID, partitions)
	seen := map[int64]bool{}
	for p := range partitions {
		err := topic.Read(ctx, p, first[p], end[p], func(m kafkago.Message) error {
			a, err := coupon.UnmarshalAdmission(m.Value)
			if err != nil {
				return fmt.Errorf("record %d/%d: %w", m.Partition, m.Offset, err)
			}
			if a.CouponID != couponID {
				return nil // the other sub-tests' coupons
			}
			if m.Partition != want || string(m.Key) != string(coupon.EventKey(couponID)) {
				t.Errorf("record of user %d in partition %d with key %q; want partition %d", a.UserID, m.Partition, m.Key, want)
			}
			if is, ok := accepted[a.UserID]; !ok || is.Rank != a.Rank || seen[a.UserID] {
				t.Errorf("record %+v: accepted %+v, seen before %v", a, is, seen[a.UserID])
			}
			seen[a.UserID] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != len(accepted) {
		t.Errorf("the topic holds records of %d users; want the %d accepted", len(seen), len(accepted))
	}
}

// TestDBLock: SELECT ... FOR UPDATE, the row committed before the answer.
func TestDBLock(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Subject {
		store := testenv.MustOpenStore(t)
		cfg := baseline.DBLockConfig{Retries: 10, Timeout: time.Minute} // generous: the suite is about correctness, not the bound
		return issuertest.Subject{
			Issuer:    baseline.NewDBLock(store, cfg, testenv.Logger(t)),
			Broken:    baseline.NewDBLock(mustClosedStore(t), cfg, testenv.Logger(t)),
			Store:     store,
			NewCoupon: couponsOf(store, coupon.StrategyDBLock),
			Status:    coupon.StatusIssued,
			Check:     checkSynchronous,
		}
	})
}

// TestRedisLock: a per-coupon Redis lock around the same transaction.
func TestRedisLock(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Subject {
		store := testenv.MustOpenStore(t)
		rdb := testenv.MustOpenRedis(t)
		cfg := baseline.DefaultRedisLockConfig()
		cfg.Wait, cfg.Timeout = time.Minute, time.Minute // generous: the suite is about correctness, not the bound
		iss, err := baseline.NewRedisLock(store, rdb, cfg, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		broken, err := baseline.NewRedisLock(mustClosedStore(t), rdb, cfg, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		return issuertest.Subject{
			Issuer: iss, Broken: broken, Store: store,
			NewCoupon: couponsOf(store, coupon.StrategyRedisLock),
			Status:    coupon.StatusIssued,
			Check: func(t *testing.T, c *coupon.Coupon, accepted map[int64]*coupon.Issue) {
				checkSynchronous(t, c, accepted)
				if n, err := rdb.Exists(context.Background(), baseline.LockKey(c.ID)).Result(); err != nil || n != 0 {
					t.Errorf("lock key left behind: exists=%d err=%v", n, err)
				}
			},
		}
	})
}

// checkSynchronous: a baseline answers the row it committed: written by
// no topic record (partition and offset -1), issued at the admission.
func checkSynchronous(t *testing.T, _ *coupon.Coupon, accepted map[int64]*coupon.Issue) {
	for u, is := range accepted {
		if is.Partition != -1 || is.Offset != -1 || is.IssuedAt.IsZero() || !is.IssuedAt.Equal(is.AdmittedAt) {
			t.Errorf("user %d was answered %+v; want partition/offset -1 and IssuedAt set to AdmittedAt", u, is)
		}
	}
}

func couponsOf(store *mysql.DB, strategy coupon.Strategy) func(*testing.T, int64) *coupon.Coupon {
	return func(t *testing.T, total int64) *coupon.Coupon { return mustCreateCoupon(t, store, strategy, total) }
}

func mustCreateCoupon(t *testing.T, store *mysql.DB, strategy coupon.Strategy, total int64) *coupon.Coupon {
	t.Helper()
	c := &coupon.Coupon{Name: "issuer suite " + testenv.RandomID(), TotalQuantity: total, Strategy: strategy}
	if err := store.CreateCoupon(context.Background(), c); err != nil {
		t.Fatalf("create coupon: %v", err)
	}
	return c
}

// mustClosedStore is a store whose pool is closed: every statement fails
// before it reaches MySQL.
func mustClosedStore(t *testing.T) *mysql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := mysql.Open(ctx, mysql.Config{DSN: testenv.MySQLDSN, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return db
}
