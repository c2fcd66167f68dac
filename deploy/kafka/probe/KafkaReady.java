import java.util.Collection;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.common.Node;

/**
 * Readiness probe used by deploy/kafka/kafka.sh.
 *
 * Usage: KafkaReady BOOTSTRAP TIMEOUT_SECONDS [BROKER_PID]
 *
 * Repeats a real DescribeCluster + Metadata (list topics) round trip until it
 * succeeds, the timeout passes, or the broker process (if a pid is given) dies.
 * Exit codes: 0 ready, 1 timed out, 2 broker process gone.
 */
public final class KafkaReady {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: KafkaReady BOOTSTRAP TIMEOUT_SECONDS [BROKER_PID]");
            System.exit(64);
        }
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        long pid = args.length > 2 ? Long.parseLong(args[2]) : -1L;

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "kuzet-kafka-ready");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "100");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "100");
        props.put(AdminClientConfig.RETRY_BACKOFF_MAX_MS_CONFIG, "500");

        Exception last = null;
        Admin admin = Admin.create(props);
        while (System.nanoTime() < deadline) {
            if (pid > 0) {
                Optional<ProcessHandle> ph = ProcessHandle.of(pid);
                if (ph.isEmpty() || !ph.get().isAlive()) {
                    System.err.println("broker process " + pid + " is gone");
                    System.exit(2);
                }
            }
            // Bound each attempt by the time left, so the overall timeout holds.
            long leftMs = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            int attemptMs = (int) Math.max(500, Math.min(3000, leftMs));
            try {
                DescribeClusterResult cluster = admin.describeCluster(new DescribeClusterOptions().timeoutMs(attemptMs));
                String clusterId = cluster.clusterId().get(attemptMs + 500L, TimeUnit.MILLISECONDS);
                Collection<Node> nodes = cluster.nodes().get(attemptMs + 500L, TimeUnit.MILLISECONDS);
                if (!nodes.isEmpty()) {
                    Set<String> topics = admin.listTopics(new ListTopicsOptions().listInternal(true).timeoutMs(attemptMs))
                            .names().get(attemptMs + 500L, TimeUnit.MILLISECONDS);
                    System.out.println("ready: cluster.id=" + clusterId + " brokers=" + nodes.size()
                            + " topics=" + topics.size());
                    System.out.flush();
                    // Skip admin.close(): it can linger; the JVM is done anyway.
                    Runtime.getRuntime().halt(0);
                }
            } catch (Exception e) {
                last = e;
            }
            Thread.sleep(300);
        }
        System.err.println("timed out waiting for " + bootstrap + (last == null ? "" : ": " + last));
        Runtime.getRuntime().halt(1);
    }
}
