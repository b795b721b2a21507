// Validates documents against phoenix's JSON Schema with ajv, a real draft
// 2020-12 validator, so that the schema is judged by something other than the
// code that generates it. spec/schema_test.go runs it.
//
// Usage: node check.mjs SCHEMA.json DOCUMENTS.json
//
// DOCUMENTS.json is a list of {"name": ..., "document": ...}. The output is one
// JSON list with {"name", "valid", "errors"} per document, errors as ajv reports
// them (instancePath, keyword, message). The exit status is 0 whether or not
// documents are valid; it is 1 when the schema itself does not compile, which
// includes ajv's strict mode finding a keyword that would be silently ignored.
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";

const [schemaFile, documentsFile] = process.argv.slice(2);
if (!schemaFile || !documentsFile) {
  console.error("usage: node check.mjs SCHEMA.json DOCUMENTS.json");
  process.exit(2);
}

// allowUnionTypes: the schema says ["string", "number", "boolean"] where the
// loader reads any scalar as a string; the rest of strict mode stays on.
const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
const validate = ajv.compile(JSON.parse(readFileSync(schemaFile, "utf8")));

const results = JSON.parse(readFileSync(documentsFile, "utf8")).map(({ name, document }) => {
  const valid = validate(document);
  const errors = (validate.errors ?? []).map(({ instancePath, keyword, message }) => ({ instancePath, keyword, message }));
  return { name, valid, errors };
});
process.stdout.write(JSON.stringify(results) + "\n");
