/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32;

/**
 * The drive table: drives known to the server and the alias each was last given.
 *
 * <p>The format is the stand-in's own and deliberately binary, like EKM's: everything outside
 * the server treats the file as opaque bytes to copy and back up. Layout: 8-byte magic, a
 * version short, an entry count, entries (serial, last alias, first-seen and last-used
 * epoch millis, key requests), then a CRC32 of all preceding bytes.
 */
final class DriveTable {
    private static final byte[] MAGIC = {'T', 'C', 'S', 'D', 'R', 'V', 'T', 'B'};
    private static final short VERSION = 1;

    /** One drive's record; immutable so that a failed save leaves the table as it was. */
    static final class Drive {
        final String serial;
        final String lastAlias;
        final long firstSeen;
        final long lastUsed;
        final int requests;

        Drive(String serial, String lastAlias, long firstSeen, long lastUsed, int requests) {
            this.serial = serial;
            this.lastAlias = lastAlias;
            this.firstSeen = firstSeen;
            this.lastUsed = lastUsed;
            this.requests = requests;
        }
    }

    private final Path file;
    private final Map<String, Drive> drives;

    private DriveTable(Path file, Map<String, Drive> drives) {
        this.file = file;
        this.drives = drives;
    }

    /** Reads the table; an absent file is an empty table, a damaged one is refused. */
    static DriveTable load(Path file) throws FatalException {
        Map<String, Drive> drives = new TreeMap<>();
        if (!Files.exists(file)) {
            return new DriveTable(file, drives);
        }
        byte[] data;
        try {
            data = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new FatalException("cannot read drive table " + file + ": " + e.getMessage(), e);
        }
        if (data.length < MAGIC.length + 2 + 4 + 8 || !Arrays.equals(Arrays.copyOf(data, MAGIC.length), MAGIC)) {
            throw new FatalException("drive table " + file + " is not a stand-in drive table (wrong magic or too short)");
        }
        CRC32 crc = new CRC32();
        crc.update(data, 0, data.length - 8);
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data, MAGIC.length, data.length - MAGIC.length))) {
            short version = in.readShort();
            if (version != VERSION) {
                throw new FatalException("drive table " + file + " has format version " + version + "; this stand-in reads version " + VERSION);
            }
            int count = in.readInt();
            if (count < 0) {
                throw new IOException("negative entry count");
            }
            for (int i = 0; i < count; i++) {
                Drive d = new Drive(in.readUTF(), in.readUTF(), in.readLong(), in.readLong(), in.readInt());
                drives.put(d.serial, d);
            }
            long stored = in.readLong();
            if (stored != crc.getValue() || in.available() != 0) {
                throw new IOException("checksum mismatch");
            }
        } catch (IOException e) {
            throw new FatalException("drive table " + file + " is damaged: " + e.getMessage(), e);
        }
        return new DriveTable(file, drives);
    }

    boolean contains(String serial) {
        return drives.containsKey(serial);
    }

    int size() {
        return drives.size();
    }

    /** A copy with the drive added (if new) and, when alias is not null, a key request recorded. */
    DriveTable with(String serial, String alias, long now) {
        Map<String, Drive> copy = new TreeMap<>(drives);
        Drive old = copy.get(serial);
        Drive d;
        if (old == null) {
            d = new Drive(serial, alias == null ? "" : alias, now, alias == null ? 0 : now, alias == null ? 0 : 1);
        } else if (alias == null) {
            d = old;
        } else {
            d = new Drive(serial, alias, old.firstSeen, now, old.requests + 1);
        }
        copy.put(serial, d);
        return new DriveTable(file, copy);
    }

    void save() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.write(MAGIC);
            out.writeShort(VERSION);
            out.writeInt(drives.size());
            for (Drive d : drives.values()) {
                out.writeUTF(d.serial);
                out.writeUTF(d.lastAlias);
                out.writeLong(d.firstSeen);
                out.writeLong(d.lastUsed);
                out.writeInt(d.requests);
            }
            out.flush();
            CRC32 crc = new CRC32();
            crc.update(bytes.toByteArray());
            out.writeLong(crc.getValue());
        }
        AtomicFiles.write(file, bytes.toByteArray());
    }
}
