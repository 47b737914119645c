// The Continuum mesh status page: members, live refusals, the audit head.
// Plain JavaScript, no build step, no external assets. Everything it shows
// comes from the gateway's JSON API with the bearer token the user gives.
'use strict';

// Endpoints the page reads. AUDIT_VERIFY_URL is the audit service's
// Verify route (GET /v1/audit/verify, docs/gateway.md); a gateway without
// it makes the page say "audit not reachable".
const MEMBERS_URL = '/v1/mesh/members?include_gone=true';
const AUDIT_VERIFY_URL = '/v1/audit/verify';
const REFUSALS_URL = '/v1/events/subscribe?topic=audit:refusal';

const MEMBERS_EVERY_MS = 3000;
const AUDIT_EVERY_MS = 60000;
const REFUSALS_REPLAY = 25;
const REFUSALS_SHOWN = 50;
const RECONNECT_MS = [1000, 2000, 5000, 10000];
const TOKEN_KEY = 'continuum.token';

const $ = (id) => document.getElementById(id);

// ---- token ---------------------------------------------------------------

// The token comes from ?access_token= (then it is kept in sessionStorage
// and removed from the address bar and history) or from the field.
function initialToken() {
  const url = new URL(window.location.href);
  const fromURL = url.searchParams.get('access_token');
  if (fromURL) {
    sessionStorage.setItem(TOKEN_KEY, fromURL);
    url.searchParams.delete('access_token');
    window.history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

let token = initialToken();

function authHeaders(accept) {
  const h = { Accept: accept };
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}

// ApiError is the gateway's JSON error: code, http_status, reason, message.
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || 'HTTP ' + status);
    this.status = status;
    this.code = (body && body.code) || '';
    this.reason = (body && body.reason) || '';
  }
  get label() {
    return [this.code, this.reason].filter(Boolean).join(' · ') || 'HTTP ' + this.status;
  }
}

async function errorFrom(resp) {
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  return new ApiError(resp.status, body);
}

async function getJSON(url) {
  const resp = await fetch(url, { headers: authHeaders('application/json'), cache: 'no-store' });
  if (!resp.ok) throw await errorFrom(resp);
  return resp.json();
}

// ---- small DOM helpers -----------------------------------------------------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function chips(values) {
  if (!values || values.length === 0) return el('span', 'none', '—');
  const box = el('div', 'chips');
  for (const v of values) box.appendChild(el('span', 'chip', v));
  return box;
}

function ago(iso) {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.floor(s / 60) + 'm ago';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm ago';
  return Math.floor(s / 86400) + 'd ago';
}

function clock(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function banner(text, bad) {
  const b = $('banner');
  if (!text) { b.hidden = true; return; }
  b.hidden = false;
  b.textContent = text;
  b.classList.toggle('bad', Boolean(bad));
}

function authProblem(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 401) {
    banner(token
      ? 'The mesh refused this token (' + err.label + '). Paste a valid one, e.g. the contents of data/admin.token.'
      : 'Paste a bearer token (the contents of data/admin.token) to see the mesh.', Boolean(token));
    return true;
  }
  return false;
}

// ---- members ---------------------------------------------------------------

const STATES = {
  MEMBER_STATE_ALIVE: 'alive', MEMBER_STATE_SUSPECT: 'suspect',
  MEMBER_STATE_DEAD: 'dead', MEMBER_STATE_LEFT: 'left',
};

