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
    private static final Pattern VOLSER = Pattern.compile("[A-Za-z0-9]{1,16}");
    private static final Pattern WWN = Pattern.compile("[0-9A-Fa-f]{16}");

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
                return words.length >= 2 && words.length <= 4 ? getKey(words[1], Tape.of(words, 2), peer)
                        : "ERR usage: GETKEY <drive-serial> [<volser> [<wwn>]]";
            case "KEY":
                return words.length >= 3 && words.length <= 5 ? key(words[1], words[2], Tape.of(words, 3), peer)
                        : "ERR usage: KEY <drive-serial> <alias> [<volser> [<wwn>]]";
            case "ADDDRIVE":
                return words.length == 2 ? addDrive(words[1], peer) : "ERR usage: ADDDRIVE <drive-serial>";
            case "REFRESH":
                return words.length == 1 ? refresh(peer) : "ERR usage: REFRESH";
            default:
                audit.event("runtime", "Unknown command", "client", peer);
                return "ERR unknown command";
        }
    }

    /** A write: the next alias round-robin, recorded in the drive table and KeyGroups.xml first. */
    private synchronized String getKey(String serial, Tape tape, String peer) {
        if (!SERIAL.matcher(serial).matches()) {
            return "ERR bad drive serial";
        }
        if (tape.problem() != null) {
            return tape.problem();
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
            audit.event("runtime", "Error recording the key use", "client", peer, "drive", serial, "volser", tape.volser,
                    "keyAlias1", alias, "reason", e.toString(), "action", "write");
            return "ERR cannot record the key use: " + FatalException.flatten(e.toString());
        }
        drives = nextDrives;
        groups = nextGroups;
        audit.event("runtime", "Message exchange processed successfully", "client", peer, "drive", serial, "volser", tape.volser,
                "keyAlias1", alias, "action", "write");
        audit.keyServed(serial, tape.wwn, tape.volser, alias, "", dki(alias));
        return "OK " + alias + " " + Hex.encode(ring.symmetricKey(alias));
    }

    /** A read: any AES-256 key of the keystore by alias, for a drive the server knows. */
    private synchronized String key(String serial, String alias, Tape tape, String peer) {
        if (!SERIAL.matcher(serial).matches()) {
            return "ERR bad drive serial";
        }
        if (tape.problem() != null) {
            return tape.problem();
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
            audit.event("runtime", "Error retrieving information from keystore", "client", peer, "drive", serial, "volser",
                    tape.volser, "keyAlias1", lower, "reason", "no 256-bit AES key under this alias", "action", "read");
            return "ERR no key " + lower;
        }
        audit.event("runtime", "Message exchange processed successfully", "client", peer, "drive", serial, "volser", tape.volser,
                "keyAlias1", lower, "action", "read");
        audit.keyServed(serial, tape.wwn, tape.volser, lower, "", dki(lower));
        return "OK " + lower + " " + Hex.encode(key);
    }

    /** The table with the drive in it, a new table when acceptUnknownDrives admits it, or null. */
    private DriveTable admit(String serial, String peer) {
        if (drives.contains(serial)) {
            return drives;
        }
        if (!config.acceptUnknownDrives) {
            audit.event("runtime", "Drive not in drive table", "client", peer, "drive", serial, "reason",
                    "drive.acceptUnknownDrives=false");
            return null;
        }
        audit.event("runtime", "New drive discovered", "client", peer, "drive", serial, "reason", "drive.acceptUnknownDrives=true");
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
        audit.event("resource_management", "Drive added to drive table", "client", peer, "drive", serial, "command type", "adddrive");
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
            audit.event("runtime", "Error processing refresh command", "client", peer, "reason", e.oneLine());
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
                audit.event("runtime", "Error processing refresh command", "client", peer, "reason", e.oneLine());
                return "ERR refresh failed, still serving the previous keys: " + e.oneLine();
            }
            audit.event("runtime", "Refresh command processed", "client", peer, "keys", Integer.toString(ring.size()));
            return "OK refreshed keys=" + ring.size();
        }
    }

    /**
     * The stand-in's data key identifier: a digest of the alias, never of the key, so that it is
     * stable for an alias and names no key material. EKM's DKi comes from the drive; its form is not public.
     */
    static String dki(String alias) {
        try {
            byte[] digest = java.security.MessageDigest.getInstance("SHA-256")
                    .digest(("tapecrypt-standin-dki:" + alias).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return Hex.encode(java.util.Arrays.copyOf(digest, 8));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
    }

    /** What a drive says about the cartridge it loaded: its VolSer and the drive's WWN, both optional. */
    static final class Tape {
        final String volser;
        final String wwn;

        private Tape(String volser, String wwn) {
            this.volser = volser;
            this.wwn = wwn;
        }

        static Tape of(String[] words, int first) {
            return new Tape(words.length > first ? words[first] : "", words.length > first + 1 ? words[first + 1] : "");
        }

        String problem() {
            if (!volser.isEmpty() && !VOLSER.matcher(volser).matches()) {
                return "ERR bad volser";
            }
            if (!wwn.isEmpty() && !WWN.matcher(wwn).matches()) {
                return "ERR bad wwn";
            }
            return null;
        }
    }
}
