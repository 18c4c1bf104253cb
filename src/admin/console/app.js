// shardlog admin console: a single-page app over the admin JSON API
// (/api/v1/..., contract in src/admin/openapi.yaml). Plain ES module, no
// framework and no network access beyond the broker that served it.
//
// Safety rule: every string from the API (topic and group names, record
// bytes, error messages) reaches the DOM as a text node or an attribute set
// with setAttribute, through el() below. Nothing here assigns innerHTML.

// ------------------------------------------------------------------ DOM ---

/** el('tag.class', {attr: value, onclick: fn}, child, ...) builds an element.
 *  Children may be strings (text nodes), nodes, arrays, or null/false (skipped). */
function el(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'testid') node.setAttribute('data-testid', v);
    else if (k in node && typeof v !== 'string') node[k] = v; // e.g. disabled, value as number
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A table with a header row; rows is an array of <tr> nodes. */
function table(testid, headers, rows, empty = 'none') {
  // A header is right-aligned over a numeric (td.num) column.
  const isNum = (i) => rows.length > 0 && rows[0].children[i] && rows[0].children[i].classList.contains('num');
  return el('table', { testid },
    el('thead', {}, el('tr', {}, headers.map((h, i) => el(isNum(i) ? 'th.num' : 'th', {}, h)))),
    el('tbody', {}, rows.length ? rows
      : el('tr', {}, el('td.muted', { colSpan: headers.length }, empty))));
}

const td = (content, testid, cls) => el(cls ? `td.${cls}` : 'td', { testid }, content);
const link = (href, text, testid) => el('a', { href, testid }, text);
const section = (title, ...body) => el('section', {}, el('h2', {}, title), ...body);

/** A label + value pair shown in the "facts" boxes at the top of a page. */
function fact(label, value, testid) {
  return el('div.fact', {}, el('div.fact-label', {}, label), el('div.fact-value', { testid }, value));
}

/** The coloured verdict badge: OK green, WARNING amber, the rest red. */
function verdictBadge(verdict, testid = 'verdict') {
  const v = verdict || 'UNKNOWN';
  const colour = v === 'OK' ? 'ok' : v === 'WARNING' ? 'warn' : v === 'UNKNOWN' ? 'none' : 'bad';
  return el(`span.badge.badge-${colour}`, { testid, 'data-verdict': v }, v);
}

// ----------------------------------------------------------- formatting ---

const nf = new Intl.NumberFormat('en-US');
const num = (n) => (n === null || n === undefined ? '-' : nf.format(n));

function bytes(n) {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

const rate = (n, unit) => (n === null || n === undefined ? '-' : `${bytesOr(n, unit)}/s`);
function bytesOr(n, unit) {
  if (unit === 'B') return bytes(Math.round(n));
  return `${n < 10 && n > 0 ? n.toFixed(1) : nf.format(Math.round(n))} ${unit}`;
}

const iso = (ms) => (ms === null || ms === undefined || ms < 0 ? '-' : new Date(ms).toISOString());
const ids = (list) => (list && list.length ? list.join(', ') : '-');

function age(ms) {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// ------------------------------------------------------------ API calls ---

class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
  }
  toString() { return `${this.code} (HTTP ${this.status}): ${this.message}`; }
}

/** Calls the API; resolves with the parsed JSON, rejects with ApiError
 *  carrying the server's {error, message} (or a synthetic one). */
async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'UNREACHABLE', `${method} ${path}: ${e.message} (is the broker running?)`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: reported below */ }
  if (!res.ok) {
    const code = (data && data.error) || `HTTP_${res.status}`;
    const msg = (data && data.message) || text.slice(0, 200) || res.statusText;
    throw new ApiError(res.status, code, msg, data);
  }
  if (text && data === null) throw new ApiError(res.status, 'BAD_RESPONSE', `${path} did not answer JSON`);
  return data;
}

const enc = encodeURIComponent;

// ------------------------------------------------------- banners, state ---

const state = {
  readOnly: false,
  brokerId: null,
  formOpen: false,      // a create/delete/reset form is open: no auto refresh
  recordFormat: 'text', // records view: text | json | hex
  renderSeq: 0,         // discards answers to pages the user already left
  refreshable: false,   // current page refreshes itself every REFRESH_MS
};
const REFRESH_MS = 2000;

