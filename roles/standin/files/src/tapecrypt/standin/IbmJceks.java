/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.InvalidClassException;
import java.io.ObjectInputFilter;
import java.io.ObjectInputStream;
import java.io.ObjectStreamClass;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.AlgorithmParameters;
import java.security.GeneralSecurityException;
import java.security.Key;
import java.security.MessageDigest;
import java.security.UnrecoverableKeyException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import javax.crypto.BadPaddingException;
import javax.crypto.Cipher;
import javax.crypto.SecretKey;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * A JCEKS keystore in the dialect IBM's JRE writes (the JRE EKM ships with), read without IBM's classes.
 *
 * <p>The file is the ordinary JCEKS format (magic CECECECE, entries, keyed SHA-1), but each secret
 * key is a plain {@code javax.crypto.SealedObject} (paramsAlg "PBE") around a serialized
 * {@code com.ibm.crypto.provider.AESSecretKey}, which the JDK's JCEKS loader refuses ("Invalid
 * secret key format"). Here the two serialized objects are read into look-alike classes of this
 * package with the same fields and serialVersionUIDs, and the key is decrypted with the JDK's own
 * PBEWithMD5AndTripleDES cipher. Only those classes and byte arrays are accepted in the streams.
 * Entries in OpenJDK's dialect are refused, as IBM's JRE refuses them.
 */
final class IbmJceks implements KeyEntries {
    static final String SEALED_OBJECT = "javax.crypto.SealedObject";
    static final String IBM_AES_KEY = "com.ibm.crypto.provider.AESSecretKey";
    private static final int MAGIC = 0xCECECECE;
    private static final String PBE = "PBEWithMD5AndTripleDES";

    private final Map<String, SealedForm> secrets;
    private final Set<String> others;
    private final Set<String> certificates;

    private IbmJceks(Map<String, SealedForm> secrets, Set<String> others, Set<String> certificates) {
        this.secrets = secrets;
        this.others = others;
        this.certificates = certificates;
    }

    /** IBM's javax.crypto.SealedObject as serialized: the same fields, the same serialVersionUID. */
    static final class SealedForm implements Serializable {
        private static final long serialVersionUID = 0x3e363da6c3b75470L;
        byte[] encodedParams;
        byte[] encryptedContent;
        String paramsAlg;
        String sealAlg;
    }

    /** IBM's com.ibm.crypto.provider.AESSecretKey as serialized: its one field is the raw key. */
    static final class AesKeyForm implements Serializable {
        private static final long serialVersionUID = 0x210910f87f2cf340L;
        byte[] key;
    }

    /** Deserializes exactly one of the forms above (under the IBM class name) and byte arrays, nothing else. */
    private static final class FormReader extends ObjectInputStream {
        private final String expected;
        private final Class<?> form;

        FormReader(InputStream in, String expected, Class<?> form, int limit) throws IOException {
            super(in);
            this.expected = expected;
            this.form = form;
            setObjectInputFilter(ObjectInputFilter.Config.createFilter("maxdepth=3;maxrefs=32;maxarray=" + limit));
        }

        @Override
        protected ObjectStreamClass readClassDescriptor() throws IOException, ClassNotFoundException {
            ObjectStreamClass desc = super.readClassDescriptor();
            if ("[B".equals(desc.getName())) {
                return desc;
            }
            if (!expected.equals(desc.getName())) {
                throw new InvalidClassException(desc.getName(), "not an IBM-dialect entry (expected " + expected + ")");
            }
            ObjectStreamClass mine = ObjectStreamClass.lookup(form);
            if (mine.getSerialVersionUID() != desc.getSerialVersionUID()) {
                throw new InvalidClassException(desc.getName(), "serialVersionUID " + Long.toHexString(desc.getSerialVersionUID())
                        + " is not the one IBM's JRE writes");
            }
            return mine;
        }
    }

    /**
     * Whether these bytes are a JCEKS keystore whose first secret key is in IBM's dialect (cheap:
     * reads no further than that entry's class name).
     */
    static boolean looksIbm(byte[] data) {
        byte[] marker = ("\u0000\u0019" + SEALED_OBJECT).getBytes(StandardCharsets.ISO_8859_1);
        if (data.length < 12 || (((data[0] & 0xff) << 24) | ((data[1] & 0xff) << 16) | ((data[2] & 0xff) << 8) | (data[3] & 0xff)) != MAGIC) {
            return false;
        }
        for (int i = 12; i + 6 + marker.length <= data.length; i++) {
            if (data[i] == (byte) 0xac && data[i + 1] == (byte) 0xed && data[i + 4] == 0x73 && data[i + 5] == 0x72) {
                return Arrays.equals(Arrays.copyOfRange(data, i + 6, i + 6 + marker.length), marker);
            }
        }
        return false;
    }

