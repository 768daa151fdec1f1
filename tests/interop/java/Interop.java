import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client (org.apache.kafka:kafka-clients) driven from the interop tests, for what Kafka's
 * console tools cannot do. Records travel as JSON lines: keys, values and header values as base64
 * (null for a null one), headers as [name, value] pairs.
 *
 * <pre>
 * produce BOOTSTRAP                                 records on stdin, one line each: {"topic",
 *     "key", "value", "headers", "timestamp", "partition", "compression", "idempotence"} (all
 *     but the topic optional; one producer per compression and idempotence, acks=all); prints
 *     {"topic", "partition", "offset", "timestamp"} per record once all are acknowledged
 * read BOOTSTRAP TOPIC...                           every record of the topics, from the start
 *     of each partition to its end offset at start-up, one line each, then exits
 * member BOOTSTRAP GROUP TOPIC ASSIGNOR             a consumer-group member: prints
 *     {"event": "assigned", "partitions": [...]} on each assignment and one line per record,
 *     commits after each poll, and leaves the group when stdin closes or on SIGTERM
 * </pre>
 *
 * Settings given as further arguments NAME=VALUE go to the client's configuration.
 */
public final class Interop {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final PrintStream OUT =
            new PrintStream(System.out, true, StandardCharsets.UTF_8);