function renderMembers(members) {
  const body = $('members').querySelector('tbody');
  body.replaceChildren();
  let alive = 0;
  let self = '';
  for (const m of members) {
    const state = STATES[m.state] || 'unknown';
    if (state === 'alive') alive++;
    if (m.self) self = m.name;
    const tr = el('tr', state === 'dead' || state === 'left' ? 'gone' : '');
    const name = el('td');
    name.appendChild(el('span', 'node-name', m.name));
    if (m.self) name.appendChild(el('span', 'self-tag', 'this node'));
    tr.appendChild(name);
    const st = el('td');
    st.appendChild(el('span', 'pill ' + state, state));
    tr.appendChild(st);
    tr.appendChild(el('td', 'mono', m.grpcAddress || '—'));
    const svc = el('td');
    svc.appendChild(chips(m.services));
    tr.appendChild(svc);
    const peers = el('td');
    peers.appendChild(chips((m.peers || []).map((p) => (p.envs && p.envs.length ? p.name + ':' + p.envs.join('+') : p.name))));
    if (m.metadataTruncated) peers.appendChild(el('div', 'none', '(truncated)'));
    tr.appendChild(peers);
    const rooms = el('td');
    rooms.appendChild(chips(m.rooms));
    tr.appendChild(rooms);
    tr.appendChild(el('td', '', ago(m.stateSince)));
    body.appendChild(tr);
  }
  const empty = $('members-empty');
  empty.hidden = members.length > 0;
  empty.textContent = 'No members.';
  empty.classList.remove('bad');
  $('members-meta').textContent = 'updated ' + new Date().toLocaleTimeString();
  $('summary').textContent = members.length + (members.length === 1 ? ' member' : ' members') + ' · ' +
    alive + ' alive' + (self ? ' · served by ' + self : '');
}

async function refreshMembers() {
  try {
    const resp = await getJSON(MEMBERS_URL);
    renderMembers(resp.members || []);
    banner('');
  } catch (err) {
    if (!authProblem(err)) banner('Members not reachable: ' + (err.label || err.message), true);
    const empty = $('members-empty');
    if ($('members').querySelector('tbody').children.length === 0) {
      empty.hidden = false;
      empty.textContent = 'Members not reachable: ' + (err.label || err.message);
      empty.classList.add('bad');
    }
    $('summary').textContent = 'not connected';
  }
}

// ---- audit head ------------------------------------------------------------

async function refreshAudit() {
  const facts = $('audit');
  const empty = $('audit-empty');
  try {
    const v = await getJSON(AUDIT_VERIFY_URL);
    facts.replaceChildren();
    const add = (k, val, cls) => {
      facts.appendChild(el('dt', '', k));
      const dd = el('dd', cls || '');
      if (val instanceof Node) dd.appendChild(val); else dd.textContent = val;
      facts.appendChild(dd);
    };
    add('verified', el('span', 'pill ' + (v.ok ? 'alive' : 'dead'), v.ok ? 'ok' : 'failed'));
    add('entries', String(v.size || 0));
    add('head hash', v.headHash || '—');
    add('Merkle root', v.rootHash || '—');
    add('checked', new Date().toLocaleTimeString());
    empty.hidden = true;
  } catch (err) {
    facts.replaceChildren();
    empty.hidden = false;
    empty.classList.add('bad');
    if (err instanceof ApiError && err.reason === 'ROUTE_NOT_FOUND') {
      empty.textContent = 'Audit not reachable: the gateway has no route for ' + AUDIT_VERIFY_URL + ' yet.';
    } else if (err instanceof ApiError && err.code === 'DATA_LOSS') {
      empty.textContent = 'Audit log FAILED verification: ' + err.label + ' — ' + err.message;
    } else {
      empty.textContent = 'Audit not reachable: ' + (err.label || err.message);
    }
  }
}

// ---- refusals, live ----------------------------------------------------------

// readSSE reads a text/event-stream response and calls onEvent(name, data,
// id) per event. fetch is used instead of EventSource so the token travels
// in the Authorization header and errors before the stream are readable.
async function readSSE(resp, onEvent) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { name: 'message', data: [], id: '' };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (ev.data.length) onEvent(ev.name, ev.data.join('\n'), ev.id);
        ev = { name: 'message', data: [], id: ev.id };
        continue;
      }
      if (line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let val = c < 0 ? '' : line.slice(c + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'event') ev.name = val;
      else if (field === 'data') ev.data.push(val);
      else if (field === 'id') ev.id = val;
    }
  }
}

const refusals = { lastStreamSeq: 0, seen: new Set(), attempt: 0, abort: null };

function liveState(cls, text) {
  const live = $('refusals-live');
  live.className = 'live ' + cls;
  live.querySelector('.text').textContent = text;
}

