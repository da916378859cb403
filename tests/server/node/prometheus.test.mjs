// A real Prometheus scrapes frugal's /metrics on loopback and answers a query
// for frugal:num_requests_running.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, freePort, waitFor, MODEL_ID } from './lib.mjs';

let server;
let prom;
let dir;
before(async () => {
  server = await startServer(['--parallel', '2']);
});
after(async () => {
  if (prom && prom.exitCode === null) prom.kill('SIGTERM');
  await server.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('Prometheus scrapes frugal:num_requests_running', { timeout: 90000 }, async () => {
  const binary = execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim();
  assert.ok(binary, 'prometheus is not installed (scripts/install-deps.sh installs it)');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'frugal-prom-'));
  const target = new URL(server.url).host;
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'scrape_configs:', '  - job_name: frugal', '    metrics_path: /metrics',
    '    static_configs:', `      - targets: ['${target}']`, ''].join('\n'));
  const port = await freePort();
  let log = '';
  prom = spawn(binary, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  prom.stderr.on('data', (d) => { log += d; });
  // Some traffic so the series has moved at least once.
  const client = server.client();
  await client.completions.create({ model: MODEL_ID, prompt: 'Hello', max_tokens: 4 });
  const result = await waitFor(async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent('frugal:num_requests_running')}`);
      if (r.status !== 200) return null;
      const body = await r.json();
      return body.status === 'success' && body.data.result.length > 0 ? body.data.result : null;
    } catch { return null; }
  }, { timeoutMs: 60000, stepMs: 500, what: `a Prometheus sample (log: ${log.slice(-500)})` });
  assert.equal(result[0].metric.__name__, 'frugal:num_requests_running');
  assert.equal(result[0].metric.model_name, MODEL_ID);
  assert.ok(Number.isFinite(Number(result[0].value[1])));
  const hist = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent('frugal:time_to_first_token_seconds_count')}`);
  assert.ok((await hist.json()).data.result.length > 0);
});
