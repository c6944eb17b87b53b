// Sign in: one button per identity provider with a console client.

import { h, replace } from '../ui.js';

export const title = 'Sign in';

const ERRORS = {
  state_mismatch: 'The sign-in could not be matched to this browser. Please start again.',
  login_expired: 'The sign-in took too long or was already used. Please start again.',
  refused: 'The identity provider did not sign you in.',
  exchange_failed: 'Airlock could not complete the sign-in with the identity provider.',
  token_invalid: 'The identity provider’s answer could not be verified.',
  unknown_issuer: 'This identity provider is no longer configured.',
};

export function render(main, { session, params, returnTo }) {
  document.title = 'Sign in · Airlock';
  const issuers = (session && session.issuers) || [];
  const error = new URLSearchParams(location.search).get('error');
  const back = returnTo && returnTo.startsWith('#/') ? returnTo.slice(1) : '/connections';
  const notes = [];
  if (error) notes.push(h('p', { class: 'alert', role: 'alert' }, ERRORS[error] || 'The sign-in failed.'));
  if (params.get('signed_out')) notes.push(h('p', { class: 'note', role: 'status' }, 'You are signed out.'));
  if (params.get('expired')) notes.push(h('p', { class: 'note', role: 'status' }, 'Your session has ended. Please sign in again.'));
  const choices = issuers.length
    ? h('ul', {}, issuers.map((issuer) => h('li', {},
      h('a', { class: 'button', href: `/console/login?issuer=${issuer.id}&return_to=${encodeURIComponent(back)}` },
        issuers.length === 1 ? 'Sign in' : `Sign in with ${issuer.name}`))))
    : h('p', { class: 'alert' }, 'No identity provider is set up for the console (an issuer needs console_client_id).');
  replace(main, h('section', { class: 'login panel', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title', tabindex: '-1' }, 'Sign in to Airlock'),
    h('p', { class: 'muted' }, 'See the connections you may run, follow jobs as they happen, and read the audit trail — as your identity provider and Airlock’s grants allow.'),
    notes,
    choices));
  return null;
}
