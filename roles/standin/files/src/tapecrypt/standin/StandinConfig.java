/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Locale;
import java.util.Properties;

/** The part of KeyManagerConfig.properties the stand-in understands, validated. */
final class StandinConfig {
    final Path configFile;
    final Path keystoreFile;
    final char[] keystorePassword;
    final int tcpPort;
    final int sslPort;
    final InetAddress listenAddress;
    final List<String> symmetricKeySet;
    final Path driveTableFile;
    final Path keyGroupsFile;
    final boolean acceptUnknownDrives;
    final Path auditDirectory;
    final String auditName;
    final Path metadataFile;
    final long auditFileSizeKb;
    final long metadataFileSizeKb;

    private StandinConfig(Path configFile, Properties p) throws FatalException {
        this.configFile = configFile;
        Path base = configFile.getParent();
        String type = value(p, "config.keystore.type");
        if (type != null && !type.equalsIgnoreCase("jceks")) {
            throw new FatalException("config.keystore.type is '" + type + "' in " + configFile + "; the stand-in reads jceks keystores only");
        }
        keystoreFile = requiredPath(p, base, "config.keystore.file");
        String password = p.getProperty("config.keystore.password");
        if (password == null || password.isEmpty()) {
            throw new FatalException("config.keystore.password is not set in " + configFile
                    + " (the vendor EKM would prompt for it; the stand-in cannot)");
        }
        keystorePassword = password.toCharArray();
        tcpPort = port(p, "TransportListener.tcp.port", "TCP", true);
        sslPort = port(p, "TransportListener.ssl.port", "SSL", false);
        listenAddress = loopback(value(p, "standin.listen.address"));
        symmetricKeySet = KeyAliases.parse(p.getProperty("symmetricKeySet"));
        driveTableFile = requiredPath(p, base, "config.drivetable.file.url");
        keyGroupsFile = requiredPath(p, base, "config.keygroup.xml.file");
        acceptUnknownDrives = bool(p, "drive.acceptUnknownDrives");
        auditDirectory = optionalPath(p, base, "Audit.handler.file.directory");
        String name = value(p, "Audit.handler.file.name");
        if (name != null && (name.contains("/") || name.contains("\\"))) {
            throw new FatalException("Audit.handler.file.name must be a base name without a directory: '" + name + "'");
        }
        auditName = name == null ? "ekm_audit.log" : name;
        if (value(p, "Audit.metadata.file.name") == null) {
            throw new FatalException("Audit.metadata.file.name is not set in " + configFile
                    + "; EKM will not start without a metadata file, nor will the stand-in");
        }
        metadataFile = requiredPath(p, base, "Audit.metadata.file.name");
        auditFileSizeKb = sizeKb(p, "Audit.handler.file.size", 2000);
        metadataFileSizeKb = sizeKb(p, "Audit.metadata.file.size", 1024);
    }

    /** A file size limit in KB, as EKM's guide gives them; a positive whole number. */
    private long sizeKb(Properties p, String key, long fallback) throws FatalException {
        String v = value(p, key);
        if (v == null) {
            return fallback;
        }
        try {
            long kb = Long.parseLong(v);
            if (kb > 0 && kb < (1L << 40)) {
                return kb;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new FatalException(key + " must be a positive number of KB in " + configFile + ", not '" + v + "'");
    }

    static StandinConfig load(Path path) throws FatalException {
        Path file = path.toAbsolutePath().normalize();
        if (!Files.exists(file)) {
            throw new FatalException("configuration file not found: " + file);
        }
        if (!Files.isRegularFile(file)) {
            throw new FatalException("configuration file is not a regular file: " + file);
        }
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
        } catch (IOException | IllegalArgumentException e) {
            throw new FatalException("cannot read configuration file " + file + ": " + e.getMessage(), e);
        }
        return new StandinConfig(file, p);
    }

    private static String value(Properties p, String key) {
        String v = p.getProperty(key);
        if (v == null || v.trim().isEmpty()) {
            return null;
        }
        return v.trim();
    }

    private Path requiredPath(Properties p, Path base, String key) throws FatalException {
        Path path = optionalPath(p, base, key);
        if (path == null) {
            throw new FatalException(key + " is not set in " + configFile);
        }
        return path;
    }

    /** Resolves EKM's {@code FILE:name} URLs and relative names against the config's directory. */
    private static Path optionalPath(Properties p, Path base, String key) throws FatalException {
        String v = value(p, key);
        if (v == null) {
            return null;
        }
        if (v.regionMatches(true, 0, "FILE:", 0, 5)) {
            v = v.substring(5);
        }
        try {
            return base.resolve(Paths.get(v)).normalize();
        } catch (InvalidPathException e) {
            throw new FatalException(key + " is not a usable path: '" + v + "'", e);
        }
    }

    /** Wording follows the vendor's messages; port 0 (any free port) is a stand-in extension for tests. */
    private int port(Properties p, String key, String label, boolean allowAny) throws FatalException {
        String v = value(p, key);
        if (v == null) {
            throw new FatalException(label + " port number must be specified in configuration file " + configFile + " (" + key + ")");
        }
        int port;
        try {
            port = Integer.parseInt(v);
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port > 65535 || port < (allowAny ? 0 : 1)) {
            throw new FatalException("Invalid " + label + " port number in configuration file " + configFile + ": " + key + "=" + v);
        }
        return port;
    }

    /** Keys cross the wire in the clear, so anything but loopback is refused outright. */
    private static InetAddress loopback(String v) throws FatalException {
        String name = v == null ? "127.0.0.1" : v;
        InetAddress address;
        try {
            address = InetAddress.getByName(name);
        } catch (UnknownHostException e) {
            throw new FatalException("standin.listen.address '" + name + "' does not resolve", e);
        }
        if (!address.isLoopbackAddress()) {
            throw new FatalException("standin.listen.address '" + name + "' is not a loopback address; the stand-in hands out keys "
                    + "in the clear and listens on loopback only");
        }
        return address;
    }

    private static boolean bool(Properties p, String key) throws FatalException {
        String v = value(p, key);
        if (v == null) {
            return false;
        }
        switch (v.toLowerCase(Locale.ROOT)) {
            case "true":
            case "yes":
                return true;
            case "false":
            case "no":
                return false;
            default:
                throw new FatalException(key + " must be true or false, not '" + v + "'");
        }
    }
}
