/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.IOException;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The server's state (configuration, keys, drive table, key groups) and the protocol verbs.
 *
 * <p>Every change to the drive table or KeyGroups.xml is written to disk before the reply
 * goes out and before the in-memory state changes: a key is never handed out for a write
 * unless its use is recorded, and a failed write leaves the state as it was.
 */
final class KeyService {
    private static final Pattern SERIAL = Pattern.compile("[A-Za-z0-9._:-]{1,64}");
    private static final Pattern ALIAS = Pattern.compile("[\\x21-\\x7e]{1,64}");

    private final AuditLog audit;
    private StandinConfig config;
    private KeyRing ring;
    private DriveTable drives;
    private KeyGroups groups;

    KeyService(StandinConfig config, AuditLog audit) throws FatalException {
        this.audit = audit;
        this.config = config;
        // The cheap checks first: opening the keys costs about 60 ms of CPU each.
        this.drives = DriveTable.load(config.driveTableFile);
        this.groups = KeyGroups.load(config.keyGroupsFile);
        this.ring = KeyRing.load(config);
        createMissingFiles(config, drives, groups);
    }

    /** EKM keeps both files next to its keystore from the first start on; backups expect them. */
    private static void createMissingFiles(StandinConfig config, DriveTable drives, KeyGroups groups) throws FatalException {
        if (!java.nio.file.Files.exists(config.driveTableFile)) {
            try {
                drives.save();
            } catch (IOException e) {
                throw new FatalException("cannot create drive table " + config.driveTableFile + ": " + e, e);
            }
        }
        if (!groups.exists()) {
            try {
                groups.save();
            } catch (IOException e) {
                throw new FatalException("cannot create KeyGroups.xml " + config.keyGroupsFile + ": " + e, e);
            }
        }
    }

    synchronized StandinConfig config() {
        return config;
    }

    synchronized int keyCount() {
        return ring.size();
    }

    /** Answers one request line; never throws, never returns key material except in an OK reply to a key verb. */
    String handle(String line, String peer) {
        String[] words = line.trim().split("\\s+");
        String verb = words[0].toUpperCase(Locale.ROOT);
        switch (verb) {
            case "PING":
                return words.length == 1 ? "OK tapecrypt-standin keys=" + keyCount() : "ERR usage: PING";
            case "GETKEY":
                return words.length == 2 ? getKey(words[1], peer) : "ERR usage: GETKEY <drive-serial>";
            case "KEY":
                return words.length == 3 ? key(words[1], words[2], peer) : "ERR usage: KEY <drive-serial> <alias>";
            case "ADDDRIVE":
                return words.length == 2 ? addDrive(words[1], peer) : "ERR usage: ADDDRIVE <drive-serial>";
            case "REFRESH":
                return words.length == 1 ? refresh(peer) : "ERR usage: REFRESH";
            default:
                audit.event("UnknownCommand", "client", peer);
                return "ERR unknown command";
        }
    }

    /** A write: the next alias round-robin, recorded in the drive table and KeyGroups.xml first. */
    private synchronized String getKey(String serial, String peer) {
        if (!SERIAL.matcher(serial).matches()) {
            return "ERR bad drive serial";
        }
        DriveTable admitted = admit(serial, peer);
        if (admitted == null) {
            return "ERR unknown drive " + serial;
        }
        String alias = ring.after(groups.lastUsed());
        DriveTable nextDrives = admitted.with(serial, alias, System.currentTimeMillis());
        KeyGroups nextGroups = groups.withLastUsed(alias);
        try {
            nextDrives.save();
            nextGroups.save();
        } catch (IOException e) {
            audit.event("KeyServed", "outcome", "failure", "client", peer, "drive", serial, "keyAlias1", alias, "reason", e.toString());
            return "ERR cannot record the key use: " + FatalException.flatten(e.toString());
        }
        drives = nextDrives;
        groups = nextGroups;
        audit.event("KeyServed", "outcome", "success", "client", peer, "operation", "write", "drive", serial, "keyAlias1", alias);
        audit.keyServed("write", serial, alias);
        return "OK " + alias + " " + Hex.encode(ring.symmetricKey(alias));
    }

