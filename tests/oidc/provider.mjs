// A real OpenID Connect provider for the single sign-on tests: the npm
// package `oidc-provider` (installed by `.ci/run` under `target/oidc`; the
// harness copies this file next to its node_modules and runs it).
//
// Environment:
//   OIDC_CLIENTS  JSON list of { client_id, client_secret, redirect_uris }
//   OIDC_GROUPS   JSON object: login -> list of group names (optional)
//
// Anyone signs in with any login and password (the package's development
// interactions); the login is the account's subject and e-mail address,
// unless it has no "@" (then the account has no e-mail address). Consent is
// given by default, as an organisation's own applications usually are.
//
// Test controls (the tests' way to play a hostile or broken provider with
// the provider's own signing key):
//   POST /test/next-id-token {"mode": "wrong_audience" | "expired" | "replay_last" | "unverified_email"}
//        the next token response carries an ID token changed so
//   GET  /test/last-id-token  the last ID token issued, as issued
// It prints one line of JSON, {"issuer": ...}, once it listens.

import Provider from 'oidc-provider';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';

const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]').map((c) => ({
  ...c,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));
const groups = JSON.parse(process.env.OIDC_GROUPS || '{}');

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'test-signing-key', alg: 'RS256', use: 'sig' };

let nextMode = null;
let lastIdToken = null;

async function resign(claims) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: jwk.kid })
    .sign(privateKey);
}

async function changed(idToken, mode) {
  const claims = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'wrong_audience':
      return resign({ ...claims, aud: 'some-other-application' });
    case 'expired':
      return resign({ ...claims, iat: now - 7200, exp: now - 3600 });
    case 'unverified_email':
      return resign({ ...claims, email_verified: false });
    case 'replay_last':
      return lastIdToken ?? idToken;
    default:
      return idToken;
  }
}

function start(issuer, port) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // The scopes' claims in the ID token itself, as most providers do.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        ...(id.includes('@') ? { email: id, email_verified: true } : {}),
        name: id.split('@')[0],
        groups: groups[id] ?? [],
      }),
    }),
    loadExistingGrant: async (ctx) => {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile groups');
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups']);
      await grant.save();
      return grant;
    },
    cookies: { keys: ['oidc-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
  });
  provider.proxy = false;
  provider.use(async (ctx, next) => {
    if (ctx.path === '/test/next-id-token' && ctx.method === 'POST') {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      nextMode = JSON.parse(Buffer.concat(chunks).toString() || '{}').mode ?? null;
      ctx.body = { mode: nextMode };
      return;
    }
    if (ctx.path === '/test/last-id-token') {
      ctx.body = { id_token: lastIdToken };
      return;
    }
    await next();
    if (ctx.path === '/token' && ctx.body && typeof ctx.body === 'object' && ctx.body.id_token) {
      const issued = ctx.body.id_token;
      if (nextMode) {
        const mode = nextMode;
        nextMode = null;
        ctx.body = { ...ctx.body, id_token: await changed(issued, mode) };
      }
      lastIdToken = issued;
    }
  });
  const server = provider.listen(port, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ issuer })}\n`);
  });
  return server;
}

// Listen on a free port first, so the issuer names the port it serves.
import { createServer } from 'node:net';
const probe = createServer();
probe.listen(0, '127.0.0.1', () => {
  const { port } = probe.address();
  probe.close(() => start(`http://127.0.0.1:${port}`, port));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
