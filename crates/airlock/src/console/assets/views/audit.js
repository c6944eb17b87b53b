// The audit trail, for auditors: filters, pages, and an export of what the
// filters select as JSON Lines (the format of `airlock audit export`).

import { ApiError, all, api } from '../api.js';
import { cell, emptyRow, h, heading, replace, time, toast } from '../ui.js';

export const title = 'Audit trail';

const EXPORT_MAX = 10000;

function field(id, label, control) {
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

function toRfc3339(local) {
  if (!local) return null;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function render(main, { params }) {
  const actor = h('input', { type: 'text', autocomplete: 'off', value: params.get('actor') || '', placeholder: 'subject' });
  const action = h('input', { type: 'text', autocomplete: 'off', list: 'audit-actions', value: params.get('action') || '', placeholder: 'e.g. jobs.reset' });
  const actions = h('datalist', { id: 'audit-actions' },
    ['jobs.sync', 'jobs.reset', 'jobs.cancel', 'jobs.retry', 'job.state', 'authenticate', 'console.login', 'console.logout', 'csrf']
      .map((a) => h('option', { value: a })));
  const connection = h('input', { type: 'text', autocomplete: 'off', value: params.get('connection') || '', placeholder: 'connection id' });
  const decision = h('select', {},
    h('option', { value: '' }, 'Any'),
    h('option', { value: 'allow' }, 'allow'),
    h('option', { value: 'deny' }, 'deny'),
    h('option', { value: 'system' }, 'system'));
  decision.value = params.get('decision') || '';
  const since = h('input', { type: 'datetime-local' });
  const until = h('input', { type: 'datetime-local' });
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, 'Load older records');
  const exportButton = h('button', { type: 'button', class: 'quiet' }, 'Export JSON Lines');

  const form = h('form', { class: 'filters', 'aria-label': 'Filter the audit trail' },
    field('audit-actor', 'Actor', actor),
    field('audit-action', 'Action', action), actions,
    field('audit-connection', 'Connection', connection),
    field('audit-decision', 'Decision', decision),
    field('audit-since', 'Since', since),
    field('audit-until', 'Until', until),
    h('div', { class: 'bar' }, h('button', { type: 'submit' }, 'Apply filters'), exportButton));

  replace(main,
    heading('Audit trail'),
    h('p', { class: 'muted' }, 'Every decision, change and job state, hash-chained. Newest first.'),
    form,
    status,
    h('table', { class: 'cards', id: 'audit' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Time'),
        h('th', { scope: 'col' }, 'Who'),
        h('th', { scope: 'col' }, 'Action'),
        h('th', { scope: 'col' }, 'Decision'),
        h('th', { scope: 'col' }, 'Outcome'),
        h('th', { scope: 'col' }, 'Job / connection'))),
      body),
    h('div', { class: 'bar' }, more));

  let cursor = null;
  let shown = 0;

  function query() {
    const q = new URLSearchParams();
    const put = (key, value) => { if (value) q.set(key, value); };
    put('actor', actor.value.trim());
    put('action', action.value.trim());
    put('connection', connection.value.trim());
    put('decision', decision.value);
    put('since', toRfc3339(since.value));
    put('until', toRfc3339(until.value));
    return q;
  }

  function row(record) {
    const who = record.principal_subject || record.principal?.subject || (record.decision === 'system' ? 'airlock' : '—');
    return h('tr', { dataset: { seq: record.seq } },
      cell('Time', h('time', { datetime: record.time }, time(record.time)), h('span', { class: 'sub mono' }, `#${record.seq}`)),
      cell('Who', who, h('span', { class: 'sub' }, record.channel)),
      cell('Action', h('span', { class: 'mono' }, record.action)),
      cell('Decision', h('span', { class: `decision-${record.decision}` }, record.decision),
        record.reason ? h('span', { class: 'sub' }, record.reason) : null),
      cell('Outcome', record.outcome || '—'),
      cell('Job / connection',
        record.job_id ? h('a', { href: `#/jobs/${encodeURIComponent(record.job_id)}`, class: 'mono' }, record.job_id) : null,
        record.airbyte_job_id ? h('span', { class: 'sub' }, `Airbyte job ${record.airbyte_job_id}`) : null,
        record.connection_id ? h('span', { class: 'sub mono' }, record.connection_id) : null,
        !record.job_id && !record.connection_id ? '—' : null));
  }

  async function load(reset) {
    if (reset) {
      cursor = null;
      shown = 0;
      body.replaceChildren();
    }
    const q = query();
    q.set('limit', '50');
    if (cursor) q.set('cursor', cursor);
    status.textContent = 'Loading…';
    try {
      const page = await api(`/v1/audit?${q}`);
      for (const record of page.data) body.append(row(record));
      shown += page.data.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!shown) body.append(emptyRow(6, 'No record matches these filters.'));
      status.textContent = `${shown} record${shown === 1 ? '' : 's'} shown${cursor ? ' (more below)' : ''}.`;
    } catch (error) {
      status.textContent = '';
      replace(body, emptyRow(6, error instanceof ApiError ? error.describe() : String(error)));
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = query();
    history.replaceState(null, '', `#/audit${q.toString() ? `?${q}` : ''}`);
    load(true);
  });
  more.addEventListener('click', () => load(false));
  exportButton.addEventListener('click', async () => {
    exportButton.disabled = true;
    try {
      const q = query();
      q.set('limit', '500');
      const records = await all(`/v1/audit?${q}`, EXPORT_MAX);
      const text = records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : '');
      const url = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
      const link = h('a', { href: url, download: `airlock-audit-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.jsonl` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      toast(`Exported ${records.length} record${records.length === 1 ? '' : 's'}${records.length >= EXPORT_MAX ? ' (the first 10,000; narrow the filters for more)' : ''}.`);
    } catch (error) {
      toast(error instanceof ApiError ? error.describe() : String(error));
    } finally {
      exportButton.disabled = false;
    }
  });

  load(true);
  return null;
}
