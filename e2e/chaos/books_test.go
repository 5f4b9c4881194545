package chaos

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// stock is one product's row in the inventory database.
type stock struct {
	ID        string `db:"product_id"`
	Available int    `db:"available"`
	Reserved  int    `db:"reserved"`
	Sold      int    `db:"sold"`
}

func (s stock) total() int { return s.Available + s.Reserved + s.Sold }

func stockOf(t *testing.T, db *sqlx.DB) map[string]stock {
	t.Helper()
	var rows []stock
	if err := db.Select(&rows, `SELECT product_id, available, reserved, sold FROM products`); err != nil {
		t.Fatalf("read stock: %v", err)
	}
	out := map[string]stock{}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

// injected describes what a scenario put straight into the topics, so the books know
// which messages are deliberate poison and what the dead-letter topics must hold.
type injected struct {
	poisonKeys   map[string]bool // keys of messages that must be dead-lettered by every cart-topic consumer
	skippedKeys  map[string]bool // keys of messages consumers skip without recording (unknown payload kinds)
	disorderCart string          // a cart whose events were published out of version order
}

// books is the report of one scenario.
type books struct {
	t       *testing.T
	lines   []string
	checked int
}

func (b *books) logf(format string, args ...any) {
	b.lines = append(b.lines, fmt.Sprintf(format, args...))
}

// check counts an invariant and fails the test with the first broken one.
func (b *books) check(ok bool, format string, args ...any) {
	b.t.Helper()
	b.checked++
	if !ok {
		b.print()
		b.t.Fatalf("invariant broken: "+format, args...)
	}
}

func (b *books) print() {
	b.t.Logf("books:\n  %s\n  invariants checked: %d", strings.Join(b.lines, "\n  "), b.checked)
}

// quiesce waits until every outbox is drained, every consumer group's committed offsets
// reach the high watermarks and no order is pending.
func quiesce(t *testing.T, st *stack.Stack, timeout time.Duration) {
	t.Helper()
	var why string
	deadline := time.Now().Add(timeout)
	for {
		why = busy(st)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not quiet after %s: %s", timeout, why)
		}
		time.Sleep(time.Second)
	}
}