const $ = (id) => document.getElementById(id);

/** Shows an error in the banner. source 'load' errors are cleared by the next
 *  successful load; action errors stay until dismissed or the page changes. */
function showError(err, source = 'action') {
  const banner = $('error');
  $('error-text').textContent = err instanceof ApiError ? err.toString() : String(err);
  banner.dataset.source = source;
  banner.hidden = false;
}

function clearError(source) {
  const banner = $('error');
  if (!source || banner.dataset.source === source) {
    banner.hidden = true;
    $('error-text').textContent = '';
  }
}

let noticeTimer = null;
function notice(text) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
}

/** Refreshes state.readOnly and the header from GET /api/v1/cluster. */
function applyCluster(cluster) {
  state.readOnly = !!cluster.read_only;
  state.brokerId = cluster.broker_id;
  $('read-only').hidden = !state.readOnly;
  $('broker').textContent = `broker ${cluster.broker_id} · cluster ${cluster.cluster_id || '?'}`;
}

function readOnlyNote() {
  return el('p.note', { testid: 'read-only-note' },
    'read-only: this console was started with admin.console.read.only=true; create, delete and reset are disabled.');
}

// ------------------------------------------------------------- overview ---

async function viewOverview() {
  const c = await api('GET', '/api/v1/cluster');
  applyCluster(c);
  const p = c.partitions || {};
  const t = c.throughput || {};
  const brokers = (c.brokers || []).slice().sort((a, b) => a.id - b.id);
  const yes = (b) => (b ? el('span.badge.badge-bad', {}, 'yes') : 'no');
  return [
    el('h1', {}, 'Cluster overview'),
    el('div.facts', {},
      fact('cluster id', c.cluster_id || '-', 'cluster-id'),
      fact('this broker', c.broker_id, 'broker-id'),
      fact('controller', c.controller_id === -1 ? 'none' : c.controller_id, 'controller-id'),
      fact('quorum leader', c.quorum_leader_id ?? '-', 'quorum-leader')),
    section('Partitions',
      el('div.facts', {},
        fact('total', num(p.total), 'health-total'),
        fact('under-replicated', num(p.under_replicated), 'health-under-replicated'),
        fact('under min ISR', num(p.under_min_isr), 'health-under-min-isr'),
        fact('offline', num(p.offline), 'health-offline'))),
    section('Throughput (this broker)',
      el('div.facts', {},
        fact('in', rate(t.bytes_in_per_sec, 'B'), 'throughput-bytes-in'),
        fact('out', rate(t.bytes_out_per_sec, 'B'), 'throughput-bytes-out'),
        fact('records in', rate(t.records_in_per_sec, 'rec'), 'throughput-records-in'),
        fact('records out', rate(t.records_out_per_sec, 'rec'), 'throughput-records-out'))),
    section('Brokers',
      table('brokers-table', ['id', 'host:port', 'rack', 'fenced', 'controlled shutdown'],
        brokers.map((b) => el('tr', { testid: 'broker-row', 'data-broker-id': b.id },
          td(b.id === c.broker_id ? [String(b.id), el('span.muted', {}, ' (this)')] : b.id, 'broker-id-cell'),
          td(`${b.host}:${b.port}`, 'broker-address'),
          td(b.rack ?? '-'),
          td(yes(b.fenced), 'broker-fenced'),
          td(yes(b.in_controlled_shutdown), 'broker-shutdown'))))),
  ];
}

// --------------------------------------------------------------- topics ---

