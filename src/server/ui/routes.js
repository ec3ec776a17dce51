// routes.js: the page's addresses. Each view has a hash route, so Back, Forward, reload and
// links work:
//
//   #/tokens        the token list          #/new     the generate form
//   #/tokens/<id>   the edit form of a token #/audit   the audit trail
//   #/webhooks      webhook deliveries       #/keys    the public keys
//
// Everything that changes the view goes through the hash (`navigate`, or a plain link), and
// `route` shows what it names. Leaving a form with unsaved changes asks first, Back included.

/** What a hash names; anything unknown is the token list. */
function parseRoute(hash) {
  const path = hash.replace(/^#\/?/, '');
  if (['new', 'audit', 'webhooks', 'keys'].includes(path)) return { view: path };
  const edit = /^tokens\/([^/]+)$/.exec(path);
  if (edit) return { view: 'edit', id: decodeURIComponent(edit[1]) };
  return { view: 'tokens' };
}

const tokenHash = (id) => `#/tokens/${encodeURIComponent(id)}`;

/** The hash of the view on show, once signed in. */
let shownHash = null;

/** Go to `hash` as a new history entry; `message` is a notice to show on arrival. */
function navigate(hash, message = '') {
  state.arrival = message;
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** Show the view the address names (the sign-in screen while signed out). */
async function route({ focus = true } = {}) {
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    shownHash = null;
    show('sign-in', { focus: false });
    return;
  }
  const hash = location.hash || '#/tokens';
  if (shownHash !== null && hash !== shownHash) {
    // Leaving: the one-time token pop-up and a changed form ask first. Until they are answered
    // the address goes back to what is on show (a Back is undone by a new entry).
    const leavingToken = $('token-dialog').open;
    if (leavingToken || formDirty()) {
      history.pushState(null, '', shownHash);
      if (leavingToken) {
        closeToken();
        return;
      }
      if (!(await confirmDiscard())) return;
      navigate(hash, state.arrival);
      return;
    }
  }
  shownHash = hash;
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  const message = state.arrival;
  state.arrival = '';
  notice(message);
  const where = parseRoute(hash);
  switch (where.view) {
    case 'new':
      openGenerate();
      break;
    case 'edit':
      await openEdit(where.id);
      break;
    case 'audit':
      await showAudit();
      break;
    case 'webhooks':
      await showWebhooks();
      break;
    case 'keys':
      await showKeys();
      break;
    default:
      show('tokens', { focus });
      await loadTokens();
  }
}
