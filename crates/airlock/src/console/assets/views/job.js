// One job: its facts, the timeline of its states (live while it runs),
// the approval it waited for (four eyes: who asked, why, who decided), and
// Cancel / Retry where the caller's grants allow.

import { ApiError, api, enc } from '../api.js';
import { badge, bytes, duration, h, heading, isTerminal, number, replace, time, toast } from '../ui.js';
import { connectionLink, decisionsList, party } from './approvals.js';

export const title = 'Job';

export function render(main, { arg, session }) {
  const id = arg || '';
  // The heading stays put (it may have focus); its text and the content change.
  const stateSlot = h('span', { id: 'job-state' });
  const top = heading('Job', stateSlot);
  const content = h('div', {}, h('p', { class: 'muted', role: 'status' }, 'Loading the job…'));
  replace(main, top, content);
  let events = null;
  let job = null;
  let connection = null;
  let can = [];
  const timeline = [];

  const facts = h('dl', { class: 'facts', id: 'job-facts' });
  const steps = h('ol', { class: 'timeline', id: 'job-timeline', 'aria-live': 'polite' });
  const bar = h('div', { class: 'bar' });
  const approvalBox = h('div', { id: 'job-approval', 'aria-live': 'polite' });
  let approvalShown = null;

  function fact(term, value) {
    return [h('dt', {}, term), h('dd', {}, value)];
  }

  function drawFacts() {
    replace(stateSlot, badge(job.state));
    replace(facts,
      fact('Connection', connection
        ? [connection.name, h('span', { class: 'sub mono' }, connection.slug)]
        : h('span', { class: 'mono' }, job.connection_id)),
      fact('Type', job.type),
      fact('Airlock job id', h('span', { class: 'mono' }, job.id)),
      fact('Airbyte job id', job.airbyte_job_id === null ? 'not started in Airbyte yet' : h('span', { class: 'mono' }, String(job.airbyte_job_id))),
      fact('Attempts', `${job.attempts} of at most ${job.max_attempts}`),
      fact('Rows', number(job.rows_synced)),
      fact('Bytes', bytes(job.bytes_synced)),
      fact('Duration', duration(job.duration)),
      fact('Requested by', [job.requested_by, h('span', { class: 'sub' }, `through ${job.channel}`)]),
      fact('Created', time(job.created_at)),
      fact('Finished', time(job.finished_at)),
      job.retry_of ? fact('Retry of', h('a', { href: `#/jobs/${enc(job.retry_of)}` }, job.retry_of)) : [],
      job.error ? fact('Error', h('span', { class: 'decision-deny' }, job.error)) : []);
    drawActions();
    drawApproval();
  }

  // The request the job waits for (or waited for), fetched again whenever
  // its state changes.
  async function drawApproval() {
    if (!job.approval) return;
    const key = `${job.approval.id}:${job.approval.state}`;
    if (key === approvalShown) return;
    approvalShown = key;
    try {
      const approval = await api(`/v1/approvals/${enc(job.approval.id)}`);
      replace(approvalBox,
        h('dl', { class: 'facts' },
          fact('State', badge(approval.state)),
          fact('Connection', connectionLink(approval)),
          fact('Requested by', [party(approval.requester), h('span', { class: 'sub' }, `through ${approval.channel}`)]),
          fact('Reason', approval.reason || h('span', { class: 'muted' }, 'none given')),
          fact('Requested', time(approval.requested_at)),
          approval.state === 'pending' ? fact('Expires', time(approval.expires_at)) : [],
          fact('Approvals', `${approval.approvals} of ${approval.min_approvals}`)),
        h('h3', {}, 'Decisions'),
        decisionsList(approval),
        approval.state === 'pending' && session.views.includes('approvals')
          ? h('p', {}, h('a', { href: '#/approvals' }, 'Open the Approvals page')) : null);
    } catch (error) {
      replace(approvalBox, h('p', { class: 'muted' }, error instanceof ApiError ? error.describe() : String(error)));
    }
  }

  function drawActions() {
    const buttons = [];
    if (!isTerminal(job.state) && can.includes('jobs:cancel')) {
      const b = h('button', { type: 'button', class: 'danger quiet' }, job.cancel_requested ? 'Cancel requested' : 'Cancel the job');
      b.disabled = job.cancel_requested;
      b.addEventListener('click', () => act('cancel', b));
      buttons.push(b);
    }
    if ((job.state === 'failed' || job.state === 'cancelled') && can.includes('jobs:retry')) {
      const b = h('button', { type: 'button' }, 'Retry');
      b.addEventListener('click', () => act('retry', b));
      buttons.push(b);
    }
    replace(bar, buttons);
  }

  async function act(kind, button) {
    button.disabled = true;
    try {
      const answer = await api(`/v1/jobs/${enc(job.id)}/${kind}`, { method: 'POST' });
      if (kind === 'retry') {
        toast('Retry queued. ', h('a', { href: `#/jobs/${enc(answer.id)}` }, 'Open the new job'));
        location.hash = `#/jobs/${enc(answer.id)}`;
        return;
      }
      job = answer;
      drawFacts();
      toast('Cancel requested.');
    } catch (error) {
      toast(error instanceof ApiError ? error.describe() : String(error));
      button.disabled = false;
    }
  }

  function drawTimeline() {
    replace(steps, timeline.map((event) => h('li', { 'data-state': event.state },
      badge(event.state), ' ', h('time', { datetime: event.at }, time(event.at)),
      event.detail ? h('span', { class: 'sub' }, event.detail) : null)));
    if (!timeline.length) steps.append(h('li', { class: 'muted' }, 'No state recorded yet.'));
  }

  function follow() {
    // The job's own stream: every state from the first, then live ones.
    events = new EventSource(`/v1/jobs/${enc(id)}/events`);
    events.addEventListener('state', (message) => {
      const event = JSON.parse(message.data);
      if (!timeline.some((e) => e.seq === event.seq)) timeline.push(event);
      drawTimeline();
      if (event.job) {
        job = event.job;
        drawFacts();
      }
      if (isTerminal(event.state)) events.close();
    });
  }

  api(`/v1/jobs/${enc(id)}`).then(async (loaded) => {
    job = loaded;
    try {
      connection = await api(`/v1/connections/${enc(job.connection_id)}?include=permissions`);
      can = connection.permissions || [];
    } catch {
      connection = null;
      can = [];
    }
    top.querySelector('h1').textContent = `${job.type === 'reset' ? 'Reset' : 'Sync'} of ${connection ? connection.name : 'a connection'}`;
    replace(content,
      bar,
      h('div', { class: 'grid2' },
        h('section', { class: 'panel', 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title' }, 'Details'), facts),
        h('section', { class: 'panel', 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, 'Timeline'), steps)),
      job.approval ? h('section', { class: 'panel approval', 'aria-labelledby': 'approval-title' },
        h('h2', { id: 'approval-title' }, 'Approval'), approvalBox) : null);
    drawFacts();
    drawTimeline();
    follow();
  }).catch((error) => {
    replace(content, h('p', { class: 'alert', role: 'alert' }, error instanceof ApiError ? error.describe() : String(error)));
  });

  return () => { if (events) events.close(); };
}
