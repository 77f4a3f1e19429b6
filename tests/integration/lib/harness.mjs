// Starts the real tracehouse binary for black-box tests: free ports, a YAML config in a temp
// dir (OTLP/HTTP receiver -> file exporter, optionally debug), the process with its output
// captured, a wait until the port accepts connections, SIGTERM with an exit-code check, and
// the file exporter's output read back as JSON objects.
//
// Environment: TRACEHOUSE_BIN (the binary; default <repo>/build/tracehouse) and TH_SOURCE_DIR
// (the repo; default two levels up from here). CMake's integration tests set both.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SOURCE_DIR = process.env.TH_SOURCE_DIR ?? path.resolve(here, '..', '..', '..');
export const BIN = process.env.TRACEHOUSE_BIN ?? path.join(SOURCE_DIR, 'build', 'tracehouse');

// How long the binary gets to open its port, and to exit after SIGTERM.
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 15_000;

// Ports this process has handed out. The kernel may give a port that was just bound and
// closed to the next bind(0), so two calls could return the same port for two servers of
// one test; never hand one out twice.
const issued = new Set();

/** Bind @p n listeners on port 0 together, read their ports, close them all. */
async function bindZero(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      srv.unref();
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      servers.push(srv);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/**
 * @returns n distinct ports that were free a moment ago (bound together on 127.0.0.1, read,
 *          closed) and that this process has not handed out before.
 */
export async function freePorts(n) {
  const out = [];
  for (let tries = 0; out.length < n; tries++) {
    if (tries > 100) {
      throw new Error('no fresh free ports');
    }
    for (const port of await bindZero(n - out.length)) {
      if (!issued.has(port)) {
        issued.add(port);
        out.push(port);
      }
    }
  }
  return out;
}

/** A port that was free a moment ago and not handed out before (see freePorts). */
export async function freePort() {
  return (await freePorts(1))[0];
}

/** YAML for a scalar: JSON strings are valid YAML flow scalars and need no escaping rules. */
const q = (s) => JSON.stringify(String(s));

/**
 * Build the config text.
 * @param {object} o
 * @param {number} o.port the OTLP/HTTP port
 * @param {string} o.outPath the file exporter's path
 * @param {object} [o.http] extra keys for receivers::otlp::protocols::http (flat values or
 *        one level of nesting, e.g. {max_request_body_size: 65536, cors: {allowed_origins: [..]}})
 * @param {object} [o.file] extra keys for exporters::file
 * @param {boolean|string} [o.debug] add a debug exporter (true, or a verbosity name)
 * @param {string} [o.logLevel] service::telemetry::logs::level
 */
export function makeConfig({ port, outPath, http = {}, file = {}, debug = false, logLevel = 'info' }) {
  const lines = [];
  const emit = (indent, obj) => {
    for (const [k, v] of Object.entries(obj)) {
      const pad = ' '.repeat(indent);
      if (Array.isArray(v)) {
        lines.push(`${pad}${k}: [${v.map(q).join(', ')}]`);
      } else if (v !== null && typeof v === 'object') {
        lines.push(`${pad}${k}:`);
        emit(indent + 2, v);
      } else if (typeof v === 'string') {
        lines.push(`${pad}${k}: ${q(v)}`);
      } else {
        lines.push(`${pad}${k}: ${v}`);
      }
    }
  };
  lines.push('receivers:', '  otlp:', '    protocols:', '      http:');
  emit(8, { endpoint: `127.0.0.1:${port}`, ...http });
  lines.push('exporters:', '  file:');
  emit(4, { path: outPath, flush_interval: '100ms', ...file });
  const exporters = ['file'];
  if (debug) {
    lines.push('  debug:');
    emit(4, { verbosity: typeof debug === 'string' ? debug : 'detailed' });
    exporters.push('debug');
  }
  lines.push(
    'service:',
    '  telemetry:',
    '    logs:',
    `      level: ${logLevel}`,
    // Internal metrics would bind :8888 in every test process at once; they are not tested here.
    '    metrics:',
    '      level: none',
    '  pipelines:',
    '    traces:',
    '      receivers: [otlp]',
    `      exporters: [${exporters.join(', ')}]`,
    '',
  );
  return lines.join('\n');
}

/** A running tracehouse process. Create with Tracehouse.start(). */
export class Tracehouse {
  constructor() {
    this.proc = null;
    this.stdout = '';
    this.stderr = '';
    this.exited = null; // {code, signal} once the process is gone
    this.dir = null;
  }

  /**
   * Write a config to a fresh temp dir, spawn `$TRACEHOUSE_BIN --config <file>` and wait
   * until the OTLP/HTTP port accepts connections.
   * @param {object} [opts] makeConfig options except port/outPath, plus {yaml} to replace the
   *        generated config entirely (with {port} and {out} placeholders).
   */
  static async start(opts = {}) {
    const th = new Tracehouse();
    th.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-it-'));
    th.port = await freePort();
    th.outPath = path.join(th.dir, 'out.jsonl');
    th.baseUrl = `http://127.0.0.1:${th.port}`;
    th.configText = opts.yaml
      ? opts.yaml.replaceAll('{port}', String(th.port)).replaceAll('{out}', th.outPath)
      : makeConfig({ ...opts, port: th.port, outPath: th.outPath });
    th.configPath = path.join(th.dir, 'config.yaml');
    await fsp.writeFile(th.configPath, th.configText);
    if (!fs.existsSync(BIN)) {
      throw new Error(`tracehouse binary not found at ${BIN} (set TRACEHOUSE_BIN)`);
    }
    th.proc = spawn(BIN, ['--config', th.configPath], {
      cwd: th.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env ?? {}) },
    });
    th.proc.stdout.setEncoding('utf8');
    th.proc.stderr.setEncoding('utf8');
    th.proc.stdout.on('data', (d) => { th.stdout += d; });
    th.proc.stderr.on('data', (d) => { th.stderr += d; });
    th.exitPromise = new Promise((resolve) => {
      th.proc.on('exit', (code, signal) => {
        th.exited = { code, signal };
        resolve(th.exited);
      });
    });
    try {
      await th.waitForPort(START_TIMEOUT_MS);
    } catch (err) {
      th.kill();
      throw err;
    }
    return th;
  }

  get pid() {
    return this.proc.pid;
  }

  /** Poll the port until a TCP connection succeeds. */
  async waitForPort(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) {
        throw new Error(`tracehouse exited early (${JSON.stringify(this.exited)}) ` +
          `with config:\n${this.configText}\nstderr:\n${this.stderr}\nstdout:\n${this.stdout}`);
      }
      const ok = await new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: this.port });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
      if (ok) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(`tracehouse did not open 127.0.0.1:${this.port} within ${timeoutMs} ms` +
          `\nconfig:\n${this.configText}\nstderr:\n${this.stderr}\nstdout:\n${this.stdout}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** @returns resident set size in KiB from /proc/<pid>/status (VmRSS). */
  rssKiB() {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (!m) {
      throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    }
    return Number(m[1]);
  }

  /** True while the process runs. */
  get alive() {
    return this.exited === null;
  }

  /**
   * SIGTERM and wait for exit (the contract: drain, flush, exit 0).
   * @returns {Promise<{code:number|null, signal:string|null}>}
   */
  async stop() {
    if (!this.exited) {
      this.proc.kill('SIGTERM');
    }
    let handle;
    const timer = new Promise((resolve) => { handle = setTimeout(resolve, STOP_TIMEOUT_MS, 'timeout'); });
    const r = await Promise.race([this.exitPromise, timer]);
    clearTimeout(handle);
    if (r === 'timeout') {
      this.kill();
      throw new Error(`tracehouse did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM` +
        `\nstderr:\n${this.stderr}`);
    }
    return r;
  }

  /** Stop and fail unless the exit was clean (code 0, no signal). */
  /**
   * Wait until stderr matches @p re. A client can see the effect of a request (its answer, a
   * closed connection) before the line the process logged for it arrives through the pipe,
   * so checks of a log line right after such an event wait for it.
   */
  async waitLog(re, ms = 5000) {
    const deadline = Date.now() + ms;
    while (!re.test(this.stderr)) {
      if (Date.now() > deadline) {
        throw new Error(`no log line matches ${re} within ${ms} ms; stderr ends:\n${this.stderr.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stopClean() {
    const r = await this.stop();
    if (r.code !== 0 || r.signal) {
      throw new Error(`tracehouse exited with ${JSON.stringify(r)}, expected code 0` +
        `\nstderr:\n${this.stderr}`);
    }
    return r;
  }

  /** SIGKILL, for cleanup after a failure. */
  kill() {
    if (this.proc && !this.exited) {
      this.proc.kill('SIGKILL');
    }
  }

  /** The file exporter's output: one parsed ExportTraceServiceRequest per line. */
  async readOutput() {
    let text;
    try {
      text = await fsp.readFile(this.outPath, 'utf8');
    } catch (err) {
      if (err.code === 'ENOENT') {
        return [];
      }
      throw err;
    }
    // The exporter may be in the middle of writing a record while this reads: a last line
    // without its newline is not whole yet, and is left for the next read.
    const end = text.lastIndexOf('\n');
    text = end < 0 ? '' : text.slice(0, end + 1);
    return text.split('\n').filter((l) => l.length > 0).map((l, i) => {
      try {
        return JSON.parse(l);
      } catch (err) {
        throw new Error(`line ${i + 1} of ${this.outPath} is not JSON: ${err.message}: ${l.slice(0, 200)}`);
      }
    });
  }

  /** Remove the temp dir (after a passing test; failures leave it for inspection). */
  async cleanup() {
    this.kill();
    if (this.dir) {
      await fsp.rm(this.dir, { recursive: true, force: true });
    }
  }
}

/** Every span of a list of requests, with its resource and scope alongside. */
export function flattenSpans(requests) {
  const out = [];
  for (const req of requests) {
    for (const rs of req.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const span of ss.spans ?? []) {
          out.push({ span, resource: rs.resource ?? {}, resourceSchemaUrl: rs.schemaUrl,
            scope: ss.scope ?? {}, scopeSchemaUrl: ss.schemaUrl });
        }
      }
    }
  }
  return out;
}
