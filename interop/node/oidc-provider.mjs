// An OpenID Connect provider (panva's oidc-provider) on loopback for the Go
// interop tests, with an upstream API that accepts only the access tokens
// this provider issued.
//
// Protocol: the test writes one line of JSON to stdin, {"clients": [...]},
// each client {"client_id", "jwks": {"keys": [...]}, "kid"?}: a client that
// authenticates with private_key_jwt by a key of its JWKS. The script
// answers with one line on stdout:
//
//   ready <issuer> <upstream URL>
//
// and runs until stdin closes (the test ends, or dies), then exits.
//
// The upstream answers GET /v1/models with 200 and the client and scope of
// the token when the Authorization header holds a bearer token that the
// provider issued and that has not expired, and 401 otherwise.
import { createServer } from 'node:http';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

import Provider, { errors } from 'oidc-provider';

const lines = createInterface({ input: process.stdin });
const [first] = await once(lines, 'line');
const setup = JSON.parse(first);
lines.on('close', () => process.exit(0));

const expectedKid = new Map(setup.clients.filter((c) => c.kid).map((c) => [c.client_id, c.kid]));

// The token endpoint listens first, so that the issuer can name its port.
const idp = createServer();
idp.listen(0, '127.0.0.1');
await once(idp, 'listening');
const issuer = `http://127.0.0.1:${idp.address().port}`;

const provider = new Provider(issuer, {
  clients: setup.clients.map((c) => ({
    client_id: c.client_id,
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: c.jwks,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'llm.invoke',
  })),
  scopes: ['llm.invoke'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
  },
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'ES384', 'ES512'],
  },
  // oidc-provider checks iss, aud (a string or an array that holds an
  // accepted one), exp, jti (once only) and the signature. What proxyauth
  // promises on top is checked here, so that a server that enforces it
  // refuses a client that does not keep it: sub = iss, aud one string
  // (draft-ietf-oauth-rfc7523bis), iat and nbf present, a life of at most 5
  // minutes, and the kid the client was registered with.
  async assertJwtClientAuthClaimsAndHeader(ctx, claims, header, client) {
    const refuse = (why) => { throw new errors.InvalidClientAuth(why); };
    if (claims.sub !== client.clientId) refuse('sub must be the client_id');
    if (typeof claims.aud !== 'string') refuse('aud must be a single string');
    if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.nbf)) refuse('iat and nbf are required');
    if (claims.exp - claims.iat > 300) refuse('the assertion must expire within 5 minutes of iat');
    const kid = expectedKid.get(client.clientId);
    if (kid !== undefined && header.kid !== kid) refuse(`kid must be ${kid}`);
    if (kid === undefined && 'kid' in header) refuse('no kid was registered');
  },
});
provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));
idp.on('request', provider.callback());

const upstream = createServer(async (req, res) => {
  const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  const token = m ? await provider.ClientCredentials.find(m[1]) : undefined;
  res.setHeader('Content-Type', 'application/json');
  if (!token) {
    res.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    res.end(JSON.stringify({ error: { message: 'not a token of the identity provider' } }));
    return;
  }
  res.end(JSON.stringify({ client_id: token.clientId, scope: token.scope ?? '' }));
});
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');

console.log(`ready ${issuer} http://127.0.0.1:${upstream.address().port}`);
