package org.ringscope.neo4jlocal;

import java.io.IOException;
import java.io.InputStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.connectors.ConnectorPortRegister;
import org.neo4j.configuration.connectors.ConnectorType;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.internal.helpers.HostnamePort;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

/**
 * Runs a Neo4j 5 Community server in this JVM with only the Bolt connector, for tests and
 * local use.
 *
 * <p>Arguments (each also read from an environment variable):
 *
 * <ul>
 *   <li>{@code --dir DIR} ({@code NEO4J_LOCAL_DIR}, default {@code var/neo4j/local}): the
 *       server's home; data, transaction logs and {@code logs/debug.log} go below it.
 *   <li>{@code --port N} ({@code NEO4J_LOCAL_PORT}, default 0): Bolt port on 127.0.0.1; 0 picks a
 *       free one.
 *   <li>{@code --pagecache SIZE} ({@code NEO4J_LOCAL_PAGECACHE}, default {@code 512m}).
 *   <li>{@code --conf name=value} (repeatable): any other Neo4j setting, as in neo4j.conf.
 *   <li>{@code --watch-stdin}: stop when standard input closes, so that the server never
 *       outlives the process that started it.
 * </ul>
 *
 * <p>When Bolt listens it prints one line {@code NEO4J_READY bolt://127.0.0.1:PORT}. SIGTERM,
 * SIGINT or the end of standard input (with {@code --watch-stdin}) shut the databases down
 * cleanly.
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws Exception {
        String dir = env("NEO4J_LOCAL_DIR", "var/neo4j/local");
        String port = env("NEO4J_LOCAL_PORT", "0");
        String pagecache = env("NEO4J_LOCAL_PAGECACHE", "512m");
        boolean watchStdin = false;
        Map<String, String> conf = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--dir" -> dir = value(args, ++i);
                case "--port" -> port = value(args, ++i);
                case "--pagecache" -> pagecache = value(args, ++i);
                case "--watch-stdin" -> watchStdin = true;
                case "--conf" -> {
                    String kv = value(args, ++i);
                    int eq = kv.indexOf('=');
                    if (eq <= 0) {
                        usage("--conf expects name=value, got " + kv);
                    }
                    conf.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
                }
                default -> usage("unknown argument " + args[i]);
            }
        }
        int boltPort;
        try {
            boltPort = Integer.parseInt(port);
        } catch (NumberFormatException e) {
            usage("port must be a number, got " + port);
            return;
        }

        Path home = Path.of(dir).toAbsolutePath();
        Files.createDirectories(home);

        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("server.bolt.enabled", "true");
        settings.put("server.bolt.listen_address", "127.0.0.1:" + boltPort);
        settings.put("server.bolt.advertised_address", "127.0.0.1:" + boltPort);
        settings.put("server.bolt.tls_level", "DISABLED");
        settings.put("server.http.enabled", "false");
        settings.put("server.https.enabled", "false");
        settings.put("dbms.security.auth_enabled", "false");
        settings.put("server.memory.pagecache.size", pagecache);
        settings.put("db.tx_log.rotation.retention_policy", "2 files");
        settings.put("dbms.usage_report.enabled", "false");
        // Bolt's network threads otherwise wait 5 s of quiet twice on shutdown; the
        // databases are checkpointed before that, so nothing is lost by not waiting.
        settings.put("internal.dbms.bolt.netty_server_shutdown_quiet_period", "0");
        settings.putAll(conf);

        Path confFile = home.resolve("neo4j.conf");
        try (Writer w = Files.newBufferedWriter(confFile, StandardCharsets.UTF_8)) {
            w.write("# Written by org.ringscope.neo4jlocal.Launcher at each start.\n");
            for (Map.Entry<String, String> e : settings.entrySet()) {
                w.write(e.getKey() + "=" + e.getValue() + "\n");
            }
        }

        DatabaseManagementService dbms =
                new DatabaseManagementServiceBuilder(home).loadPropertiesFromFile(confFile).build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime()
                .addShutdownHook(
                        new Thread(
                                () -> {
                                    System.out.println("NEO4J_STOPPING");
                                    System.out.flush();
                                    dbms.shutdown();
                                    stopped.countDown();
                                },
                                "neo4j-local-shutdown"));

        GraphDatabaseAPI system = (GraphDatabaseAPI) dbms.database("system");
        HostnamePort bolt =
                system.getDependencyResolver()
                        .resolveDependency(ConnectorPortRegister.class)
                        .getLocalAddress(ConnectorType.BOLT);
        if (bolt == null) {
            System.err.println("NEO4J_FAILED the Bolt connector did not start");
            System.exit(1);
        }
        System.out.println("NEO4J_READY bolt://127.0.0.1:" + bolt.getPort());
        System.out.flush();

        if (watchStdin) {
            Thread watcher =
                    new Thread(
                            () -> {
                                drain(System.in);
                                System.exit(0);
                            },
                            "neo4j-local-stdin");
            watcher.setDaemon(true);
            watcher.start();
        }
        stopped.await();
    }

    private static void drain(InputStream in) {
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) >= 0) {
                // ignore input; only its end matters
            }
        } catch (IOException e) {
            // a broken pipe means the parent is gone: stop as on end of input
        }
    }

    private static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isBlank() ? fallback : v;
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            usage(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    private static void usage(String message) {
        System.err.println("neo4j-local: " + message);
        System.err.println(
                "usage: Launcher [--dir DIR] [--port N] [--pagecache SIZE] [--conf name=value]..."
                        + " [--watch-stdin]");
        System.exit(2);
    }
}
