// main.js: wiring; the last file, so everything it uses is defined.

// --- Wiring -------------------------------------------------------------------------------------

function start() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  // The tabs and the form's back link are plain links to routes; a tab for the view on show
  // shows it again (fresh from the API), as a link to the same address would not.
  window.addEventListener('hashchange', () => route());
  for (const tab of document.querySelectorAll('#nav .tab')) {
    tab.addEventListener('click', (event) => {
      if (location.hash !== tab.getAttribute('href')) return;
      event.preventDefault();
      navigate(location.hash);
    });
  }
  $('generate').addEventListener('click', () => navigate('#/new'));
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
  $('form-cancel').addEventListener('click', () => navigate('#/tokens'));
  $('form-regenerate').addEventListener('click', regenerateFromForm);
  $('form-delete').addEventListener('click', () => openDelete(state.editing));
  // Leaving the page (reload, another address, closing the tab) with a changed form or an
  // uncopied token: the browser asks.
  window.addEventListener('beforeunload', (event) => {
    if (formDirty() || ($('token-dialog').open && !tokenCopied)) {
      event.preventDefault();
      event.returnValue = '';
    }
  });

  $('copy-token').addEventListener('click', copyToken);
  $('token-done').addEventListener('click', closeToken);
  // Escape: not straight away when the token was not copied. Stopping the key stops the
  // dialog's cancel; `cancel` is stopped too, for other ways the browser closes it.
  $('token-dialog').addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !tokenCopied) {
      event.preventDefault();
      closeToken();
    }
  });
  $('token-dialog').addEventListener('cancel', (event) => {
    if (tokenCopied) return;
    event.preventDefault();
    closeToken();
  });
  $('token-dialog').addEventListener('close', tokenDialogClosed);
  $('regenerate-form').addEventListener('submit', regenerate);
  $('regenerate-cancel').addEventListener('click', () => $('regenerate-dialog').close());
  $('delete-confirm').addEventListener('click', confirmDelete);
  $('delete-cancel').addEventListener('click', () => $('delete-dialog').close());

  if (!location.hash) history.replaceState(null, '', '#/tokens');
  if (sessionStorage.getItem(TOKEN_KEY)) whoAmI().then(() => route({ focus: false }));
  else show('sign-in', { focus: false });
}

start();
