// A real OpenID Provider for Convene's tests: panva's oidc-provider (OpenID Certified), on
// 127.0.0.1 only, configured by the environment (conformance/oidc.sh sets it):
//
//   OIDC_PORT                    port to listen on
//   OIDC_REDIRECT_URIS           the client's redirect URIs (space separated)
//   OIDC_POST_LOGOUT_URIS        its post-logout redirect URIs
//   OIDC_ACCESS_TOKEN_TTL        seconds (a short one makes Convene refresh)
//   OIDC_TAMPER                  unset for an honest provider; "signature" re-signs every ID
//                                token with a key it never publishes, "audience" signs it
//                                properly but for another client. Tests use these as the
//                                second, hostile provider.
//
// One confidential client, `convene` / `convene-secret` (client_secret_basic), PKCE S256
// required. People (password NAME-pass): olivia (groups sales, staff), carol (engineering),
// and mallory, whose preferred_username claims to be "alice" (a takeover attempt).
// The login page is a plain HTML form at /interaction/UID; consent is implied for this
// first-party client.
import http from 'node:http';
import crypto from 'node:crypto';
import { generateKeyPair, exportJWK, importJWK, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider, { errors } from 'oidc-provider';

const env = process.env;
const PORT = Number(env.OIDC_PORT);
if (!PORT) throw new Error('OIDC_PORT is required');
const ISSUER = `http://127.0.0.1:${PORT}`;
const list = (v) => (v || '').split(/\s+/).filter(Boolean);
const TAMPER = env.OIDC_TAMPER || '';

const PEOPLE = {
  olivia: { preferred_username: 'olivia', name: 'Olivia Olsen', email: 'olivia@example.org', groups: ['sales', 'staff'] },
  carol: { preferred_username: 'carol', name: 'Carol Clark', email: 'carol@example.org', groups: ['engineering'] },
  mallory: { preferred_username: 'alice', name: 'Mallory M', email: 'mallory@example.org', groups: [] },
};

async function signingKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg: 'RS256', use: 'sig', kid: crypto.randomBytes(6).toString('hex') };
}
const ownKey = await signingKey();

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${html(title)}</title></head><body><main><h1>${html(title)}</h1>${body}</main></body></html>`;

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: 'convene',
    client_secret: 'convene-secret',
    redirect_uris: list(env.OIDC_REDIRECT_URIS),
    post_logout_redirect_uris: list(env.OIDC_POST_LOGOUT_URIS),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [ownKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `${form}<p>Sign out of the test provider?</p><button type="submit" form="op.logoutForm" name="logout" value="yes" id="logout-yes">Sign out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => { ctx.body = page('Signed out', '<p>You are signed out.</p>'); },
    },
  },
  ttl: {
    AccessToken: Number(env.OIDC_ACCESS_TOKEN_TTL || 3600),
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 86400,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  async findAccount(_ctx, sub) {
    const p = PEOPLE[sub];
    if (!p) return undefined;
    return { accountId: sub, claims: async () => ({ sub, email_verified: true, ...p }) };
  },
  interactions: { url: (_ctx, i) => `/interaction/${i.uid}` },
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<p id="error">${html(out.error)}: ${html(out.error_description || '')}</p>`);
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

// The hostile modes: rewrite the ID token in the token endpoint's answer.
if (TAMPER) {
  const foreign = await signingKey();
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || !ctx.body || typeof ctx.body !== 'object' || !ctx.body.id_token) return;
    const claims = decodeJwt(ctx.body.id_token);
    const header = decodeProtectedHeader(ctx.body.id_token);
    let key = ownKey;
    if (TAMPER === 'signature') key = { ...foreign, kid: header.kid };
    if (TAMPER === 'audience') claims.aud = 'someone-else';
    ctx.body = { ...ctx.body, id_token: await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid }).sign(await importJWK(key, 'RS256')) };
  });
}

async function readForm(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > 65536) throw new errors.InvalidRequest('body too large');
    chunks.push(c);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

const loginForm = (uid, error) => page('Sign in to the test provider', `${error ? `<p role="alert" id="error">${html(error)}</p>` : ''}<form method="post" action="/interaction/${html(uid)}/login"><p><label>Username <input name="username" id="username" autocomplete="username"></label></p><p><label>Password <input name="password" id="password" type="password" autocomplete="current-password"></label></p><p><button type="submit" id="submit">Sign in</button></p></form>`);

const sha = (s) => crypto.createHash('sha256').update(String(s)).digest();
const callback = provider.callback();

http.createServer(async (req, res) => {
  const m = req.url.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/login)?(?:\?.*)?$/);
  if (!m) return callback(req, res);
  res.setHeader('Cache-Control', 'no-store');
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== m[1]) throw new errors.InvalidRequest('interaction mismatch');
    if (req.method === 'GET' && !m[2]) {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      return res.end(loginForm(details.uid));
    }
    if (req.method === 'POST' && m[2]) {
      const form = await readForm(req);
      const ok = PEOPLE[form.username] && crypto.timingSafeEqual(sha(form.password), sha(`${form.username}-pass`));
      if (!ok) {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        return res.end(loginForm(details.uid, 'Wrong username or password'));
      }
      return await provider.interactionFinished(req, res, { login: { accountId: form.username } }, { mergeWithLastSubmission: false });
    }
    res.statusCode = 405;
    res.end('method not allowed');
  } catch (err) {
    res.statusCode = err.statusCode || 400;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(`${err.name}: ${err.message}`);
  }
}).listen(PORT, '127.0.0.1', () => console.log(`test OpenID provider at ${ISSUER}${TAMPER ? ` (tampering: ${TAMPER})` : ''}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
