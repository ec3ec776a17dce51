// session.js: signing in and out.

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
    notice('');
    renderTokens();
    show('tokens');
  } catch (e) {
    field.setAttribute('aria-invalid', 'true');
    error.textContent = signInMessage(e);
    field.focus();
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.tokens = [];
  state.editing = null;
  $('tokens-body').replaceChildren();
  $('audit-body').replaceChildren();
  $('keys-list').replaceChildren();
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  notice('');
  $('sign-in-error').textContent = message || '';
  show('sign-in');
  $('sign-in-token').focus();
}

