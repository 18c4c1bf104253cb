// Command sarama-roundtrip drives a broker with Sarama (github.com/IBM/sarama),
// the other widely used Go Kafka client besides franz-go: ClusterAdmin creates
// and describes a topic, a consumer group of two (static) members joins it,
// an idempotent sync producer (acks=all, compressed) writes keyed records
// with headers, the two members read every record exactly once and commit,
// the committed offsets are checked against what was produced (static members are then removed by
// the admin), a transactional producer commits and aborts (read_committed
// skips the aborted records), and the topics and group are deleted.
//
// Why: shardlog must be a drop-in for Apache Kafka for Go services too, and
// Sarama picks its own request versions (from Config.Version) and its own
// group protocol code path, unlike the librdkafka-based clients.
//
// Usage: sarama-roundtrip -bootstrap HOST:PORT -topic NAME
// Prints progress lines and exits 0 on success; on failure the last line is
// "FAIL: reason" and the exit status is 1. Everything is bounded by -timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

var (
	bootstrap  = flag.String("bootstrap", "127.0.0.1:9092", "broker host:port")
	topic      = flag.String("topic", "sarama-roundtrip", "topic to create (must not exist)")
	records    = flag.Int("records", 2000, "records to produce")
	partitions = flag.Int("partitions", 4, "partitions of the topic")
	codec      = flag.String("codec", "zstd", "producer compression: none, gzip, snappy, lz4, zstd")
	kversion   = flag.String("kafka-version", "3.9.0", "Kafka version Sarama assumes (chooses request versions)")
	timeout    = flag.Duration("timeout", 90*time.Second, "bound on the whole run")
	idempotent = flag.Bool("idempotent", true, "idempotent producer (InitProducerId, sequence numbers)")
	static     = flag.Bool("static", true, "static group membership (group.instance.id, KIP-345)")
)

