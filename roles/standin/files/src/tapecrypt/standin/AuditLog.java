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
import java.nio.file.StandardOpenOption;
import java.time.Instant;

/**
 * The audit log ({@code <directory>/<name>.<start millis>}, one line per event) and the
 * metadata file (one XML-ish line per key served). Neither ever carries key material.
 */
final class AuditLog {
    private final Path auditFile;
    private final Path metadataFile;
    private final Writer audit;
    private final Writer metadata;

    private AuditLog(Path auditFile, Writer audit, Path metadataFile, Writer metadata) {
        this.auditFile = auditFile;
        this.audit = audit;
        this.metadataFile = metadataFile;
        this.metadata = metadata;
    }

    /** Opens both files now, so that an unwritable location stops the start, as it does for EKM. */
    static AuditLog open(StandinConfig config, long startMillis) throws FatalException {
        Path auditFile = null;
        Writer audit = null;
        if (config.auditDirectory != null) {
            try {
                Files.createDirectories(config.auditDirectory);
            } catch (IOException e) {
                throw new FatalException("cannot create audit directory " + config.auditDirectory + " (Audit.handler.file.directory): " + e, e);
            }
            auditFile = config.auditDirectory.resolve(config.auditName + "." + startMillis);
            audit = append(auditFile, "audit file");
        }
        Path parent = config.metadataFile.getParent();
        try {
            Files.createDirectories(parent);
        } catch (IOException e) {
            throw new FatalException("cannot create the directory of metadata file " + config.metadataFile + ": " + e, e);
        }
        return new AuditLog(auditFile, audit, config.metadataFile, append(config.metadataFile, "metadata file"));
    }

    private static Writer append(Path file, String what) throws FatalException {
        try {
            return Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND,
                    StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new FatalException("cannot open " + what + " " + file + " for writing: " + e, e);
        }
    }

    Path auditFile() {
        return auditFile;
    }

    /** EKM's record shape, on one line: {@code Type:[timestamp=... name=value ...]}. */
    synchronized void event(String type, String... attributes) {
        if (audit == null) {
            return;
        }
        StringBuilder line = new StringBuilder(type).append(":[timestamp=").append(Instant.now());
        for (int i = 0; i + 1 < attributes.length; i += 2) {
            line.append(' ').append(attributes[i]).append('=').append(FatalException.flatten(attributes[i + 1]));
        }
        line.append("]\n");
        write(audit, line.toString());
    }

    synchronized void keyServed(String operation, String drive, String alias) {
        write(metadata, "<KeyServed timestamp=\"" + Instant.now() + "\" operation=\"" + operation + "\" drive=\"" + escape(drive)
                + "\" keyAlias1=\"" + escape(alias) + "\"/>\n");
    }

    synchronized void close() {
        for (Writer w : new Writer[] {audit, metadata}) {
            if (w != null) {
                try {
                    w.close();
                } catch (IOException e) {
                    System.err.println("EKM-STANDIN WARNING: cannot close an audit file: " + e);
                }
            }
        }
    }

    /** A full disk must not stop key service; it is reported, like EKM's audit failures, in the log. */
    private void write(Writer w, String text) {
        try {
            w.write(text);
            w.flush();
        } catch (IOException e) {
            System.err.println("EKM-STANDIN WARNING: cannot write to " + (w == audit ? auditFile : metadataFile) + ": " + e);
        }
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace("\"", "&quot;");
    }
}