function addRefusal(d) {
  const seq = Number(d.streamSequence || 0);
  if (seq && refusals.seen.has(seq)) return;
  if (seq) {
    refusals.seen.add(seq);
    refusals.lastStreamSeq = Math.max(refusals.lastStreamSeq, seq);
  }
  const p = d.payload || {};
  const li = el('li');
  const line1 = el('div', 'line1');
  const verdict = p.verdict || 'refused';
  // A dry-run rule only says what it would have done; the call went on.
  line1.appendChild(p.dry_run
    ? el('span', 'pill dry', 'dry run: ' + verdict)
    : el('span', 'pill ' + verdict, verdict));
  line1.appendChild(el('span', 'caller', p.caller || d.publisher || '?'));
  if (p.reason) line1.appendChild(el('span', 'reason', p.reason));
  line1.appendChild(el('span', 'when', clock(d.publishedAt)));
  li.appendChild(line1);
  li.appendChild(el('div', 'uri', p.uri || d.topic));
  const sub = [];
  if (p.node) sub.push('node ' + p.node);
  if (p.hop && p.hop !== p.caller) sub.push('via ' + p.hop);
  if (p.prompt_target_env) sub.push('ask in ' + p.prompt_target_env);
  if (sub.length) li.appendChild(el('div', 'sub', sub.join(' · ')));
  const list = $('refusals');
  list.insertBefore(li, list.firstChild);
  while (list.children.length > REFUSALS_SHOWN) list.removeChild(list.lastChild);
  $('refusals-empty').hidden = true;
}

async function followRefusals() {
  if (refusals.abort) refusals.abort.abort();
  const abort = new AbortController();
  refusals.abort = abort;
  const resume = refusals.lastStreamSeq > 0
    ? '&start_after_sequence=' + refusals.lastStreamSeq
    : '&last_n=' + REFUSALS_REPLAY;
  let fatal = false;
  try {
    const resp = await fetch(REFUSALS_URL + resume, {
      headers: authHeaders('text/event-stream'), cache: 'no-store', signal: abort.signal,
    });
    if (!resp.ok) throw await errorFrom(resp);
    liveState('on', 'live');
    refusals.attempt = 0;
    await readSSE(resp, (name, data) => {
      let msg = null;
      try { msg = JSON.parse(data); } catch (_) { return; }
      if (name === 'delivery' && msg.delivery) addRefusal(msg.delivery);
      else if (name === 'lag' && msg.lag) liveState('on', 'live (missed ' + msg.lag.missed + ')');
      else if (name === 'error') liveState('off', 'stream ended: ' + [msg.code, msg.reason].filter(Boolean).join(' · '));
    });
  } catch (err) {
    if (abort.signal.aborted) return;
    if (err instanceof ApiError) {
      authProblem(err);
      if (err.code === 'OUT_OF_RANGE') refusals.lastStreamSeq = 0; // the log restarted: replay the tail
      const empty = $('refusals-empty');
      if ($('refusals').children.length === 0) {
        empty.hidden = false;
        empty.textContent = 'Refusal events not reachable: ' + err.label + '.';
      }
      liveState('off', 'not reachable');
      fatal = err.status === 401 || err.status === 403;
    } else {
      liveState('off', 'disconnected');
    }
  }
  if (abort.signal.aborted || fatal) return;
  const wait = RECONNECT_MS[Math.min(refusals.attempt, RECONNECT_MS.length - 1)];
  refusals.attempt++;
  setTimeout(() => { if (refusals.abort === abort) followRefusals(); }, wait);
}

// ---- wiring ------------------------------------------------------------------

function restart() {
  refusals.lastStreamSeq = 0;
  refusals.seen.clear();
  refusals.attempt = 0;
  $('refusals').replaceChildren();
  $('refusals-empty').hidden = false;
  $('refusals-empty').textContent = 'No refusals yet.';
  refreshMembers();
  refreshAudit();
  followRefusals();
}

document.addEventListener('DOMContentLoaded', () => {
  $('token').value = token;
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    restart();
  });
  $('token-clear').addEventListener('click', () => {
    token = '';
    $('token').value = '';
    sessionStorage.removeItem(TOKEN_KEY);
    restart();
  });
  $('audit-verify').addEventListener('click', refreshAudit);
  restart();
  setInterval(() => { if (!document.hidden) refreshMembers(); }, MEMBERS_EVERY_MS);
  setInterval(() => { if (!document.hidden) refreshAudit(); }, AUDIT_EVERY_MS);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshMembers(); });
});
