// A real OpenID Provider for mlgate's SSO tests, configured by a JSON file given as the only argument:
// { "port", "issuer", "clients": [...], "users": { "<id>": { claims... } }, "jwks": { "keys": [...] },
//   "api_audience": "...", "admin_secret": "...", "rotate_refresh_tokens": false,
//   "profile_in_access_tokens": false }
// It prints "READY <issuer>" on stdout once it listens. Accounts come from the file; the built-in
// development login and consent pages take the account id as the login name.
//
// Like Keycloak, it issues a refresh token to every client allowed the refresh_token grant (oidc-provider
// alone would want offline_access with prompt=consent). Tests change accounts while it runs through
// POST /admin/accounts/<id> {"disabled": bool, "groups": [...], "revoke_grants": true}, which needs the
// header "x-admin-secret: <admin_secret>" (a random value chosen by the fixture); without admin_secret
// the endpoint does not exist. POST /admin/forge-id-token {"claims": {...}, "alg": "RS256" | "none" |
// "HS256-public-key"} (same header) makes the next token response carry a forged ID token instead of the
// real one: the real claims with "claims" merged in (null deletes one), signed with the provider's own key
// (RS256), not at all (none), or with HMAC keyed by the provider's public key PEM (the alg-confusion attack).
// POST /admin/kubernetes-token {"namespace", "name", "audience", "ttl_seconds", "unpublished_key": bool}
// (same header) answers {"token"}: a projected service-account token shaped as a kube-apiserver's TokenRequest
// issues it (sub system:serviceaccount:<ns>:<name>, aud list, the kubernetes.io claim), signed with the
// provider's published key, or with a fresh key it never publishes. The provider's discovery document and
// JWKS serve the keys, as a cluster's service-account issuer does. POST /admin/access-token {"claims"} (same
// header) answers {"token"}: an API access token signed with the published key, "claims" merged in.
import { createPublicKey, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT, base64url, decodeJwt, generateKeyPair, importJWK } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = config.users || {};
// Grants issued per account, so an administrator can revoke them (as "sign out everywhere" would).
const grantsByAccount = new Map();

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  // mlgate's tests need the profile claims in the ID token itself.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  cookies: {
    names: { session: 'idp_session', interaction: 'idp_interaction', resume: 'idp_resume' },
    keys: ['mlgate-test-idp-cookie-key'],
  },
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ...(config.rotate_refresh_tokens ? { rotateRefreshToken: () => true } : {}),
  ttl: {
    AccessToken: config.access_token_ttl || 600,
    ClientCredentials: config.access_token_ttl || 600,
    IdToken: config.id_token_ttl || 600,
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => config.api_audience,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== config.api_audience) {
          throw new Error(`unknown resource ${resource}`);
        }
        return { scope: 'api:read api:write', audience: config.api_audience, accessTokenFormat: 'jwt',
                 jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  extraTokenClaims: async (_ctx, token) => {
    // Client-credentials JWTs carry the client's groups so a machine maps to mlgate groups.
    const client = (config.clients || []).find((c) => c.client_id === token.clientId);
    if (token.kind === 'ClientCredentials' && client && client['x-groups']) {
      return { groups: client['x-groups'] };
    }
    const account = token.accountId && users[token.accountId];
    if (account && config.profile_in_access_tokens) {
      // As Keycloak does by default: the person's name, e-mail and groups in their access tokens.
      const { disabled: _disabled, ...claims } = account;
      return { preferred_username: token.accountId, ...claims };
    }
    return account && account.groups ? { groups: account.groups } : undefined;
  },
  async findAccount(_ctx, id) {
    const account = users[id];
    // A disabled account is unknown to every grant, so its refresh tokens stop working at once.
    if (!account || account.disabled) return undefined;
    return {
      accountId: id,
      async claims() {
        const { disabled: _disabled, ...claims } = account;
        return { sub: id, preferred_username: id, ...claims };
      },
    };
  },
});
provider.proxy = false;

provider.on('grant.success', (ctx) => {
  const grant = ctx.oidc.entities.Grant;
  const accountId = ctx.oidc.entities.Account?.accountId || grant?.accountId;
  if (grant && accountId) {
    if (!grantsByAccount.has(accountId)) grantsByAccount.set(accountId, new Set());
    grantsByAccount.get(accountId).add(grant.jti);
  }
});

