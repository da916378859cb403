// Limits of a small server: body size (413), context length (400), a full
// waiting queue (429 + Retry-After), and SIGTERM draining.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, postRaw, metrics, waitFor, MODEL_ID } from './lib.mjs';

let server;
let client;
before(async () => {
  server = await startServer(['--parallel', '1', '--max-queue', '1', '--ctx', '256', '--max-body-bytes', '65536']);
  client = server.client();
});
after(async () => { await server.stop(); });

test('413 past the body limit', async () => {
  const r = await postRaw(server.url, '/v1/completions', { model: MODEL_ID, prompt: 'x'.repeat(100000) });
  assert.equal(r.status, 413);
  assert.equal(r.json.error.code, 'payload_too_large');
});

test('a prompt longer than the context is a 400, not a truncation', async () => {
  const long = 'word '.repeat(400);
  await assert.rejects(client.completions.create({ model: MODEL_ID, prompt: long, max_tokens: 4 }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'prompt');
    assert.equal(e.code, 'context_length_exceeded');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: long }] }),
    (e) => e.status === 400 && e.param === 'messages' && e.code === 'context_length_exceeded');
  await assert.rejects(client.completions.create({ model: MODEL_ID, prompt: 'short', max_tokens: 1000 }),
    (e) => e.status === 400 && e.param === 'max_tokens');
});

test('429 with Retry-After when the waiting queue is full', async () => {
  const ac = new AbortController();
  const running = await client.completions.create({ model: MODEL_ID, prompt: 'Long story:', max_tokens: 240, ignore_eos: true,
    temperature: 0, stream: true }, { signal: ac.signal });
  const it = running[Symbol.asyncIterator]();
  await it.next(); // the first request is running
  const queued = client.completions.create({ model: MODEL_ID, prompt: 'Queued', max_tokens: 2 });
  await waitFor(async () => (await metrics(server.url))['frugal:num_requests_waiting'] === 1, { what: 'one waiting request' });
  const r = await postRaw(server.url, '/v1/completions', { model: MODEL_ID, prompt: 'Rejected', max_tokens: 2 });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '1');
  assert.equal(r.json.error.type, 'rate_limit_error');
  ac.abort();
  await it.return?.().catch(() => {});
  const q = await queued;
  assert.equal(q.choices.length, 1);
});

test('SIGTERM: new requests get 503, the in-flight one finishes, exit 0', async () => {
  const stream = await client.completions.create({ model: MODEL_ID, prompt: 'Drain me', max_tokens: 120, ignore_eos: true,
    temperature: 0, stream: true, stream_options: { include_usage: true } });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  server.proc.kill('SIGTERM');
  await waitFor(async () => (await fetch(`${server.url}/ready`)).status === 503, { what: '/ready to turn 503' });
  await assert.rejects(client.completions.create({ model: MODEL_ID, prompt: 'late', max_tokens: 2 }), (e) => e.status === 503);
  let usage = null;
  for (;;) {
    const { value, done } = await it.next();
    if (done) break;
    if (value.usage) usage = value.usage;
  }
  assert.equal(usage.completion_tokens, 120);
  const { code } = await server.exited;
  assert.equal(code, 0);
});
