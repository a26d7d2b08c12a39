/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;

/**
 * The audit log and the metadata (key usage) file, in the shapes EKM's guide documents. Neither ever
 * carries key material.
 *
 * <p>Audit: numbered files {@code <directory>/<name>.<epoch millis>} (higher is newer), a new one when
 * the current one passes {@code Audit.handler.file.size} KB. One record per event,
 * {@code type:[timestamp=... Name=Value ...]}; a long record goes on over continuation lines indented
 * two spaces and ends with {@code ]}.
 *
 * <p>Metadata: one {@code <KeyUsageEvent>} element per line (drive serial, WWN, creation date, key
 * aliases 1 and 2, DKi, VolSer). When the file would pass {@code Audit.metadata.file.size} KB it
 * becomes the previous file ({@code <name>.1}, replacing the older one) and a new current file starts:
 * only the current and the previous file are kept, as in EKM.
 */
final class AuditLog {
    static final int WRAP = 100;

    private final StandinConfig config;
    private Path auditFile;
    private Writer audit;
    private long auditBytes;
    private long lastNumber;
    private Writer metadata;
    private long metadataBytes;

    private AuditLog(StandinConfig config) {
        this.config = config;
    }

    /** Opens both files now, so that an unwritable location stops the start, as it does for EKM. */
    static AuditLog open(StandinConfig config, long startMillis) throws FatalException {
        AuditLog log = new AuditLog(config);
        if (config.auditDirectory != null) {
            try {
                Files.createDirectories(config.auditDirectory);
            } catch (IOException e) {
                throw new FatalException("cannot create audit directory " + config.auditDirectory + " (Audit.handler.file.directory): " + e, e);
            }
            log.openAudit(startMillis);
        }
        Path parent = config.metadataFile.getParent();
        try {
            Files.createDirectories(parent);
        } catch (IOException e) {
            throw new FatalException("cannot create the directory of metadata file " + config.metadataFile + ": " + e, e);
        }
        log.metadata = append(config.metadataFile, "metadata file");
        log.metadataBytes = sizeOf(config.metadataFile);
        return log;
    }

    /** The next numbered audit file; numbers only grow, even when the clock does not. */
    private void openAudit(long millis) throws FatalException {
        long number = Math.max(millis, lastNumber + 1);
        Path file = config.auditDirectory.resolve(config.auditName + "." + number);
        while (Files.exists(file)) {
            number++;
            file = config.auditDirectory.resolve(config.auditName + "." + number);
        }
        audit = append(file, "audit file");
        auditFile = file;
        auditBytes = 0;
        lastNumber = number;
    }

    static Path previousMetadataFile(Path current) {
        return current.resolveSibling(current.getFileName() + ".1");
    }

    private static long sizeOf(Path file) {
        try {
            return Files.size(file);
        } catch (IOException e) {
            return 0;
        }
    }

    private static Writer append(Path file, String what) throws FatalException {
        try {
            return Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND,
                    StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new FatalException("cannot open " + what + " " + file + " for writing: " + e, e);
        }
    }

    synchronized Path auditFile() {
        return auditFile;
    }

    /**
     * One audit record: {@code type:[timestamp=<ISO-8601> message=<text> name=value ...]}. Pairs that
     * would take the line past {@value #WRAP} characters start a continuation line of two spaces.
     */
    synchronized void event(String type, String message, String... attributes) {
        if (audit == null) {
            return;
        }
        String record = format(type, Instant.now().toString(), message, attributes);
        byte[] bytes = record.getBytes(StandardCharsets.UTF_8);
        if (auditBytes > 0 && auditBytes + bytes.length > config.auditFileSizeKb * 1024L) {
            closeQuietly(audit);
            try {
                openAudit(System.currentTimeMillis());
            } catch (FatalException e) {
                audit = null;
                System.err.println("EKM-STANDIN WARNING: " + e.oneLine());
                return;
            }
        }
        if (write(audit, record, auditFile)) {
            auditBytes += bytes.length;
        }
    }

    static String format(String type, String timestamp, String message, String... attributes) {
        StringBuilder record = new StringBuilder(type).append(":[timestamp=").append(timestamp);
        int lineStart = 0;
        String first = "message=" + FatalException.flatten(message);
        for (int i = -2; i + 1 < attributes.length; i += 2) {
            String pair = i < 0 ? first : attributes[i] + "=" + FatalException.flatten(attributes[i + 1]).replace(']', ')');
            if (record.length() - lineStart + 1 + pair.length() > WRAP && i >= 0) {
                record.append("\n  ");
                lineStart = record.length() - 2;
            } else {
                record.append(' ');
            }
            record.append(pair);
        }
        return record.append("]\n").toString();
    }

    /** One key usage record; reads and writes alike, as each names the cartridge and the key it needs. */
    synchronized void keyServed(String drive, String wwn, String volser, String alias1, String alias2, String dki) {
        if (metadata == null) {
            return;
        }
        String record = "<KeyUsageEvent>" + element("DriveSSN", drive) + element("DriveWWN", wwn)
                + element("CreationDate", Instant.now().toString()) + element("KeyAlias1", alias1) + element("KeyAlias2", alias2)
                + element("DKi", dki) + element("VolSer", volser) + "</KeyUsageEvent>\n";
        byte[] bytes = record.getBytes(StandardCharsets.UTF_8);
        if (metadataBytes > 0 && metadataBytes + bytes.length > config.metadataFileSizeKb * 1024L) {
            rotateMetadata();
        }
        if (metadata != null && write(metadata, record, config.metadataFile)) {
            metadataBytes += bytes.length;
        }
    }

    /** current -> previous (the older previous is gone, as in EKM), then a new empty current file. */
    private void rotateMetadata() {
        closeQuietly(metadata);
        metadata = null;
        try {
            Files.move(config.metadataFile, previousMetadataFile(config.metadataFile), StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            System.err.println("EKM-STANDIN WARNING: cannot rotate " + config.metadataFile + ": " + e);
        }
        try {
            metadata = append(config.metadataFile, "metadata file");
            metadataBytes = sizeOf(config.metadataFile);
        } catch (FatalException e) {
            System.err.println("EKM-STANDIN WARNING: " + e.oneLine());
        }
    }

    private static String element(String name, String value) {
        return "<" + name + ">" + escape(value == null ? "" : value) + "</" + name + ">";
    }

    synchronized void close() {
        closeQuietly(audit);
        closeQuietly(metadata);
    }

    private static void closeQuietly(Writer w) {
        if (w != null) {
            try {
                w.close();
            } catch (IOException e) {
                System.err.println("EKM-STANDIN WARNING: cannot close an audit file: " + e);
            }
        }
    }

    /** A full disk must not stop key service; it is reported, like EKM's audit failures, in the log. */
    private static boolean write(Writer w, String text, Path file) {
        try {
            w.write(text);
            w.flush();
            return true;
        } catch (IOException e) {
            System.err.println("EKM-STANDIN WARNING: cannot write to " + file + ": " + e);
            return false;
        }
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