async function viewTopics() {
  const [topics, cluster] = await Promise.all([api('GET', '/api/v1/topics'), api('GET', '/api/v1/cluster')]);
  applyCluster(cluster);
  topics.sort((a, b) => a.name.localeCompare(b.name));
  const formSlot = el('div', { testid: 'topic-form-slot' });
  const rows = topics.map((t) => {
    const r = t.rates || {};
    return el('tr', { testid: 'topic-row', 'data-topic': t.name },
      td(link(`#/topics/${enc(t.name)}`, t.name, 'topic-link'), 'topic-name'),
      td(num(t.partitions), 'topic-partitions'),
      td(num(t.replication_factor), 'topic-rf'),
      td(t.under_replicated ? el('span.badge.badge-warn', {}, num(t.under_replicated)) : '0', 'topic-urp'),
      td(bytes(t.size_bytes), 'topic-size', 'num'),
      td(rate(r.bytes_in_per_sec, 'B'), 'topic-in', 'num'),
      td(rate(r.bytes_out_per_sec, 'B'), 'topic-out', 'num'),
      td(state.readOnly || t.internal ? (t.internal ? el('span.muted', {}, 'internal') : '')
        : el('button.danger.small', { type: 'button', testid: 'delete-topic-button',
          onclick: () => openDeleteTopic(formSlot, t.name) }, 'Delete')));
  });
  return [
    el('h1', {}, 'Topics'),
    state.readOnly ? readOnlyNote()
      : el('p', {}, el('button', { type: 'button', testid: 'create-topic-button',
        onclick: () => openCreateTopic(formSlot) }, 'Create topic')),
    formSlot,
    table('topics-table', ['name', 'partitions', 'RF', 'under-replicated', 'size', 'in', 'out', ''], rows, 'no topics'),
  ];
}

/** Opens a form in slot; closing it (or finishing) empties the slot and
 *  lets auto refresh resume. */
function openForm(slot, form) {
  state.formOpen = true;
  slot.replaceChildren(form);
  const first = form.querySelector('input, select');
  if (first) first.focus();
}
function closeForm(slot) {
  state.formOpen = false;
  slot.replaceChildren();
}

/** Create topic: step 1 collects name/partitions/RF, step 2 asks to confirm. */
function openCreateTopic(slot) {
  const name = el('input', { name: 'name', testid: 'topic-name-input', required: true, autocomplete: 'off',
    pattern: '[a-zA-Z0-9._\\-]{1,249}', title: 'letters, digits, . _ - (Kafka topic name)' });
  const parts = el('input', { name: 'partitions', type: 'number', min: 1, value: 1, testid: 'topic-partitions-input' });
  const rf = el('input', { name: 'rf', type: 'number', min: 1, value: 1, testid: 'topic-rf-input' });
  const cancel = el('button.secondary', { type: 'button', testid: 'create-topic-cancel', onclick: () => closeForm(slot) }, 'Cancel');
  const form = el('form.panel', { testid: 'create-topic-form' },
    el('h3', {}, 'Create topic'),
    el('label', {}, 'name ', name),
    el('label', {}, 'partitions ', parts),
    el('label', {}, 'replication factor ', rf),
    el('div.actions', {}, el('button', { type: 'submit', testid: 'create-topic-next' }, 'Next'), cancel));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const req = { name: name.value.trim(), partitions: Number(parts.value), replication_factor: Number(rf.value) };
    const confirmBtn = el('button', { type: 'button', testid: 'create-topic-confirm' }, 'Create');
    const panel = el('div.panel', { testid: 'create-topic-confirmation' },
      el('p', {}, 'Create topic ', el('strong', {}, req.name), ` with ${req.partitions} partition(s) and replication factor ${req.replication_factor}?`),
      el('div.actions', {}, confirmBtn,
        el('button.secondary', { type: 'button', testid: 'create-topic-back', onclick: () => openForm(slot, form) }, 'Back')));
    confirmBtn.addEventListener('click', async () => {
      confirmBtn.disabled = true;
      try {
        await api('POST', '/api/v1/topics', req);
        closeForm(slot);
        notice(`Topic ${req.name} created.`);
        render();
      } catch (e) {
        showError(e);
        confirmBtn.disabled = false;
      }
    });
    openForm(slot, panel);
  });
  openForm(slot, form);
}

