// A real OpenID Provider for mlgate's SSO tests, configured by a JSON file given as the only argument:
// { "port", "issuer", "clients": [...], "users": { "<id>": { claims... } }, "jwks": { "keys": [...] },
//   "api_audience": "...", "cookie_prefix": "idp" }
// It prints "READY <issuer>" on stdout once it listens. Accounts come from the file; the built-in
// development login and consent pages take the account id as the login name.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = config.users || {};

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
    return account && account.groups ? { groups: account.groups } : undefined;
  },
  async findAccount(_ctx, id) {
    const account = users[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...account };
      },
    };
  },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`READY ${config.issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
