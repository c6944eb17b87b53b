// Who am I: the identity Airlock verified, its roles and what they allow.

import { ApiError, api } from '../api.js';
import { cell, h, heading, replace, time } from '../ui.js';

export const title = 'Who am I';

function scopeText(scope) {
  if (scope === 'all') return 'everywhere';
  const parts = [];
  if (scope.workspaces && scope.workspaces.length) parts.push(`workspaces: ${scope.workspaces.join(', ')}`);
  if (scope.connections && scope.connections.length) parts.push(`connections: ${scope.connections.join(', ')}`);
  return parts.join('; ') || JSON.stringify(scope);
}

function list(items) {
  return items && items.length ? items.join(', ') : '—';
}

export function render(main, { session }) {
  // The heading stays put (it may have focus); the content below changes.
  const content = h('div', {}, h('p', { class: 'muted', role: 'status' }, 'Loading…'));
  replace(main, heading('Who am I'), content);
  api('/v1/whoami').then((me) => {
    const fact = (term, value) => [h('dt', {}, term), h('dd', {}, value)];
    replace(content,
      h('div', { class: 'grid2' },
        h('section', { class: 'panel', 'aria-labelledby': 'me-title' },
          h('h2', { id: 'me-title' }, me.display_name || me.subject),
          h('dl', { class: 'facts', id: 'whoami-facts' },
            fact('Subject', h('span', { class: 'mono' }, me.subject)),
            fact('Issuer', h('span', { class: 'mono' }, me.issuer)),
            fact('Kind', me.kind),
            fact('Email', me.email || '—'),
            fact('Identity provider roles', list(me.idp_roles)),
            fact('Groups', list(me.groups)),
            fact('Airlock roles', list(me.roles)),
            fact('Session ends', time(session.expires_at)))),
        h('section', { class: 'panel', 'aria-labelledby': 'perm-title' },
          h('h2', { id: 'perm-title' }, 'What you may do'),
          me.permissions.length
            ? h('table', { class: 'cards', id: 'permissions' },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Permission'), h('th', { scope: 'col' }, 'Where'))),
              h('tbody', {}, me.permissions.map((p) => h('tr', {},
                cell('Permission', h('span', { class: 'mono' }, p.permission)),
                cell('Where', scopeText(p.scope))))))
            : h('p', { class: 'alert' }, 'No grant gives you any permission. Ask an Airlock administrator.'))));
  }).catch((error) => {
    replace(content, h('p', { class: 'alert', role: 'alert' }, error instanceof ApiError ? error.describe() : String(error)));
  });
  return null;
}
