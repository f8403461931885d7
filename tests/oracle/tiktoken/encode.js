// encode.js — the oracle for gradc's GPT-2 BPE (runtime/rt_bpe.c).
// Encodes UTF-8 files with js-tiktoken's "gpt2" encoding and prints, for each
// file, a line "# FILE" and then its ids one per line: the same output as
// bpe_encode.c, so the two diff directly.
//   node encode.js FILE...            <|endoftext|> encoded as ordinary text
//   node encode.js --special FILE...  <|endoftext|> becomes id 50256
"use strict";
const fs = require("fs");
const { getEncoding } = require("js-tiktoken");

const args = process.argv.slice(2);
const special = args[0] === "--special";
const files = special ? args.slice(1) : args;
if (files.length === 0) {
  console.error("usage: node encode.js [--special] FILE...");
  process.exit(2);
}
const enc = getEncoding("gpt2");
const out = [];
for (const file of files) {
  const text = fs.readFileSync(file, "utf8");
  const ids = special ? enc.encode(text, "all") : enc.encode(text, [], []);
  out.push("# " + file + "\n" + ids.map((id) => id + "\n").join(""));
}
process.stdout.write(out.join(""));
