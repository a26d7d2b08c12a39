/*
 * Copyright (c) 2026 tapecrypt.ekm contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
package tapecrypt.standin;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.ErrorHandler;
import org.xml.sax.SAXException;
import org.xml.sax.SAXParseException;

/**
 * KeyGroups.xml in the stand-in's own schema (the vendor's schema is not public):
 * {@code <KeyGroups generator="tapecrypt-standin"><KeyGroup id="default" lastUsed="..."/></KeyGroups>}.
 *
 * <p>Only the last-used alias of the {@code default} group drives round-robin; other groups
 * found in the file are kept as they are.
 */
final class KeyGroups {
    static final String DEFAULT_GROUP = "default";

    private final Path file;
    private final Map<String, String> lastUsed;

    private KeyGroups(Path file, Map<String, String> lastUsed) {
        this.file = file;
        this.lastUsed = lastUsed;
    }

    /** Reads the file; an absent file is an empty group list, a malformed one is refused. */
    static KeyGroups load(Path file) throws FatalException {
        Map<String, String> groups = new LinkedHashMap<>();
        if (!Files.exists(file)) {
            return new KeyGroups(file, groups);
        }
        Document doc;
        try (InputStream in = Files.newInputStream(file)) {
            doc = parser().parse(in);
        } catch (SAXException e) {
            throw new FatalException("malformed KeyGroups.xml " + file + ": " + e.getMessage(), e);
        } catch (IOException e) {
            throw new FatalException("cannot read KeyGroups.xml " + file + ": " + e.getMessage(), e);
        }
        Element root = doc.getDocumentElement();
        if (!"KeyGroups".equals(root.getTagName())) {
            throw new FatalException("malformed KeyGroups.xml " + file + ": root element is <" + root.getTagName() + ">, expected <KeyGroups>");
        }
        NodeList children = root.getChildNodes();
        for (int i = 0; i < children.getLength(); i++) {
            Node n = children.item(i);
            if (n.getNodeType() != Node.ELEMENT_NODE) {
                continue;
            }
            Element e = (Element) n;
            String id = e.getAttribute("id");
            if (!"KeyGroup".equals(e.getTagName()) || id.isEmpty()) {
                throw new FatalException("malformed KeyGroups.xml " + file + ": expected <KeyGroup id=\"...\"/> elements, found <"
                        + e.getTagName() + ">" + (id.isEmpty() ? " without an id" : ""));
            }
            if (groups.containsKey(id)) {
                throw new FatalException("malformed KeyGroups.xml " + file + ": key group '" + id + "' appears twice");
            }
            groups.put(id, e.getAttribute("lastUsed"));
        }
        return new KeyGroups(file, groups);
    }

    /** A parser that resolves no DTDs or external entities: the file is data from another host. */
    private static DocumentBuilder parser() throws FatalException {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            f.setFeature("http://xml.org/sax/features/external-general-entities", false);
            f.setFeature("http://xml.org/sax/features/external-parameter-entities", false);
            f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
            f.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
            f.setAttribute(XMLConstants.ACCESS_EXTERNAL_SCHEMA, "");
            f.setXIncludeAware(false);
            f.setExpandEntityReferences(false);
            DocumentBuilder b = f.newDocumentBuilder();
            // The default handler prints to stderr; a refusal must stay one log line.
            b.setErrorHandler(new ErrorHandler() {
                @Override
                public void warning(SAXParseException e) {
                    // Warnings do not make the file unusable.
                }

                @Override
                public void error(SAXParseException e) throws SAXException {
                    throw e;
                }

                @Override
                public void fatalError(SAXParseException e) throws SAXException {
                    throw e;
                }
            });
            return b;
        } catch (ParserConfigurationException e) {
            throw new FatalException("the JDK's XML parser cannot be configured safely: " + e.getMessage(), e);
        }
    }

    boolean exists() {
        return Files.exists(file);
    }

    /** The last alias handed out from the default group, or null. */
    String lastUsed() {
        String v = lastUsed.get(DEFAULT_GROUP);
        return v == null || v.isEmpty() ? null : v;
    }

    KeyGroups withLastUsed(String alias) {
        Map<String, String> copy = new LinkedHashMap<>(lastUsed);
        copy.put(DEFAULT_GROUP, alias);
        return new KeyGroups(file, copy);
    }

    void save() throws IOException {
        Map<String, String> groups = new LinkedHashMap<>(lastUsed);
        groups.putIfAbsent(DEFAULT_GROUP, "");
        StringBuilder out = new StringBuilder();
        out.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.append("<!-- Written by the tapecrypt stand-in EKM at run time. This is not the vendor's KeyGroups.xml schema. -->\n");
        out.append("<KeyGroups generator=\"tapecrypt-standin\" version=\"1\">\n");
        for (Map.Entry<String, String> g : groups.entrySet()) {
            out.append("  <KeyGroup id=\"").append(escape(g.getKey())).append('"');
            if (!g.getValue().isEmpty()) {
                out.append(" lastUsed=\"").append(escape(g.getValue())).append('"');
            }
            out.append("/>\n");
        }
        out.append("</KeyGroups>\n");
        AtomicFiles.write(file, out.toString().getBytes(StandardCharsets.UTF_8));
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