/** Delete topic: the user must type the topic's name to enable the button. */
function openDeleteTopic(slot, topic) {
  const input = el('input', { testid: 'delete-confirm-input', autocomplete: 'off', placeholder: topic });
  const btn = el('button.danger', { type: 'submit', testid: 'delete-confirm-button', disabled: true }, 'Delete topic');
  input.addEventListener('input', () => { btn.disabled = input.value !== topic; });
  const form = el('form.panel.panel-danger', { testid: 'delete-topic-form' },
    el('h3', {}, 'Delete topic ', el('code', {}, topic)),
    el('p', {}, 'This deletes every record of the topic. Type the topic name to confirm.'),
    input,
    el('div.actions', {}, btn,
      el('button.secondary', { type: 'button', testid: 'delete-cancel', onclick: () => closeForm(slot) }, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (input.value !== topic) return;
    btn.disabled = true;
    try {
      await api('DELETE', `/api/v1/topics/${enc(topic)}`);
      closeForm(slot);
      notice(`Topic ${topic} deleted.`);
      render();
    } catch (e) {
      showError(e);
      btn.disabled = false;
    }
  });
  openForm(slot, form);
}

// ---------------------------------------------------------- topic detail ---

async function viewTopic([name]) {
  const t = await api('GET', `/api/v1/topics/${enc(name)}`);
  const parts = (t.partition_list || []).slice().sort((a, b) => a.partition - b.partition);
  const configs = Object.entries(t.configs || {}).sort();
  return [
    el('p.crumbs', {}, link('#/topics', 'Topics'), ' / '),
    el('h1', { testid: 'topic-title' }, t.name),
    el('div.facts', {},
      fact('partitions', num(t.partitions), 'topic-partitions'),
      fact('replication factor', num(t.replication_factor), 'topic-rf'),
      fact('under-replicated', num(t.under_replicated), 'topic-urp'),
      fact('offline', num(t.offline), 'topic-offline'),
      fact('size here', bytes(t.size_bytes), 'topic-size'),
      fact('topic id', t.topic_id || '-', 'topic-id')),
    section('Partitions',
      table('partitions-table',
        ['partition', 'leader', 'epoch', 'replicas', 'ISR', 'ELR', 'log start', 'HW', 'LEO', 'size', ''],
        parts.map((p) => el('tr', { testid: 'partition-row', 'data-partition': p.partition },
          td(p.partition),
          td(p.leader === -1 ? el('span.badge.badge-bad', {}, 'offline') : p.leader, 'partition-leader'),
          td(p.leader_epoch),
          td([ids(p.replicas), p.adding && p.adding.length ? el('span.muted', {}, ` +${ids(p.adding)}`) : null,
            p.removing && p.removing.length ? el('span.muted', {}, ` -${ids(p.removing)}`) : null]),
          td(ids(p.isr), 'partition-isr', p.isr && p.replicas && p.isr.length < p.replicas.length ? 'warn' : null),
          td(ids(p.elr)),
          td(num(p.log_start_offset), 'partition-log-start', 'num'),
          td(num(p.high_watermark), 'partition-hw', 'num'),
          td(num(p.log_end_offset), 'partition-leo', 'num'),
          td(bytes(p.size_bytes), null, 'num'),
          td(link(`#/topics/${enc(t.name)}/${p.partition}`, 'records', 'records-link')))))),
    configs.length ? section('Config overrides',
      table('configs-table', ['key', 'value'], configs.map(([k, v]) => el('tr', {}, td(k), td(v))))) : null,
  ];
}

// --------------------------------------------------------------- records ---

const PAGE = 50;           // records per page
const SHOW_BYTES = 4096;   // a key/value longer than this is cut in the table

function b64bytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const utf8 = new TextDecoder('utf-8'); // invalid sequences become U+FFFD

/** Renders base64 bytes as text, pretty JSON (text when not JSON) or hex. */
function renderBytes(b64, format, testid) {
  if (b64 === null || b64 === undefined) return el('span.null', { testid }, 'null');
  const all = b64bytes(b64);
  const cut = all.length > SHOW_BYTES;
  const data = cut ? all.subarray(0, SHOW_BYTES) : all;
  let body;
  let cls = 'bytes';
  if (format === 'hex') {
    body = Array.from(data, (b) => b.toString(16).padStart(2, '0')).join(' ');
  } else {
    body = utf8.decode(data);
    if (format === 'json' && !cut) {
      try { body = JSON.stringify(JSON.parse(body), null, 2); cls = 'bytes json'; } catch { /* stays text */ }
    }
  }
  return el(`pre.${cls.replace(' ', '.')}`, { testid, title: `${all.length} bytes` },
    body, cut ? el('span.muted', {}, ` … (${all.length} bytes, first ${SHOW_BYTES} shown)`) : null);
}

async function viewRecords([topic, partition], query) {
  const limit = Number(query.get('limit')) || PAGE;
  const params = new URLSearchParams({ limit: String(limit) });
  if (query.has('offset')) params.set('offset', query.get('offset'));
  let page;
  try {
    page = await api('GET', `/api/v1/topics/${enc(topic)}/partitions/${enc(partition)}/records?${params}`);
  } catch (e) {
    // 421: another broker leads this partition; its console can show the records.
    if (e.status === 421) {
      e.message += e.body.leader !== undefined && e.body.leader !== null
        ? ` (open the console of broker ${e.body.leader})` : '';
    }
    throw e;
  }
  const recs = page.records || [];
  const base = `#/topics/${enc(topic)}/${enc(partition)}`;
  // A page is `limit` records from `offset`; a short one only where the
  // older page stops at the log start (so it does not repeat this one's records).
  const go = (offset, n = PAGE) => {
    location.hash = offset === null ? base : `${base}?offset=${offset}${n !== PAGE ? `&limit=${n}` : ''}`;
  };
  const first = recs.length ? recs[0].offset : page.next_offset;
  const olderAt = Math.max(page.log_start_offset, first - PAGE);
  const fmt = state.recordFormat;

  const select = el('select', { testid: 'format-select', onchange: (ev) => { state.recordFormat = ev.target.value; render(); } },
    ['text', 'json', 'hex'].map((f) => el('option', { value: f, selected: f === fmt }, f)));
  const offsetInput = el('input', { type: 'number', min: 0, testid: 'offset-input', placeholder: 'offset',
    value: query.get('offset') ?? '' });
  const jump = el('form.inline', { testid: 'offset-form', onsubmit: (ev) => {
    ev.preventDefault();
    go(offsetInput.value === '' ? null : Math.max(0, Math.floor(Number(offsetInput.value))));
  } }, offsetInput, el('button', { type: 'submit', testid: 'offset-go' }, 'Go'));

  // Records come oldest first; the table shows them newest first.
  const rows = recs.slice().reverse().map((r) => el('tr', { testid: 'record-row', 'data-offset': r.offset },
    td(r.offset, 'record-offset', 'num'),
    el('td', { testid: 'record-timestamp', title: r.timestamp_type || '' }, iso(r.timestamp)),
    td(renderBytes(r.key, fmt, 'record-key-bytes'), 'record-key'),
    td(renderBytes(r.value, fmt, 'record-value-bytes'), 'record-value'),
    td((r.headers || []).length ? el('ul.headers', {}, r.headers.map((h) => el('li', { testid: 'record-header' },
      el('span.hkey', {}, h.key), '=', renderBytes(h.value, fmt === 'json' ? 'text' : fmt))))
      : el('span.muted', {}, '-'), 'record-headers')));

  return [
    el('p.crumbs', {}, link('#/topics', 'Topics'), ' / ', link(`#/topics/${enc(topic)}`, topic), ' / '),
    el('h1', { testid: 'records-title' }, `${topic} / partition ${partition}`),
    el('div.facts', {},
      fact('log start', num(page.log_start_offset), 'records-log-start'),
      fact('high watermark', num(page.high_watermark), 'records-hw'),
      fact('showing', recs.length ? `${num(first)} – ${num(page.next_offset - 1)}` : 'none', 'records-range')),
    el('div.toolbar', {},
      el('label', {}, 'render as ', select),
      el('button.secondary', { type: 'button', testid: 'older-button', disabled: first <= page.log_start_offset,
        onclick: () => go(olderAt, Math.max(1, first - olderAt)) }, '← older'),
      el('button.secondary', { type: 'button', testid: 'newer-button', disabled: page.next_offset >= page.high_watermark,
        onclick: () => go(page.next_offset) }, 'newer →'),
      el('button.secondary', { type: 'button', testid: 'newest-button', onclick: () => go(null) }, 'newest'),
      jump),
    table('records-table', ['offset', 'timestamp', 'key', 'value', 'headers'], rows, 'no records in this range'),
  ];
}

// ---------------------------------------------------------------- groups ---

async function viewGroups() {
  const groups = await api('GET', '/api/v1/groups');
  groups.sort((a, b) => a.group_id.localeCompare(b.group_id));
  return [
    el('h1', {}, 'Consumer groups'),
    el('p.muted', {}, 'Groups this broker coordinates. Refreshes every 2 s.'),
    table('groups-table', ['group', 'state', 'members', 'total lag', 'verdict'],
      groups.map((g) => el('tr', { testid: 'group-row', 'data-group': g.group_id },
        td(link(`#/groups/${enc(g.group_id)}`, g.group_id, 'group-link'), 'group-name'),
        td(g.state, 'group-state'),
        td(num(g.members), 'group-members', 'num'),
        td(num(g.total_lag), 'group-lag', 'num'),
        td(verdictBadge(g.verdict)))), 'no groups'),
  ];
}

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

/** Inline SVG line chart of lag over time: one polyline per partition, x =
 *  sample time, y = lag, with min/max labels on both axes. */
function lagChart(partitions) {
  const series = partitions.filter((p) => p.history && p.history.length);
  if (!series.length) return el('p.muted', { testid: 'lag-chart-empty' }, 'No lag samples yet.');
  const W = 640, H = 220, L = 56, R = 12, T = 12, B = 28; // size and margins
  const pts = series.flatMap((p) => p.history);
  const x0 = Math.min(...pts.map((s) => s.at_ms)), x1 = Math.max(...pts.map((s) => s.at_ms));
  const yMax = Math.max(1, ...pts.map((s) => s.lag)); // the y axis starts at 0
  const sx = (t) => L + (x1 === x0 ? (W - L - R) / 2 : ((t - x0) / (x1 - x0)) * (W - L - R));
  const sy = (v) => T + (1 - v / yMax) * (H - T - B);
  const hms = (ms) => new Date(ms).toISOString().slice(11, 19);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart', 'data-testid': 'lag-chart', role: 'img' });
  chart.append(
    svg('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }),
    svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }),
    svg('text', { x: L - 6, y: T + 4, 'text-anchor': 'end', class: 'tick', 'data-testid': 'lag-chart-ymax' }, nf.format(yMax)),
    svg('text', { x: L - 6, y: H - B, 'text-anchor': 'end', class: 'tick' }, '0'),
    svg('text', { x: L, y: H - 8, class: 'tick' }, hms(x0)),
    svg('text', { x: W - R, y: H - 8, 'text-anchor': 'end', class: 'tick' }, hms(x1)));
  series.forEach((p, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const coords = p.history.map((s) => `${sx(s.at_ms).toFixed(1)},${sy(s.lag).toFixed(1)}`);
    const line = svg('polyline', { points: coords.join(' '), fill: 'none', stroke: colour, 'stroke-width': 2,
      'data-series': `${p.topic}-${p.partition}` });
    line.append(svg('title', {}, `${p.topic} ${p.partition}`));
    chart.append(line);
    if (p.history.length === 1) { // a lone sample draws no line; mark it
      const [cx, cy] = coords[0].split(',');
      chart.append(svg('circle', { cx, cy, r: 3, fill: colour }));
    }
  });
  const legend = el('div.legend', {}, series.map((p, i) => el('span', {},
    el('span.swatch', { style: `background:${PALETTE[i % PALETTE.length]}` }), `${p.topic} ${p.partition}`)));
  return el('div', {}, chart, legend);
}

