/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * A stand-in for IBM/Dell Encryption Key Manager, for the tapecrypt.ekm tests and demo only.
 *
 * <p>It reads KeyManagerConfig.properties, opens the JCEKS keystore with the JDK, and serves
 * AES-256 keys to tape-drive clients on a loopback TCP port, keeping a drive table and
 * KeyGroups.xml up to date as EKM does. Its wire protocol is its own: one UTF-8 request
 * line, one reply line ({@code PING}, {@code GETKEY <drive>}, {@code KEY <drive> <alias>},
 * {@code ADDDRIVE <drive>}, {@code REFRESH}).
 *
 * <p><b>Keys travel in the clear</b>, as hex in the reply line. That is acceptable only
 * because this is a test double bound to loopback; the real EKM never sends a data key
 * unwrapped, it wraps it with a key the tape drive holds.
 *
 * <p>A refusal to start is one stderr line beginning {@code EKM-STANDIN FATAL:} and exit code 2;
 * a successful start prints {@code EKM-STANDIN READY port=<port> keys=<n>} on stdout.
 */
public final class EkmStandin {
    static final int EXIT_FATAL = 2;
    private static final int WORKERS = 8;
    private static final int MAX_LINE = 4096;
    private static final int IDLE_MILLIS = 60_000;

    private final KeyService service;
    private final AuditLog audit;
    private final ServerSocket listener;
    private final ExecutorService workers;
    private volatile boolean running = true;

    private EkmStandin(KeyService service, AuditLog audit, ServerSocket listener) {
        this.service = service;
        this.audit = audit;
        this.listener = listener;
        this.workers = Executors.newFixedThreadPool(WORKERS, r -> {
            Thread t = new Thread(r, "standin-worker");
            t.setDaemon(true);
            return t;
        });
    }

    public static void main(String[] args) {
        if (args.length != 1) {
            fatal("usage: java -cp '<dir>/lib/*' tapecrypt.standin.EkmStandin <KeyManagerConfig.properties>");
        }
        EkmStandin server = null;
        try {
            server = start(args[0]);
        } catch (FatalException e) {
            fatal(e.oneLine());
        } catch (RuntimeException e) {
            fatal("unexpected error at start: " + FatalException.flatten(e.toString()));
        }
        server.serve();
    }

    private static void fatal(String message) {
        System.err.println("EKM-STANDIN FATAL: " + message);
        System.err.flush();
        System.exit(EXIT_FATAL);
    }

    static EkmStandin start(String configPath) throws FatalException {
        StandinConfig config = StandinConfig.load(Paths.get(configPath));
        AuditLog audit = AuditLog.open(config, System.currentTimeMillis());
        try {
            KeyService service = new KeyService(config, audit);
            ServerSocket listener = listen(config);
            EkmStandin server = new EkmStandin(service, audit, listener);
            Runtime.getRuntime().addShutdownHook(new Thread(server::stop, "standin-shutdown"));
            audit.event("runtime", "Server started", "config", config.configFile.toString(), "port", Integer.toString(listener.getLocalPort()),
                    "keys", Integer.toString(service.keyCount()));
            System.out.println("EKM-STANDIN READY port=" + listener.getLocalPort() + " keys=" + service.keyCount());
            System.out.flush();
            return server;
        } catch (FatalException e) {
            audit.event("runtime", "Server failed to start", "reason", e.oneLine());
            audit.close();
            throw e;
        }
    }

    private static ServerSocket listen(StandinConfig config) throws FatalException {
        String where = config.listenAddress.getHostAddress() + ":" + config.tcpPort;
        ServerSocket listener = null;
        try {
            listener = new ServerSocket();
            listener.setReuseAddress(true);
            listener.bind(new InetSocketAddress(config.listenAddress, config.tcpPort), 50);
            return listener;
        } catch (IOException e) {
            closeQuietly(listener);
            throw new FatalException("Could not start server: cannot listen on " + where + " (TransportListener.tcp.port): " + e.getMessage(), e);
        }
    }

    /** The accept loop; returns when the listener is closed by {@link #stop()}. */
    private void serve() {
        while (running) {
            Socket client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                if (running) {
                    System.err.println("EKM-STANDIN WARNING: accept failed: " + FatalException.flatten(e.toString()));
                    pause();
                }
                continue;
            }
            try {
                workers.execute(() -> converse(client));
            } catch (RejectedExecutionException e) {
                closeQuietly(client);
            }
        }
    }

    /** Keeps a persistent accept error (out of file descriptors) from spinning a core. */
    private static void pause() {
        try {
            Thread.sleep(100);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** One connection: any number of request lines, each answered by one line. */
    private void converse(Socket client) {
        String peer = client.getRemoteSocketAddress().toString();
        try (Socket s = client) {
            s.setSoTimeout(IDLE_MILLIS);
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            while (running) {
                String line;
                try {
                    line = readLine(in);
                } catch (LineTooLongException e) {
                    reply(out, "ERR request too long");
                    return;
                }
                if (line == null) {
                    return;
                }
                reply(out, service.handle(line, peer));
            }
        } catch (SocketTimeoutException e) {
            return;
        } catch (IOException e) {
            // The client went away mid-conversation; nothing was promised to it.
            return;
        }
    }

    private static void reply(OutputStream out, String line) throws IOException {
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    /** A line without its CR/LF, or null at end of stream. */
    private static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != -1) {
            if (b == '\n') {
                return decode(line);
            }
            if (line.size() >= MAX_LINE) {
                throw new LineTooLongException();
            }
            line.write(b);
        }
        return line.size() == 0 ? null : decode(line);
    }

    private static String decode(ByteArrayOutputStream line) {
        String s = new String(line.toByteArray(), StandardCharsets.UTF_8);
        return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
    }

    /** Shutdown hook (SIGTERM, SIGINT): stop accepting, let requests in flight finish briefly, close the audit files. */
    private void stop() {
        running = false;
        closeQuietly(listener);
        workers.shutdown();
        try {
            workers.awaitTermination(3, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        audit.event("runtime", "Received and processed stopekm command", "command type", "SIGTERM");
        audit.close();
        System.out.println("EKM-STANDIN STOPPED");
        System.out.flush();
    }

    private static void closeQuietly(java.io.Closeable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (IOException e) {
            return;
        }
    }

    private static final class LineTooLongException extends IOException {
        private static final long serialVersionUID = 1L;
    }
}