function adminAllowed(ctx) {
  const given = Buffer.from(String(ctx.get('x-admin-secret') || ''));
  const wanted = Buffer.from(String(config.admin_secret));
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

async function readJson(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

async function revokeGrants(accountId) {
  for (const grantId of grantsByAccount.get(accountId) || []) {
    await provider.RefreshToken.revokeByGrantId(grantId);
    await provider.AccessToken.revokeByGrantId(grantId);
    const grant = await provider.Grant.find(grantId);
    if (grant) await grant.destroy();
  }
  grantsByAccount.delete(accountId);
}

// The forgery the next token response carries (tests of the relying party's ID token checks).
let forgery = null;

async function forgeIdToken(real, { claims = {}, alg = 'RS256' }) {
  const payload = { ...decodeJwt(real) };
  for (const [name, value] of Object.entries(claims)) {
    if (value === null) delete payload[name];
    else payload[name] = value;
  }
  const jwk = config.jwks.keys[0];
  if (alg === 'none') {
    const part = (data) => base64url.encode(JSON.stringify(data));
    return `${part({ alg: 'none', kid: jwk.kid })}.${part(payload)}.`;
  }
  if (alg === 'HS256-public-key') {
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = jwk;
    const pem = createPublicKey({ key: publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: jwk.kid })
      .sign(new TextEncoder().encode(pem));
  }
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: jwk.kid })
    .sign(await importJWK(jwk, 'RS256'));
}

if (config.admin_secret) {
  provider.use(async (ctx, next) => {
    if (ctx.path !== '/token') return next();
    await next();
    if (forgery && ctx.status === 200 && ctx.body && typeof ctx.body.id_token === 'string') {
      const wanted = forgery;
      forgery = null;
      ctx.body = { ...ctx.body, id_token: await forgeIdToken(ctx.body.id_token, wanted) };
    }
    return undefined;
  });

  provider.use(async (ctx, next) => {
    if (ctx.path === '/admin/forge-id-token') {
      if (ctx.method !== 'POST' || !adminAllowed(ctx)) {
        ctx.status = 403;
        ctx.body = { error: 'forbidden' };
        return undefined;
      }
      forgery = await readJson(ctx);
      ctx.body = { armed: true };
      return undefined;
    }
    return next();
  });

  provider.use(async (ctx, next) => {
    if (ctx.path !== '/admin/kubernetes-token') return next();
    if (ctx.method !== 'POST' || !adminAllowed(ctx)) {
      ctx.status = 403;
      ctx.body = { error: 'forbidden' };
      return undefined;
    }
    const want = await readJson(ctx);
    const now = Math.floor(Date.now() / 1000);
    const ttl = Number.isInteger(want.ttl_seconds) ? want.ttl_seconds : 3600;
    const payload = {
      aud: [want.audience], iss: config.issuer, sub: `system:serviceaccount:${want.namespace}:${want.name}`,
      iat: now, nbf: now, exp: now + ttl, jti: randomUUID(),
      'kubernetes.io': {
        namespace: want.namespace,
        pod: { name: `${want.name}-7d9f8-x2x4q`, uid: randomUUID() },
        serviceaccount: { name: want.name, uid: randomUUID() },
      },
    };
    const jwk = config.jwks.keys[0];
    const [key, kid] = want.unpublished_key
      ? [(await generateKeyPair('RS256')).privateKey, 'never-published']
      : [await importJWK(jwk, 'RS256'), jwk.kid];
    ctx.body = { token: await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid }).sign(key) };
    return undefined;
  });

  provider.use(async (ctx, next) => {
    if (ctx.path !== '/admin/access-token') return next();
    if (ctx.method !== 'POST' || !adminAllowed(ctx)) {
      ctx.status = 403;
      ctx.body = { error: 'forbidden' };
      return undefined;
    }
    // A JWT access token for the API audience, signed with the published key, with "claims" merged in: the
    // shapes other providers give client-credentials tokens (Keycloak's sub is the service-account user's id,
    // Auth0's "<client>@clients" with gty, Entra ID's the service principal's object id with idtyp "app"),
    // which oidc-provider itself never issues (its sub is always the client id).
    const want = await readJson(ctx);
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: config.issuer, aud: config.api_audience, iat: now, exp: now + 600, jti: randomUUID(),
                      scope: 'api:read api:write', ...(want.claims || {}) };
    const jwk = config.jwks.keys[0];
    ctx.body = { token: await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid })
      .sign(await importJWK(jwk, 'RS256')) };
    return undefined;
  });

  provider.use(async (ctx, next) => {
    const match = ctx.path.match(/^\/admin\/accounts\/([^/]+)$/);
    if (!match) return next();
    if (ctx.method !== 'POST' || !adminAllowed(ctx)) {
      ctx.status = 403;
      ctx.body = { error: 'forbidden' };
      return undefined;
    }
    const id = decodeURIComponent(match[1]);
    const changes = await readJson(ctx);
    if (!users[id]) users[id] = {};
    if (typeof changes.disabled === 'boolean') users[id].disabled = changes.disabled;
    if (Array.isArray(changes.groups)) users[id].groups = changes.groups;
    if (changes.revoke_grants) await revokeGrants(id);
    ctx.body = { account: id, disabled: Boolean(users[id].disabled), groups: users[id].groups || [] };
    return undefined;
  });
}

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`READY ${config.issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
