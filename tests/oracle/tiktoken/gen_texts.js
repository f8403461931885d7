// gen_texts.js — writes the texts that bpe_vs_tiktoken.sh compares, into DIR:
// hand-picked cases (unicode, emoji, CRLF, runs of spaces and newlines,
// digits, contractions, <|endoftext|>) and seeded random mixtures of them.
//   node gen_texts.js DIR [N_RANDOM]
// The characters are all assigned in Unicode 14 (the version of gradc's
// class table) and avoid U+0085 and U+FEFF, where JavaScript's \s differs
// from Unicode White_Space (see docs/tokenizer.md).
"use strict";
const fs = require("fs");
const path = require("path");

const CASES = {
  "hello": "Hello, world",
  "unicode": "Grüße aus Köln! Ωμέγα, Жизнь, 中文字符, العربية, हिन्दी, ǅemal ʰa.",
  "marks": "e\u0301e\u0301 cafe\u0301 n\u0303o\u0303 क्षि",
  "emoji": "I 😀 emoji 👍🏽👍🏽 🇫🇷🇩🇪 👨‍👩‍👧 ok👌!",
  "crlf": "line one\r\nline two\r\n\r\nline four\r\n",
  "spaces": "a  b   c    d\t\te \t f  \n  g   \n\n\n   h     ",
  "newlines": "\n\n\npara\n\n\n\nnext para\n \n \n\n",
  "unicode_space": "a\u00a0b\u3000\u3000c\u2028d\u2003\u2003 e\u2009f \u00a0\u00a0",
  "digits": "1 12 123 1234 12345 3.14159 1,000,000 2024-01-02 ٣٤٥ ²³ Ⅻ ½ 0x1F",
  "contractions": "I'm we're you've he'll she'd it's can't 'tis ''s 'S I'M don''t 'x' rock'n'roll",
  "punct": "!!! ??? ... --- === ((( ))) \"quoted\" 'single' `tick` a.b,c;d:e",
  "endoftext": "first<|endoftext|>second <|endoftext|> third<|endoftext|><|endoftext|>",
  "endoftext_near": "<|endoftext| <|endoftext <|endo<|endoftext|>|> <||>",
  "empty": "",
  "one_space": " ",
  "trailing_newline": "ends with newline\n",
  "long_word": "a".repeat(3000) + " " + "ab".repeat(1500) + " " + "9".repeat(500),
  "long_space": " ".repeat(2000) + "x" + "\n".repeat(1000),
};

const POOLS = [
  ["the", "The", "quick", "brown", "fox", "a", "I", "Z", "x", "hello", "world"],
  ["0", "1", "42", "007", "3.5", "1e9", "٣", "²", "Ⅻ", "½"],
  ["!", "?", ".", ",", ";", ":", "-", "_", "(", ")", "[", "]", "{", "}", "<", ">", "|",
   "/", "\\", "\"", "`", "~", "@", "#", "$", "%", "^", "&", "*", "+", "="],
  ["'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'x", "' s"],
  [" ", " ", " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", "\u00a0", "\u3000", "\u2028",
   "\u2003", "\v", "\f", " \n", "\n "],
  ["é", "ß", "Ω", "ж", "中", "文", "ا", "ह", "ñ", "ǅ", "ʰ", "ﬁ", "Ä", "ı"],
  ["\u0301", "\u093f", "\u200d", "\u00ad", "©", "€", "→", "∑", "♥", "\u0000", "\u007f"],
  ["😀", "👍🏽", "🇫🇷", "👨‍👩‍👧", "🙂", "𝔘", "𐍈"],
  ["<|endoftext|>", "<|", "|>", "endoftext"],
];

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomText(rand) {
  const n = 1 + Math.floor(rand() * 120);
  const weights = POOLS.map(() => rand());
  const total = weights.reduce((a, b) => a + b, 0);
  let s = "";
  for (let i = 0; i < n; i++) {
    let r = rand() * total, p = 0;
    while (r > weights[p] && p < POOLS.length - 1) r -= weights[p++];
    const pool = POOLS[p];
    s += pool[Math.floor(rand() * pool.length)];
  }
  return s;
}

const dir = process.argv[2];
const nRandom = Number(process.argv[3] || 300);
if (!dir) {
  console.error("usage: node gen_texts.js DIR [N_RANDOM]");
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(CASES))
  fs.writeFileSync(path.join(dir, name + ".txt"), text);
const rand = mulberry32(20240611);
for (let i = 0; i < nRandom; i++)
  fs.writeFileSync(path.join(dir, `random_${String(i).padStart(4, "0")}.txt`), randomText(rand));
