// session.js: signing in and out, and who the page is signed in as.

// --- Sign in ------------------------------------------------------------------------------------

function signInMessage(error) {
  if (error.status === 401) {
    return `The token was refused (${error.code}): it is not a token of this service, or it has expired, been regenerated or been deleted.`;
  }
  if (error.status === 403) {
    return 'This is not a super-admin token: it is valid, but managing API tokens needs a super-admin token.';
  }
  return error.message;
}

async function signIn(event) {
  event.preventDefault();
  const field = $('sign-in-token');
  const token = field.value.trim();
  const error = $('sign-in-error');
  if (!token) {
    field.setAttribute('aria-invalid', 'true');
    error.textContent = 'Paste a super-admin token to sign in.';
    field.focus();
    return;
  }
  try {
    const list = await api('GET', '/v1/tokens', { token });
    sessionStorage.setItem(TOKEN_KEY, token);
    field.value = '';
    field.removeAttribute('aria-invalid');
    error.textContent = '';
    state.tokens = list.tokens;
    await whoAmI();
    notice('');
    await route();
  } catch (e) {
    field.setAttribute('aria-invalid', 'true');
    error.textContent = signInMessage(e);
    field.focus();
  }
}

/**
 * Which token the page is signed in with, asked of `POST /v1/verify` (the server's verdict,
 * not the token's unverified claims): it marks "you" in the list, warns before deleting or
 * regenerating it, and announces its expiry.
 */
async function whoAmI() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  state.self = null;
  if (token) {
    try {
      // In the body only: `token: ''` sends no Authorization header as well.
      const answer = await api('POST', '/v1/verify', { body: { token }, token: '' });
      if (answer && answer.valid && answer.token) state.self = answer.token;
    } catch {
      // Unknown: the page works without the marker and the banner.
    }
  }
  renderSelf();
}

/** The banner that says the signed-in token expires within BANNER_DAYS days. */
function renderSelf() {
  const banner = $('self-banner');
  const expires = state.self?.expires_at;
  const left = expires ? new Date(expires) - Date.now() : Infinity;
  if (!(left < BANNER_DAYS * 86400e3)) {
    banner.hidden = true;
    banner.textContent = '';
    return;
  }
  const days = Math.round(left / 86400e3);
  const when = left < 86400e3 ? 'in less than a day' : days === 1 ? 'in 1 day' : `in ${days} days`;
  banner.textContent =
    `The token you are signed in with (${state.self.name}) expires on ${dateFormat.format(new Date(expires))}, ${when}. ` +
    'Regenerate it, or make another super-admin token, before then.';
  banner.hidden = false;
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.tokens = [];
  state.editing = null;
  state.self = null;
  markClean();
  renderSelf();
  $('tokens-body').replaceChildren();
  $('tokens-count').textContent = '';
  $('audit-body').replaceChildren();
  $('keys-list').replaceChildren();
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  notice('');
  $('sign-in-error').textContent = message || '';
  show('sign-in');
  $('sign-in-token').focus();
}