    /** Parses the file and checks its integrity hash; decrypts nothing. */
    static IbmJceks load(byte[] data, char[] storePassword) throws IOException {
        if (data.length < 32) {
            throw new IOException("the keystore is truncated");
        }
        int end = data.length - 20;
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(data, 0, end));
        if (in.readInt() != MAGIC) {
            throw new IOException("not a JCEKS keystore");
        }
        int version = in.readInt();
        if (version != 2) {
            throw new IOException("JCEKS version " + version + " is not read here");
        }
        int count = in.readInt();
        Map<String, SealedForm> secrets = new HashMap<>();
        Set<String> others = new HashSet<>();
        Set<String> certificates = new HashSet<>();
        for (int i = 0; i < count; i++) {
            readEntry(in, end, secrets, others, certificates);
        }
        if (in.available() != 0) {
            throw new IOException("bytes follow the last entry");
        }
        checkIntegrity(data, end, storePassword);
        return new IbmJceks(secrets, others, certificates);
    }

    private static void readEntry(DataInputStream in, int limit, Map<String, SealedForm> secrets, Set<String> others,
                                  Set<String> certificates) throws IOException {
        int tag = in.readInt();
        String alias = in.readUTF().toLowerCase(Locale.ENGLISH);
        in.readLong(); // creation time
        if (tag == 3) {
            SealedForm sealed = read(new FormReader(in, SEALED_OBJECT, SealedForm.class, limit), SealedForm.class);
            if (!"PBE".equals(sealed.paramsAlg) || !PBE.equals(sealed.sealAlg)) {
                throw new IOException("secret key " + alias + " is sealed with " + sealed.sealAlg + "/" + sealed.paramsAlg
                        + ", not as IBM's JRE seals keys");
            }
            secrets.put(alias, sealed);
        } else if (tag == 2) {
            skipCertificate(in);
            certificates.add(alias);
        } else if (tag == 1) {
            skip(in, in.readInt());
            int chain = in.readInt();
            for (int c = 0; c < chain; c++) {
                skipCertificate(in);
            }
            others.add(alias);
        } else {
            throw new IOException("unknown entry type " + tag);
        }
    }

    private static <T> T read(ObjectInputStream in, Class<T> type) throws IOException {
        try {
            return type.cast(in.readObject());
        } catch (ClassNotFoundException | ClassCastException e) {
            throw new IOException("unexpected serialized object: " + e.getMessage(), e);
        }
    }

    private static void skipCertificate(DataInputStream in) throws IOException {
        in.readUTF();
        skip(in, in.readInt());
    }

    private static void skip(DataInputStream in, int length) throws IOException {
        if (length < 0 || in.skipBytes(length) != length) {
            throw new EOFException("an entry runs past the end of the keystore");
        }
    }

    private static void checkIntegrity(byte[] data, int end, char[] password) throws IOException {
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            for (char c : password) {
                sha1.update((byte) (c >> 8));
                sha1.update((byte) c);
            }
            sha1.update("Mighty Aphrodite".getBytes(StandardCharsets.UTF_8));
            sha1.update(data, 0, end);
            if (!MessageDigest.isEqual(sha1.digest(), Arrays.copyOfRange(data, end, data.length))) {
                throw new IOException("Keystore was tampered with, or password was incorrect",
                        new UnrecoverableKeyException("Password verification failed"));
            }
        } catch (GeneralSecurityException e) {
            throw new IOException("SHA-1 is not available: " + e, e);
        }
    }

    @Override
    public String dialect() {
        return "ibm";
    }

    @Override
    public boolean containsAlias(String alias) {
        String key = alias.toLowerCase(Locale.ENGLISH);
        return secrets.containsKey(key) || others.contains(key) || certificates.contains(key);
    }

    @Override
    public boolean isCertificateEntry(String alias) {
        return certificates.contains(alias.toLowerCase(Locale.ENGLISH));
    }

    /** Decrypts with the JDK's PBEWithMD5AndTripleDES and reads the raw key out of IBM's key object. */
    @Override
    public Key getKey(String alias, char[] password) throws GeneralSecurityException {
        SealedForm sealed = secrets.get(alias.toLowerCase(Locale.ENGLISH));
        if (sealed == null) {
            if (others.contains(alias.toLowerCase(Locale.ENGLISH))) {
                throw new GeneralSecurityException("a private key entry (not read here)");
            }
            return null;
        }
        AlgorithmParameters params = AlgorithmParameters.getInstance(PBE);
        try {
            params.init(sealed.encodedParams);
        } catch (IOException e) {
            throw new GeneralSecurityException("damaged PBE parameters", e);
        }
        SecretKey pbeKey = SecretKeyFactory.getInstance(PBE).generateSecret(new PBEKeySpec(password));
        Cipher cipher = Cipher.getInstance(PBE);
        cipher.init(Cipher.DECRYPT_MODE, pbeKey, params);
        byte[] plain;
        try {
            plain = cipher.doFinal(sealed.encryptedContent);
        } catch (BadPaddingException e) {
            throw new UnrecoverableKeyException("Given final block not properly padded: wrong key password");
        }
        try (FormReader reader = new FormReader(new ByteArrayInputStream(plain), IBM_AES_KEY, AesKeyForm.class, plain.length)) {
            AesKeyForm key = read(reader, AesKeyForm.class);
            if (key.key == null || key.key.length == 0) {
                throw new GeneralSecurityException("an empty " + IBM_AES_KEY);
            }
            return new SecretKeySpec(key.key, "AES");
        } catch (IOException e) {
            throw new UnrecoverableKeyException("the decrypted key is not a " + IBM_AES_KEY + " (wrong key password?): " + e.getMessage());
        }
    }
}
