/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.Key;
import java.security.KeyStore;
import java.security.UnrecoverableKeyException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import javax.crypto.SecretKey;

/**
 * The JCEKS keystore as the JDK itself reads it, plus the validated keys of symmetricKeySet.
 *
 * <p>Loading through {@code KeyStore.getInstance("JCEKS")} is the point of the stand-in: a
 * keystore written by the collection is only good if the JDK opens every key in it. A keystore
 * in the dialect of IBM's JRE (EKM's own), which the JDK's loader refuses, is read by
 * {@link IbmJceks} instead, with the JDK's cipher.
 */
final class KeyRing {
    /** How many offending aliases a refusal names; the rest are counted. */
    private static final int NAMED = 10;

    private final Path file;
    private final KeyEntries store;
    private final char[] password;
    private final List<String> symmetricAliases;
    private final Map<String, Integer> position;
    private final Map<String, byte[]> symmetricKeys;

    private KeyRing(Path file, KeyEntries store, char[] password, List<String> aliases, Map<String, byte[]> keys) {
        this.file = file;
        this.store = store;
        this.password = password;
        this.symmetricAliases = Collections.unmodifiableList(new ArrayList<>(aliases));
        this.position = new HashMap<>();
        for (int i = 0; i < aliases.size(); i++) {
            position.put(aliases.get(i), i);
        }
        this.symmetricKeys = keys;
    }

    static KeyRing load(StandinConfig config) throws FatalException {
        Path file = config.keystoreFile;
        if (!Files.exists(file)) {
            throw new FatalException("keystore not found: " + file + " (config.keystore.file)");
        }
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            throw new FatalException("keystore is not a readable file: " + file + " (config.keystore.file)");
        }
        KeyEntries store;
        try {
            byte[] data = Files.readAllBytes(file);
            store = IbmJceks.looksIbm(data) ? IbmJceks.load(data, config.keystorePassword) : loadWithJdk(data, config.keystorePassword);
        } catch (IOException e) {
            if (e.getCause() instanceof UnrecoverableKeyException) {
                throw new FatalException("wrong keystore password for " + file + " (the keystore integrity check failed)", e);
            }
            throw new FatalException("cannot read keystore " + file + " as JCEKS: " + e.getMessage(), e);
        } catch (GeneralSecurityException e) {
            throw new FatalException("cannot load keystore " + file + ": " + e, e);
        }
        List<String> aliases = config.symmetricKeySet;
        List<String> missing = new ArrayList<>();
        try {
            for (String alias : aliases) {
                if (!store.containsAlias(alias)) {
                    missing.add(alias);
                }
            }
        } catch (GeneralSecurityException e) {
            throw new FatalException("cannot list keystore " + file + ": " + e, e);
        }
        if (!missing.isEmpty()) {
            throw new FatalException(missing.size() + " alias(es) of symmetricKeySet are absent from keystore " + file + ": "
                    + named(missing));
        }
        return new KeyRing(file, store, config.keystorePassword, aliases, openAll(file, store, config.keystorePassword, aliases));
    }

    private static KeyEntries loadWithJdk(byte[] data, char[] password) throws IOException, GeneralSecurityException {
        KeyStore store = KeyStore.getInstance("JCEKS");
        try (InputStream in = new ByteArrayInputStream(data)) {
            store.load(in, password);
        }
        return KeyEntries.of(store);
    }

    /** "sunjce" or "ibm": which dialect the keystore was read in. */
    String dialect() {
        return store.dialect();
    }

    /**
     * Opens every key of the set, as EKM validates symmetricKeySet at start.
     *
     * <p>Each JCEKS secret key is sealed with 200000 PBE iterations, about 60 ms of one core, so
     * a key set of a few hundred keys is opened on all cores rather than one.
     */
    private static Map<String, byte[]> openAll(Path file, KeyEntries store, char[] password, List<String> aliases) throws FatalException {
        int threads = Math.max(1, Math.min(aliases.size() / 8, Runtime.getRuntime().availableProcessors()));
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "keystore-open");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<Object>> results = new ArrayList<>();
            for (String alias : aliases) {
                results.add(pool.submit(() -> open(store, password, alias)));
            }
            Map<String, byte[]> keys = new HashMap<>();
            List<String> unusable = new ArrayList<>();
            List<String> locked = new ArrayList<>();
            for (int i = 0; i < aliases.size(); i++) {
                Object r = results.get(i).get();
                if (r instanceof byte[]) {
                    keys.put(aliases.get(i), (byte[]) r);
                } else if (r instanceof UnrecoverableKeyException) {
                    locked.add(aliases.get(i));
                } else {
                    unusable.add(aliases.get(i) + " (" + r + ")");
                }
            }
            if (!locked.isEmpty()) {
                throw new FatalException(locked.size() + " key(s) of symmetricKeySet in " + file + " do not open with the keystore password "
                        + "(EKM uses the keystore password for keys): " + named(locked));
            }
            if (!unusable.isEmpty()) {
                throw new FatalException(unusable.size() + " alias(es) of symmetricKeySet in " + file + " are not 256-bit AES secret keys: "
                        + named(unusable));
            }
            return keys;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new FatalException("interrupted while opening the keys of " + file, e);
        } catch (ExecutionException e) {
            throw new FatalException("cannot open the keys of " + file + ": " + e.getCause(), e);
        } finally {
            pool.shutdownNow();
        }
    }

    /** The key bytes, an UnrecoverableKeyException, or a description of what the entry is instead. */
    private static Object open(KeyEntries store, char[] password, String alias) {
        try {
            Key key = store.getKey(alias, password);
            if (key == null) {
                return store.isCertificateEntry(alias) ? "a trusted certificate" : "no key";
            }
            if (!(key instanceof SecretKey)) {
                return "a " + key.getAlgorithm() + " " + key.getClass().getSimpleName();
            }
            byte[] encoded = key.getEncoded();
            int bits = encoded == null ? 0 : encoded.length * 8;
            if (!"AES".equalsIgnoreCase(key.getAlgorithm()) || bits != 256) {
                return key.getAlgorithm() + ", " + bits + " bits";
            }
            return encoded;
        } catch (UnrecoverableKeyException e) {
            return e;
        } catch (GeneralSecurityException e) {
            return e.toString();
        }
    }

    private static String named(List<String> items) {
        StringBuilder out = new StringBuilder(String.join(", ", items.subList(0, Math.min(NAMED, items.size()))));
        if (items.size() > NAMED) {
            out.append(" and ").append(items.size() - NAMED).append(" more");
        }
        return out.toString();
    }

    Path file() {
        return file;
    }

    List<String> symmetricAliases() {
        return symmetricAliases;
    }

    int size() {
        return symmetricAliases.size();
    }

    /** The alias that follows {@code last} round-robin; the first one when last is unknown. */
    String after(String last) {
        Integer i = last == null ? null : position.get(last);
        return symmetricAliases.get(i == null ? 0 : (i + 1) % symmetricAliases.size());
    }

    byte[] symmetricKey(String alias) {
        return symmetricKeys.get(alias);
    }

    /** Any 256-bit AES key of the keystore (reads may use keys outside symmetricKeySet); null when there is none. */
    synchronized byte[] anyKey(String alias) {
        String lower = alias.toLowerCase(Locale.ROOT);
        byte[] known = symmetricKeys.get(lower);
        if (known != null) {
            return known;
        }
        Object r = open(store, password, lower);
        return r instanceof byte[] ? (byte[]) r : null;
    }
}
