// dialogs.js: the one-time token pop-up, regenerate and delete.

// --- The one-time pop-up ------------------------------------------------------------------------

function showToken(made, what) {
  $('token-dialog-what').textContent = what;
  $('token-value').value = made.token;
  $('token-value').rows = Math.min(14, Math.ceil(made.token.length / 72) + 1);
  $('copy-status').textContent = '';
  $('token-dialog').showModal();
  $('copy-token').focus();
}

async function copyToken() {
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

async function tokenDialogClosed() {
  // The token string leaves the page with the pop-up.
  $('token-value').value = '';
  $('copy-status').textContent = '';
  state.editing = null;
  await loadTokens();
  show('tokens');
}

// --- Regenerate and delete ----------------------------------------------------------------------

function openRegenerate() {
  $('regenerate-form').reset();
  $('r-expires-error').textContent = '';
  describeExpiry('r');
  $('regenerate-dialog').showModal();
  $('r-expires').focus();
}

async function regenerate(event) {
  event.preventDefault();
  const token = state.editing;
  const expiry = readExpiry('r');
  const message = checkExpiry(expiry);
  if (message) {
    $('r-expires-error').textContent = message;
    (expiry.at === undefined ? $('r-expires') : $('r-custom-date')).focus();
    return;
  }
  try {
    const made = await api('POST', `/v1/tokens/${encodeURIComponent(token.id)}/regenerate`, {
      body: { expires: expiry.value },
      revision: token.revision,
    });
    $('regenerate-dialog').close();
    showToken(
      made,
      `Token ${made.record.name} was regenerated (version ${made.record.version}). The old token no longer works: update every script that used it.`,
    );
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else $('r-expires-error').textContent = error.message;
  }
}

function openDelete(token) {
  state.deleting = token;
  $('delete-what').textContent = `Delete the token ${token.name}?`;
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
    else $('delete-error').textContent = error.message;
    return;
  }
  $('delete-dialog').close();
  state.deleting = null;
  state.editing = null;
  await loadTokens();
  show('tokens');
  notice(`Token ${token.name} was deleted. Scripts that used it no longer work.`);
}

