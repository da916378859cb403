#!/usr/bin/env node
// Closed-loop load generator for OpenAI-compatible servers (frugal serve,
// llama-server): at each concurrency level, that many clients send streaming
// /v1/completions requests back to back (~PROMPT-token prompts, exactly
// MAX_TOKENS generated with ignore_eos) and the run reports output tokens/s,
// time to first token and time per output token (p50/p99).
//
//   node bench/serve-load.mjs --url http://127.0.0.1:8080 --model tiny \
//        [--concurrency 1,4,16,64] [--requests 2] [--prompt-tokens 128] [--max-tokens 128] [--label frugal]
// --requests is per client per level. Output: one line per level, and JSON with --json.

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]?.startsWith('--') || all[i + 1] === undefined ? 'true' : all[i + 1]]);
  return acc;
}, []));
const url = args.url ?? 'http://127.0.0.1:8080';
const model = args.model ?? 'default';
const levels = (args.concurrency ?? '1,4,16,64').split(',').map(Number);
const perClient = Number(args.requests ?? 2);
const promptTokens = Number(args['prompt-tokens'] ?? 128);
const maxTokens = Number(args['max-tokens'] ?? 128);
const label = args.label ?? 'server';
const apiKey = args['api-key'];

const words = ['river', 'stone', 'light', 'garden', 'window', 'market', 'silver', 'cloud', 'harbor', 'forest',
  'letter', 'candle', 'bridge', 'winter', 'meadow', 'engine', 'lantern', 'valley', 'thunder', 'orchard'];
let counter = 0;
function prompt() {
  // Unique per request so no server can answer from a prefix cache.
  const n = ++counter;
  const out = [`Request ${n}:`];
  for (let i = 0; out.length < promptTokens - 4; ++i) out.push(words[(n * 7 + i * 13) % words.length]);
  return out.join(' ');
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function one() {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}) },
    body: JSON.stringify({ model, prompt: prompt(), max_tokens: maxTokens, temperature: 0, ignore_eos: true,
      stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  let first = null;
  let last = null;
  let tokens = 0;
  let usageTokens = null;
  for await (const part of res.body) {
    buf += decoder.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.usage) usageTokens = chunk.usage.completion_tokens;
        const text = chunk.choices?.[0]?.text;
        if (text) {
          const now = performance.now();
          if (first === null) first = now;
          last = now;
          ++tokens;
        }
      }
    }
  }
  const n = usageTokens ?? tokens;
  return { ttft: (first - t0) / 1000, tpot: n > 1 ? (last - first) / 1000 / (n - 1) : NaN, tokens: n };
}

const results = [];
for (const c of levels) {
  const samples = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    for (let r = 0; r < perClient; ++r) samples.push(await one());
  }));
  const wall = (performance.now() - t0) / 1000;
  const tokens = samples.reduce((s, x) => s + x.tokens, 0);
  const ttft = samples.map((s) => s.ttft).sort((a, b) => a - b);
  const tpot = samples.map((s) => s.tpot).filter(Number.isFinite).sort((a, b) => a - b);
  const row = { label, concurrency: c, requests: samples.length, output_tok_s: tokens / wall,
    ttft_p50: pct(ttft, 50), ttft_p99: pct(ttft, 99), tpot_p50: pct(tpot, 50), tpot_p99: pct(tpot, 99) };
  results.push(row);
  console.log(`${label} c=${c} requests=${row.requests} output_tok/s=${row.output_tok_s.toFixed(1)} ` +
    `ttft_p50=${row.ttft_p50.toFixed(3)}s ttft_p99=${row.ttft_p99.toFixed(3)}s ` +
    `tpot_p50=${(row.tpot_p50 * 1000).toFixed(1)}ms tpot_p99=${(row.tpot_p99 * 1000).toFixed(1)}ms`);
}
if (args.json) console.log(JSON.stringify(results));
