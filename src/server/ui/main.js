// main.js: wiring; the last file, so everything it uses is defined.

// --- Wiring -------------------------------------------------------------------------------------

function start() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  for (const tab of document.querySelectorAll('#nav .tab')) {
    tab.addEventListener('click', async () => {
      const view = tab.dataset.view;
      if (view === 'tokens') {
        notice('');
        show('tokens');
        await loadTokens();
      } else if (view === 'audit') await showAudit();
      else await showKeys();
    });
  }
  $('generate').addEventListener('click', openGenerate);
  // `change` too: clearing a field (Escape, or a script) need not fire `input`.
  $('search').addEventListener('input', renderTokens);
  $('search').addEventListener('change', renderTokens);
  $('sort').addEventListener('change', () => {
    const [key, dir] = $('sort').value.split(':');
    state.sort = { key, dir };
    renderTokens();
  });
  for (const th of document.querySelectorAll('#tokens-table th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => sortBy(th.dataset.sort));
  }

  setupExpiry('f');
  setupExpiry('r');
  $('token-form').addEventListener('submit', submitForm);
  $('f-name').addEventListener('change', () => {
    if (state.editing !== null) return;
    const message = checkName($('f-name').value);
    $('f-name-error').textContent = message ?? '';
    if (message) $('f-name').setAttribute('aria-invalid', 'true');
    else $('f-name').removeAttribute('aria-invalid');
  });
  $('f-description').addEventListener('change', () => {
    const message = checkDescription($('f-description').value);
    $('f-description-error').textContent = message ?? '';
  });
  $('f-super').addEventListener('change', togglePermissions);
  $('f-specific').addEventListener('change', togglePermissions);
  for (const fieldset of document.querySelectorAll('#f-grants fieldset.resource')) {
    fieldset.querySelector('.add').addEventListener('click', () => {
      const row = grantRow(fieldset.dataset.resource, null);
      row.querySelector('select').focus();
    });
  }
  const back = () => {
    state.editing = null;
    show('tokens');
  };
  $('form-back').addEventListener('click', back);
  $('form-cancel').addEventListener('click', back);
  $('form-regenerate').addEventListener('click', openRegenerate);
  $('form-delete').addEventListener('click', () => openDelete(state.editing));

  $('copy-token').addEventListener('click', copyToken);
  $('token-done').addEventListener('click', () => $('token-dialog').close());
  $('token-dialog').addEventListener('close', tokenDialogClosed);
  $('regenerate-form').addEventListener('submit', regenerate);
  $('regenerate-cancel').addEventListener('click', () => $('regenerate-dialog').close());
  $('delete-confirm').addEventListener('click', confirmDelete);
  $('delete-cancel').addEventListener('click', () => $('delete-dialog').close());

  if (sessionStorage.getItem(TOKEN_KEY)) {
    loadTokens().then((ok) => {
      if (ok) show('tokens', { focus: false });
    });
  } else {
    show('sign-in', { focus: false });
  }
}

start();
