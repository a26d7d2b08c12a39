// Copyright (c) 2026 tapecrypt.ekm contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
// Loads each .properties file named on the command line with java.util.Properties.load(InputStream) and prints
// "FILE <count>", then "ENTRY <key> <value>" per entry, both as UTF-16 code units in hex.
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Properties;

public class LoadProperties {
    static String hex(String s) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            out.append(String.format("%04x", (int) s.charAt(i)));
        }
        return out.toString();
    }

    public static void main(String[] args) throws Exception {
        for (String path : args) {
            Properties properties = new Properties();
            try (InputStream in = new FileInputStream(path)) {
                properties.load(in);
            }
            System.out.println("FILE " + properties.size());
            for (String key : properties.stringPropertyNames()) {
                System.out.println("ENTRY " + hex(key) + " " + hex(properties.getProperty(key)));
            }
        }
    }
}
