// Continuous batching under load: 16 concurrent streams decode together and
// each equals the same request served alone; clients that disconnect free
// their KV blocks (streaming or not); a shared prompt prefix is served from the prefix cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, metrics, waitFor, streamChat, MODEL_ID } from './lib.mjs';

let server;
let client;
before(async () => {
  server = await startServer(['--parallel', '16', '--max-queue', '64', '--ctx', '2048']);
  client = server.client();
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0);
});

const topics = ['a dragon', 'the moon', 'a small boat', 'winter', 'a lost key', 'the market', 'an old clock',
  'a garden', 'the train', 'a red kite', 'the river', 'a letter', 'the forest', 'a lighthouse', 'bread', 'the city'];
const request = (i, extra = {}) => ({
  model: MODEL_ID, messages: [{ role: 'user', content: `Tell me a story about ${topics[i]}.` }],
  max_tokens: 40, temperature: 0, ...extra,
});

test('16 concurrent streams at temperature 0 equal the requests served alone', async () => {
  const alone = [];
  for (let i = 0; i < 16; ++i) alone.push((await client.chat.completions.create(request(i))).choices[0].message.content);
  let peakRunning = 0;
  const poll = setInterval(async () => {
    try { peakRunning = Math.max(peakRunning, (await metrics(server.url))['frugal:num_requests_running']); } catch { /* ignore */ }
  }, 20);
  const together = await Promise.all(topics.map((_, i) => streamChat(client, request(i))));
  clearInterval(poll);
  for (let i = 0; i < 16; ++i) assert.equal(together[i].text, alone[i], `stream ${i} differs`);
  assert.ok(peakRunning > 1, `requests never ran together (peak ${peakRunning})`);
});

test('30% of clients disconnecting mid-stream: KV usage returns to 0', async () => {
  const dropped = new Set([1, 4, 7, 10, 13]);
  const runs = topics.map((_, i) => {
    if (!dropped.has(i)) return streamChat(client, request(i, { max_tokens: 30 }));
    // These would run for 1900 tokens if their disconnect were not noticed.
    return streamChat(client, request(i, { max_tokens: 1900, ignore_eos: true }), {
      onChunk: (_chunk, n, stream) => { if (n >= 4) { stream.controller.abort(); return false; } return true; },
    }).catch((e) => ({ aborted: e }));
  });
  const results = await Promise.all(runs);
  for (let i = 0; i < 16; ++i) if (!dropped.has(i)) assert.ok(results[i].text.length > 0);
  const m = await waitFor(async () => {
    const v = await metrics(server.url);
    return v['frugal:kv_cache_usage_perc'] === 0 && v['frugal:num_requests_running'] === 0 ? v : null;
  }, { timeoutMs: 5000, what: 'kv_cache_usage_perc to return to 0' });
  assert.equal(m['frugal:num_requests_waiting'], 0);
});

test('a non-streaming client that disconnects frees its sequence at once', async () => {
  // 1900 tokens take several seconds on the tiny model; the abort must end it well before.
  const before = (await metrics(server.url))['frugal:generation_tokens_total'];
  const ac = new AbortController();
  const pending = client.chat.completions.create(request(2, { max_tokens: 1900, ignore_eos: true }),
    { signal: ac.signal, maxRetries: 0 }).catch((e) => ({ aborted: e }));
  await waitFor(async () => (await metrics(server.url))['frugal:num_requests_running'] === 1,
    { what: 'the request to run' });
  const abortedAt = Date.now();
  ac.abort();
  assert.ok((await pending).aborted, 'the request was not aborted');
  const m = await waitFor(async () => {
    const v = await metrics(server.url);
    return v['frugal:kv_cache_usage_perc'] === 0 && v['frugal:num_requests_running'] === 0 ? v : null;
  }, { timeoutMs: 1500, what: 'the sequence to be cancelled' });
  assert.ok(m['frugal:generation_tokens_total'] - before < 1900, 'it ran to the end');
  assert.ok(Date.now() - abortedAt < 1500);
});

test('a shared long prefix is served from the prefix cache', async () => {
  const prefix = 'You are a careful assistant. ' + Array.from({ length: 120 }, (_, i) => `Rule ${i}: be kind.`).join(' ');
  const ask = (q) => ({ model: MODEL_ID, max_tokens: 4, temperature: 0,
    messages: [{ role: 'system', content: prefix }, { role: 'user', content: q }] });
  const before = await metrics(server.url);
  const first = await streamChat(client, { ...ask('What is rule 3?'), stream_options: { include_usage: true } });
  const second = await streamChat(client, { ...ask('And rule 7?'), stream_options: { include_usage: true } });
  const after = await metrics(server.url);
  const usage1 = first.chunks.at(-1).usage;
  const usage2 = second.chunks.at(-1).usage;
  assert.ok(usage1.prompt_tokens > 1000, `prefix too short: ${usage1.prompt_tokens}`);
  assert.ok(usage2.prompt_tokens_details.cached_tokens >= usage2.prompt_tokens - 32,
    `cached ${usage2.prompt_tokens_details.cached_tokens} of ${usage2.prompt_tokens}`);
  assert.ok(after['frugal:prefix_cache_hits_total'] - before['frugal:prefix_cache_hits_total'] >= usage2.prompt_tokens_details.cached_tokens);
  assert.ok(after['frugal:prefix_cache_queries_total'] > before['frugal:prefix_cache_queries_total']);
  assert.ok(second.ttft < first.ttft, `TTFT with the cached prefix ${second.ttft} ms, without ${first.ttft} ms`);
});
