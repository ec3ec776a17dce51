// tokens.js: the token list.

// --- The token list -----------------------------------------------------------------------------

async function loadTokens() {
  try {
    state.tokens = (await api('GET', '/v1/tokens')).tokens;
    renderTokens();
    return true;
  } catch (error) {
    failed(error);
    return false;
  }
}

const SORT_KEYS = {
  name: (t) => t.name,
  expires: (t) => t.expires_at ?? '\uffff',
  last_used: (t) => t.last_used_at ?? '',
  created: (t) => t.created_at,
  updated: (t) => t.updated_at,
};

/** Who did something: a token's name where the id is known, else the actor as written. */
function actorName(actor, names = new Map()) {
  const id = actor.startsWith('token:') ? actor.slice(6) : null;
  if (id === null) return actor;
  const name = state.tokens.find((t) => t.id === id)?.name ?? names.get(id);
  return name ? `${name} (token)` : actor;
}

function permissionsCell(permissions) {
  if (permissions.super_admin) return h('span', { class: 'badge admin' }, 'Super admin');
  return h('ul', { class: 'grants-summary' }, permissions.grants.map((g) => h('li', {}, grantSummary(g))));
}

function expiresCell(token) {
  if (!token.expires_at) return h('span', { class: 'muted' }, 'Never');
  const left = new Date(token.expires_at) - Date.now();
  let badge = null;
  if (token.status === 'expired') badge = h('span', { class: 'badge expired' }, 'Expired');
  else if (left < SOON_DAYS * 86400e3) badge = h('span', { class: 'badge soon' }, 'Expires soon');
  return [time(token.expires_at), badge ? ' ' : null, badge];
}

function renderTokens() {
  const query = $('search').value.trim().toLowerCase();
  const { key, dir } = state.sort;
  const value = SORT_KEYS[key];
  const shown = state.tokens
    .filter((t) => t.name.includes(query))
    .sort((a, b) => {
      const order = value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : a.name < b.name ? -1 : 1;
      return dir === 'asc' ? order : -order;
    });
  const rows = shown.map((token) =>
    h(
      'tr',
      { 'data-name': token.name, 'data-self': isSelf(token) ? 'true' : null },
      h('th', { scope: 'row', 'data-label': 'Name' },
        h('a', { class: 'link name', href: tokenHash(token.id) }, token.name),
        isSelf(token)
          ? h('span', { class: 'badge you', title: 'The token you are signed in with' }, 'you')
          : null),
      h('td', { 'data-label': 'Description', class: 'description' }, token.description || h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'Permissions' }, permissionsCell(token.permissions)),
      h('td', { 'data-label': 'Expires' }, expiresCell(token)),
      h('td', { 'data-label': 'Last used' },
        token.last_used_at
          ? [time(token.last_used_at), token.last_used_from ? h('span', { class: 'muted small' }, ` from ${token.last_used_from}`) : null]
          : h('span', { class: 'muted' }, 'Never used')),
      h('td', { 'data-label': 'Created' }, time(token.created_at),
        h('span', { class: 'muted small block' }, `by ${actorName(token.created_by)}`)),
      h('td', { 'data-label': 'Updated' }, time(token.updated_at)),
      h('td', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => navigate(tokenHash(token.id)), 'aria-label': `Edit token ${token.name}` }, 'Edit'),
        h('button', { type: 'button', class: 'danger', onclick: () => openDelete(token), 'aria-label': `Delete token ${token.name}` }, 'Delete')),
    ),
  );
  if (rows.length === 0) {
    const text = state.tokens.length === 0 ? 'No tokens yet: generate one.' : 'No token matches the search.';
    rows.push(h('tr', {}, h('td', { colSpan: 8, class: 'empty' }, text)));
  }
  $('tokens-body').replaceChildren(...rows);
  $('tokens-count').textContent = `${shown.length} of ${state.tokens.length} tokens shown.`;
  $('sort').value = `${key}:${dir}`;
  for (const th of document.querySelectorAll('#tokens-table th[data-sort]')) {
    if (th.dataset.sort === key) th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function sortBy(key) {
  const defaults = { name: 'asc', expires: 'asc', last_used: 'desc', created: 'desc', updated: 'desc' };
  const dir = state.sort.key === key ? (state.sort.dir === 'asc' ? 'desc' : 'asc') : defaults[key];
  state.sort = { key, dir };
  renderTokens();
}