async function viewGroup([name]) {
  await clusterReady.catch(() => {}); // state.readOnly decides which actions show
  let g;
  try {
    g = await api('GET', `/api/v1/groups/${enc(name)}`);
  } catch (e) {
    // 404 from a broker that does not coordinate the group names the one that does.
    if (e.status === 404 && e.body.coordinator !== undefined && e.body.coordinator !== null) {
      e.message += ` (broker ${e.body.coordinator} coordinates it: open its console)`;
    }
    throw e;
  }
  // The group answer embeds its lag; ask for it separately if it does not.
  const lag = g.lag || await api('GET', `/api/v1/groups/${enc(name)}/lag`);
  const parts = (lag.partitions || []).slice()
    .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  const members = g.members || [];
  const formSlot = el('div', { testid: 'reset-form-slot' });
  const canReset = g.state === 'Empty' && !state.readOnly;
  return [
    el('p.crumbs', {}, link('#/groups', 'Groups'), ' / '),
    el('h1', { testid: 'group-title' }, g.group_id),
    el('div.facts', {},
      fact('state', g.state, 'group-state'),
      fact('protocol', [g.protocol_type || '-', g.protocol ? ` / ${g.protocol}` : ''], 'group-protocol'),
      fact('members', members.length, 'group-members'),
      fact('total lag', num(lag.total_lag), 'group-total-lag'),
      fact('verdict', verdictBadge(lag.verdict, 'group-verdict'))),
    section('Members',
      table('members-table', ['member id', 'client id', 'host', 'instance id', 'assignment'],
        members.map((m) => el('tr', { testid: 'member-row' },
          td(m.member_id, null, 'mono'), td(m.client_id), td(m.client_host), td(m.group_instance_id ?? '-'),
          td((m.assignment || []).map((a) => el('div', {}, `${a.topic}: ${ids(a.partitions)}`))))),
        'no members')),
    section('Lag',
      table('lag-table', ['topic', 'partition', 'committed', 'HW', 'lag', 'commit rate', 'last commit', 'verdict'],
        parts.map((p) => el('tr', { testid: 'lag-row', 'data-topic': p.topic, 'data-partition': p.partition },
          td(p.topic), td(p.partition),
          td(num(p.committed_offset), 'lag-committed', 'num'),
          td(num(p.high_watermark), 'lag-hw', 'num'),
          td(num(p.lag), 'lag-lag', 'num'),
          td(p.commit_rate === undefined || p.commit_rate === null ? '-' : `${p.commit_rate.toFixed(2)}/s`, null, 'num'),
          td(p.last_commit_age_ms === null || p.last_commit_age_ms === undefined ? '-' : `${age(p.last_commit_age_ms)} ago`),
          td(verdictBadge(p.verdict, 'lag-verdict')))), 'no committed offsets'),
      el('h3', {}, `Lag history${lag.sample_interval_ms ? ` (a sample every ${lag.sample_interval_ms} ms)` : ''}`),
      lagChart(parts)),
    section('Reset offsets',
      state.readOnly ? readOnlyNote()
        : canReset ? el('p', {}, el('button', { type: 'button', testid: 'reset-offsets-button',
          onclick: () => openReset(formSlot, g.group_id, parts) }, 'Reset offsets…'))
          : el('p.muted', { testid: 'reset-unavailable' },
            `Offsets can be reset only while the group is Empty (it is ${g.state}): stop its consumers first.`),
      formSlot),
  ];
}

