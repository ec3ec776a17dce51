// dialogs.js: the one-time token pop-up, regenerate and delete.

// --- The one-time pop-up ------------------------------------------------------------------------

/** Whether Copy was pressed since the pop-up opened: closing it otherwise asks first. */
let tokenCopied = false;

function showToken(made, what) {
  $('token-dialog-what').textContent = what;
  $('token-value').value = made.token;
  $('token-value').rows = Math.min(14, Math.ceil(made.token.length / 72) + 1);
  $('copy-status').textContent = '';
  tokenCopied = false;
  $('token-dialog').showModal();
  $('copy-token').focus();
}

async function copyToken() {
  tokenCopied = true;
  const field = $('token-value');
  const status = $('copy-status');
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(field.value);
      status.textContent = 'Copied to the clipboard.';
      return;
    }
  } catch {
    // Not allowed here (an insecure origin, or no permission): select the text instead.
  }
  field.focus();
  field.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  status.textContent = copied
    ? 'Copied to the clipboard.'
    : 'The token is selected: press Ctrl+C (or ⌘C) to copy it.';
}

/** Done or Escape: the pop-up closes, after a question if the token was never copied. */
async function closeToken() {
  if (!tokenCopied) {
    const choice = await ask({
      title: 'Close without copying?',
      text: 'You have not copied the token, and it will not be shown again. Without it, the token must be regenerated.',
      choices: [
        { value: 'close', label: 'Close without copying', kind: 'danger' },
        { value: 'back', label: 'Go back to the token' },
      ],
      dismissed: 'back',
    });
    if (choice !== 'close') {
      $('copy-token').focus();
      return;
    }
  }
  $('token-dialog').close();
}

async function tokenDialogClosed() {
  // The token string leaves the page with the pop-up.
  $('token-value').value = '';
  $('copy-status').textContent = '';
  state.editing = null;
  savedForm = null;
  navigate('#/tokens');
}

// --- Regenerate and delete ----------------------------------------------------------------------

function openRegenerate(token) {
  state.regenerating = token;
  $('regenerate-form').reset();
  $('r-expires-error').textContent = '';
  $('r-cidrs-error').textContent = '';
  $('r-cidrs').value = showCidrs(token.allowed_cidrs);
  $('regenerate-self').hidden = !isSelf(token);
  describeExpiry('r');
  $('regenerate-dialog').showModal();
  $('r-expires').focus();
}

async function regenerate(event) {
  event.preventDefault();
  const token = state.regenerating;
  const expiry = readExpiry('r');
  const message = checkExpiry(expiry);
  if (message) {
    $('r-expires-error').textContent = message;
    (expiry.at === undefined ? $('r-expires') : $('r-custom-date')).focus();
    return;
  }
  const cidrs = readCidrs($('r-cidrs').value);
  const cidrProblem = checkCidrs(cidrs);
  $('r-cidrs-error').textContent = cidrProblem ?? '';
  if (cidrProblem) {
    $('r-cidrs').focus();
    return;
  }
  let made;
  try {
    made = await api('POST', `/v1/tokens/${encodeURIComponent(token.id)}/regenerate`, {
      body: { expires: expiry.value, allowed_cidrs: cidrs },
      revision: token.revision,
    });
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else if (error.message.startsWith('allowed_cidrs:')) {
      $('r-cidrs-error').textContent = `Allowed networks: ${error.message.slice('allowed_cidrs:'.length).trim()}`;
    } else $('r-expires-error').textContent = error.code === 'conflict'
      ? 'Someone else changed this token since you opened it: reload it and try again.'
      : error.message;
    return;
  }
  $('regenerate-dialog').close();
  let what = `Token ${made.record.name} was regenerated (version ${made.record.version}). The old token no longer works: update every script that used it.`;
  if (isSelf(token)) {
    // The old token stopped working: the session carries on with the new one.
    sessionStorage.setItem(TOKEN_KEY, made.token);
    await whoAmI();
    what += ' This page now uses the new token.';
  }
  showToken(made, what);
}

function openDelete(token) {
  state.deleting = token;
  $('delete-what').textContent = `Delete the token ${token.name}?`;
  $('delete-self').hidden = !isSelf(token);
  $('delete-error').textContent = '';
  $('delete-dialog').showModal();
  $('delete-cancel').focus();
}

async function confirmDelete() {
  const token = state.deleting;
  try {
    await api('DELETE', `/v1/tokens/${encodeURIComponent(token.id)}`, { revision: token.revision });
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else if (error.code === 'last_super_admin') $('delete-error').textContent = LAST_SUPER_ADMIN.delete;
    else if (error.code === 'conflict') $('delete-error').textContent = 'Someone else changed this token since the list was loaded: reload the list and try again.';
    else $('delete-error').textContent = error.message;
    return;
  }
  $('delete-dialog').close();
  state.deleting = null;
  state.editing = null;
  savedForm = null;
  if (isSelf(token)) {
    // The session's own token is gone: straight back to signing in, nothing else to show.
    history.replaceState(null, '', '#/tokens');
    signOut(`You deleted the token you were signed in with (${token.name}). Sign in with another super-admin token.`);
    return;
  }
  navigate('#/tokens', `Token ${token.name} was deleted. Scripts that used it no longer work.`);
}
