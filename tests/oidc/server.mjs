// A real OpenID Connect provider (npm `oidc-provider` v9) for Airlock's
// identity integration test.
//
// It issues client-credentials access tokens as JWTs (RFC 9068). Each
// built-in Airlock role has a client of the same name (`runner` with secret
// `runner-secret`, ...) whose tokens carry `roles: ["<role>"]`.
//
// Resources (RFC 8707):
//   urn:airlock  -> audience "airlock" (the default when none is asked for)
//   urn:other    -> audience "other"   (another API: Airlock must refuse it)
//
// People sign in to Airlock's web console through the provider's own
// development login form (`devInteractions`: any password) with the client
// `airlock-console` (secret `airlock-console-secret`, authorization code
// with PKCE, a redirect URI on 127.0.0.1, any port). Their access tokens
// carry `roles: ["<role>"]` by login name: rosa (reader), rene (runner),
// edda (editor), ada (admin), otto (auditor), april (approver); other names
// get no role.
//
// Usage: node tests/oidc/server.mjs [PORT]   (or PORT=...; 0 picks a free port)
// Prints one line `oidc-provider ready issuer=http://127.0.0.1:PORT` once it
// accepts connections, then serves until killed or its stdin closes.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const ROLES = ['reader', 'runner', 'editor', 'admin', 'auditor'];

const PEOPLE = {
  rosa: { role: 'reader', name: 'Rosa Reader' },
  rene: { role: 'runner', name: 'Rene Runner' },
  edda: { role: 'editor', name: 'Edda Editor' },
  ada: { role: 'admin', name: 'Ada Admin' },
  otto: { role: 'auditor', name: 'Otto Auditor' },
  april: { role: 'approver', name: 'April Approver' },
};

const RESOURCES = {
  'urn:airlock': 'airlock',
  'urn:other': 'other',
};

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `test-${crypto.randomUUID()}`, alg: 'RS256', use: 'sig' };
}

function configuration() {
  return {
    clients: [
      ...ROLES.map((role) => ({
        client_id: role,
        client_secret: `${role}-secret`,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      })),
      {
        client_id: 'nobody',
        client_secret: 'nobody-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'airlock-console',
        client_secret: 'airlock-console-secret',
        // Native: any port of the loopback redirect URI (RFC 8252 7.3).
        application_type: 'native',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/console/callback'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingKey()] },
    scopes: ['openid', 'profile', 'email', 'airlock'],
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    pkce: { required: () => true },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        name: PEOPLE[id]?.name ?? id,
        email: `${id}@people.example`,
        email_verified: true,
      }),
    }),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => 'urn:airlock',
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const audience = RESOURCES[resourceIndicator];
          if (!audience) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: 'airlock',
            audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: async (_ctx, token) => {
      if (token.accountId) {
        const person = PEOPLE[token.accountId];
        return person ? { roles: [person.role] } : undefined;
      }
      if (ROLES.includes(token.clientId)) {
        return { roles: [token.clientId] };
      }
      return undefined;
    },
  };
}

const port = Number(process.env.PORT ?? process.argv[2] ?? 0);
const server = http.createServer();

server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address();
  const issuer = `http://127.0.0.1:${bound}`;
  const provider = new Provider(issuer, configuration());
  server.on('request', provider.callback());
  console.log(`oidc-provider ready issuer=${issuer}`);
});

// The test harness holds our stdin; when it goes away, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