/** Reset offsets (group must be Empty): choose target, confirm, POST. */
function openReset(slot, group, parts) {
  const topics = [...new Set(parts.map((p) => p.topic))].sort();
  const to = el('select', { testid: 'reset-to' },
    ['earliest', 'latest', 'offset'].map((v) => el('option', { value: v }, v)));
  const offset = el('input', { type: 'number', min: 0, testid: 'reset-offset', disabled: true, placeholder: 'offset' });
  const topic = el('select', { testid: 'reset-topic' }, el('option', { value: '' }, 'every topic'),
    topics.map((t) => el('option', { value: t }, t)));
  to.addEventListener('change', () => { offset.disabled = to.value !== 'offset'; });
  const form = el('form.panel', { testid: 'reset-form' },
    el('label', {}, 'to ', to), el('label', {}, 'offset ', offset), el('label', {}, 'topic ', topic),
    el('div.actions', {}, el('button', { type: 'submit', testid: 'reset-next' }, 'Next'),
      el('button.secondary', { type: 'button', testid: 'reset-cancel', onclick: () => closeForm(slot) }, 'Cancel')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const req = { to: to.value };
    if (to.value === 'offset') {
      if (offset.value === '') { showError('Enter an offset.'); return; }
      req.offset = Number(offset.value);
    }
    if (topic.value) req.topic = topic.value;
    const what = to.value === 'offset' ? `offset ${req.offset}` : `the ${to.value} offset`;
    const confirmBtn = el('button.danger', { type: 'button', testid: 'reset-confirm' }, 'Reset');
    confirmBtn.addEventListener('click', async () => {
      confirmBtn.disabled = true;
      try {
        const res = await api('POST', `/api/v1/groups/${enc(group)}/reset-offsets`, req);
        closeForm(slot);
        notice(`Reset ${(res.partitions || []).length} partition(s) of ${group}.`);
        render();
      } catch (e) {
        showError(e);
        confirmBtn.disabled = false;
      }
    });
    openForm(slot, el('div.panel.panel-danger', { testid: 'reset-confirmation' },
      el('p', {}, 'Reset the committed offsets of group ', el('strong', {}, group), ' on ',
        req.topic ? el('strong', {}, req.topic) : 'every topic', ` to ${what}?`),
      el('div.actions', {}, confirmBtn,
        el('button.secondary', { type: 'button', testid: 'reset-back', onclick: () => openForm(slot, form) }, 'Back'))));
  });
  openForm(slot, form);
}

