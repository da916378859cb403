// The OpenAI API surface of frugal serve, through the official client:
// chat and completions, streaming with usage, n, stop, seeds, logprobs and
// every error the API promises.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, postRaw, streamChat, MODEL_ID } from './lib.mjs';

const KEY = 'sk-test-key-0123456789';
let server;
let client;

before(async () => {
  server = await startServer(['--parallel', '4', '--api-key', KEY]);
  client = server.client(KEY);
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code: ${server.stderr()}`);
});

const chat = (content, extra = {}) => ({
  model: MODEL_ID, messages: [{ role: 'user', content }], max_tokens: 24, temperature: 0, ...extra,
});

test('models, health and ready', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL_ID]);
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  assert.equal((await fetch(`${server.url}/ready`)).status, 200);
});

test('chat completion', async () => {
  const r = await client.chat.completions.create(chat('Tell me a story about a cat.'));
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, MODEL_ID);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 5);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('content as an array of text parts equals the plain string', async () => {
  const a = await client.chat.completions.create(chat('Hello there, friend'));
  const b = await client.chat.completions.create({
    ...chat(''), messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello there, friend' }] }],
  });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test('completion with max_tokens ends by length', async () => {
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, ignore_eos: true });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 8);
  assert.ok(r.choices[0].text.length > 0);
});

test('completion prompt as token ids equals the text prompt', async () => {
  const tok = await postRaw(server.url, '/tokenize', { prompt: 'Once upon a time' }, { Authorization: `Bearer ${KEY}` });
  assert.equal(tok.status, 200);
  const a = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  const b = await client.completions.create({ model: MODEL_ID, prompt: tok.json.tokens, max_tokens: 8, temperature: 0 });
  assert.equal(a.choices[0].text, b.choices[0].text);
  const detok = await postRaw(server.url, '/detokenize', { tokens: tok.json.tokens }, { Authorization: `Bearer ${KEY}` });
  assert.equal(detok.json.prompt, 'Once upon a time');
});

test('streaming chat: role first, content equals the non-streamed reply, usage chunk last', async () => {
  const params = chat('Write about the sea.', { max_tokens: 20 });
  const full = await client.chat.completions.create(params);
  const { text, chunks } = await streamChat(client, { ...params, stream_options: { include_usage: true } });
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(text, full.choices[0].message.content);
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, full.usage.completion_tokens);
  assert.equal(last.usage.prompt_tokens, full.usage.prompt_tokens);
  const finishes = chunks.flatMap((c) => c.choices.filter((x) => x.finish_reason).map((x) => x.finish_reason));
  assert.deepEqual(finishes, [full.choices[0].finish_reason]);
  for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
});

test('streaming without include_usage sends no usage chunk', async () => {
  const { chunks } = await streamChat(client, chat('Hi', { max_tokens: 5 }));
  assert.ok(chunks.every((c) => c.choices.length === 1 && c.usage === undefined));
});

test('streaming completion', async () => {
  const stream = await client.completions.create({ model: MODEL_ID, prompt: 'The weather today', max_tokens: 10, temperature: 0,
    stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage = null;
  for await (const c of stream) {
    if (c.choices.length) text += c.choices[0].text;
    if (c.usage) usage = c.usage;
  }
  const full = await client.completions.create({ model: MODEL_ID, prompt: 'The weather today', max_tokens: 10, temperature: 0 });
  assert.equal(text, full.choices[0].text);
  assert.equal(usage.completion_tokens, full.usage.completion_tokens);
});

test('n=2 gives two choices', async () => {
  const r = await client.chat.completions.create(chat('Name a color.', { n: 2, temperature: 1, seed: 7, max_tokens: 12 }));
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  assert.ok(r.usage.completion_tokens >= 2);
  const { chunks } = await streamChat(client, chat('Name a color.', { n: 2, temperature: 1, seed: 7, max_tokens: 12 }));
  const texts = ['', ''];
  for (const c of chunks) for (const ch of c.choices) texts[ch.index] += ch.delta.content ?? '';
  assert.deepEqual(texts, r.choices.map((c) => c.message.content));
});

test('stop sequences end the text before the stop', async () => {
  const base = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 30, temperature: 0, ignore_eos: true });
  const text = base.choices[0].text;
  const words = text.split(' ').filter((w) => w.length >= 2);
  assert.ok(words.length >= 3, `need words in ${JSON.stringify(text)}`);
  const stop = words[2];
  const cut = text.indexOf(stop);
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 30, temperature: 0,
    ignore_eos: true, stop: ['@@never@@', stop] });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].text, text.slice(0, cut));
  const stream = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 30, temperature: 0,
    ignore_eos: true, stop, stream: true });
  let streamed = '';
  let finish = null;
  for await (const c of stream) { streamed += c.choices[0]?.text ?? ''; finish = c.choices[0]?.finish_reason ?? finish; }
  assert.equal(streamed, text.slice(0, cut));
  assert.equal(finish, 'stop');
});

test('the same seed reproduces, other seeds differ', async () => {
  const p = (seed) => client.completions.create({ model: MODEL_ID, prompt: 'In the beginning', max_tokens: 24, temperature: 1.2, seed, ignore_eos: true });
  const a = (await p(42)).choices[0].text;
  const b = (await p(42)).choices[0].text;
  assert.equal(a, b);
  const others = [(await p(1)).choices[0].text, (await p(2)).choices[0].text, (await p(3)).choices[0].text];
  assert.ok(others.some((t) => t !== a), 'three other seeds all gave the same text');
});

test('chat logprobs with top_logprobs', async () => {
  const r = await client.chat.completions.create(chat('Hello', { logprobs: true, top_logprobs: 3, max_tokens: 6, ignore_eos: true }));
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const e of content) {
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 3);
    assert.equal(e.top_logprobs[0].token, e.token); // greedy picks the most likely token
    assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-5);
    assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
  }
  assert.equal(content.map((e) => e.token).join(''), r.choices[0].message.content);
  const plain = await client.chat.completions.create(chat('Hello', { max_tokens: 6 }));
  assert.equal(plain.choices[0].logprobs, null);
});

test('completion logprobs', async () => {
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'Hello', max_tokens: 5, temperature: 0, logprobs: 2, ignore_eos: true });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 5);
  assert.equal(lp.token_logprobs.length, 5);
  assert.equal(lp.top_logprobs.length, 5);
  assert.ok(lp.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2));
  assert.deepEqual(lp.text_offset, lp.tokens.map((_, i) => lp.tokens.slice(0, i).join('').length));
});

async function expectApiError(promise, status, param, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert.equal(e.status, status, e.message);
    if (param !== undefined) assert.equal(e.param, param);
    if (code !== undefined) assert.equal(e.code, code);
    return true;
  });
}

test('400 names the invalid parameter', async () => {
  await expectApiError(client.chat.completions.create(chat('x', { temperature: 5 })), 400, 'temperature');
  await expectApiError(client.chat.completions.create(chat('x', { top_p: 0 })), 400, 'top_p');
  await expectApiError(client.chat.completions.create(chat('x', { max_tokens: 0 })), 400, 'max_tokens');
  await expectApiError(client.chat.completions.create(chat('x', { n: 9 })), 400, 'n');
  await expectApiError(client.chat.completions.create(chat('x', { stop: 3 })), 400, 'stop');
  await expectApiError(client.chat.completions.create(chat('x', { top_logprobs: 2 })), 400, 'top_logprobs');
  await expectApiError(client.chat.completions.create({ model: MODEL_ID, max_tokens: 3 }), 400, 'messages');
  await expectApiError(client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'tool', content: 'x' }] }), 400, 'messages[0].role');
  await expectApiError(client.completions.create({ model: MODEL_ID, prompt: 'x', echo: true }), 400, 'echo');
});

test('unsupported parameters get a 400 naming them', async () => {
  await expectApiError(client.chat.completions.create(chat('x', {
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }] })), 400, 'tools');
  await expectApiError(client.chat.completions.create(chat('x', {
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } } })), 400, 'response_format');
  await expectApiError(client.chat.completions.create(chat('x', { logit_bias: { 5: 10 } })), 400, 'logit_bias');
  await expectApiError(client.chat.completions.create(chat('x', { frobnicate: 1 })), 400, 'frobnicate');
});

test('invalid JSON is a 400 with an OpenAI error body', async () => {
  const r = await postRaw(server.url, '/v1/chat/completions', '{"model": ', { Authorization: `Bearer ${KEY}` });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.ok(r.json.error.message.length > 0);
  assert.ok('param' in r.json.error && 'code' in r.json.error);
});

test('401 for a missing or wrong key; /health stays open', async () => {
  await expectApiError(server.client('wrong').chat.completions.create(chat('x')), 401, undefined, 'invalid_api_key');
  await expectApiError(server.client(KEY.slice(0, -1) + 'X').models.list(), 401);
  await expectApiError(server.client(KEY + 'extra').models.list(), 401);
  const r = await postRaw(server.url, '/v1/chat/completions', chat('x'));
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'invalid_api_key');
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
});

test('404 for an unknown model', async () => {
  await expectApiError(client.chat.completions.create({ ...chat('x'), model: 'gpt-4o' }), 404, 'model', 'model_not_found');
  await expectApiError(client.completions.create({ model: 'nope', prompt: 'x' }), 404, 'model', 'model_not_found');
});