func busy(st *stack.Stack) string {
	for _, name := range stack.Names {
		var n int
		if err := st.DBs[name].Get(&n, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`); err != nil || n != 0 {
			return fmt.Sprintf("%s outbox: %d unsent (%v)", name, n, err)
		}
	}
	var pending int
	if err := st.DBs["order"].Get(&pending, `SELECT count(*) FROM orders WHERE status = 'pending'`); err != nil || pending != 0 {
		return fmt.Sprintf("%d orders pending (%v)", pending, err)
	}
	for svc, topics := range stack.Consumes {
		for _, topic := range topics {
			lag, err := groupLag(st.Brokers, st.Groups[svc], st.Topics[topic])
			if err != nil || lag != 0 {
				return fmt.Sprintf("group %s on %s: lag %d (%v)", svc, topic, lag, err)
			}
		}
	}
	return ""
}

// groupLag is the sum over the topic's partitions of high watermark minus the group's
// committed offset.
func groupLag(brokers, group, topic string) (int64, error) {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	tps, err := partitions(c, topic)
	if err != nil {
		return 0, err
	}
	committed, err := c.Committed(tps, 10000)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, tp := range committed {
		low, high, err := c.QueryWatermarkOffsets(topic, tp.Partition, 10000)
		if err != nil {
			return 0, err
		}
		off := int64(tp.Offset)
		if off < 0 {
			off = low
		}
		lag += high - off
	}
	return lag, nil
}

func partitions(c *ckafka.Consumer, topic string) ([]ckafka.TopicPartition, error) {
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil {
		return nil, err
	}
	var tps []ckafka.TopicPartition
	for _, p := range md.Topics[topic].Partitions {
		tps = append(tps, ckafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: ckafka.OffsetBeginning})
	}
	return tps, nil
}

// readAll returns every message of topic up to the high watermarks of this moment.
func readAll(t *testing.T, brokers, topic string) []kafka.Message {
	t.Helper()
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": testkit.Name("chaos-reader"), "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	tps, err := partitions(c, topic)
	if err != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	need := map[int32]int64{}
	var assign []ckafka.TopicPartition
	for _, tp := range tps {
		low, high, err := c.QueryWatermarkOffsets(topic, tp.Partition, 10000)
		if err != nil {
			t.Fatalf("watermarks of %s/%d: %v", topic, tp.Partition, err)
		}
		if high > low {
			need[tp.Partition] = high
			assign = append(assign, tp)
		}
	}
	if len(assign) == 0 {
		return nil
	}
	if err := c.Assign(assign); err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	deadline := time.Now().Add(2 * time.Minute)
	for len(need) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("reading %s: partitions %v not read to their high watermark", topic, need)
		}
		km, ok := c.Poll(200).(*ckafka.Message)
		if !ok || km.TopicPartition.Error != nil {
			continue
		}
		m := kafka.Message{Topic: topic, Partition: km.TopicPartition.Partition, Offset: int64(km.TopicPartition.Offset), Key: km.Key, Value: km.Value}
		for _, h := range km.Headers {
			m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		out = append(out, m)
		if m.Offset+1 >= need[m.Partition] {
			delete(need, m.Partition)
		}
	}
	return out
}

func column(t *testing.T, db *sqlx.DB, query string, args ...any) map[string]bool {
	t.Helper()
	var ids []string
	if err := db.Select(&ids, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

func get[T any](t *testing.T, db *sqlx.DB, query string, args ...any) T {
	t.Helper()
	var v T
	if err := db.Get(&v, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

// checkBooks waits for the system to settle, then checks every invariant of DESIGN.md
// across Kafka and the four databases, logging what it counted.
func checkBooks(t *testing.T, st *stack.Stack, l *load, before map[string]stock, inj injected) {
	t.Helper()
	quiesce(t, st, 4*time.Minute)
	b := &books{t: t}
	defer b.print()
	if l != nil {
		b.logf("load: %s", l)
	}

	// Every topic, read to its high watermark.
	msgs := map[string][]kafka.Message{}
	for _, topic := range []string{envelope.TopicCartEvents, envelope.TopicInventoryEvents, envelope.TopicDiscountEvents, envelope.TopicOrderEvents} {
		msgs[topic] = readAll(t, st.Brokers, st.Topics[topic])
	}
	ids := func(topic string) map[string]bool {
		out := map[string]bool{}
		for _, m := range msgs[topic] {
			if id := m.Header(envelope.HeaderID); id != "" && !inj.poisonKeys[string(m.Key)] && !inj.skippedKeys[string(m.Key)] {
				out[id] = true
			}
		}
		return out
	}
	b.logf("events: cart %d (%d distinct ids), inventory %d, discount %d, order %d",
		len(msgs[envelope.TopicCartEvents]), len(ids(envelope.TopicCartEvents)), len(msgs[envelope.TopicInventoryEvents]),
		len(msgs[envelope.TopicDiscountEvents]), len(msgs[envelope.TopicOrderEvents]))

	// 1. Every acknowledged command has its event on the topic (same cart, same version).
	type cv struct {
		cart    string
		version int64
	}
	onTopic := map[cv]*cartpb.CartEvent{}
	for _, m := range msgs[envelope.TopicCartEvents] {
		var ev cartpb.CartEvent
		if envelope.Decode(m, &ev) == nil {
			onTopic[cv{ev.GetAggregateId(), ev.GetAggregateVersion()}] = &ev
		}
	}
	if l != nil {
		l.mu.Lock()
		for _, a := range l.acks {
			ev := onTopic[cv{a.cartID, a.version}]
			b.check(ev != nil, "acknowledged %s of cart %s (version %d) has no event on %s", a.op, a.cartID, a.version, envelope.TopicCartEvents)
			if a.op == "checkout" {
				b.check(ev.GetCheckedOut().GetCheckoutId() == a.checkoutID, "acknowledged checkout %s: event at version %d is %v", a.checkoutID, a.version, ev)
			}
		}
		b.logf("acknowledged commands found on the topic by (cart, version): %d", len(l.acks))
		l.mu.Unlock()
	}

	// 2. Every event each service's outbox holds is on its topic.
	for svc, topic := range map[string]string{"cart": envelope.TopicCartEvents, "inventory": envelope.TopicInventoryEvents, "discount": envelope.TopicDiscountEvents, "order": envelope.TopicOrderEvents} {
		outbox := column(t, st.DBs[svc], `SELECT event_id FROM outbox WHERE topic = $1`, st.Topics[topic])
		published := ids(topic)
		for id := range outbox {
			b.check(published[id], "%s outbox event %s is not on %s", svc, id, topic)
		}
		b.logf("%s outbox: %d events, all on %s", svc, len(outbox), topic)
	}

	// 3. Every consumer applied every event of its topics exactly once: its processed_events
	// (primary key (consumer, event_id)) holds each id, and no other.
	for _, svc := range stack.Names {
		want := map[string]bool{}
		for _, topic := range stack.Consumes[svc] {
			for id := range ids(topic) {
				want[id] = true
			}
		}
		got := column(t, st.DBs[svc], `SELECT event_id FROM processed_events WHERE consumer = $1`, st.Groups[svc])
		for id := range want {
			b.check(got[id], "%s (group %s) never processed event %s", svc, st.Groups[svc], id)
		}
		b.check(len(got) == len(want), "%s processed %d event ids, the topics hold %d", svc, len(got), len(want))
		b.logf("%s: processed %d distinct events of %v, each once", svc, len(got), stack.Consumes[svc])
	}

	// 4. Stock never negative, available + reserved + sold constant, reserved = held reservations.
	after := stockOf(t, st.DBs["inventory"])
	var soldDelta int
	for id, s := range after {
		b.check(s.Available >= 0 && s.Reserved >= 0 && s.Sold >= 0, "%s stock negative: %+v", id, s)
		b.check(s.total() == before[id].total(), "%s: available+reserved+sold = %d, was %d (%+v)", id, s.total(), before[id].total(), s)
		held := get[int](t, st.DBs["inventory"], `SELECT COALESCE(sum(quantity), 0) FROM reservations WHERE product_id = $1`, id)
		b.check(held == s.Reserved, "%s: reserved %d but reservations hold %d", id, s.Reserved, held)
		soldDelta += s.Sold - before[id].Sold
	}

	// 5. Sold once per committed checkout: units sold = units of the orders whose stock was committed.
	committed := get[int](t, st.DBs["order"], `SELECT COALESCE(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id
		JOIN checkout_outcomes c ON c.checkout_id = o.checkout_id WHERE c.stock = 'committed'`)
	b.check(soldDelta == committed, "inventory sold %d units, orders with committed stock hold %d", soldDelta, committed)
	b.logf("inventory: %d products, totals constant, %d units sold = committed order lines", len(after), soldDelta)

	// 6. Coupons within their limits, redeemed once per checkout that redeemed them.
	var rules []struct {
		Code  string `db:"coupon_code"`
		Limit int    `db:"usage_limit"`
		Used  int    `db:"used"`
	}
	if err := st.DBs["discount"].Select(&rules, `SELECT coupon_code, usage_limit, used FROM rules WHERE kind = 'COUPON'`); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		b.check(r.Limit == 0 || r.Used <= r.Limit, "coupon %s used %d times, limit %d", r.Code, r.Used, r.Limit)
		redeemed := get[int](t, st.DBs["discount"], `SELECT count(*) FROM checkouts WHERE outcome = 'coupon_redeemed' AND coupon_code = $1`, r.Code)
		b.check(redeemed == r.Used, "coupon %s: used %d, checkouts redeeming it %d", r.Code, r.Used, redeemed)
		if r.Used > 0 {
			b.logf("coupon %s: used %d of %d", r.Code, r.Used, r.Limit)
		}
	}

	// 7. One final order per checkout.
	carts := get[int](t, st.DBs["cart"], `SELECT count(*) FROM carts WHERE status = 'checked_out'`)
	orders := get[int](t, st.DBs["order"], `SELECT count(*) FROM orders`)
	final := get[int](t, st.DBs["order"], `SELECT count(*) FROM orders WHERE status IN ('confirmed', 'rejected')`)
	confirmed := get[int](t, st.DBs["order"], `SELECT count(*) FROM orders WHERE status = 'confirmed'`)
	b.check(orders == carts, "%d carts checked out, %d orders", carts, orders)
	b.check(final == orders, "%d of %d orders final", final, orders)
	if l != nil {
		l.mu.Lock()
		for _, a := range l.acks {
			if a.op == "checkout" {
				n := get[int](t, st.DBs["order"], `SELECT count(*) FROM orders WHERE checkout_id = $1`, a.checkoutID)
				b.check(n == 1, "acknowledged checkout %s has %d orders", a.checkoutID, n)
			}
		}
		l.mu.Unlock()
	}
	b.logf("orders: %d for %d checked-out carts, all final (%d confirmed, %d rejected)", orders, carts, confirmed, orders-confirmed)

	// 8. No reservation outlives its checkout (except the disorder cart's, never checked out).
	left := column(t, st.DBs["inventory"], `SELECT cart_id FROM reservations`)
	delete(left, inj.disorderCart)
	b.check(len(left) == 0, "reservations left for checked-out carts: %v", keys(left))

	// 9. The dead-letter topics hold exactly the deliberate poison.
	for svc, topics := range stack.Consumes {
		for _, topic := range topics {
			dlq := readAll(t, st.Brokers, kafka.DLQTopic(st.Topics[topic], st.Groups[svc]))
			got := map[string]bool{}
			for _, m := range dlq {
				b.check(inj.poisonKeys[string(m.Key)], "%s dead-lettered a message it should have handled: key %q, error %q", svc, m.Key, m.Header(kafka.HeaderDLQError))
				got[string(m.Key)] = true
			}
			if topic == envelope.TopicCartEvents {
				for k := range inj.poisonKeys {
					b.check(got[k], "%s did not dead-letter the poison message %q", svc, k)
				}
			}
			if len(dlq) > 0 {
				b.logf("DLQ of %s on %s: %d messages, all deliberate poison", svc, topic, len(dlq))
			}
		}
	}
	b.logf("consumer lag: 0 for every group on every topic")
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
