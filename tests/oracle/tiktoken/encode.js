// encode.js — the oracle for gradc's GPT-2 BPE (runtime/rt_bpe.c).
// Encodes a UTF-8 file with js-tiktoken's "gpt2" encoding and prints the ids,
// one per line, so the output can be diffed against bpe_encode's.
//   node encode.js FILE            <|endoftext|> encoded as ordinary text
//   node encode.js --special FILE  <|endoftext|> becomes id 50256
"use strict";
const fs = require("fs");
const { getEncoding } = require("js-tiktoken");

const args = process.argv.slice(2);
const special = args[0] === "--special";
const file = special ? args[1] : args[0];
if (!file) {
  console.error("usage: node encode.js [--special] FILE");
  process.exit(2);
}
const text = fs.readFileSync(file, "utf8");
const enc = getEncoding("gpt2");
const ids = special ? enc.encode(text, "all") : enc.encode(text, [], []);
process.stdout.write(ids.join("\n") + (ids.length ? "\n" : ""));
