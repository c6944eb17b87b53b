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
// Usage: node tests/oidc/server.mjs [PORT]   (or PORT=...; 0 picks a free port)
// Prints one line `oidc-provider ready issuer=http://127.0.0.1:PORT` once it
// accepts connections, then serves until killed or its stdin closes.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const ROLES = ['reader', 'runner', 'editor', 'admin', 'auditor'];

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
    ],
    jwks: { keys: [signingKey()] },
    scopes: ['airlock'],
    features: {
      devInteractions: { enabled: false },
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
