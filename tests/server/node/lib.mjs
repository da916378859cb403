// Starts a real `frugal serve` on 127.0.0.1 with a free port and gives the
// tests an OpenAI client for it. The binary and model come from ctest
// (FRUGAL_CLI, FRUGAL_MODEL); a missing one is an error, never a skip.
import { spawn } from 'node:child_process';
import net from 'node:net';
import OpenAI from 'openai';

export const CLI = process.env.FRUGAL_CLI;
export const MODEL = process.env.FRUGAL_MODEL;
export const MODEL_ID = 'tiny';
if (!CLI || !MODEL) throw new Error('FRUGAL_CLI and FRUGAL_MODEL must be set (ctest sets them)');

export async function startServer(args = [], { timeoutMs = 60000 } = {}) {
  const proc = spawn(CLI, ['serve', '-m', MODEL, '--alias', MODEL_ID, '--host', '127.0.0.1', '--port', '0', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${stderr}`)); });
  });
  return {
    url,
    proc,
    exited,
    stderr: () => stderr,
    client(apiKey = 'none', options = {}) {
      return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 60000, ...options });
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 30000);
      const r = await exited;
      clearTimeout(killer);
      return r;
    },
  };
}

export async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const values = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([^{ ]+)(\{[^}]*\})? (\S+)$/);
    if (!m) continue;
    const key = m[1] + (m[2] && m[2].includes('finished_reason') ? m[2] : '');
    if (!m[2] || !m[2].includes('le=')) values[key] = Number(m[3]);
  }
  return values;
}

export async function waitFor(predicate, { timeoutMs = 10000, stepMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

export async function postRaw(url, path, body, headers = {}) {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

// Streams a chat completion, returning the text, the chunks and the time to first content.
export async function streamChat(client, params, { onChunk } = {}) {
  const t0 = performance.now();
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const chunks = [];
  let text = '';
  let ttft = null;
  for await (const chunk of stream) {
    chunks.push(chunk);
    const c = chunk.choices[0];
    if (c?.delta?.content) {
      if (ttft === null) ttft = performance.now() - t0;
      text += c.delta.content;
    }
    if (onChunk && onChunk(chunk, chunks.length, stream) === false) break;
  }
  return { text, chunks, ttft };
}