// ---------------------------------------------------------------- router ---

/** Hash routes: #/, #/topics, #/topics/T, #/topics/T/P[?offset=N], #/groups,
 *  #/groups/G. Names are URI-encoded in the hash, so a '/' in a group id is safe. */
function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(qs || '');
  if (seg.length === 0) return { nav: 'overview', view: viewOverview, refresh: true, args: [] };
  if (seg[0] === 'topics' && seg.length === 1) return { nav: 'topics', view: viewTopics, args: [] };
  if (seg[0] === 'topics' && seg.length === 2) return { nav: 'topics', view: viewTopic, args: seg.slice(1) };
  if (seg[0] === 'topics' && seg.length === 3) return { nav: 'topics', view: viewRecords, args: seg.slice(1), query };
  if (seg[0] === 'groups' && seg.length === 1) return { nav: 'groups', view: viewGroups, refresh: true, args: [] };
  if (seg[0] === 'groups' && seg.length === 2) return { nav: 'groups', view: viewGroup, refresh: true, args: seg.slice(1) };
  return { nav: null, view: async () => [el('h1', {}, 'Not found'), el('p', {}, link('#/', 'Back to the overview'))], args: [] };
}

/** Renders the current route into <main>. A refresh keeps the page on
 *  screen when the API fails (the banner says why). */