    /** A read: any AES-256 key of the keystore by alias, for a drive the server knows. */
    private synchronized String key(String serial, String alias, String peer) {
        if (!SERIAL.matcher(serial).matches()) {
            return "ERR bad drive serial";
        }
        String lower = alias.toLowerCase(Locale.ROOT);
        if (!ALIAS.matcher(alias).matches()) {
            return "ERR no key " + alias.replaceAll("[^\\x21-\\x7e]", "?");
        }
        DriveTable admitted = admit(serial, peer);
        if (admitted == null) {
            return "ERR unknown drive " + serial;
        }
        if (admitted != drives) {
            try {
                admitted.save();
            } catch (IOException e) {
                return "ERR cannot record the drive: " + FatalException.flatten(e.toString());
            }
            drives = admitted;
        }
        byte[] key = ring.anyKey(lower);
        if (key == null) {
            audit.event("KeyServed", "outcome", "failure", "client", peer, "operation", "read", "drive", serial, "keyAlias1", lower,
                    "reason", "no 256-bit AES key under this alias");
            return "ERR no key " + lower;
        }
        audit.event("KeyServed", "outcome", "success", "client", peer, "operation", "read", "drive", serial, "keyAlias1", lower);
        audit.keyServed("read", serial, lower);
        return "OK " + lower + " " + Hex.encode(key);
    }

    /** The table with the drive in it, a new table when acceptUnknownDrives admits it, or null. */
    private DriveTable admit(String serial, String peer) {
        if (drives.contains(serial)) {
            return drives;
        }
        if (!config.acceptUnknownDrives) {
            audit.event("DriveRejected", "client", peer, "drive", serial, "reason", "not in the drive table and drive.acceptUnknownDrives=false");
            return null;
        }
        audit.event("DriveAdded", "client", peer, "drive", serial, "reason", "drive.acceptUnknownDrives=true");
        return drives.with(serial, null, System.currentTimeMillis());
    }

    /** The stand-in's answer to EKM's adddrive: puts a drive in the table without a key request. */
    private synchronized String addDrive(String serial, String peer) {
        if (!SERIAL.matcher(serial).matches()) {
            return "ERR bad drive serial";
        }
        if (drives.contains(serial)) {
            return "OK drive known " + serial;
        }
        DriveTable next = drives.with(serial, null, System.currentTimeMillis());
        try {
            next.save();
        } catch (IOException e) {
            return "ERR cannot record the drive: " + FatalException.flatten(e.toString());
        }
        drives = next;
        audit.event("DriveAdded", "client", peer, "drive", serial, "reason", "ADDDRIVE");
        return "OK drive added " + serial;
    }

    /**
     * Re-reads configuration, keystore, drive table and key groups, as EKM's {@code refresh}.
     * All of it loads before anything is replaced: a broken new keystore leaves the old one serving.
     * Listener settings and audit files stay as they were until a restart.
     */
    private String refresh(String peer) {
        StandinConfig nextConfig;
        KeyRing nextRing;
        try {
            nextConfig = StandinConfig.load(config().configFile);
            nextRing = KeyRing.load(nextConfig);
        } catch (FatalException e) {
            audit.event("Refresh", "outcome", "failure", "client", peer, "reason", e.oneLine());
            return "ERR refresh failed, still serving the previous keys: " + e.oneLine();
        }
        synchronized (this) {
            try {
                DriveTable nextDrives = DriveTable.load(nextConfig.driveTableFile);
                KeyGroups nextGroups = KeyGroups.load(nextConfig.keyGroupsFile);
                createMissingFiles(nextConfig, nextDrives, nextGroups);
                if (nextConfig.tcpPort != config.tcpPort || !nextConfig.listenAddress.equals(config.listenAddress)) {
                    System.out.println("EKM-STANDIN NOTE: listener settings changed in " + nextConfig.configFile + "; they apply at the next start");
                }
                config = nextConfig;
                ring = nextRing;
                drives = nextDrives;
                groups = nextGroups;
            } catch (FatalException e) {
                audit.event("Refresh", "outcome", "failure", "client", peer, "reason", e.oneLine());
                return "ERR refresh failed, still serving the previous keys: " + e.oneLine();
            }
            audit.event("Refresh", "outcome", "success", "client", peer, "keys", Integer.toString(ring.size()));
            return "OK refreshed keys=" + ring.size();
        }
    }
}
