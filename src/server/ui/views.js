// views.js: the audit trail, the webhook deliveries and the public keys.

// --- Audit trail and keys -----------------------------------------------------------------------

const AUDIT_PAGES = 20;
const AUDIT_SHOWN = 500;

async function showAudit() {
  show('audit');
  const entries = [];
  try {
    let after = 0;
    for (let page = 0; page < AUDIT_PAGES; page++) {
      const answer = await api('GET', `/v1/audit?after=${after}&limit=1000`);
      entries.push(...answer.entries);
      if (answer.next_after === null || answer.next_after === undefined) break;
      after = answer.next_after;
    }
  } catch (error) {
    failed(error);
    return;
  }
  const names = new Map(entries.filter((e) => e.target && e.target_name).map((e) => [e.target, e.target_name]));
  const rows = entries
    .reverse()
    .slice(0, AUDIT_SHOWN)
    .map((entry) =>
      h('tr', { 'data-action': entry.action },
        h('td', { 'data-label': 'When' }, time(entry.at)),
        h('td', { 'data-label': 'Action' }, entry.action),
        h('td', { 'data-label': 'Token' }, entry.target_name ?? entry.target ?? '—'),
        h('td', { 'data-label': 'By' }, actorName(entry.actor, names)),
        h('td', { 'data-label': 'From' }, entry.from ?? 'local'),
        h('td', { 'data-label': 'Outcome' },
          h('span', { class: entry.outcome === 'ok' ? 'badge ok' : 'badge expired' }, entry.outcome))),
    );
  if (rows.length === 0) rows.push(h('tr', {}, h('td', { colSpan: 6, class: 'empty' }, 'No actions yet.')));
  $('audit-body').replaceChildren(...rows);
}

const DELIVERY_BADGES = { delivered: 'badge ok', pending: 'badge soon', failed: 'badge expired' };

async function showWebhooks() {
  show('webhooks');
  let deliveries;
  try {
    deliveries = (await api('GET', '/v1/webhooks/deliveries?limit=1000')).deliveries;
  } catch (error) {
    failed(error);
    return;
  }
  const rows = deliveries.map((event) => {
    const record = event.body?.data?.record ?? {};
    let answer = event.last_error ?? '—';
    if (event.status === 'pending' && event.attempts > 0 && event.next_attempt_at) answer = [answer, ' (next try ', time(event.next_attempt_at), ')'];
    return h('tr', { 'data-type': event.type, 'data-status': event.status },
      h('td', { 'data-label': 'When' }, time(event.created_at)),
      h('td', { 'data-label': 'Event' }, h('code', { title: event.id }, event.type)),
      h('td', { 'data-label': 'Token' }, record.name ?? record.id ?? '—'),
      h('td', { 'data-label': 'Status' }, h('span', { class: DELIVERY_BADGES[event.status] ?? 'badge' }, event.status)),
      h('td', { 'data-label': 'Attempts' }, String(event.attempts)),
      h('td', { 'data-label': 'Last answer' }, answer));
  });
  if (rows.length === 0) rows.push(h('tr', {}, h('td', { colSpan: 6, class: 'empty' }, 'No events yet.')));
  $('webhooks-body').replaceChildren(...rows);
}

async function showKeys() {
  show('keys');
  let keys;
  try {
    keys = (await api('GET', '/v1/keys')).keys;
  } catch (error) {
    failed(error);
    return;
  }
  $('keys-list').replaceChildren(
    ...keys.map((key) =>
      h('section', { class: 'card key', 'aria-label': `Key ${key.kid}` },
        h('dl', {},
          h('dt', {}, 'Key id'), h('dd', {}, h('code', { class: 'kid' }, key.kid)),
          h('dt', {}, 'Status'), h('dd', {}, key.status),
          h('dt', {}, 'Created'), h('dd', {}, time(key.created_at)),
          h('dt', {}, 'Public key (PASERK)'), h('dd', {}, h('code', { class: 'paserk' }, key.public_key))))),
  );
}

