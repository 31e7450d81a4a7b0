// Convene's browser flows in Debian's headless Chromium, driven by playwright-core: OIDC
// sign-in through the provider's real login form, creating an app password on the account
// page (and using it for CalDAV), Login Flow v2 granted with one click, a password sign-in,
// revoking an app password, binding a form-login business system and opening it signed in
// through the login proxy, and sign-out through the provider.
//
// Env: CONVENE_URL (a running Convene with [oidc] configured and a local user alice /
// alice-pw), CHROMIUM (default /usr/bin/chromium). Prints one line per flow and, last,
// "browser: N passed, M failed". Exit status 1 if any failed.
import { chromium } from 'playwright-core';

const BASE = process.env.CONVENE_URL;
if (!BASE) throw new Error('CONVENE_URL is required');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Root in a container, and a closed network: no sandbox, no background fetches.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

let passed = 0;
let failed = 0;
async function flow(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack || e}`);
  }
}
function check(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}
const basic = (user, pw) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
async function davStatus(user, pw) {
  const r = await fetch(`${BASE}/dav/calendars/${user}/`, {
    method: 'PROPFIND', headers: { Authorization: basic(user, pw), Depth: '0' },
  });
  return r.status;
}

const sso = await browser.newContext();
const page = await sso.newPage();

await flow('OIDC sign-in through the provider login form', async () => {
  await page.goto(`${BASE}/account`);
  check(page.url().startsWith(`${BASE}/login`), `redirected to sign-in, at ${page.url()}`);
  await page.click('#sso');
  await page.waitForSelector('#username');
  check(!page.url().startsWith(BASE), 'on the provider');
  await page.fill('#username', 'olivia');
  await page.fill('#password', 'olivia-pass');
  await page.click('#submit');
  await page.waitForURL(`${BASE}/account`);
  check((await page.textContent('#user')) === 'olivia', 'signed in as olivia');
  check((await page.textContent('#groups')).includes('sales'), 'groups from the provider');
});

await flow('create an app password and use it for CalDAV', async () => {
  await page.getByLabel('Name').fill('Laptop');
  await page.getByLabel('Access').selectOption('caldav');
  await page.getByRole('button', { name: 'Create app password' }).click();
  const pw = (await page.textContent('#new-password')).trim();
  check(pw.startsWith('cvp_'), `an app password, got ${pw}`);
  check(await davStatus('olivia', pw) === 207, 'it works for CalDAV');
  await page.goto(`${BASE}/account`);
  check(!(await page.content()).includes(pw), 'never shown again');
  check((await page.textContent('#app-passwords')).includes('Laptop'), 'listed');
});

await flow('Login Flow v2 granted from the signed-in browser', async () => {
  const start = await (await fetch(`${BASE}/index.php/login/v2`, {
    method: 'POST', headers: { 'User-Agent': 'DAVx5/4.4 (browser test)' },
  })).json();
  await page.goto(start.login);
  check((await page.content()).includes('DAVx5/4.4'), 'the page names the client');
  await page.getByRole('button', { name: 'Grant access' }).click();
  await page.waitForSelector('#granted');
  const r = await fetch(start.poll.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: `token=${encodeURIComponent(start.poll.token)}`,
  });
  check(r.status === 200, `poll answered ${r.status}`);
  const g = await r.json();
  check(g.loginName === 'olivia', 'login name');
  check(await davStatus('olivia', g.appPassword) === 207, 'the granted password works');
});

await flow('password sign-in, then revoke an app password', async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(`${BASE}/login`);
  await p.getByLabel('User name').fill('alice');
  await p.getByLabel('Password').fill('alice-pw');
  await p.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p.waitForURL(`${BASE}/account`);
  check((await p.textContent('#user')) === 'alice', 'signed in as alice');
  await p.getByLabel('Name').fill('Old phone');
  await p.getByRole('button', { name: 'Create app password' }).click();
  const pw = (await p.textContent('#new-password')).trim();
  check(await davStatus('alice', pw) === 207, 'works before revoking');
  await p.getByRole('button', { name: 'Revoke Old phone' }).click();
  await p.waitForURL(`${BASE}/account`);
  check(await davStatus('alice', pw) === 401, 'refused after revoking');
  await ctx.close();
});

let hrHost = null;
await flow('bind the HR system and open it signed in through the login proxy', async () => {
  // Signed in once, through the identity provider (the first flow), as olivia.
  await page.goto(`${BASE}/account/systems`);
  const row = page.locator('tr', { hasText: 'ExampleHR' });
  await row.getByLabel('User name').fill('aanderson');
  await row.getByLabel('Password').fill('Hr!alice-2024');
  await row.getByRole('button', { name: 'Bind' }).click();
  await page.waitForURL(`${BASE}/account/systems`);
  check((await page.textContent('#state-hr')) === 'bound', 'the HR account is bound');
  // One click: the portal hands the session to the HR host, which replays the HR login.
  await page.click('#open-hr');
  await page.waitForURL((u) => u.hostname === 'hr.apps.localhost');
  check((await page.textContent('h1')).includes('Alice Anderson'), `signed in at HR: ${await page.textContent('body')}`);
  hrHost = new URL(page.url()).origin;
  await page.goto(`${hrHost}/payslip`);
  check((await page.textContent('#net')) === '4200', 'her payslip');
});

await flow('sign out through the provider', async () => {
  await page.goto(`${BASE}/account`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForSelector('#logout-yes');
  await page.click('#logout-yes');
  await page.waitForURL((u) => u.toString().startsWith(`${BASE}/login`));
  await page.goto(`${BASE}/account`);
  check(page.url().startsWith(`${BASE}/login`), 'signed out here');
  // Signing out of the portal closes the HR host too.
  check(hrHost !== null, 'the HR flow ran');
  await page.goto(`${hrHost}/payslip`);
  check(!page.url().startsWith(hrHost), `the HR host no longer serves her, at ${page.url()}`);
});

await browser.close();
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
