/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code symmetricKeySet} grammar: comma-separated key aliases and EKM alias ranges.
 *
 * <p>A range {@code DCA001-003} is a 3-letter prefix and two hex counters; it expands to
 * prefix + 18-digit zero-padded hex counter ({@code dca000000000000000001} ...). An item
 * that looks like a range is always read as one, even though a 12-character alias could in
 * principle contain a hyphen: EKM's own documentation gives the same precedence.
 * Key groups by GroupID are not supported by the stand-in.
 */
final class KeyAliases {
    /** More aliases than this means a typo in a range, not a real key set. */
    static final int MAX_ALIASES = 100_000;

    private static final Pattern RANGE = Pattern.compile("([A-Za-z]{3})([0-9A-Fa-f]{1,18})-([0-9A-Fa-f]{1,18})");
    private static final Pattern SEQUENTIAL = Pattern.compile("[A-Za-z]{3}[0-9A-Fa-f]{18}");
    private static final Pattern SHORT = Pattern.compile("[\\x21-\\x7e]{1,12}");
    private static final BigInteger COUNTER_LIMIT = BigInteger.ONE.shiftLeft(64);

    private KeyAliases() {
    }

    /** Expands the property value into lower-case aliases, in order, without duplicates. */
    static List<String> parse(String value) throws FatalException {
        if (value == null || value.trim().isEmpty()) {
            throw new FatalException("symmetricKeySet is empty or not set: the stand-in has no keys to serve");
        }
        Set<String> aliases = new LinkedHashSet<>();
        for (String raw : value.split(",")) {
            String item = raw.trim();
            if (item.isEmpty()) {
                throw new FatalException("symmetricKeySet has an empty item: '" + value.trim() + "'");
            }
            Matcher range = RANGE.matcher(item);
            if (range.matches()) {
                expand(item, range, aliases);
            } else if (SEQUENTIAL.matcher(item).matches() || SHORT.matcher(item).matches()) {
                aliases.add(item.toLowerCase(Locale.ROOT));
            } else {
                throw new FatalException("symmetricKeySet item '" + item + "' is neither a key alias (up to 12 printable characters, "
                        + "or 3 letters and 18 hex digits) nor an alias range (3 letters, hex first-last, e.g. DCA001-0FF)");
            }
            if (aliases.size() > MAX_ALIASES) {
                throw new FatalException("symmetricKeySet names more than " + MAX_ALIASES + " aliases; check the ranges");
            }
        }
        return new ArrayList<>(aliases);
    }

    private static void expand(String item, Matcher range, Set<String> aliases) throws FatalException {
        String prefix = range.group(1).toLowerCase(Locale.ROOT);
        BigInteger first = counter(item, range.group(2));
        BigInteger last = counter(item, range.group(3));
        if (first.compareTo(last) > 0) {
            throw new FatalException("symmetricKeySet range '" + item + "' has its first counter after its last");
        }
        if (last.subtract(first).compareTo(BigInteger.valueOf(MAX_ALIASES)) >= 0) {
            throw new FatalException("symmetricKeySet range '" + item + "' expands to more than " + MAX_ALIASES + " aliases");
        }
        for (BigInteger n = first; n.compareTo(last) <= 0; n = n.add(BigInteger.ONE)) {
            aliases.add(prefix + String.format(Locale.ROOT, "%018x", n));
        }
    }

    private static BigInteger counter(String item, String digits) throws FatalException {
        BigInteger n = new BigInteger(digits, 16);
        // 18 hex digits are allowed only with two leading zeros: the counter space is 64 bits.
        if (n.compareTo(COUNTER_LIMIT) >= 0) {
            throw new FatalException("symmetricKeySet range '" + item + "': an 18-digit counter must start with 00");
        }
        return n;
    }
}
