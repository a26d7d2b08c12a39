// Copyright (c) 2026 tapecrypt.ekm contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// Test helper: opens a keystore with the JDK's own KeyStore implementation and prints, for every
// secret key entry, "alias<TAB>fingerprint<TAB>algorithm<TAB>bits" (aliases sorted). The fingerprint
// is the collection's: hex(HMAC-SHA256(key, "tapecrypt.ekm key fingerprint v1"))[0:16], so key
// values never appear in test output.
//
// Usage: KeyCheck storetype path storepass [keypass [alias=keypass ...]]
//   keypass defaults to storepass; alias=keypass arguments override it for single entries.
// Any failure (wrong password, unreadable entry) exits with status 1 and a message on stderr.

import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.Key;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.SecretKey;
import javax.crypto.spec.SecretKeySpec;

public final class KeyCheck {
    private static final byte[] LABEL = "tapecrypt.ekm key fingerprint v1".getBytes(StandardCharsets.US_ASCII);

    private KeyCheck() {
    }

    static String fingerprint(byte[] key) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        byte[] out = mac.doFinal(LABEL);
        StringBuilder hex = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            hex.append(String.format("%02x", out[i] & 0xff));
        }
        return hex.toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: KeyCheck storetype path storepass [keypass [alias=keypass ...]]");
            System.exit(2);
        }
        char[] storePass = args[2].toCharArray();
        char[] defaultKeyPass = args.length > 3 ? args[3].toCharArray() : storePass;
        Map<String, char[]> perAlias = new HashMap<>();
        for (int i = 4; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq < 1) {
                System.err.println("bad alias=keypass argument: " + args[i]);
                System.exit(2);
            }
            perAlias.put(args[i].substring(0, eq), args[i].substring(eq + 1).toCharArray());
        }
        KeyStore ks = KeyStore.getInstance(args[0]);
        try (InputStream in = new FileInputStream(args[1])) {
            ks.load(in, storePass);
        }
        List<String> aliases = Collections.list(ks.aliases());
        Collections.sort(aliases);
        StringBuilder out = new StringBuilder();
        for (String alias : aliases) {
            if (!ks.entryInstanceOf(alias, KeyStore.SecretKeyEntry.class)) {
                continue;
            }
            Key key = ks.getKey(alias, perAlias.getOrDefault(alias, defaultKeyPass));
            if (!(key instanceof SecretKey)) {
                System.err.println("alias " + alias + ": no secret key returned");
                System.exit(1);
            }
            byte[] encoded = key.getEncoded();
            out.append(alias).append('\t').append(fingerprint(encoded)).append('\t')
                .append(key.getAlgorithm()).append('\t').append(encoded.length * 8).append('\n');
        }
        System.out.print(out);
    }
}
