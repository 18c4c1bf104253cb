package shardlog.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;

/**
 * Transactions: consume-transform-produce from an input topic (3 partitions, 100 records
 * each) to an output topic, the consumed offsets committed with sendOffsetsToTransaction.
 * The first transaction is aborted and its input re-processed from the committed offsets;
 * a transaction of records nobody will see is aborted; a second producer with the same
 * transactional.id fences the first and commits its own records. A read_committed consumer
 * must see every transformed input record exactly once (in input order per partition) and
 * the fencing producer's records, nothing aborted; read_uncommitted sees the aborted ones
 * too. The group's committed offsets are the input's end.
 */
final class TransactionCheck {
    private TransactionCheck() {}

    static final int PARTITIONS = 3;
    static final int PER_PARTITION = 100;

    static void run(String bootstrap, String topic, Checks c) throws Exception {
        String input = topic + "-in";
        String output = topic + "-out";
        String group = "txn-" + topic;
        String txnId = "txn-id-" + topic;
        try (Admin admin = Clients.admin(bootstrap)) {
            Clients.createTopic(admin, input, PARTITIONS);
            Clients.createTopic(admin, output, PARTITIONS);
        }
        Clients.produceEach(bootstrap, input, PARTITIONS, PER_PARTITION, "in");
        List<TopicPartition> inTps = Clients.partitions(input, PARTITIONS);
        List<TopicPartition> outTps = Clients.partitions(output, PARTITIONS);

        Properties cp = Clients.consumerProps(bootstrap, group);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "40");
        Properties pp = Clients.producerProps(bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);

