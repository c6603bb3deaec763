// A real third-party CIBA provider for the tests: panva's oidc-provider (pinned in
// package.json) with features.ciba in poll and ping mode.
//
//   node op.mjs CONFIG.json
//
// CONFIG: {port, issuer, jwks: {keys: [private JWKs]}, clients: [client metadata],
//          accounts: {"<login_hint>": {sub, ...claims}}}
// Prints "ready <port>" once it listens. Besides the provider's own endpoints it serves a
// test-only admin hook the tests use in place of the person's device:
//   GET  /admin/pending            the pending requests (auth_req_id, login_hint, ...)
//   POST /admin/decide {auth_req_id, decision: "approve" | "deny"}
//   POST /admin/rotate {jwks}      replace the signing keys (a key rotation upstream)
//   POST /admin/reset              forget the pending list (between tests)
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const pending = new Map();

function account(id) {
  const person = config.accounts[id];
  if (!person) return undefined;
  return { accountId: id, claims: async () => ({ ...person }) };
}

function configuration(jwks) {
  return {
    clients: config.clients,
    jwks,
    findAccount: async (ctx, id) => account(id),
    claims: {
      // acr, amr and auth_time ride on the openid scope, so every ID token has them.
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      profile: ['name', 'given_name', 'family_name', 'birthdate'],
      email: ['email'],
      nnin: ['nnin'],
    },
    scopes: ['openid', 'profile', 'email', 'nnin'],
    acrValues: ['urn:test:op:high'],
    conformIdTokenClaims: false,
    issueRefreshToken: async () => false,
    features: {
      devInteractions: { enabled: false },
      ciba: {
        enabled: true,
        deliveryModes: ['poll', 'ping'],
        processLoginHint: async (ctx, loginHint) => (config.accounts[loginHint] ? loginHint : undefined),
        verifyUserCode: async () => {},
        validateRequestContext: async () => {},
        validateBindingMessage: async (ctx, message) => {
          if (message !== undefined && !/^[A-Za-z0-9 .,:!?#+-]{1,64}$/.test(message)) {
            throw new errors.InvalidBindingMessage('binding_message has characters this provider cannot show');
          }
        },
        triggerAuthenticationDevice: async (ctx, request, person, client) => {
          pending.set(request.jti, {
            auth_req_id: request.jti,
            client_id: client.clientId,
            login_hint: ctx.oidc.params.login_hint,
            binding_message: ctx.oidc.params.binding_message,
            acr_values: ctx.oidc.params.acr_values,
            requested_expiry: ctx.oidc.params.requested_expiry,
            scope: ctx.oidc.params.scope,
            client_notification_token: ctx.oidc.params.client_notification_token,
          });
        },
      },
    },
  };
}

let provider = new Provider(config.issuer, configuration(config.jwks));

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

async function decide({ auth_req_id: id, decision }) {
  const request = await provider.BackchannelAuthenticationRequest.find(id, { ignoreExpiration: true });
  if (!request) return [404, { error: 'no such request' }];
  pending.delete(id);
  if (decision === 'deny') {
    await provider.backchannelResult(request, new errors.AccessDenied('the person declined'));
    return [200, { decided: 'deny' }];
  }
  const grant = new provider.Grant({ clientId: request.clientId, accountId: request.accountId });
  grant.addOIDCScope(request.scope);
  await grant.save();
  await provider.backchannelResult(request, grant, {
    acr: 'urn:test:op:high',
    amr: ['pwd', 'otp'],
    authTime: Math.floor(Date.now() / 1000),
  });
  return [200, { decided: 'approve' }];
}

async function admin(req, res) {
  let status = 404;
  let body = { error: 'not found' };
  try {
    if (req.method === 'GET' && req.url === '/admin/pending') {
      [status, body] = [200, [...pending.values()]];
    } else if (req.method === 'POST' && req.url === '/admin/reset') {
      pending.clear();
      [status, body] = [200, { reset: true }];
    } else if (req.method === 'POST' && req.url === '/admin/decide') {
      [status, body] = await decide(await readJson(req));
    } else if (req.method === 'POST' && req.url === '/admin/rotate') {
      // The default memory adapter is shared by every Provider in this process,
      // so pending requests and grants survive the swap.
      provider = new Provider(config.issuer, configuration((await readJson(req)).jwks));
      [status, body] = [200, { rotated: true }];
    }
  } catch (err) {
    [status, body] = [500, { error: String(err && err.message) }];
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/admin/')) return admin(req, res);
  return provider.callback()(req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${config.port}\n`);
});