func fail(format string, args ...any) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func config(clientID string) *sarama.Config {
	v, err := sarama.ParseKafkaVersion(*kversion)
	if err != nil {
		fail("kafka-version: %v", err)
	}
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = v
	c.Metadata.AllowAutoTopicCreation = false
	return c
}

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if os.Getenv("SARAMA_LOG") == "1" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	go func() {
		<-ctx.Done()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			fail("timed out after %s", *timeout)
		}
	}()
	brokers := []string{*bootstrap}
	group := *topic + "-group"

	// ---- ClusterAdmin: create and describe.
	admin, err := sarama.NewClusterAdmin(brokers, config("sarama-admin"))
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(*topic, &sarama.TopicDetail{
		NumPartitions: int32(*partitions), ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": ptr("3600000")},
	}, false); err != nil {
		fail("CreateTopic %s: %v", *topic, err)
	}
	err = admin.CreateTopic(*topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		fail("CreateTopic of an existing topic: want TOPIC_ALREADY_EXISTS, got %v", err)
	}
	md, err := admin.DescribeTopics([]string{*topic})
	if err != nil || len(md) != 1 {
		fail("DescribeTopics: %v (%d topics)", err, len(md))
	}
	if !errors.Is(md[0].Err, sarama.ErrNoError) || len(md[0].Partitions) != *partitions {
		fail("DescribeTopics %s: err %v, %d partitions, want %d", *topic, md[0].Err, len(md[0].Partitions), *partitions)
	}
	for _, p := range md[0].Partitions {
		if !errors.Is(p.Err, sarama.ErrNoError) || p.Leader < 0 || len(p.Isr) == 0 {
			fail("DescribeTopics %s/%d: err %v leader %d isr %v", *topic, p.ID, p.Err, p.Leader, p.Isr)
		}
	}
	cfg, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: *topic, ConfigNames: []string{"retention.ms"}})
	if err != nil || len(cfg) != 1 || cfg[0].Value != "3600000" {
		fail("DescribeConfig %s retention.ms: %v %+v, want 3600000", *topic, err, cfg)
	}
	log.Printf("admin: created %s with %d partitions, described it", *topic, *partitions)

	// ---- Consumer group: two members, joined before anything is produced,
	// so that no rebalance happens while records flow.
	var (
		mu       sync.Mutex
		seen     = map[string]int{}            // key -> times consumed
		claimed  = map[string]map[int32]bool{} // member -> partitions in its latest session
		perMem   = map[string]int{}
		total    int
		allRead  = make(chan struct{})
		readOnce sync.Once
	)
	members := []string{"member-a", "member-b"}
	groups := make([]sarama.ConsumerGroup, len(members))
	var wg sync.WaitGroup
	gctx, stopGroups := context.WithCancel(ctx)
	for i, name := range members {
		c := config("sarama-" + name)
		c.Consumer.Offsets.Initial = sarama.OffsetOldest
		c.Consumer.Offsets.AutoCommit.Enable = true
		c.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
		c.Consumer.Return.Errors = true
		if *static {
			c.Consumer.Group.InstanceId = *topic + "-" + name
		}
		g, err := sarama.NewConsumerGroup(brokers, group, c)
		if err != nil {
			fail("NewConsumerGroup %s: %v", name, err)
		}
		groups[i] = g
		h := &handler{name: name, onSetup: func(name string, parts []int32) {
			mu.Lock()
			defer mu.Unlock()
			claimed[name] = map[int32]bool{}
			for _, p := range parts {
				claimed[name][p] = true
			}
		}, onRecord: func(name string, m *sarama.ConsumerMessage) error {
			mu.Lock()
			defer mu.Unlock()
			k := string(m.Key)
			seen[k]++
			if seen[k] > 1 {
				return fmt.Errorf("%s read %s (partition %d offset %d) a second time", name, k, m.Partition, m.Offset)
			}
			if want := "value-" + strings.TrimPrefix(k, "key-"); string(m.Value) != want {
				return fmt.Errorf("%s: record %s has value %q, want %q", name, k, m.Value, want)
			}
			if len(m.Headers) != 1 || string(m.Headers[0].Key) != "source" || string(m.Headers[0].Value) != "sarama" {
				return fmt.Errorf("%s: record %s has headers %v", name, k, m.Headers)
			}
			perMem[name]++
			total++
			if total == *records {
				readOnce.Do(func() { close(allRead) })
			}
			return nil
		}}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for gctx.Err() == nil {
				if err := g.Consume(gctx, []string{*topic}, h); err != nil && gctx.Err() == nil {
					fail("%s: Consume: %v", h.name, err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for err := range g.Errors() {
				if gctx.Err() == nil {
					fail("%s: consumer group error: %v", h.name, err)
				}
			}
		}()
	}
	// Wait until both members hold disjoint claims covering every partition.
	for {
		mu.Lock()
		union := map[int32]int{}
		for _, ps := range claimed {
			for p := range ps {
				union[p]++
			}
		}
		ready := len(claimed) == 2 && len(union) == *partitions
		for _, ps := range claimed {
			ready = ready && len(ps) > 0
		}
		for _, n := range union {
			ready = ready && n == 1
		}
		mu.Unlock()
		if ready {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	mu.Lock()
	log.Printf("group %s: both members joined, claims %v", group, describeClaims(claimed))
	mu.Unlock()

	// ---- Sync producer: acks=all, compressed, keyed records with a header.
	pc := config("sarama-producer")
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Return.Successes = true
	pc.Producer.Partitioner = sarama.NewHashPartitioner
	if *idempotent {
		pc.Producer.Idempotent = true
		pc.Net.MaxOpenRequests = 1
	}
	if err := pc.Producer.Compression.UnmarshalText([]byte(*codec)); err != nil {
		fail("codec %q: %v", *codec, err)
	}
	producer, err := sarama.NewSyncProducer(brokers, pc)
	if err != nil {
		fail("NewSyncProducer: %v", err)
	}
	msgs := make([]*sarama.ProducerMessage, *records)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{
			Topic:   *topic,
			Key:     sarama.StringEncoder(fmt.Sprintf("key-%05d", i)),
			Value:   sarama.StringEncoder(fmt.Sprintf("value-%05d", i)),
			Headers: []sarama.RecordHeader{{Key: []byte("source"), Value: []byte("sarama")}},
		}
	}
	// Half one by one (SendMessage), half in batches (SendMessages).
	next := map[int32]int64{} // partition -> next offset expected
	half := *records / 2
	for _, m := range msgs[:half] {
		if _, _, err := producer.SendMessage(m); err != nil {
			fail("SendMessage: %v", err)
		}
	}
	for i := half; i < len(msgs); i += 250 {
		if err := producer.SendMessages(msgs[i:min(i+250, len(msgs))]); err != nil {
			fail("SendMessages: %v", err)
		}
	}
	for _, m := range msgs {
		if m.Offset != next[m.Partition] {
			fail("record %v acknowledged at %d/%d, want offset %d (offsets must be dense per partition)", m.Key, m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition]++
	}
	if err := producer.Close(); err != nil {
		fail("producer Close: %v", err)
	}
	log.Printf("producer: %d records acknowledged (acks=all, %s), per partition %v", *records, *codec, next)

	select {
	case <-allRead:
	case <-ctx.Done():
		return
	}
	mu.Lock()
	log.Printf("group %s: all %d records read once each, per member %v", group, total, perMem)
	for _, name := range members {
		if perMem[name] == 0 {
			fail("member %s read nothing (claims %v)", name, describeClaims(claimed))
		}
	}
	mu.Unlock()

	// DescribeGroups while both members are in it.
	desc, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(desc) != 1 {
		fail("DescribeConsumerGroups: %v", err)
	}
	if desc[0].State != "Stable" || len(desc[0].Members) != 2 || desc[0].Protocol != "range" {
		fail("DescribeConsumerGroups %s: state %q, %d members, protocol %q; want Stable, 2, range", group, desc[0].State, len(desc[0].Members), desc[0].Protocol)
	}

	// Committed offsets must reach the end of every partition (auto-commit,
	// then the final commit that Close makes).
	want := map[int32]int64{}
	for p := int32(0); p < int32(*partitions); p++ {
		want[p] = next[p]
	}
	committed := func() (map[int32]int64, error) {
		ps := make([]int32, 0, *partitions)
		for p := int32(0); p < int32(*partitions); p++ {
			ps = append(ps, p)
		}
		r, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{*topic: ps})
		if err != nil {
			return nil, err
		}
		got := map[int32]int64{}
		for _, p := range ps {
			b := r.GetBlock(*topic, p)
			if b == nil {
				return nil, fmt.Errorf("no OffsetFetch block for partition %d", p)
			}
			if !errors.Is(b.Err, sarama.ErrNoError) {
				return nil, fmt.Errorf("partition %d: %v", p, b.Err)
			}
			got[p] = b.Offset
		}
		return got, nil
	}
	stopGroups()
	for i, g := range groups {
		if err := g.Close(); err != nil {
			fail("%s: Close: %v", members[i], err)
		}
	}
	wg.Wait()
	got, err := committed()
	if err != nil {
		fail("ListConsumerGroupOffsets: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		fail("committed offsets %v, want the log end offsets %v", got, want)
	}
	log.Printf("group %s: committed offsets %v match the log end offsets", group, got)

	// Static members (KIP-345) do not send LeaveGroup on Close, so -- as in
	// Kafka -- they stay in the group until their session times out or an
	// admin removes them by group.instance.id (LeaveGroup v3+ batch).
	if *static {
		desc, err := admin.DescribeConsumerGroups([]string{group})
		if err != nil || len(desc) != 1 {
			fail("DescribeConsumerGroups after Close: %v", err)
		}
		var ids []string
		for _, m := range desc[0].Members {
			if m.GroupInstanceId != nil {
				ids = append(ids, *m.GroupInstanceId)
			}
		}
		sort.Strings(ids)
		if wantIDs := []string{*topic + "-member-a", *topic + "-member-b"}; fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
			fail("static members after Close: %v, want %v (state %q)", ids, wantIDs, desc[0].State)
		}
		resp, err := admin.RemoveMemberFromConsumerGroup(group, ids)
		if err != nil {
			fail("RemoveMemberFromConsumerGroup %v: %v", ids, err)
		}
		if len(resp.Members) != len(ids) {
			fail("RemoveMemberFromConsumerGroup: %d member results, want %d", len(resp.Members), len(ids))
		}
		for _, m := range resp.Members {
			if !errors.Is(m.Err, sarama.ErrNoError) {
				fail("RemoveMemberFromConsumerGroup %v: %v", m.GroupInstanceId, m.Err)
			}
		}
		desc, err = admin.DescribeConsumerGroups([]string{group})
		if err != nil || len(desc) != 1 || desc[0].State != "Empty" || len(desc[0].Members) != 0 {
			fail("DescribeConsumerGroups after removing the static members: %v, %+v; want Empty", err, desc)
		}
		log.Printf("group %s: static members %v stayed after Close, removed by the admin", group, ids)
	}

	// A third member of the same group resumes from the commits: it must
	// see the group's end of log, so no record is delivered twice.
	offs, err := sarama.NewClient(brokers, config("sarama-check"))
	if err != nil {
		fail("NewClient: %v", err)
	}
	for p, n := range want {
		hw, err := offs.GetOffset(*topic, p, sarama.OffsetNewest)
		if err != nil || hw != n {
			fail("ListOffsets latest %s/%d: %d (%v), want %d", *topic, p, hw, err, n)
		}
		lw, err := offs.GetOffset(*topic, p, sarama.OffsetOldest)
		if err != nil || lw != 0 {
			fail("ListOffsets earliest %s/%d: %d (%v), want 0", *topic, p, lw, err)
		}
	}
	offs.Close()

	// ---- Transactions: a transactional sync producer commits, aborts and
	// commits again on a 1-partition topic; read_committed must skip the
	// aborted records, read_uncommitted must see them all.
	txnTopic := *topic + "-txn"
	if err := admin.CreateTopic(txnTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		fail("CreateTopic %s: %v", txnTopic, err)
	}
	tc := config("sarama-txn")
	tc.Producer.Idempotent = true
	tc.Producer.RequiredAcks = sarama.WaitForAll
	tc.Producer.Return.Successes = true
	tc.Producer.Transaction.ID = txnTopic + "-producer"
	tc.Net.MaxOpenRequests = 1
	tp, err := sarama.NewSyncProducer(brokers, tc)
	if err != nil {
		fail("NewSyncProducer (transactional): %v", err)
	}
	var committedVals, allVals []string
	for _, txn := range []struct {
		name   string
		n      int
		commit bool
	}{{"first", 10, true}, {"aborted", 10, false}, {"second", 5, true}} {
		if err := tp.BeginTxn(); err != nil {
			fail("BeginTxn: %v", err)
		}
		for i := 0; i < txn.n; i++ {
			v := fmt.Sprintf("%s-%d", txn.name, i)
			if _, _, err := tp.SendMessage(&sarama.ProducerMessage{Topic: txnTopic, Value: sarama.StringEncoder(v)}); err != nil {
				fail("SendMessage in transaction %s: %v", txn.name, err)
			}
			allVals = append(allVals, v)
			if txn.commit {
				committedVals = append(committedVals, v)
			}
		}
		if txn.commit {
			err = tp.CommitTxn()
		} else {
			err = tp.AbortTxn()
		}
		if err != nil {
			fail("end transaction %s (commit %v): %v", txn.name, txn.commit, err)
		}
	}
	if err := tp.Close(); err != nil {
		fail("transactional producer Close: %v", err)
	}
	last := committedVals[len(committedVals)-1]
	for _, iso := range []sarama.IsolationLevel{sarama.ReadCommitted, sarama.ReadUncommitted} {
		want := allVals
		if iso == sarama.ReadCommitted {
			want = committedVals
		}
		cc := config("sarama-txn-reader")
		cc.Consumer.IsolationLevel = iso
		cons, err := sarama.NewConsumer(brokers, cc)
		if err != nil {
			fail("NewConsumer: %v", err)
		}
		pcons, err := cons.ConsumePartition(txnTopic, 0, sarama.OffsetOldest)
		if err != nil {
			fail("ConsumePartition %s/0: %v", txnTopic, err)
		}
		var got []string
		for len(got) == 0 || got[len(got)-1] != last {
			select {
			case m := <-pcons.Messages():
				got = append(got, string(m.Value))
			case err := <-pcons.Errors():
				fail("consume %s (isolation %d): %v", txnTopic, iso, err)
			case <-ctx.Done():
				return
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			fail("isolation %d read %v, want %v", iso, got, want)
		}
		pcons.Close()
		cons.Close()
	}
	log.Printf("transactions: read_committed saw %d records (aborted ones skipped), read_uncommitted %d", len(committedVals), len(allVals))

	// ---- ClusterAdmin: delete the group and the topics.
	if err := admin.DeleteTopic(txnTopic); err != nil {
		fail("DeleteTopic %s: %v", txnTopic, err)
	}
	if err := admin.DeleteConsumerGroup(group); err != nil {
		fail("DeleteConsumerGroup %s: %v", group, err)
	}
	if err := admin.DeleteTopic(*topic); err != nil {
		fail("DeleteTopic %s: %v", *topic, err)
	}
	for {
		topics, err := admin.ListTopics()
		if err != nil {
			fail("ListTopics: %v", err)
		}
		if _, still := topics[*topic]; !still {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := admin.DeleteTopic(*topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		fail("DeleteTopic of a deleted topic: want UNKNOWN_TOPIC_OR_PARTITION, got %v", err)
	}
	log.Printf("admin: deleted group %s and topic %s", group, *topic)
	fmt.Println("OK sarama round trip")
}

type handler struct {
	name     string
	onSetup  func(string, []int32)
	onRecord func(string, *sarama.ConsumerMessage) error
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.onSetup(h.name, s.Claims()[*topic])
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if err := h.onRecord(h.name, m); err != nil {
			fail("%v", err)
		}
		s.MarkMessage(m, "")
	}
	return nil
}

func describeClaims(c map[string]map[int32]bool) string {
	var out []string
	for name, ps := range c {
		var l []int
		for p := range ps {
			l = append(l, int(p))
		}
		sort.Ints(l)
		out = append(out, fmt.Sprintf("%s=%v", name, l))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func ptr(s string) *string { return &s }
