// Reference Schematron runner on SaxonJS, for the stylesheet Java Saxon-HE 9.9 cannot compile
// (the BR-FR "Flux 2" UBL XSLT). Same protocol as SaxonReference.java: jobs on stdin, one per line,
// "<document path>\t<SEF path>" (the stylesheet compiled beforehand with `xslt3 -export -nogo`),
// one JSON object per job on stdout, in input order.
"use strict";

const fs = require("fs");
const readline = require("readline");
const SaxonJS = require("saxon-js");

const SVRL = "http://purl.oclc.org/dsdl/svrl";
const sefs = new Map(); // SEF path -> parsed SEF, so each stylesheet is read once
const xpathOptions = { namespaceContext: { svrl: SVRL } };

function describe(err) {
  const code = err && err.code ? String(err.code).replace(/^.*}/, "") : "ERROR";
  const message = String((err && err.message) || err).replace(/\s+/g, " ").trim().slice(0, 300);
  return `${code}: ${message}`;
}

function run(document, sefPath) {
  const result = { document, stylesheet: sefPath, fired: 0, items: [], error: null };
  try {
    if (!sefs.has(sefPath)) {
      sefs.set(sefPath, JSON.parse(fs.readFileSync(sefPath, "utf8")));
    }
    const output = SaxonJS.transform(
      {
        stylesheetInternal: sefs.get(sefPath),
        sourceText: fs.readFileSync(document, "utf8").replace(/^\uFEFF/, ""),
        destination: "document",
      },
      "sync",
    );
    const svrl = output.principalResult;
    result.fired = Number(
      SaxonJS.XPath.evaluate("count(//svrl:fired-rule)", svrl, xpathOptions),
    );
    const nodes = SaxonJS.XPath.evaluate(
      "//(svrl:failed-assert | svrl:successful-report)",
      svrl,
      Object.assign({ resultForm: "array" }, xpathOptions),
    );
    for (const node of nodes) {
      const text = SaxonJS.XPath.evaluate(
        "normalize-space(string-join(svrl:text, ' '))",
        node,
        xpathOptions,
      );
      result.items.push({
        kind: node.localName,
        id: node.getAttribute("id") || null,
        flag: node.getAttribute("flag") || null,
        location: node.getAttribute("location") || null,
        text: String(text),
      });
    }
  } catch (err) {
    result.items = [];
    result.error = describe(err);
  }
  return result;
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    const [document, sefPath] = line.split("\t");
    process.stdout.write(JSON.stringify(run(document, sefPath)) + "\n");
  }
}

main();