async function render(isRefresh = false) {
  const seq = ++state.renderSeq;
  const r = route();
  state.refreshable = !!r.refresh;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.route === r.nav);
  const main = $('main');
  try {
    const nodes = await r.view(r.args, r.query || new URLSearchParams());
    if (seq !== state.renderSeq) return; // the user moved on meanwhile
    const y = window.scrollY;
    main.replaceChildren(...[nodes].flat().filter(Boolean));
    main.dataset.loaded = r.nav || 'none'; // lets tests wait for a finished render
    if (isRefresh) window.scrollTo(0, y);
    clearError('load');
  } catch (e) {
    if (seq !== state.renderSeq) return;
    showError(e, 'load');
    if (!isRefresh) {
      main.replaceChildren(el('p.muted', { testid: 'load-failed' }, 'Could not load this page (see the error above).'));
      main.dataset.loaded = 'error';
    }
  }
}

window.addEventListener('hashchange', () => {
  state.formOpen = false; // leaving a page discards its open form
  clearError();
  render();
});
$('error-close').addEventListener('click', () => clearError());

// Auto refresh: overview and group pages, not while a form is open or the tab is hidden.
setInterval(() => {
  if (state.refreshable && !state.formOpen && !document.hidden) render(true);
}, REFRESH_MS);

// The header's read-only badge must be right on every page, not only the
// overview; pages with actions wait for it (errors are reported by the render).
const clusterReady = api('GET', '/api/v1/cluster').then(applyCluster);
clusterReady.catch(() => {});
render();