    private Interop() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Interop produce|read|member BOOTSTRAP ...");
            System.exit(2);
        }
        switch (args[0]) {
            case "produce" -> produce(args);
            case "read" -> read(args);
            case "member" -> member(args);
            default -> {
                System.err.println("unknown command " + args[0] + "; valid: produce, read, member");
                System.exit(2);
            }
        }
    }

    private static void produce(String[] args) throws Exception {
        Map<String, KafkaProducer<byte[], byte[]>> producers = new HashMap<>();
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try {
            BufferedReader in =
                    new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode r = JSON.readTree(line);
                String compression = r.path("compression").asText("none");
                String idempotence = r.path("idempotence").asText("true");
                KafkaProducer<byte[], byte[]> producer = producers.computeIfAbsent(
                        compression + "/" + idempotence,
                        k -> producer(args, compression, idempotence));
                List<Header> headers = new ArrayList<>();
                for (JsonNode h : r.path("headers")) {
                    headers.add(new RecordHeader(h.get(0).asText(), bytes(h.get(1))));
                }
                Integer partition = r.hasNonNull("partition") ? r.get("partition").asInt() : null;
                Long timestamp = r.hasNonNull("timestamp") ? r.get("timestamp").asLong() : null;
                sent.add(producer.send(new ProducerRecord<>(r.get("topic").asText(), partition,
                        timestamp, bytes(r.get("key")), bytes(r.get("value")), headers)));
            }
            for (KafkaProducer<byte[], byte[]> producer : producers.values()) {
                producer.flush();
            }
            for (Future<RecordMetadata> f : sent) {
                RecordMetadata m = f.get();
                ObjectNode o = JSON.createObjectNode();
                o.put("topic", m.topic());
                o.put("partition", m.partition());
                o.put("offset", m.offset());
                o.put("timestamp", m.timestamp());
                OUT.println(o);
            }
        } finally {
            for (KafkaProducer<byte[], byte[]> producer : producers.values()) {
                producer.close();
            }
        }
    }

    private static KafkaProducer<byte[], byte[]> producer(
            String[] args, String compression, String idempotence) {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[1]);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("compression.type", compression);
        props.put("enable.idempotence", idempotence);
        props.put("acks", "all");
        props.put("linger.ms", "5");
        props.put("max.block.ms", "20000");
        props.put("delivery.timeout.ms", "30000");
        props.put("request.timeout.ms", "10000");
        extra(props, args, 2);
        return new KafkaProducer<>(props);
    }

    private static void read(String[] args) {
        Properties props = consumerProps(args[1]);
        List<String> topics = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            if (args[i].contains("=")) {
                String[] kv = args[i].split("=", 2);
                props.put(kv[0], kv[1]);
            } else {
                topics.add(args[i]);
            }
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> all = new ArrayList<>();
            for (String topic : topics) {
                for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                    all.add(new TopicPartition(topic, p.partition()));
                }
            }
            consumer.assign(all);
            consumer.seekToBeginning(all);
            Map<TopicPartition, Long> end = new HashMap<>(consumer.endOffsets(all));
            long deadline = System.currentTimeMillis() + 60_000;
            while (!end.isEmpty()) {
                end.entrySet().removeIf(e -> consumer.position(e.getKey()) >= e.getValue());
                if (end.isEmpty()) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    System.err.println("read: records missing before the end offsets " + end);
                    System.exit(1);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    OUT.println(record(r));
                }
            }
        }
    }

    private static void member(String[] args) throws Exception {
        Properties props = consumerProps(args[1]);
        props.put("group.id", args[2]);
        props.put("enable.auto.commit", "false");
        props.put("session.timeout.ms", "6000");
        props.put("heartbeat.interval.ms", "500");
        props.put("partition.assignment.strategy", assignor(args[4]));
        props.put("metadata.max.age.ms", "1000");
        extra(props, args, 5);
        AtomicBoolean stop = new AtomicBoolean();
        CountDownLatch closed = new CountDownLatch(1);
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        Runnable leave = () -> {
            stop.set(true);
            consumer.wakeup();
        };
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // anything written is ignored; the end of stdin is what counts
                }
            } catch (Exception e) {
                // stdin gone: stop as well
            }
            leave.run();
        });
        stdin.setDaemon(true);
        stdin.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            leave.run();
            try {
                closed.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        try {
            consumer.subscribe(List.of(args[3]), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    if (!partitions.isEmpty()) {
                        commit(consumer);
                    }
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    ObjectNode o = JSON.createObjectNode();
                    o.put("event", "assigned");
                    ArrayNode held = o.putArray("partitions");
                    consumer.assignment().stream().map(TopicPartition::partition).sorted()
                            .forEach(held::add);
                    OUT.println(o);
                }
            });
            while (!stop.get()) {
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = consumer.poll(Duration.ofMillis(100));
                } catch (WakeupException e) {
                    break;
                }
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    OUT.println(record(r));
                }
                if (!records.isEmpty()) {
                    commit(consumer);
                }
            }
        } finally {
            consumer.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(
                    Duration.ofSeconds(10)));
            ObjectNode o = JSON.createObjectNode();
            o.put("event", "closed");
            OUT.println(o);
            closed.countDown();
        }
    }

    /** Commits what was polled, even when a stop request woke the consumer meanwhile. */
    private static void commit(KafkaConsumer<byte[], byte[]> consumer) {
        try {
            consumer.commitSync();
        } catch (WakeupException e) {
            consumer.commitSync();
        }
    }

    private static Properties consumerProps(String bootstrap) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("auto.offset.reset", "earliest");
        return props;
    }

    private static String assignor(String name) {
        return switch (name) {
            case "range" -> "org.apache.kafka.clients.consumer.RangeAssignor";
            case "roundrobin" -> "org.apache.kafka.clients.consumer.RoundRobinAssignor";
            case "cooperative-sticky" ->
                    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
            default -> throw new IllegalArgumentException("unknown assignor " + name
                    + "; valid: range, roundrobin, cooperative-sticky");
        };
    }

    private static void extra(Properties props, String[] args, int from) {
        for (String setting : Arrays.copyOfRange(args, from, args.length)) {
            String[] kv = setting.split("=", 2);
            props.put(kv[0], kv[1]);
        }
    }

    private static ObjectNode record(ConsumerRecord<byte[], byte[]> r) {
        ObjectNode o = JSON.createObjectNode();
        o.put("topic", r.topic());
        o.put("partition", r.partition());
        o.put("offset", r.offset());
        o.put("timestamp", r.timestamp());
        o.put("timestamp_type", r.timestampType().name);
        o.put("key", text(r.key()));
        o.put("value", text(r.value()));
        ArrayNode headers = o.putArray("headers");
        for (Header h : r.headers()) {
            headers.addArray().add(h.key()).add(text(h.value()));
        }
        return o;
    }

    private static byte[] bytes(JsonNode node) {
        return node == null || node.isNull() ? null : Base64.getDecoder().decode(node.asText());
    }

    private static String text(byte[] data) {
        return data == null ? null : Base64.getEncoder().encodeToString(data);
    }
}
