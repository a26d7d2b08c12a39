/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.security.GeneralSecurityException;
import java.security.Key;
import java.security.KeyStore;

/**
 * The entries of a loaded keystore, whichever dialect wrote it: the JDK's own JCEKS loader for
 * OpenJDK-written (SunJCE) keystores, {@link IbmJceks} for keystores written by IBM's JRE.
 */
interface KeyEntries {
    /** "sunjce" or "ibm". */
    String dialect();

    boolean containsAlias(String alias) throws GeneralSecurityException;

    boolean isCertificateEntry(String alias) throws GeneralSecurityException;

    /** The key, null when the alias holds none; UnrecoverableKeyException for a wrong password. */
    Key getKey(String alias, char[] password) throws GeneralSecurityException;

    /** A keystore the JDK loaded itself. */
    static KeyEntries of(KeyStore store) {
        return new KeyEntries() {
            @Override
            public String dialect() {
                return "sunjce";
            }

            @Override
            public boolean containsAlias(String alias) throws GeneralSecurityException {
                return store.containsAlias(alias);
            }

            @Override
            public boolean isCertificateEntry(String alias) throws GeneralSecurityException {
                return store.isCertificateEntry(alias);
            }

            @Override
            public Key getKey(String alias, char[] password) throws GeneralSecurityException {
                return store.getKey(alias, password);
            }
        };
    }
}
