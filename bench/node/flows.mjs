// Complete CIBA poll flows run by panva's openid-client, for the flow_cost benchmark.
//
// usage: node flows.mjs ISSUER CLIENT_ID SECRET ALG HINT ACR FLOWS CONCURRENCY
//
// Discovery and JWKS once, then per flow: bc-authorize, a first token poll at once
// (authorization_pending: the connector's first collect is half a second away), then
// openid-client's own poll loop, which waits the interval and redeems. The ID token is
// validated by the library (iss, aud, exp, iat, sub, alg) and, with non-repudiation
// checks on, its signature against jwks_uri. Prints one JSON line:
// {"flows": n, "errors": [...], "seconds": s, "token_requests": n, "client_cpu": s}.
// Waits for one line on stdin before the first flow, so the caller can start its CPU
// counters after discovery and process start.
import * as client from "openid-client";
import { createInterface } from "node:readline";

const [issuer, clientId, secret, alg, hint, acr, flowsArg, concurrencyArg] =
  process.argv.slice(2);
const flows = Number(flowsArg);
const concurrency = Number(concurrencyArg);
const CIBA = "urn:openid:params:grant-type:ciba";

const config = await client.discovery(
  new URL(issuer),
  clientId,
  { client_secret: secret, id_token_signed_response_alg: alg },
  client.ClientSecretBasic(secret),
  { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
);
const tokenEndpoint = config.serverMetadata().token_endpoint;
let tokenRequests = 0;
config[client.customFetch] = (url, options) => {
  if (url === tokenEndpoint) tokenRequests += 1;
  return fetch(url, options);
};

async function flow() {
  const started = await client.initiateBackchannelAuthentication(config, {
    scope: "openid profile",
    login_hint: hint,
    acr_values: acr,
  });
  try {
    await client.genericGrantRequest(config, CIBA, { auth_req_id: started.auth_req_id });
    throw new Error("approved before the first collect: not the measured flow");
  } catch (error) {
    if (error.error !== "authorization_pending") throw error;
  }
  const tokens = await client.pollBackchannelAuthenticationGrant(config, started);
  const claims = tokens.claims();
  if (!claims || claims.aud !== clientId && !claims.aud?.includes?.(clientId)) {
    throw new Error("no ID token for this client");
  }
}

await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
let remaining = flows;
let done = 0;
const errors = [];
const t0 = performance.now();
const cpu0 = process.cpuUsage();
async function worker() {
  while (remaining > 0) {
    remaining -= 1;
    try {
      await flow();
      done += 1;
    } catch (error) {
      errors.push(`${error.name}: ${error.message} ${error.error ?? ""}`.slice(0, 200));
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const clientCpu = (cpu.user + cpu.system) / 1e6;
const result = { flows: done, errors, seconds, token_requests: tokenRequests, client_cpu: clientCpu };
console.log(JSON.stringify(result));
process.exit(0);
