// The example single-page app at /assets/example.html: tessera.js in use, nothing else.
// `?transport=token` switches from the cookie transport to the token transport.

import { createClient } from './tessera.js';

const transport = new URLSearchParams(location.search).get('transport') === 'token' ? 'token' : 'cookie';
const status = document.getElementById('status');
const show = (text) => {
  status.textContent = text;
};

const tessera = createClient({
  transport,
  onLogout: (reason) => show(`Logged out (${reason === 'elsewhere' ? 'in another tab' : 'the session ended'}).`),
});
// For the browser console: try `await tessera.fetch('/v1/sessions')`.
window.tessera = tessera;

document.getElementById('transport').textContent = transport;
document.getElementById('refresh').hidden = transport !== 'token';

async function describe() {
  const session = await tessera.session();
  show(session ? `Logged in as ${session.user.username} (session ${session.id}).` : 'Not logged in.');
}

const run = (action) => async (event) => {
  event.preventDefault();
  try {
    await action();
  } catch (error) {
    show(error.retryAfter ? `${error.message} (retry in ${error.retryAfter}s)` : `Error: ${error.message}`);
  }
};

document.getElementById('login').addEventListener(
  'submit',
  run(async () => {
    const form = document.getElementById('login');
    await tessera.login(form.username.value, form.password.value);
    form.password.value = '';
    await describe();
  }),
);
document.getElementById('whoami').addEventListener('click', run(describe));
document.getElementById('refresh').addEventListener(
  'click',
  run(async () => {
    show((await tessera.refresh()) ? 'A new access token is in memory.' : 'Not logged in.');
  }),
);
document.getElementById('logout').addEventListener(
  'click',
  run(async () => {
    await tessera.logout();
    show('Logged out.');
  }),
);
document.getElementById('logout-everywhere').addEventListener(
  'click',
  run(async () => {
    await tessera.logoutEverywhere();
    show('Every session of this account has ended.');
  }),
);

await describe().catch((error) => show(`Error: ${error.message}`));
document.body.dataset.ready = 'true';
