// Small DOM helpers. Text always goes in as text (never as HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// The view's heading, focused so that screen readers announce the view.
export function heading(text, ...extra) {
  return h('div', { class: 'heading' }, h('h1', { tabindex: '-1' }, text), ...extra);
}

export function badge(state) {
  const label = state || 'none';
  return h('span', { class: `badge state-${label}`, 'data-state': label }, state ? state.replace(/_/g, ' ') : 'no job yet');
}

// `rejected` and `expired`: a reset that waited for approval and was denied,
// or that nobody decided in time.
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'rejected', 'expired']);
export function isTerminal(state) {
  return TERMINAL.has(state);
}

function pad(n) {
  return String(n).padStart(2, '0');
}

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function ago(iso) {
  if (!iso) return '';
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function timeEl(iso) {
  return iso ? h('time', { datetime: iso, title: time(iso) }, ago(iso)) : '—';
}

export function number(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString('en');
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

// ISO 8601 durations as Airbyte reports them (PT1M30S), or seconds.
export function duration(text) {
  if (text === null || text === undefined || text === '') return '—';
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(text);
  if (!m) return text;
  const [, d, hh, mm, ss] = m;
  const parts = [];
  if (d) parts.push(`${d} d`);
  if (hh) parts.push(`${hh} h`);
  if (mm) parts.push(`${mm} min`);
  if (ss) parts.push(`${Math.round(Number(ss))} s`);
  return parts.length ? parts.join(' ') : '0 s';
}

export function toast(...content) {
  const box = document.getElementById('toast');
  const p = h('p', {}, ...content);
  box.append(p);
  setTimeout(() => p.remove(), 8000);
}

// A modal that asks for a reason (the dialog #ask) and runs `submit(reason)`.
// What `submit` throws is shown in the dialog, which stays open to try
// again; resolves to what `submit` returned, or null when cancelled.
export function ask({ title, text, label, reasonLabel, required = false, danger = false, submit }) {
  const dialog = document.getElementById('ask');
  const form = document.getElementById('ask-form');
  const reason = document.getElementById('ask-reason');
  const error = document.getElementById('ask-error');
  const ok = document.getElementById('ask-ok');
  document.getElementById('ask-title').textContent = title;
  document.getElementById('ask-text').textContent = text;
  document.getElementById('ask-label').textContent = reasonLabel;
  ok.textContent = label;
  ok.className = danger ? 'danger' : '';
  reason.value = '';
  reason.setAttribute('aria-required', String(required));
  error.hidden = true;
  let answer = null;
  async function send(event) {
    event.preventDefault();
    ok.disabled = true;
    try {
      answer = await submit(reason.value);
      dialog.close();
    } catch (failure) {
      error.textContent = failure.describe ? failure.describe() : String(failure);
      error.hidden = false;
      reason.focus();
    } finally {
      ok.disabled = false;
    }
  }
  const cancel = () => dialog.close();
  form.addEventListener('submit', send);
  document.getElementById('ask-cancel').addEventListener('click', cancel);
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      form.removeEventListener('submit', send);
      document.getElementById('ask-cancel').removeEventListener('click', cancel);
      resolve(answer);
    }, { once: true });
    dialog.showModal();
    reason.focus();
  });
}

export function cell(label, ...content) {
  return h('td', { 'data-label': label }, ...content);
}

export function emptyRow(columns, text) {
  return h('tr', {}, h('td', { colspan: columns, class: 'muted' }, text));
}