        Set<String> abortedOnce = new HashSet<>();
        int committedTxns = 0;
        KafkaProducer<String, String> producer = new KafkaProducer<>(pp);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
            boolean abortedFirst = false;
            int processed = 0;
            while (processed < PARTITIONS * PER_PARTITION) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("consume-transform-produce: only "
                            + processed + " input records committed within 90 s");
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) continue;
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, r.partition(), r.key(),
                            r.value().toUpperCase()));
                    next.put(new TopicPartition(r.topic(), r.partition()),
                            new OffsetAndMetadata(r.offset() + 1));
                }
                producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
                if (!abortedFirst) {
                    // flush first: abortTransaction drops batches the producer has not sent,
                    // and this abort is meant to reach the log (markers and all)
                    producer.flush();
                    producer.abortTransaction();
                    abortedFirst = true;
                    for (ConsumerRecord<String, String> r : records) {
                        abortedOnce.add(r.value().toUpperCase());
                    }
                    // rewind to the committed offsets (none yet: the beginning)
                    Map<TopicPartition, OffsetAndMetadata> committed =
                            consumer.committed(consumer.assignment(), Duration.ofSeconds(30));
                    for (TopicPartition tp : consumer.assignment()) {
                        OffsetAndMetadata om = committed.get(tp);
                        consumer.seek(tp, om == null ? 0 : om.offset());
                    }
                    continue;
                }
                producer.commitTransaction();
                committedTxns++;
                processed += records.count();
            }
            c.ok("consume-transform-produce: " + processed + " records in " + committedTxns
                    + " committed transactions after one aborted (" + abortedOnce.size()
                    + " records)", !abortedOnce.isEmpty(), "nothing was aborted");
            Map<TopicPartition, OffsetAndMetadata> committed =
                    consumer.committed(new HashSet<>(inTps), Duration.ofSeconds(30));
            Map<TopicPartition, Long> have = new HashMap<>();
            Map<TopicPartition, Long> want = new HashMap<>();
            for (TopicPartition tp : inTps) {
                want.put(tp, (long) PER_PARTITION);
                have.put(tp, committed.get(tp) == null ? null : committed.get(tp).offset());
            }
            c.equal("offsets committed through sendOffsetsToTransaction", want, have);
        }

        producer.beginTransaction();
        for (int i = 0; i < 30; i++) {
            producer.send(new ProducerRecord<>(output, i % PARTITIONS, "never-" + i, "NEVER-" + i));
        }
        producer.flush();
        try (Admin admin = Clients.admin(bootstrap)) {
            TransactionDescription td = admin.describeTransactions(List.of(txnId)).description(txnId)
                    .get(60, TimeUnit.SECONDS);
            c.ok("describeTransactions: ongoing, on the output partitions",
                    td.state() == TransactionState.ONGOING
                            && td.topicPartitions().equals(new HashSet<>(outTps)),
                    td.toString());
            Set<String> ongoing = new HashSet<>();
            admin.listTransactions(new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.ONGOING))).all()
                    .get(60, TimeUnit.SECONDS).forEach(l -> ongoing.add(l.transactionalId()));
            c.ok("listTransactions (ongoing) lists it", ongoing.contains(txnId),
                    "ongoing " + ongoing);
        }
        producer.abortTransaction();
        c.ok("an aborted transaction of 30 records", true, "");

        // A second producer with the same transactional.id fences the first.
        KafkaProducer<String, String> fencer = new KafkaProducer<>(pp);
        fencer.initTransactions();
        String fenced;
        try {
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(output, 0, "zombie", "ZOMBIE")).get(60,
                    TimeUnit.SECONDS);
            producer.commitTransaction();
            fenced = "the fenced producer committed";
        } catch (ProducerFencedException | InvalidProducerEpochException e) {
            fenced = null;
        } catch (ExecutionException | KafkaException e) {
            Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
            fenced = cause instanceof ProducerFencedException
                    || cause instanceof InvalidProducerEpochException
                    || cause.getCause() instanceof ProducerFencedException ? null : e.toString();
        }
        c.ok("a second producer with the same transactional.id fences the first",
                fenced == null, String.valueOf(fenced));
        producer.close(Duration.ZERO);
        fencer.beginTransaction();
        for (int i = 0; i < 10; i++) {
            fencer.send(new ProducerRecord<>(output, i % PARTITIONS, "fencer-" + i, "FENCER-" + i));
        }
        fencer.commitTransaction();
        // Admin.fenceProducers (KIP-618) bumps the epoch the same way: the fencer is fenced.
        try (Admin admin = Clients.admin(bootstrap)) {
            admin.fenceProducers(List.of(txnId)).all().get(60, TimeUnit.SECONDS);
        }
        String fencedByAdmin;
        try {
            fencer.beginTransaction();
            fencer.send(new ProducerRecord<>(output, 0, "zombie", "ZOMBIE")).get(60,
                    TimeUnit.SECONDS);
            fencer.commitTransaction();
            fencedByAdmin = "the producer committed after Admin.fenceProducers";
        } catch (ProducerFencedException | InvalidProducerEpochException e) {
            fencedByAdmin = null;
        } catch (ExecutionException | KafkaException e) {
            Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
            fencedByAdmin = cause instanceof ProducerFencedException
                    || cause instanceof InvalidProducerEpochException
                    || cause.getCause() instanceof ProducerFencedException ? null : e.toString();
        }
        c.ok("Admin.fenceProducers fences the transactional producer", fencedByAdmin == null,
                String.valueOf(fencedByAdmin));
        fencer.close(Duration.ZERO);
        c.ok("the fencing producer committed 10 records", true, "");

        Map<TopicPartition, List<ConsumerRecord<String, String>>> committedOut =
                Clients.readAll(bootstrap, outTps, "read_committed");
        Map<TopicPartition, List<ConsumerRecord<String, String>>> inRecords =
                Clients.readAll(bootstrap, inTps, "read_uncommitted");
        for (int p = 0; p < PARTITIONS; p++) {
            List<String> want = new ArrayList<>();
            for (ConsumerRecord<String, String> r : inRecords.get(inTps.get(p))) {
                want.add(r.value().toUpperCase());
            }
            for (int i = p; i < 10; i += PARTITIONS) want.add("FENCER-" + i);
            List<String> have = new ArrayList<>();
            for (ConsumerRecord<String, String> r : committedOut.get(outTps.get(p))) {
                have.add(r.value());
            }
            c.ok("read_committed " + outTps.get(p) + ": every transformed record once, in order,"
                    + " then the fencer's; nothing aborted", want.equals(have),
                    "want " + want.size() + " records, read " + have.size() + ": " + diff(want, have));
        }

        Map<TopicPartition, List<ConsumerRecord<String, String>>> allOut =
                Clients.readAll(bootstrap, outTps, "read_uncommitted");
        Map<String, Integer> seen = new HashMap<>();
        allOut.values().forEach(rs -> rs.forEach(r -> seen.merge(r.value(), 1, Integer::sum)));
        int never = 0;
        for (int i = 0; i < 30; i++) never += seen.getOrDefault("NEVER-" + i, 0);
        c.equal("read_uncommitted sees the aborted transaction's records", 30, never);
        List<String> notTwice = new ArrayList<>();
        for (String v : abortedOnce) {
            if (seen.getOrDefault(v, 0) != 2) notTwice.add(v + " x" + seen.getOrDefault(v, 0));
        }
        c.equal("read_uncommitted sees the aborted attempt and its committed retry", List.of(),
                notTwice);
    }

    static String diff(List<String> want, List<String> have) {
        for (int i = 0; i < Math.min(want.size(), have.size()); i++) {
            if (!want.get(i).equals(have.get(i))) {
                return "first difference at #" + i + ": want " + want.get(i) + ", read "
                        + have.get(i);
            }
        }
        return want.size() > have.size() ? "missing from " + have.size() + ": "
                + want.get(have.size()) : "";
    }
}
