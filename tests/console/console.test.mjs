// Browser tests of the admin console, against a real broker that run.sh
// started. Usage: node console.test.mjs TEST... (names below).
// Environment: SHARDLOG_BIN, BOOTSTRAP (HOST:PORT), ADMIN_URL (http://HOST:PORT),
// SHOTS (screenshot dir), CHROMIUM_BIN, CONSOLE_ONLY (regex of test names).
// Prints "PASS name" or "FAIL name: reason" per test; exits 1 if any failed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BIN = process.env.SHARDLOG_BIN || 'target/debug/shardlog';
const BOOTSTRAP = process.env.BOOTSTRAP;
const ADMIN = process.env.ADMIN_URL;
const SHOTS = process.env.SHOTS || '/tmp';
const RUN = `${process.pid}`; // makes topic and group names unique per run
const LOAD_MS = 15000;        // the longest a page or a CLI-visible change may take

// ---------------------------------------------------------------- helpers ---

/** Runs `shardlog ARGS --bootstrap-server BOOTSTRAP` and returns its stdout. */
function shardlog(...args) {
  return execFileSync(BIN, [...args, '--bootstrap-server', BOOTSTRAP],
    { encoding: 'utf8', timeout: 30000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Topic names from `shardlog topic list --output json`. */
const topicList = () => JSON.parse(shardlog('topic', 'list', '--output', 'json')).map((t) => t.name);

/** Produces "key:value" lines to partition 0 with librdkafka's kcat (headers
 *  on every record), or with `shardlog produce` when kcat is not installed. */
function produce(topic, lines, headers) {
  const input = lines.map(([k, v]) => `${k}:${v}`).join('\n') + '\n';
  if (existsSync('/usr/bin/kcat')) {
    execFileSync('kcat', ['-P', '-b', BOOTSTRAP, '-t', topic, '-p', '0', '-K', ':',
      ...headers.flatMap(([k, v]) => ['-H', `${k}=${v}`])], { input, timeout: 30000 });
  } else {
    execFileSync(BIN, ['produce', topic, '--partition', '0', '--parse-key', '--key-separator', ':',
      ...headers.flatMap(([k, v]) => ['--header', `${k}=${v}`]), '--bootstrap-server', BOOTSTRAP],
    { input, timeout: 30000 });
  }
}

async function api(method, path, body) {
  const res = await fetch(ADMIN + path, {
    method, headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Polls fn until it returns a truthy value (which it returns) or throws
 *  after ms with the last error. */
async function until(what, fn, ms = LOAD_MS) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Opens a console route and waits until app.js finished rendering it. */
async function open(page, hash, nav) {
  await page.goto(`${ADMIN}/${hash}`);
  await page.waitForFunction((n) => document.querySelector('#main').dataset.loaded === n, nav, { timeout: LOAD_MS });
}

const text = async (loc) => (await loc.textContent()).trim();

// ------------------------------------------------------------------ tests ---

const tests = {
  // (a) The overview lists this broker: its id and its Kafka port.
  async overview(page) {
    const cluster = (await api('GET', '/api/v1/cluster')).body;
    await open(page, '#/', 'overview');
    const row = page.locator(`tr[data-broker-id="${cluster.broker_id}"]`);
    assert.equal(await row.count(), 1, `no row for broker ${cluster.broker_id}`);
    assert.match(await text(row.getByTestId('broker-address')), new RegExp(`:${BOOTSTRAP.split(':')[1]}$`));
    assert.equal(await text(page.getByTestId('broker-id')), String(cluster.broker_id));
    assert.equal(await text(page.getByTestId('health-total')), String(cluster.partitions.total));
  },

  // (b) A topic created through the form (with its confirmation step) exists
  // for the Kafka API: `shardlog topic list` lists it.
  async 'create-topic'(page) {
    const name = `console-created-${RUN}`;
    await open(page, '#/topics', 'topics');
    await page.getByTestId('create-topic-button').click();
    await page.getByTestId('topic-name-input').fill(name);
    await page.getByTestId('topic-partitions-input').fill('3');
    await page.getByTestId('topic-rf-input').fill('1');
    await page.getByTestId('create-topic-next').click();
    assert.match(await text(page.getByTestId('create-topic-confirmation')), new RegExp(`${name} with 3 partition`));
    await page.getByTestId('create-topic-confirm').click();
    await page.locator(`tr[data-topic="${name}"]`).waitFor({ timeout: LOAD_MS });
    assert.equal(await text(page.locator(`tr[data-topic="${name}"]`).getByTestId('topic-partitions')), '3');
    await until(`${name} in shardlog topic list`, () => topicList().includes(name));
  },

  // (c) Records produced by librdkafka show their keys and headers.
  async records(page) {
    const topic = `console-records-${RUN}`;
    shardlog('topic', 'create', topic, '--partitions', '1', '--replication-factor', '1');
    produce(topic, [['k1', '{"n":1,"s":"<b>x</b>"}'], ['k2', 'plain'], ['k3', 'third']],
      [['h1', 'v1'], ['trace', 'abc']]);
    await open(page, `#/topics/${topic}`, 'topics');
    await page.locator('tr[data-partition="0"]').getByTestId('records-link').click();
    await page.waitForFunction(() => document.querySelectorAll('tr[data-offset]').length >= 3, null, { timeout: LOAD_MS });
    for (const [off, key] of [[0, 'k1'], [1, 'k2'], [2, 'k3']]) {
      const row = page.locator(`tr[data-offset="${off}"]`);
      assert.equal(await text(row.getByTestId('record-key')), key);
      const headers = await row.getByTestId('record-header').allTextContents();
      assert.deepEqual(headers.map((h) => h.trim()), ['h1=v1', 'trace=abc']);
    }
    // Newest first; the value is text, not markup.
    assert.equal(await page.locator('tr[data-offset]').first().getAttribute('data-offset'), '2');
    assert.equal(await text(page.locator('tr[data-offset="0"]').getByTestId('record-value')), '{"n":1,"s":"<b>x</b>"}');
    // JSON rendering pretty-prints; hex shows the bytes.
    await page.getByTestId('format-select').selectOption('json');
    await until('pretty JSON', async () => (await text(page.locator('tr[data-offset="0"]').getByTestId('record-value'))).includes('\n'));
    await page.getByTestId('format-select').selectOption('hex');
    await until('hex key', async () => (await text(page.locator('tr[data-offset="0"]').getByTestId('record-key'))) === '6b 31');
    await page.getByTestId('format-select').selectOption('text');
    await until('text again', async () => (await text(page.locator('tr[data-offset="0"]').getByTestId('record-key'))) === 'k1');
  },

  // (d) A group with committed offsets and nobody consuming shows its lag and
  // the verdict the API gives.
  async 'group-lag'(page) {
    const topic = `console-lag-${RUN}`;
    const group = `console-group-${RUN}`;
    shardlog('topic', 'create', topic, '--partitions', '1', '--replication-factor', '1');
    const batch = (from) => Array.from({ length: 10 }, (_, i) => [`k${from + i}`, `v${from + i}`]);
    produce(topic, batch(0), []);
    shardlog('group', 'reset-offsets', group, '--topic', topic, '--to-offset', '2', '--execute');
    // More records after a few samples: the lag chart shows the lag growing.
    await new Promise((r) => setTimeout(r, 1500));
    produce(topic, batch(10), []);
    const expected = 20 - 2;
    // Wait for the sampler to see the lag and the window (5 x 500 ms) to fill.
    await until(`lag ${expected} in the API`, async () => (await api('GET', `/api/v1/groups/${group}/lag`)).body.total_lag === expected);
    await new Promise((r) => setTimeout(r, 3000));

    await open(page, '#/groups', 'groups');
    const listRow = page.locator(`tr[data-group="${group}"]`);
    await listRow.waitFor({ timeout: LOAD_MS });
    assert.equal(await text(listRow.getByTestId('group-lag')), String(expected));

    await open(page, `#/groups/${group}`, 'groups');
    const row = page.locator(`tr[data-topic="${topic}"][data-partition="0"]`);
    assert.equal(await text(row.getByTestId('lag-lag')), String(expected));
    assert.equal(await text(row.getByTestId('lag-committed')), '2');
    assert.equal(await text(page.getByTestId('group-state')), 'Empty');
    assert.equal(await page.getByTestId('lag-chart').count(), 1, 'no lag chart');
    // The verdict may still change between two samples: compare the page with
    // the API until both agree (the page refreshes every 2 s).
    await until('the page to show the API verdict', async () => {
      const api1 = (await api('GET', `/api/v1/groups/${group}/lag`)).body.verdict;
      const shown = await page.getByTestId('group-verdict').getAttribute('data-verdict');
      const api2 = (await api('GET', `/api/v1/groups/${group}/lag`)).body.verdict;
      return api1 === api2 && shown === api1;
    }, 10000);
    // The group is Empty, so the console offers Reset offsets.
    assert.equal(await page.getByTestId('reset-offsets-button').count(), 1);
  },

  // Resetting an Empty group's offsets through the console (with its
  // confirmation step) commits them: `shardlog group describe` shows them.
  async 'reset-offsets'(page) {
    const topic = `console-reset-${RUN}`;
    const group = `console-reset-group-${RUN}`;
    shardlog('topic', 'create', topic, '--partitions', '1', '--replication-factor', '1');
    produce(topic, Array.from({ length: 6 }, (_, i) => [`k${i}`, `v${i}`]), []);
    shardlog('group', 'reset-offsets', group, '--topic', topic, '--to-latest', '--execute');
    await open(page, `#/groups/${group}`, 'groups');
    await page.getByTestId('reset-offsets-button').click();
    await page.getByTestId('reset-to').selectOption('offset');
    await page.getByTestId('reset-offset').fill('1');
    await page.getByTestId('reset-topic').selectOption(topic);
    await page.getByTestId('reset-next').click();
    assert.match(await text(page.getByTestId('reset-confirmation')), new RegExp(`${group} on ${topic} to offset 1\\?`));
    await page.getByTestId('reset-confirm').click();
    await page.getByTestId('notice').waitFor({ state: 'visible', timeout: LOAD_MS });
    const committed = () => JSON.parse(shardlog('group', 'describe', group, '--output', 'json'))
      .find((r) => r.topic === topic && r.partition === 0).current_offset;
    await until('offset 1 committed', () => committed() === 1);
    await until('the page to show offset 1', async () =>
      (await text(page.locator(`tr[data-topic="${topic}"]`).getByTestId('lag-committed'))) === '1');
  },

  // (e) Deleting a topic through the console (typing its name to confirm)
  // removes it for the Kafka API.
  async 'delete-topic'(page) {
    const name = `console-delete-${RUN}`;
    shardlog('topic', 'create', name, '--partitions', '1', '--replication-factor', '1');
    await open(page, '#/topics', 'topics');
    const row = page.locator(`tr[data-topic="${name}"]`);
    await row.getByTestId('delete-topic-button').click();
    const confirm = page.getByTestId('delete-confirm-button');
    assert.ok(await confirm.isDisabled(), 'delete enabled before the name was typed');
    await page.getByTestId('delete-confirm-input').fill(name.slice(0, -1));
    assert.ok(await confirm.isDisabled(), 'delete enabled with a wrong name');
    await page.getByTestId('delete-confirm-input').fill(name);
    await page.screenshot({ path: `${SHOTS}/delete-topic-confirm.png` });
    await confirm.click();
    await row.waitFor({ state: 'detached', timeout: LOAD_MS });
    await until(`${name} gone from shardlog topic list`, () => !topicList().includes(name));
  },

  // (f) admin.console.read.only=true: no create/delete actions, and the API
  // refuses writes with 403 READ_ONLY.
  async 'read-only'(page) {
    await open(page, '#/topics', 'topics');
    assert.ok(await page.getByTestId('read-only').isVisible(), 'no read-only badge');
    assert.ok(await page.getByTestId('read-only-note').isVisible(), 'no read-only note');
    const create = page.getByTestId('create-topic-button');
    assert.ok((await create.count()) === 0 || (await create.isDisabled()), 'create topic offered');
    assert.equal(await page.getByTestId('delete-topic-button').count(), 0, 'delete offered');
    const post = await api('POST', '/api/v1/topics', { name: `console-ro-${RUN}`, partitions: 1, replication_factor: 1 });
    assert.equal(post.status, 403);
    assert.equal(post.body.error, 'READ_ONLY');
    const del = await api('DELETE', `/api/v1/topics/console-created-${RUN}`);
    assert.equal(del.status, 403);
  },
};

// ----------------------------------------------------------------- runner ---

const only = process.env.CONSOLE_ONLY ? new RegExp(process.env.CONSOLE_ONLY) : null;
const names = process.argv.slice(2).filter((n) => !only || only.test(n));
for (const n of names) if (!tests[n]) { console.log(`FAIL ${n}: no such test`); process.exit(2); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});
let failed = 0;
for (const name of names) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => d.dismiss()); // the console uses no dialogs; never hang on one
  let why = null;
  try {
    await tests[name](page);
    // An error banner left on screen is a failure too (the console showed an API error).
    if (await page.getByTestId('error-banner').isVisible()) {
      throw new Error(`error banner: ${await text(page.getByTestId('error-text'))}`);
    }
    if (pageErrors.length) throw new Error(`JavaScript error: ${pageErrors[0]}`);
  } catch (e) {
    why = (e.message || String(e)).split('\n')[0];
    if (e.stderr && e.stderr.length) why += ` (stderr: ${String(e.stderr).trim().split('\n').pop()})`;
  }
  try {
    await page.screenshot({ path: `${SHOTS}/${name}.png` });
  } catch { /* a screenshot is evidence, not a test */ }
  await context.close();
  if (why) { failed++; console.log(`FAIL ${name}: ${why}`); } else console.log(`PASS ${name}`);
}
await browser.close();
process.exit(failed ? 1 : 0);
