// A KV cache too small for every running sequence: the newest sequences are
// preempted and recomputed later, and every request still completes with
// the text it would have produced alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, metrics, waitFor, MODEL_ID } from './lib.mjs';

let server;
let client;
before(async () => {
  // 20 blocks of 16 tokens = 320 positions for 4 sequences of ~190 tokens each.
  server = await startServer(['--parallel', '4', '--ctx', '256', '--kv-blocks', '20', '--batch', '64']);
  client = server.client();
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0);
});

const req = (i) => ({ model: MODEL_ID, prompt: `Story number ${i}: once upon a time`, max_tokens: 180,
  temperature: 0, ignore_eos: true });

test('preempted sequences are recomputed and finish unchanged', { timeout: 120000 }, async () => {
  const alone = [];
  for (let i = 0; i < 4; ++i) alone.push((await client.completions.create(req(i))).choices[0].text);
  const before = (await metrics(server.url))['frugal:num_preemptions_total'];
  assert.equal(before, 0);
  const together = await Promise.all([0, 1, 2, 3].map((i) => client.completions.create(req(i))));
  for (let i = 0; i < 4; ++i) {
    assert.equal(together[i].usage.completion_tokens, 180);
    assert.equal(together[i].choices[0].text, alone[i], `request ${i} changed after preemption`);
  }
  const m = await metrics(server.url);
  assert.ok(m['frugal:num_preemptions_total'] > 0, 'no sequence was preempted');
  await waitFor(async () => (await metrics(server.url))['frugal:kv_cache_usage_perc'] === 0, { what: 'KV usage 0' });
});
