/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

/**
 * A reason for the stand-in to refuse to start (or to refuse a REFRESH).
 *
 * <p>The message is shown to an administrator as a single log line, so it must name the
 * file or setting at fault; newlines are flattened when it is printed.
 */
final class FatalException extends Exception {
    private static final long serialVersionUID = 1L;

    FatalException(String message) {
        super(message);
    }

    FatalException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The message on one line, as the FATAL log line and protocol replies need it. */
    String oneLine() {
        return flatten(getMessage());
    }

    static String flatten(String text) {
        if (text == null) {
            return "";
        }
        return text.replaceAll("[\\r\\n\\t]+", " ").trim();
    }
}
